"""Faults of issue 24 (input that looked harmless): YAML alias bombs, aliased task settings,
symbolic links out of the dataset, weights found missing only after generation, usage errors.

Each case asserts the exit code, the one-line message, no traceback and that nothing was written
(gate tolerances: `tests/test_gate.py`, baselines of another model: there too).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from diffbench.cli import main
from diffbench.suite import load_suite
from tests._faults import ROOT, one_error


def invoke(*args, **kw):
    return CliRunner().invoke(main, [str(a) for a in args], **kw)


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*"))


# ---------------------------------------------------------------- 3: a YAML alias bomb

def _bomb(where: str) -> str:
    """A ~600-byte suite whose anchors nested 9 deep expand to 9**9 values at `where`."""
    lines = ["x: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    task = {"scale": "    metrics: {fid: {args: {scale: *a8}}}",
            "guidance_interval": "    generation: {sampler: {guidance_interval: *a8}}\n"
                                 "    metrics: {fid: {}}"}[where]
    return "\n".join([*lines, "name: bomb", "version: 1", "tasks:", "  t:", "    protocol: adm",
                      task]) + "\n"


# torch alone maps more than 1 GB of address space when imported, so the limit is 1 GB on top
# of what the interpreter holds after importing everything `run` imports: the bomb gets 1 GB.
_UNDER_1GB = """
import resource, sys
import diffbench.runner, diffbench.scoring  # noqa: F401  (torch and the run stack)
from diffbench.cli import main
held = [int(x.split()[1]) * 1024 for x in open("/proc/self/status") if x.startswith("VmSize")][0]
resource.setrlimit(resource.RLIMIT_AS, (held + (1 << 30), held + (1 << 30)))
sys.argv = ["diffbench", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize("where", ["scale", "guidance_interval"])
@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_yaml_alias_bomb_is_refused_in_bounded_memory(tmp_path, where, command):
    suite = tmp_path / "bomb.yaml"
    suite.write_text(_bomb(where))
    assert len(suite.read_bytes()) < 2048
    args = ["suites", "validate", suite] if command == "validate" else \
        ["run", suite, "--model", "toy", "--out", tmp_path / "out"]
    before = files_under(tmp_path)
    res = subprocess.run([sys.executable, "-c", _UNDER_1GB, *map(str, args)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin",
                              "DIFFBENCH_HOME": str(tmp_path / "home")})
    assert res.returncode == 2, res.stderr[-3000:]
    lines = [x for x in (res.stdout + res.stderr).splitlines() if x.strip()]
    assert "Traceback" not in res.stderr and "MemoryError" not in res.stderr
    assert len(lines) == 1 and len(lines[0]) < 300, lines[:3]
    assert "expand to more than 100,000 values" in lines[0] and str(suite) in lines[0]
    assert files_under(tmp_path) == before


def test_a_metric_arg_value_is_read_with_the_same_bound(tmp_path):
    # --metric-arg values go through the --model-arg parser (yamlio.load_yaml): the bound holds
    levels = ["&a0 [" + ", ".join(["1"] * 9) + "]"]
    levels += [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    res = invoke("run", "demo", "--model", "toy", "--out", tmp_path / "out", "--metric-arg",
                 f"fid.scale=[{', '.join(levels)}]")
    one_error(res, "--metric-arg fid.scale", "expand to more than 100,000 values")
    assert not (tmp_path / "out").exists()


def test_a_self_referring_alias_and_a_huge_value_in_a_message(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\nversion: 1\ntasks: &t {t: {protocol: adm, metrics: {fid: {}}, "
                     "x: *t}}\n")
    res = invoke("suites", "validate", suite)
    assert res.exit_code == 2 and res.output.count("\n") == 1, res.output
    assert "s.yaml:3: a YAML alias refers to the value that contains it" in res.output
    # a large value within the bound: the message shows a cut repr, never the whole value
    suite.write_text("name: s\nversion: 1\ntasks: {t: {protocol: adm, metrics: {fid: {args: "
                     f"{{scale: [{', '.join(['123456789'] * 5000)}]}}}}}}}}}}\n")
    res = invoke("suites", "validate", suite)
    assert res.exit_code == 2 and res.output.count("\n") == 1, res.output[:300]
    assert "args.scale: must be" in res.output and len(res.output) < 600 and "…" in res.output


# ---------------------------------------------------------------- 6: every task owns its settings

def test_set_on_one_task_leaves_the_tasks_that_merged_it_unchanged():
    """suites/dresscode.yaml builds the category tasks with `<<: *paired`."""
    plain = load_suite("dresscode")
    loaded = load_suite("dresscode", ["tasks.paired.generation.seed=7",
                                      "tasks.paired.metrics.kid.args.subset_size=50",
                                      "tasks.paired.dataset.args.pairing=paired"])
    assert loaded.suite.tasks["paired"].generation.seed == 7
    assert loaded.suite.tasks["paired"].metrics["kid"].args == {"subset_size": 50}
    siblings = [n for n in loaded.suite.tasks if n != "paired"]
    assert {"paired-upper_body", "paired-dresses"} <= set(siblings)
    for name in siblings:  # what a record of each sibling is made from: the model and the data
        assert loaded.suite.tasks[name] == plain.suite.tasks[name], name
        assert loaded.resolved["tasks"][name] == plain.resolved["tasks"][name], name


# ---------------------------------------------------------------- 4: a symbolic link out of the root

def test_a_symlink_inside_the_dataset_root_may_not_lead_out_of_it(tmp_path):
    from tests._vton import write_vitonhd

    root = write_vitonhd(tmp_path / "data" / "vitonhd")
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET first line\n")
    (root / "p.txt").symlink_to(secret)
    (root / "ok.txt").symlink_to(root / "test_pairs.txt")  # a link inside the root is kept
    before = files_under(tmp_path)
    res = invoke("run", "vitonhd", "--model", "toy", "--task", "paired", "--data",
                 f"vitonhd={root}", "--set", "tasks.paired.dataset.args.pairs_file=p.txt",
                 "--set", "tasks.paired.metrics={ssim: {}}",
                 "--out", tmp_path / "r")
    one_error(res, "vitonhd: pairs_file 'p.txt': resolves (through a symbolic link) to "
              f"{secret}, outside the dataset root")
    assert "TOPSECRET" not in res.output and files_under(tmp_path) == before
    from diffbench.data.vitonhd import VitonHD

    assert len(VitonHD(root, pairs_file="ok.txt").pairs) == 5


# ---------------------------------------------------------------- 2: weights before the first image

@pytest.mark.parametrize("metric,weights", [
    ("fid", "inception-2015-12-05"),
    ("fd_dinov2", "dinov2-vitl14"),  # a metric of its own network, under another protocol
])
def test_missing_extractor_weights_stop_the_run_before_generation(tmp_path, metric, weights):
    import numpy as np

    ref = tmp_path / "r.npz"
    np.savez(ref, arr_0=np.zeros((4, 16, 16, 3), np.uint8))  # ADM's batch layout
    args = ["run", "imagenet256", "--task", "repa-sde-cfg", "--model", "toy", "--limit", "4",
            "--data", f"imagenet256-ref={ref}", "--out", tmp_path / "out"]
    protocol = ", protocol: dgm-eval" if metric == "fd_dinov2" else ""
    args += ["--set", f"tasks.repa-sde-cfg.metrics={{{metric}: {{args: {{}}{protocol}}}}}"]
    before = files_under(tmp_path)
    line = one_error(invoke(*args), f"weights '{weights}'", "downloads are off (offline)",
                     f"diffbench weights import {weights}", f"--weights {weights}=PATH",
                     f"config set weights.{weights}", "needed by task repa-sde-cfg")
    assert "things to fix" not in line  # the one thing missing, alone
    assert files_under(tmp_path) == before  # no image generated, no run directory


def test_the_registry_names_of_weights_are_read_without_building_networks():
    from diffbench.features import extractor_weights
    from diffbench.readiness import metric_weights
    from diffbench.resolve import resolve_task

    def weights_of(metric, protocol, args):
        return metric_weights(resolve_task({metric: args}, protocol)[metric])

    assert extractor_weights("inception") == "inception-2015-12-05"
    assert extractor_weights("dinov2-vitl14") == "dinov2-vitl14"
    assert extractor_weights("digits") is None  # shipped with diffbench
    assert weights_of("prc", "torch-fidelity", {"features": "vgg16"}) == ["vgg16-imagenet"]
    assert weights_of("lpips", "catvton", {}) == ["squeezenet1_1-imagenet"]
    assert weights_of("lpips", "catvton", {"net": "vgg"}) == ["vgg16-imagenet"]
    assert weights_of("ssim", "catvton", {}) == []
    assert weights_of("dino", "dreambench", {}) == ["dino-vits16"]


def test_one_preflight_lists_everything_missing_for_a_run(tmp_path, monkeypatch):
    """Issue 23: `diffbench run vitonhd --model idm-vton` on a machine with nothing."""
    monkeypatch.chdir(tmp_path)
    before = files_under(tmp_path)
    line = one_error(invoke("run", "vitonhd", "--model", "idm-vton"),
                     "6 things to fix before this run can start: (1) idm-vton: pass "
                     "--model-arg repo=PATH", "(2) idm-vton: IDM-VTON's TryonPipeline runs "
                     "GarmentNet on 'cuda'", "(3) model 'yisol/IDM-VTON' (--model-arg weights) "
                     "is not in the Hugging Face cache", "(4) where is dataset 'vitonhd'?",
                     "(5) weights 'squeezenet1_1-imagenet'", "(6) weights 'inception-2015-12-05'",
                     "needed by task paired, unpaired")
    assert "(7)" not in line and files_under(tmp_path) == before
    # a checkout that is not IDM-VTON's, a device that is not there
    (tmp_path / "repo").mkdir()
    one_error(invoke("run", "vitonhd", "--model", "idm-vton", "--model-arg",
                     f"repo={tmp_path / 'repo'}", "--device", "cuda:7"),
              "(1) --device cuda:7:",
              f"(2) idm-vton: {tmp_path / 'repo'} is not an IDM-VTON checkout")


# ---------------------------------------------------------------- 5: usage errors, --limit, a live store

def test_usage_errors_are_one_line(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    (tmp_path / "store").mkdir()
    before = files_under(tmp_path)
    one_error(invoke("run", "demo", "--model", "toy", "--out", afile),
              "diffbench run: Invalid value for '--out'", "is a file", "diffbench run --help")
    one_error(invoke("export-npz", tmp_path / "store", "-o", tmp_path / "store"),
              "diffbench export-npz: Invalid value for '-o' / '--output'", "is a directory")
    one_error(invoke("score", "--bogus"), "No such option '--bogus'")
    one_error(invoke("score", "--real", afile, "--fake", afile, "--protocol", "demo-digits",
                     "--json", afile / "r.json"),
              f"{afile}: is a file, so the --json file {afile / 'r.json'} cannot be created")
    assert files_under(tmp_path) == before
    assert invoke("gate").exit_code == 2  # a bare group still shows its help


SMALL = """
name: small
version: 1
tasks:
  digits:
    condition: class
    generation: {images_per_condition: 2, seed: 1, sampler: {num_classes: 10}}
    protocol: demo-digits
    metrics: {accuracy: {}}
    reference:
      dataset: {name: digits, reader: sklearn-digits, args: {size: 32, split: test}}
"""


def test_a_limit_at_or_above_the_task_count_is_not_a_smoke_run(tmp_path):
    import json

    suite = tmp_path / "small.yaml"
    suite.write_text(textwrap.dedent(SMALL))
    base = ["run", suite, "--model", "toy", "--model-arg", "size=32"]
    res = invoke(*base, "--limit", "99999999999999999999", "--out", tmp_path / "all")
    assert res.exit_code == 0, res.output
    record = json.loads((tmp_path / "all" / "results" / "digits.json").read_text())
    assert record["counts"]["generated"] == 20 and not record.get("smoke")
    assert not any("smoke" in n for n in record["notes"])
    res = invoke(*base, "--limit", "5", "--out", tmp_path / "five")
    assert res.exit_code == 0, res.output
    record = json.loads((tmp_path / "five" / "results" / "digits.json").read_text())
    assert record["counts"]["generated"] == 5 and record["smoke"] is True


def test_score_refuses_a_store_that_a_run_is_still_writing(tmp_path):
    from diffbench.lock import lock_run_dir
    from tests.conftest import write_images

    real = write_images(tmp_path / "real", 20, 0)
    store = write_images(tmp_path / "run" / "samples" / "t", 20, 1)
    args = ["score", "--real", real, "--fake", store, "--protocol", "demo-digits", "--metrics",
            "fid", "--workers", "0", "--no-cache"]
    with lock_run_dir(tmp_path / "run"):
        before = files_under(tmp_path)
        one_error(invoke(*args, "--json", tmp_path / "r.json"),
                  f"--fake {store}: the run in {tmp_path / 'run'} (PID", "is still writing it",
                  "--allow-partial")
        assert files_under(tmp_path) == before
        assert invoke(*args, "--allow-partial").exit_code == 0
    assert invoke(*args).exit_code == 0  # the run is over: scored as usual


def test_a_suite_path_that_does_not_exist_falls_back_to_the_shipped_suite(tmp_path, monkeypatch,
                                                                           caplog):
    """Issue 23: `run suites/vitonhd.yaml` outside a checkout is `run vitonhd`, with a note."""
    monkeypatch.chdir(tmp_path)
    loaded = load_suite("suites/vitonhd.yaml")
    assert loaded.suite.name == "vitonhd" and loaded.origin == "shipped"
    assert "suites/vitonhd.yaml: no such file; using the shipped suite 'vitonhd'" in caplog.text
    res = invoke("suites", "validate", "suites/nope.yaml")
    assert res.exit_code == 2 and "suite 'suites/nope.yaml' not found" in res.output


def test_generator_weights_missing_offline_are_listed_with_the_rest(tmp_path):
    """A hub model not in the local cache (offline) is found before anything loads."""
    before = files_under(tmp_path)
    one_error(invoke("run", "imagenet256", "--task", "sde-nocfg", "--model", "dit", "--out",
                     tmp_path / "out"),
              "things to fix", "model 'facebook/DiT-XL-2-256' (--model-arg model) is not in the "
              "Hugging Face cache", "where is dataset 'imagenet256-ref'?",
              "weights 'inception-2015-12-05'")
    assert files_under(tmp_path) == before
