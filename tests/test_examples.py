"""Every command example of the README and of the reference pages in docs/ (indented command
blocks; `DOC_PAGES`) and of every `--help`
("Examples:" sections) runs: in a sandbox folder with tiny inputs (a loopback server stands in
for the weights and data downloads, small runs for `make demo`'s), or, for the few that need a
GPU, a licensed dataset or real weights (`PARSE_ONLY`, with the reason), is parsed by the real
command line with only the command's body skipped."""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import io
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner

from diffbench import refdata
from diffbench import weights as w
from diffbench.cli import main
from tests.conftest import write_images
from tests.test_weights import _Handler, server  # noqa: F401 - the loopback server fixture

ROOT = Path(__file__).resolve().parent.parent

# Examples that cannot run here (substring -> why); each is parsed instead. Keep it short.
PARSE_ONLY = {
    "--model sit-repa": "a trained SiT/REPA checkpoint and a GPU for ImageNet's 50K images",
    "--model dit": "DiT-XL/2 weights from the Hugging Face hub",
    "--model idm-vton": "IDM-VTON's code and weights, on CUDA",
    "--model dco": "SDXL, a trained LoRA per subject and a GPU",
    "--model sdxl-lora": "SDXL, a trained LoRA per subject and a GPU",
    "vitonhd=/data": "the VITON-HD dataset (licensed, not downloadable)",
    "vitonhd=...": "the VITON-HD dataset (licensed, not downloadable)",
    "dresscode=/data": "the DressCode dataset (licensed, not downloadable)",
    "dreambooth=/data": "the DreamBench dataset (not redistributed)",
    "torchrun ": "several processes, one per GPU",
    "<task>": "a placeholder for a task name",
    " ... ": "an elided command",
    "--protocol torch-fidelity --metrics fid,kid,isc": "KID subsets of 1,000: 1,000 images per "
                                                       "side, and the real Inception",
    "score --real VIRTUAL_imagenet256_labeled.npz": "ADM's ImageNet batch and 50K samples",
    "run memorization --model folder": "the user's generated, training and held-out folders and "
                                       "DINOv2 ViT-L/14 (test_memorization_score runs it)",
    "--real REF --fake GEN": "placeholder sets and DINOv2/CLIP ViT-L weights (test_fd_dinov2 and "
                             "test_cmmd run these protocols with random weights)",
}

# Runnable examples made small: the arguments appended to them here.
SMALLER = {
    "diffbench run demo --model demo-sit": [
        "--set", "tasks.digits-sde-cfg.generation.images_per_condition=2"],
    "diffbench generate imagenet256 --model toy --shard 0/4 --out runs/toy": ["--limit", "64"],
    "diffbench run suites/demo.yaml --model toy --limit 100": ["--out", "runs/limited"],
    "diffbench run demo --model toy": [
        "--set", "tasks.digits-sde-cfg.generation.images_per_condition=2"],
}

_STARTS = ("diffbench ", "torchrun ", "make ")


def _commands(lines: list[str]) -> list[str]:
    """Commands from example lines: continuation lines joined, comments dropped."""
    out, buf = [], ""
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        if not buf and not line.startswith(_STARTS):
            continue
        buf += (" " if buf else "") + line.removesuffix("\\").strip()
        if not line.endswith("\\"):
            words = shlex.split(buf, comments=True)
            out.append(shlex.join(words))
            buf = ""
    return out


# The docs pages whose command blocks run here too (the guides' plugin commands run in
# tests/test_plugins.py; docs/github-actions-gate.md's in a CI job).
DOC_PAGES = ("cli.md", "results.md", "imagenet.md", "try-on.md", "personalization.md",
             "representation-metrics.md", "reliability.md", "install.md", "layout.md")


def _is_command(command: str) -> bool:
    """Not prose that happens to start with "diffbench " in an indented list item."""
    words = command.split()
    return words[0] != "diffbench" or len(words) > 1 and (
        words[1] in main.commands or words[1].startswith("-"))


def page_examples(page: Path) -> list[str]:
    """The commands in a Markdown page's indented (4-space) blocks."""
    lines = page.read_text(encoding="utf-8").splitlines()
    return [c for c in _commands([x for x in lines if x.startswith("    ")]) if _is_command(c)]


def readme_examples() -> list[str]:
    """The commands of the README and of the docs pages it links (`DOC_PAGES`)."""
    out = page_examples(ROOT / "README.md")
    for name in DOC_PAGES:
        out += page_examples(ROOT / "docs" / name)
    return out


def _walk(cmd: click.Command, path: tuple[str, ...] = ()):
    yield path, cmd
    if isinstance(cmd, click.Group):
        for name, sub in sorted(cmd.commands.items()):
            yield from _walk(sub, (*path, name))


def help_examples() -> list[str]:
    """The commands of every "Examples:" / "Example:" section of the help texts."""
    out = []
    for _, cmd in _walk(main):
        found = re.search(r"Examples?:\n(.*)", cmd.help or "", re.S)
        assert found, f"{cmd.name}: its --help has no example"
        out += _commands(found.group(1).splitlines())
    return out


DOCS = ("memorization.md",)  # docs pages whose indented commands are examples too


def docs_examples() -> list[str]:
    """The commands in the indented (4-space) blocks of the `DOCS` pages."""
    lines = [x for page in DOCS for x in (ROOT / "docs" / page).read_text("utf-8").splitlines()]
    return _commands([x for x in lines if x.startswith("    ")])


ALL = list(dict.fromkeys(readme_examples() + help_examples() + docs_examples()))


def why_not_run(example: str) -> str | None:
    """The reason an example is only parsed, or None when it runs."""
    padded = f" {example} "
    return next((why for key, why in PARSE_ONLY.items() if key in padded), None)


def _argv(example: str) -> list[str]:
    words = shlex.split(example)
    if words[0] == "torchrun":
        words = words[words.index("diffbench"):]
    assert words[0] == "diffbench", example
    return [x.replace("<task>", "task") for x in words[1:] if x != "..."]


def _leaf(argv: list[str]) -> click.Command:
    cmd: click.Command = main
    for word in argv:
        if not isinstance(cmd, click.Group):
            break
        if word in cmd.commands:
            cmd = cmd.commands[word]
        elif cmd.name == "gate":  # `gate RESULTS ...` is `gate check RESULTS ...`
            cmd = cmd.commands["check"]
    return cmd


def parses(example: str, monkeypatch) -> None:
    """The real command line takes the example (names, options, values, types); the command's
    own body is skipped."""
    if example.startswith("make "):
        if shutil.which("make") is None:
            pytest.skip("make is not installed")
        res = subprocess.run(["make", "-n", *shlex.split(example)[1:]], cwd=ROOT,
                             capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        return
    argv = _argv(example)
    leaf = _leaf(argv)
    called = []
    monkeypatch.setattr(leaf, "callback", lambda **kw: called.append(kw))
    res = CliRunner().invoke(main, argv)
    assert res.exit_code == 0 and called, f"{example}\n{res.output}"


def test_examples_are_found_and_each_exception_is_used():
    assert len(page_examples(ROOT / "README.md")) >= 5 and len(readme_examples()) >= 40
    assert len(help_examples()) >= 50
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in DOC_PAGES:
        assert f"(docs/{name})" in readme, f"the README does not link docs/{name}"
    assert "diffbench run demo --model demo-sit" in ALL
    assert len(docs_examples()) == 3
    for key in PARSE_ONLY:
        assert any(key in f" {x} " for x in ALL), f"PARSE_ONLY entry {key!r} matches nothing"
    for key in SMALLER:
        assert key in ALL and why_not_run(key) is None, key
    parse_only = [x for x in ALL if why_not_run(x)]
    assert len(parse_only) < len(ALL) / 3, parse_only  # most examples really run


@pytest.mark.parametrize("example", [x for x in ALL if why_not_run(x) or x.startswith("make ")])
def test_examples_that_cannot_run_here_parse(example, monkeypatch, tmp_path):
    (tmp_path / "runs/repa/samples/task").mkdir(parents=True)  # click checks it exists
    monkeypatch.chdir(tmp_path)
    parses(example, monkeypatch)


def _batch() -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    np.savez(buf, arr_0=rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8))
    return buf.getvalue()


MY_SUITE = """name: my_suite
version: 1
tasks:
  digits:
    condition: class
    generation: {images_per_condition: 2, seed: 1, sampler: {num_classes: 10}}
    protocol: demo-digits
    metrics: {fid: {}, accuracy: {}}
    reference: {dataset: {name: digits, reader: sklearn-digits, args: {size: 32, split: test}}}
"""

PUBLISHED = """published_format: 1
suite: demo
protocol: demo-digits
entries:
  - {key: mine/model-x, task: digits-sde-cfg, model: model-x, source: my notes, metrics: {fid: 80.0}}
"""


@pytest.fixture
def sandbox(tmp_path, monkeypatch, server, inception_weights):  # noqa: F811
    """A working folder with the checkout's suites, tiny inputs, loopback downloads."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "suites").symlink_to(ROOT / "suites")
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("DIFFBENCH_PROGRESS", "off")
    # Downloads: the Inception weights (random, calibrated) and ADM batches, from 127.0.0.1.
    inc = w.WEIGHTS["inception-2015-12-05"]
    payload = Path(inception_weights).read_bytes()
    monkeypatch.setitem(w.WEIGHTS, inc.name, dataclasses.replace(
        inc, url=f"{server}/{inc.filename}", sha256=hashlib.sha256(payload).hexdigest()))
    (work / inc.filename).write_bytes(payload)
    batch = _batch()
    for name in ("imagenet256-ref", "imagenet512-ref"):
        spec = refdata.DATASETS[name]
        monkeypatch.setitem(refdata.DATASETS, name, dataclasses.replace(
            spec, url=f"{server}/{spec.filename}"))
    (work / "VIRTUAL_imagenet256_labeled.npz").write_bytes(batch)

    def serve(path):  # the served body follows the requested file
        return payload if path.endswith(".pth") else batch

    monkeypatch.setattr(_Handler, "body", property(lambda self: serve(self.path)))
    # Small stand-ins for the folders the examples name.
    (work / "my_suites").mkdir()
    (work / "my_suites" / "my_suite.yaml").write_text(MY_SUITE)
    (work / "my_numbers.yaml").write_text(PUBLISHED)
    write_images(work / "data" / "real", 8, seed=0)
    write_images(work / "ref", 12, seed=0)  # the quick start's two folders
    write_images(work / "samples", 12, seed=1)
    root = work / "zalando-hd-resized"
    for sub in ("test/image", "test/cloth"):
        (root / sub).mkdir(parents=True)
    (root / "test_pairs.txt").write_text("00006_00.jpg 00008_00.jpg\n")
    return work


def _phase(argv: list[str]) -> int:
    """Order: information and setup first, then runs, then what reads runs, the gate last."""
    head = " ".join(argv[:2])
    if argv[0] in ("run", "generate", "stats"):
        return 2
    if argv[0] in ("merge", "export-npz", "report") or head == "gate init":
        return 3
    return 4 if argv[0] == "gate" else 1


def _invoke(argv: list[str]):
    words = []
    for word in argv:  # the shell would expand globs
        words += sorted(glob.glob(word)) if "*" in word else [word]
    return CliRunner().invoke(main, words)


@pytest.mark.slow
def test_every_runnable_example_runs(sandbox, monkeypatch):
    runnable = [x for x in ALL if not why_not_run(x) and not x.startswith("make ")]
    runs = sorted(runnable, key=lambda x: _phase(_argv(x)))
    toy = _invoke(["run", "demo", "--model", "toy", "--set",
                   "tasks.digits-sde-cfg.generation.images_per_condition=2"])
    assert toy.exit_code == 0, toy.output  # runs/demo/toy beside the example's runs/demo/demo-sit
    for example in runs:
        argv = _argv(example) + SMALLER.get(example, [])
        if _phase(argv) == 3 and not (sandbox / "runs/other/results.json").exists():
            (sandbox / "runs/other").mkdir(parents=True)
            shutil.copy(sandbox / "runs/demo/toy/results/digits-sde-cfg.json",
                        sandbox / "runs/other/results.json")
        # each example starts from an empty user config
        Path(os.environ["DIFFBENCH_CONFIG"]).unlink(missing_ok=True)
        res = _invoke(argv)
        assert res.exit_code == 0, f"{example}\n{res.output}"
    verdict = _invoke(["gate", "runs/demo", "--baseline", "ci/baseline.yaml"])
    assert "demo-sit/digits-sde-cfg" in verdict.output and "toy/digits-sde-cfg" in verdict.output
