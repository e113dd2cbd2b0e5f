"""`diffbench report`: tidy CSV, Markdown and HTML; protocols apart; published rows; scales;
galleries; Pareto plots; escaping.

`demo_runs` builds run folders by hand in the real format (PNGs + manifest.jsonl + results
records with ``inputs.fake.path``); the browser test reuses it.
"""

from __future__ import annotations

import csv
import functools
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
from click.testing import CliRunner
from PIL import Image

from diffbench.cli import main
from diffbench.pareto import sweep_front
from diffbench.report.build import build_report
from diffbench.report.collect import collect
from diffbench.report.gallery import Run, task_gallery
from diffbench.report.table import COLUMNS
from diffbench.results import new_record, write

DEMO = {"suite": {"name": "demo", "version": 1}, "protocol": "demo-digits"}
XSS = "<script>alert(1)</script>"


def as_measured(protocol: str, n: int, sha256: str | None = None) -> dict:
    """The fields a real run records that make it comparable: the protocol's settings, the
    official extractor weights (sha256 from the registry, or the shipped demo classifier's) and
    as many scored images as the task asks. `sha256` replaces the weights (random ones)."""
    from diffbench.features.digits import DEFAULT_WEIGHTS
    from diffbench.fsutil import file_sha256
    from diffbench.protocols import get_protocol
    from diffbench.weights import WEIGHTS

    proto = get_protocol(protocol)
    if proto.extractor == "digits":
        name, digest = "digits-classifier", file_sha256(DEFAULT_WEIGHTS)
    else:
        name, digest = "inception-2015-12-05", WEIGHTS["inception-2015-12-05"].sha256
    fingerprint = {"extractor": name, "weights_sha256": sha256 or digest, "layers": ["pool3"]}
    return {"protocol": protocol, "protocol_settings": proto.settings(),
            "extractors": {name: fingerprint}, "counts": {"planned": n, "scored": n, "real": n}}


def record(model, fid, protocol="adm", task="repa-sde-cfg", suite="imagenet256", ci=None,
           **fields):
    metrics = {"fid": {"value": fid, "higher_is_better": False},
               "precision": {"value": 0.7, "std": 0.01}}
    if ci:
        metrics["fid"]["ci"] = {"low": ci[0], "high": ci[1]}
    return new_record(kind="run", metrics=metrics, suite={"name": suite, "version": 1}, task=task,
                      model={"name": model, "args": {"cfg": 1.8}},
                      **{**as_measured(protocol, 50000), **fields})


@functools.lru_cache(maxsize=1)
def _digits():
    from sklearn.datasets import load_digits

    return load_digits()


def _image(cond: dict, rng: np.random.Generator, size: int) -> np.ndarray:
    """A digit of the condition's class (sklearn's digits), tinted; noise for other conditions."""
    if "class" not in cond:
        return rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
    digits = _digits()
    pick = rng.choice(np.flatnonzero(digits.target == cond["class"]))
    small = (digits.images[pick] / 16.0 * 255).astype(np.uint8)
    gray = np.asarray(Image.fromarray(small).resize((size, size), Image.Resampling.BILINEAR))
    tint = rng.uniform(0.5, 1.0, 3)
    return (gray[..., None] * tint).astype(np.uint8)


def write_samples(folder: Path, conditions: dict[str, dict], seed: int, size: int = 32) -> None:
    """PNGs and a manifest.jsonl as `diffbench run` writes them."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    lines = []
    for i, (key, cond) in enumerate(sorted(conditions.items())):
        Image.fromarray(_image(cond, rng, size)).save(folder / f"{key}.png")
        lines.append(json.dumps({"key": key, "seed": i, "condition": cond, "sampler": {},
                                 "sha256": "0" * 64}))
    (folder / "manifest.jsonl").write_text("\n".join(lines) + "\n")


def demo_metrics(fid, isc, precision, recall, accuracy, ci=0.0):
    out = {"fid": {"value": fid, "higher_is_better": False}, "isc": {"value": isc},
           "precision": {"value": precision}, "recall": {"value": recall},
           "accuracy": {"value": accuracy}}
    if ci:
        out["fid"]["ci"] = {"low": fid - ci, "high": fid + ci, "level": 0.95}
    return out


def demo_record(run: Path, model: str, task: str, metrics: dict, conditions: dict, seed: int,
                sweep: dict | None = None, **fields) -> dict:
    """One results record of the demo suite with its sample folder (comparable unless `fields`
    say otherwise)."""
    samples = run / "samples" / task
    write_samples(samples, conditions, seed)
    return new_record(kind="run", metrics=metrics, task=task, model={"name": model}, sweep=sweep,
                      inputs={"fake": {"kind": "samples", "path": str(samples), "n": 200}},
                      suite=DEMO["suite"], **{**as_measured(DEMO["protocol"], 200), **fields})


def demo_runs(root: Path) -> Path:
    """Two models on the demo suite: task `digits`, and a `guidance` sweep with Pareto fronts."""
    classes = {f"c{k}-0": {"class": k} for k in range(8)}
    classes["c0-1"] = {"prompt": '<img src=x onerror="alert(2)"> nine'}
    models = {"toy-small": (38.5, 1.9, 0.61, 0.42, 0.78), XSS: (52.25, 1.7, 0.55, 0.47, 0.71)}
    for i, (model, values) in enumerate(models.items()):
        run = root / f"run{i}"
        rec = demo_record(run, model, "digits", demo_metrics(*values, ci=1.5), classes, i)
        write(rec, run / "results" / "digits.json")
        sweep = []
        for g in (0.0, 1.0, 2.0, 3.0):
            metrics = demo_metrics(40 + g, 2.0, 0.5 + 0.1 * g - 0.03 * i * g * g,
                                   0.5 - 0.05 * g, 0.7 + 0.05 * g - 0.02 * g * g + 0.01 * i)
            sweep.append(demo_record(run, model, f"guidance-{g:g}", metrics, classes, 10 + i,
                                     sweep={"guidance": g}))
        pareto = sweep_front(sweep, "accuracy", "precision", "guidance")
        for rec in sweep:
            rec["pareto"], rec["task"] = pareto, "guidance"
            write(rec, run / "results" / f"guidance@{rec['sweep']['guidance']:g}.json")
    pub = root / "published" / "demo.yaml"
    pub.parent.mkdir()
    pub.write_text(
        "published_format: 1\nsuite: demo\nprotocol: demo-digits\nscales: {precision: 100}\n"
        "entries:\n"
        "  - {key: demo/paper, task: digits, model: Digits-GAN (paper), source: 'Doe et al., "
        "Table 2 <b>', url: 'https://example.org/paper', metrics: {fid: 30.1, isc: 21.5, "
        "precision: 70.0, recall: 0.40}}\n"
        "  - {key: demo/other, task: digits, model: Other net, source: Blog post, "
        "unverified: true, metrics: {fid: 61.0}}\n")
    return pub


def test_report_two_models_published_rows_and_protocols_apart(tmp_path):
    runs = tmp_path / "runs"
    write(record("sit-repa", 1.5, ci=(1.4, 1.6)), runs / "a" / "results.json")
    write(record("dit", 2.4), runs / "b" / "results.json")
    write(record("dit", 9.9, protocol="torch-fidelity"), runs / "c" / "results.json")
    out = tmp_path / "report"
    res = CliRunner().invoke(main, ["report", str(runs), "-o", str(out)])
    assert res.exit_code == 0, res.output
    frame = pd.read_csv(out / "report.csv")
    assert list(frame.columns) == COLUMNS
    # counts and versions are integers, also in columns where published rows leave them empty
    with open(out / "report.csv", newline="", encoding="utf-8") as f:
        cells = list(csv.DictReader(f))
    assert {r["n"] for r in cells if r["origin"] == "measured"} == {"50000"}
    assert {r["suite_version"] for r in cells if r["origin"] == "measured"} == {"1"}
    assert {r["n"] for r in cells if r["origin"] == "published"} == {""}
    measured = frame[frame.origin == "measured"]
    assert set(measured.model) == {"sit-repa", "dit"} and len(measured) == 6
    published = frame[frame.origin == "published"]
    assert "SiT-XL/2 + REPA, 800 ep (4M it), cfg 1.8, interval [0, 0.7], SDE 250" in set(
        published.model)
    assert set(published.protocol) == {"adm"}  # no published torch-fidelity rows exist
    md = (out / "report.md").read_text()
    assert "### imagenet256 · repa-sde-cfg · protocol `adm`" in md
    assert "### imagenet256 · repa-sde-cfg · protocol `torch-fidelity`" in md
    assert "FID ↓" in md and "Precision ↑" in md
    assert "1.50 ± 0.10" in md  # value ± half CI
    adm_table = md.split("protocol `adm`")[1].split("###")[0]
    assert "9.90" not in adm_table  # the torch-fidelity number never lands in the adm table
    page = (out / "index.html").read_text()
    assert "<script>" in page and "http" not in page.split("<body>")[1].split("<table")[0]
    assert page.count('<table class="board">') == 2


def test_demo_report_gallery_pareto_and_published(tmp_path):
    pub = demo_runs(tmp_path)
    out = tmp_path / "report"
    files = build_report([tmp_path / "run0", tmp_path / "run1"], out, published=False,
                         extra_published=[pub])
    frame = pd.read_csv(out / "report.csv")
    digits = frame[frame.task == "digits"]
    assert set(digits[digits.origin == "measured"].model) == {"toy-small", XSS}
    paper = digits[(digits.origin == "published") & (digits.metric == "precision")]
    assert paper.value.item() == 0.7 and paper.scale.item() == 100  # printed 70.0 = P×100
    assert set(frame[frame.task == "guidance"].sweep) == {f"guidance={g}" for g in
                                                         (0.0, 1.0, 2.0, 3.0)}
    md = (out / "report.md").read_text()
    assert "Precision ×100 ↑" in md and "| 61.0 |" in md and "| 70.0 |" in md  # one scale
    assert "Doe et al., Table 2 &lt;b&gt;" in md and "published (unverified): Blog post" in md
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md and XSS not in md
    page = (out / "index.html").read_text()
    assert XSS not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img src=x" not in page and "Table 2 &lt;b&gt;" in page
    # Gallery: 6 rows (bounded), one column per model, thumbnails inlined, captions from conditions.
    gallery = page.split("<h3>Samples</h3>")[1].split("</table>")[0]
    assert gallery.count("<tr>") == 1 + 6 and "class 0" in gallery
    assert gallery.count("data:image/png;base64,") == 12
    # Pareto: one PNG + SVG per sweep task, embedded in the page.
    assert [p.suffix for p in files.plots] == [".png", ".svg"]
    assert all(p.stat().st_size > 1000 for p in files.plots)
    assert 'class="pareto"><img src="data:image/png;base64,' in page
    svg = files.plots[1].read_text()
    assert len(re.findall(r'id="pareto-front-\d+"', svg)) == 2
    assert not re.search(r"(src|href)=\"(https?:)?//", page.replace(
        'href="https://example.org/paper"', ""))  # nothing loaded from elsewhere
    assert len(page) < 400_000


def test_scaled_metric_measured_and_published_in_one_column(tmp_path):
    metrics = {"kid": {"value": 0.00123, "scale": 1000, "ci": {"low": 0.00113,
                                                               "high": 0.00133}}}
    rec = new_record(kind="run", protocol="vton-test", metrics=metrics, counts={"fake": 10},
                     suite={"name": "vton", "version": 1}, task="paired", model={"name": "m"})
    write(rec, tmp_path / "runs" / "results.json")
    pub = tmp_path / "pub.yaml"
    pub.write_text("published_format: 1\nsuite: vton\nprotocol: vton-test\nscales: {kid: 1000}\n"
                   "entries:\n  - {key: k, task: paired, model: IDM, source: paper, "
                   "metrics: {kid: 1.2}}\n")
    build_report([tmp_path / "runs"], tmp_path / "r", published=False, extra_published=[pub])
    md = (tmp_path / "r" / "report.md").read_text()
    assert "KID ×1000 ↓" in md
    assert "| 1.23 ± 0.10 |" in md and "| 1.20 |" in md
    frame = pd.read_csv(tmp_path / "r" / "report.csv")
    assert frame.value.tolist() == [0.00123, 0.0012]


def test_tryon_gallery_paired_and_missing_files(tmp_path):
    data = tmp_path / "data"
    write_samples(data, {"p1": {}, "g1": {}}, seed=3, size=120)
    cond = {"person": str(data / "p1.png"), "garment": str(data / "g1.png")}
    gone = {"person": str(data / "nope.png"), "garment": str(data / "g1.png")}
    write_samples(tmp_path / "a", {"00001_00": cond, "00002_00": gone}, seed=4)
    g = task_gallery([Run("idm", tmp_path / "a", paired=True),
                      Run("other", tmp_path / "missing")])
    assert g.columns == ["person", "garment", "idm", "other", "ground truth"]
    assert [k for k, _, _ in g.rows] == ["00001_00", "00002_00"]
    first, second = g.rows[0][2], g.rows[1][2]
    assert first[0].startswith("data:image/jpeg") and first[3] is None and first[4] == first[0]
    assert second[0] is None and second[1] is not None
    assert any("not found" in n for n in g.notes) and any("missing" in n for n in g.notes)
    assert g.rows[0][1] == "p1.png + g1.png"
    # Through the report: the record's dataset block says paired, so ground truth is shown.
    rec = new_record(kind="run", protocol="vton", metrics={"ssim": {"value": 0.85}},
                     counts={"fake": 2}, suite={"name": "vitonhd", "version": 1}, task="paired",
                     model={"name": "idm"}, dataset={"args": {"pairing": "paired"}},
                     inputs={"fake": {"path": str(tmp_path / "a")}})
    write(rec, tmp_path / "run" / "results.json")
    build_report([tmp_path / "run"], tmp_path / "r", published=False)
    page = (tmp_path / "r" / "index.html").read_text()
    assert '<th scope="col">ground truth</th>' in page and "nope.png" in page


def test_gallery_shows_each_condition_before_repeats(tmp_path):
    conds = {f"c{c}_{i}": {"class": c} for c in range(3) for i in range(3)}
    write_samples(tmp_path / "s", conds, seed=0)
    g = task_gallery([Run("m", tmp_path / "s")], max_rows=4)
    assert [k for k, _, _ in g.rows] == ["c0_0", "c1_0", "c2_0", "c0_1"]


def test_moved_run_folder_still_finds_its_samples(tmp_path):
    run = tmp_path / "moved"
    rec = demo_record(run, "m", "digits", demo_metrics(1, 1, 0.5, 0.5, 0.5), {"c1-0": {"class": 1}},
                      seed=0)
    rec["inputs"]["fake"]["path"] = "/elsewhere/old-run/samples/digits"
    write(rec, run / "results" / "digits.json")
    build_report([run], tmp_path / "r", published=False)
    assert "data:image/png;base64," in (tmp_path / "r" / "index.html").read_text()


def test_collect_prefers_per_task_files(tmp_path):
    write(record("a", 1.0), tmp_path / "run" / "results" / "t.json")
    write(record("a", 1.0), tmp_path / "run" / "results.json")
    write(record("b", 1.0), tmp_path / "deep" / "run2" / "results.json")
    found = collect([tmp_path])
    assert found == [tmp_path / "deep" / "run2" / "results.json",
                     tmp_path / "run" / "results" / "t.json"]


def test_html_escapes_model_names(tmp_path):
    write(record(XSS, 3.0), tmp_path / "results.json")
    out = tmp_path / "r"
    res = CliRunner().invoke(main, ["report", str(tmp_path / "results.json"), "-o", str(out),
                                    "--no-published"])
    assert res.exit_code == 0, res.output
    page = (out / "index.html").read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert(1)" not in page


def test_no_results_is_one_line_error(tmp_path):
    res = CliRunner().invoke(main, ["report", str(tmp_path), "-o", str(tmp_path / "o")])
    assert res.exit_code == 2 and "no results files" in res.stderr


def test_values_show_the_digits_their_uncertainty_supports():
    from diffbench.display import supported_decimals, value_text

    assert value_text(-13226.20312, 5, std=0.01888) == "-13226.203 ± 0.019"
    assert value_text(0.01234, 5, std=0.004) == "0.0123 ± 0.0040"
    assert value_text(99.3934, 2) == "99.39"  # no uncertainty: the spec's decimals
    assert value_text(8.31, 1, ci=(7.8, 8.8)) == "8.3 ± 0.5"  # never more than the spec's
    assert value_text(-0.00003, 5, std=3e-7) == "-0.00003 ± <0.00001"
    assert value_text(0.5, 3, std=0.0) == "0.500 ± 0.000"  # no spread: the spec's decimals
    assert value_text(1234.5, 2, std=37.0) == "1234 ± 37"
    assert [supported_decimals(u, 5) for u in (None, 0.2, 0.05, 12.0)] == [5, 2, 3, 0]


def test_kid_whose_subsets_are_the_whole_sets_shows_no_spread():
    import numpy as np

    from diffbench.display import format_value
    from diffbench.metrics.distribution import kid

    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(12, 8)), rng.normal(0.5, size=(12, 8))
    for variant in ("torch-fidelity", "clean-fid"):
        whole = kid(real, fake, variant=variant, subsets=5, subset_size=12, seed=0)
        assert whole.std is None and "subsets cannot vary" in whole.details["no_spread"]
        entry = {"value": whole.value, "details": dict(whole.details)}
        assert "±" not in format_value("kid", entry).split("(")[0]
        assert "(no ±: subset size 12 ≥ the 12 images per side" in format_value("kid", entry)
        part = kid(real, fake, variant=variant, subsets=5, subset_size=6, seed=0)
        assert part.std is not None and part.std > 0 and "no_spread" not in part.details


def test_a_frechet_distance_on_other_features_is_not_labelled_fid(tmp_path):
    from diffbench.display import label

    assert label("fid") == "FID" and label("fid", "inception") == "FID"
    assert label("fid", "digits") == "FD (digits)"
    assert label("fd_dinov2", "inception") == "FD_DINOv2"
    assert label("isc", "digits") == "IS"  # only outputs that declare it change
