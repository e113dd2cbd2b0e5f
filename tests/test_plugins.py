"""The contributor guides' example plugin (tests/plugins/diffbench_example_plugin), installed
through its entry points: a distribution metric that is one spec and one function (+ the protocol
that defines it), and a model adapter with declared hooks, used by every command."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tomllib
from click.testing import CliRunner

from diffbench import gate
from diffbench.cli import main
from diffbench.registry import REGISTRIES
from tests.conftest import write_images

PLUGIN = Path(__file__).resolve().parent / "plugins" / "diffbench_example_plugin"


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """The plugin as `pip install` leaves it: its package on sys.path and a .dist-info holding
    the entry points of its pyproject.toml (importlib.metadata reads them from there)."""
    meta = tomllib.loads((PLUGIN / "pyproject.toml").read_text())["project"]
    info = tmp_path / "site" / "diffbench_example_plugin-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {meta['name']}\n"
                                   f"Version: {meta['version']}\n")
    (info / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) + "\n"
        for group, eps in meta["entry-points"].items()))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.syspath_prepend(str(PLUGIN))
    yield meta
    for registry in REGISTRIES.values():  # forget the loaded plugin objects
        for name in ("mean_gap", "example-digits", "example-noise", "pixel_diff", "example-tryon"):
            registry._loaded.pop(name, None)
    for mod in [m for m in sys.modules if m.startswith("diffbench_example_plugin")]:
        del sys.modules[mod]


def invoke(*args) -> object:
    return CliRunner().invoke(main, [str(a) for a in args])


SUITE = """
name: plugin-demo
version: 1
tasks:
  noise:
    condition: class
    generation:
      images_per_condition: 2
      sampler: {{num_classes: 10, contrast: 1.5}}
    protocol: example-digits
    metrics: {metrics}
    reference:
      dataset: {{name: digits, reader: sklearn-digits, args: {{size: 32, split: test}}}}
"""


def write_suite(tmp_path: Path, metrics: str) -> Path:
    path = tmp_path / "plugin.yaml"
    path.write_text(textwrap.dedent(SUITE.format(metrics=metrics)))
    return path


def test_listed_by_diffbench_metrics_and_models(plugin):
    res = invoke("metrics")
    assert res.exit_code == 0, res.output
    block = res.output[res.output.index("mean_gap"):]
    assert "[plugin diffbench-example-plugin]" in block.splitlines()[0]
    assert "family: distribution; outputs: mean_gap (Mean gap ↓, gate rel 0.1)" in block
    assert "protocols: example-digits" in block and "arguments: root=False, scale" in block
    res = invoke("models")
    assert "example-noise" in res.output and "[plugin diffbench-example-plugin]" in res.output


def test_suites_validate_checks_its_arguments(plugin, tmp_path):
    bad = write_suite(tmp_path, "{fid: {}, mean_gap: {args: {rooot: true}}}")
    res = invoke("suites", "validate", bad)
    assert res.exit_code == 2, res.output
    assert res.stderr.splitlines() == [
        f"{bad}: tasks.noise.metrics.mean_gap.args.rooot: unknown argument; did you mean "
        "'root'? accepted: root, scale"]
    good = write_suite(tmp_path, "{fid: {}, mean_gap: {args: {root: true}}}")
    assert invoke("suites", "validate", good).exit_code == 0
    other = write_suite(tmp_path, "{mean_gap: {protocol: demo-digits}}")
    res = invoke("suites", "validate", other)
    assert res.exit_code == 2 and "protocols that define it: example-digits" in res.stderr


def _features(folder: Path) -> np.ndarray:
    from diffbench.data.folder import FolderSource
    from diffbench.extract import extract
    from diffbench.features import build_extractor

    fs = extract(FolderSource(folder), build_extractor("digits"), ("features",), (), workers=0)
    return fs.moments["features"].mean()


def test_score_and_gate_use_its_direction_and_tolerance(plugin, tmp_path):
    real, fake = write_images(tmp_path / "real", 12, 0), write_images(tmp_path / "fake", 12, 1,
                                                                      shift=30)
    out = tmp_path / "score.json"
    res = invoke("score", "--real", real, "--fake", fake, "--protocol", "example-digits",
                 "--metrics", "fid,mean_gap", "--workers", "0", "--json", out)
    assert res.exit_code == 0, res.output
    record = json.loads(out.read_text())
    entry = record["metrics"]["mean_gap"]
    diff = _features(real) - _features(fake)
    assert entry["value"] == float(diff @ diff)  # the same features, the same float64 sum
    assert entry["higher_is_better"] is False and "fid" in record["metrics"]
    assert "mean_gap" in res.output.splitlines()[1]  # the console table

    for flag in ("higher_is_better",):  # older records and other tools may not carry it
        entry.pop(flag)
    baseline = gate.init_baseline(record)
    spec = baseline["tasks"]["score"]["metrics"]["mean_gap"]
    assert spec["higher_is_better"] is False and spec["tolerance"] == {"rel": 0.10}
    for factor, status in ((1.05, "pass"), (1.2, "regression"), (0.5, "improved")):
        current = json.loads(json.dumps(record))
        current["metrics"]["mean_gap"]["value"] = entry["value"] * factor
        row = next(r for r in gate.gate(current, baseline).rows if r.metric == "mean_gap")
        assert row.status == status, (factor, row)


def test_run_with_its_adapter_and_hooks(plugin, tmp_path):
    import diffbench

    suite = write_suite(tmp_path, "{fid: {}, mean_gap: {args: {root: true}}}")
    records = diffbench.run(suite, model="example-noise", model_args={"size": 32},
                            out=tmp_path / "run", workers=0)
    (record,) = records
    assert record["model"]["args"]["adapter"]["size"] == 32  # describe()
    assert record["generation"]["model_evaluations"] == {"nfe": 0}  # sampler_stats()
    assert record["counts"]["generated"] == 20
    gap = record["metrics"]["mean_gap"]
    assert gap["value"] > 0 and gap["higher_is_better"] is False
    assert record["protocol"]["settings"]["params"]["mean_gap"] == {"root": True}
    assert diffbench.load_results(tmp_path / "run") == [record]


def test_suite_with_its_reader_runs_end_to_end(plugin, tmp_path):
    """docs/adding-a-suite.md: the plugin reader's items drive generation, its images are the
    reference, and the numbers equal the same scoring of the same two sets by `score`."""
    import diffbench

    root = tmp_path / "classes"
    for label in range(3):
        write_images(root / str(label), 4, seed=label, size=(32, 32), shift=20 * label)
    suite = PLUGIN / "suites" / "class-folders.yaml"
    assert invoke("suites", "validate", suite).exit_code == 0
    res = invoke("datasets")
    assert "example-class-folders" in res.output and "one item per class" in res.output
    (record,) = diffbench.run(suite, model="example-noise", out=tmp_path / "run",
                              data={"my-classes": str(root)}, workers=0)
    assert record["counts"]["planned"] == 6 and record["counts"]["real"] == 12
    assert record["dataset"]["describe"] == {"kind": "class-folders", "root": str(root),
                                             "classes": 3, "images": 12}
    reals = tmp_path / "reals"
    for i, path in enumerate(sorted(root.rglob("*.png"))):
        (reals / f"{i:02d}.png").parent.mkdir(exist_ok=True)
        (reals / f"{i:02d}.png").write_bytes(path.read_bytes())
    direct = diffbench.score(reals, tmp_path / "run" / "samples" / "per-class",
                             metrics="fid,mean_gap", protocol="example-digits", workers=0)
    assert record["metrics"]["fid"]["value"] == direct["metrics"]["fid"]["value"]
    gap = direct["metrics"]["mean_gap"]["value"]
    assert record["metrics"]["mean_gap"]["value"] == pytest.approx(np.sqrt(gap), rel=1e-12)


TRYON = """
name: plugin-tryon
version: 1
tasks:
  paired:
    condition: tryon
    dataset: {name: vitonhd, reader: vitonhd, args: {pairing: paired}}
    protocol: example-tryon
    metrics: {ssim: {}, pixel_diff: {}}
"""


def test_a_paired_metric_with_two_outputs_reaches_report_and_gate(plugin, tmp_path):
    """docs/adding-a-metric.md: pixel_diff writes pixel_mae ↓ and pixel_equal ↑; the record, the
    report and the gate read each output's facts from its spec."""
    import diffbench
    from tests._vton import write_generated, write_vitonhd

    root = write_vitonhd(tmp_path / "vitonhd")
    persons = sorted(p.stem for p in (root / "test" / "image").glob("*.jpg"))
    made = write_generated(tmp_path / "made", [f"{k}.jpg" for k in persons])
    suite = tmp_path / "tryon.yaml"
    suite.write_text(textwrap.dedent(TRYON))
    (record,) = diffbench.run(suite, model="folder", model_args={"path": str(made)},
                              out=tmp_path / "run", data={"vitonhd": str(root)}, workers=0)
    mae, equal = record["metrics"]["pixel_mae"], record["metrics"]["pixel_equal"]
    assert mae["higher_is_better"] is False and equal["higher_is_better"] is True
    from PIL import Image

    gts = [np.asarray(Image.open(root / "test" / "image" / f"{k}.jpg"), np.float64)
           for k in persons]
    preds = [np.asarray(Image.open(made / f"{k}.jpg"), np.float64) for k in persons]
    want = np.mean([np.abs(g - p).mean() / 255 for g, p in zip(gts, preds, strict=True)])
    assert mae["value"] == pytest.approx(want, rel=1e-12) and 0 <= equal["value"] <= 1
    assert mae["n"] == {"generated": len(persons)} and "ssim" in record["metrics"]

    res = invoke("report", tmp_path / "run", "-o", tmp_path / "report")
    assert res.exit_code == 0, res.output
    csv = (tmp_path / "report" / "report.csv").read_text()
    assert "pixel_mae" in csv and "pixel_equal" in csv
    assert "Pixel MAE" in (tmp_path / "report" / "report.md").read_text()

    baseline = gate.init_baseline(record)
    metrics = baseline["tasks"]["paired"]["metrics"]
    assert metrics["pixel_mae"]["higher_is_better"] is False
    assert metrics["pixel_equal"]["tolerance"] == {"abs": 0.01}
    worse = json.loads(json.dumps(record))
    worse["metrics"]["pixel_mae"]["value"] += 0.05  # worse: up
    worse["metrics"]["pixel_equal"]["value"] += 0.05  # better: up
    rows = {r.metric: r.status for r in gate.gate(worse, baseline).rows}
    assert rows["pixel_mae"] == "regression" and rows["pixel_equal"] == "improved"
METRIC_GUIDE_SUITE = SUITE.format(metrics="{mean_gap: {args: {rooot: true}}}")


def test_the_guides_commands_run_as_written(plugin, tmp_path, monkeypatch):
    """Every command block of the three guides, verbatim, in a folder holding what they name
    (ref/, samples/, my.yaml, classes/, the plugin's suites/): each exits as its comment says,
    and each later step reads what an earlier one wrote (score.json, baseline.yaml)."""
    import shlex

    from tests.test_examples import page_examples

    monkeypatch.chdir(tmp_path)
    (tmp_path / "suites").symlink_to(PLUGIN / "suites")
    write_images(tmp_path / "ref", 12, 0)
    write_images(tmp_path / "samples", 12, 1, shift=30)
    (tmp_path / "my.yaml").write_text(textwrap.dedent(METRIC_GUIDE_SUITE))
    for label in range(3):
        write_images(tmp_path / "classes" / str(label), 3, seed=label, size=(32, 32))
    docs = Path(__file__).resolve().parent.parent / "docs"
    commands = [c for g in ("adding-a-metric.md", "adding-a-model.md", "adding-a-suite.md")
                for c in page_examples(docs / g)]
    assert len(commands) == 10, commands
    for command in commands:
        argv = shlex.split(command)[1:]
        res = invoke(*argv, *(["--workers", "0"] if argv[0] in ("run", "score") else []))
        expected = 2 if argv[:2] == ["suites", "validate"] and argv[2] == "my.yaml" else 0
        assert res.exit_code == expected, (command, res.output)
        if argv[0] == "score":  # fid's few-images warning; mean_gap reads only the means
            assert "fid: fewer images (12)" in res.stderr
            assert "mean_gap: fewer images" not in res.stderr, res.stderr
    assert "did you mean 'root'?" in invoke("suites", "validate", "my.yaml").stderr
    assert json.loads((tmp_path / "score.json").read_text())["metrics"]["mean_gap"]["value"] > 0
