"""Comparability of measured rows: the verdict's rules, a report over a full run, a run with
random extractor weights and a `--limit` run (through `diffbench run`), the console warnings of
`run` and `score`, score records' headings, no local paths and inert CSV/Markdown cells."""

from __future__ import annotations

import csv
import json
import re
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from diffbench.cli import main
from diffbench.comparability import comparability
from diffbench.report.build import build_report
from diffbench.results import new_record, write
from tests.conftest import write_images
from tests.test_report import as_measured, record

LPIPS_SQUEEZE = {"extractor": "lpips-squeeze", "version": "0.1",
                 # the registry's published prefix of squeezenet1_1-b8a52dc0.pth, then anything
                 "backbone_sha256": "b8a52dc0" + "0" * 56,
                 "linear_sha256": "4a5350f23600cb79923ce65bb07cbf57dca461329894153e05a1346bd531cf76"}


def test_a_full_run_with_official_weights_is_comparable():
    verdict = comparability(record("m", 2.0))
    assert verdict.comparable and verdict.reason == ""
    assert [u.text() for u in verdict.weights] == ["inception-2015-12-05 sha256 6726825d0af5… "
                                                   "(official)"]


def _with(**change):
    rec = record("m", 2.0)
    for key, value in change.items():
        rec[key] = value
    return rec


def _edit(fn):
    rec = record("m", 2.0)
    fn(rec)
    return rec


@pytest.mark.parametrize("rec, why", [
    (record("m", 2.0, **as_measured("adm", 50000, sha256="ab" * 32)),
     "inception-2015-12-05: weights sha256 abababababab… are not the official "
     "inception-2015-12-05 file"),
    (_with(smoke=True), "smoke run (--limit)"),
    (_edit(lambda r: r["counts"].update(scored=10)), "scored 10 images where the task asks 50000"),
    (_edit(lambda r: r["counts"].pop("planned")), "counts.planned"),
    (_with(suite={"name": "imagenet256", "version": 1, "overrides": {
        "tasks.repa-sde-cfg.generation.images_per_condition": 5}}),
     "suite overridden: --set tasks.repa-sde-cfg.generation.images_per_condition=5"),
    (_with(suite={"name": "imagenet256", "version": 1, "overrides": {
        "tasks.repa-sde-cfg.reference.stats": "/data/other.npz"}}), "reference.stats"),
    (_edit(lambda r: r["protocol"]["settings"]["params"]["kid"].update(subset_size=50)),
     "protocol 'adm' changed: params.kid.subset_size is 50, the protocol's is 1000"),
    (_edit(lambda r: r["protocol"].update(name="my-protocol")),
     "protocol 'my-protocol' is not known"),
    (_edit(lambda r: r["protocol"].update(settings={})), "does not carry its settings"),
    (_edit(lambda r: r["metrics"]["fid"].update(details={"warning": "fewer images (50) than "
                                                         "feature dimensions (2048)"})),
     "fid: fewer images (50) than feature dimensions (2048)"),
    (_edit(lambda r: (r.pop("extractors"), r["metrics"]["fid"].update(extractor="abc"))),
     "fid: computed on an extractor whose fingerprint is not recorded"),
    (_with(extractors={"dino-vits16": {"extractor": "dino-vits16", "weights_sha256": "1" * 64}}),
     "no checksum of dino-vits16 is published"),
    (_with(extractors={"my-net": {"extractor": "my-net", "weights_sha256": "1" * 64}}),
     "my-net: not in diffbench's weights registry"),
    (_with(extractors={"lpips-squeeze": {**LPIPS_SQUEEZE, "linear_sha256": "0" * 64}}),
     "lpips-squeeze: weights sha256 000000000000… are not the official lpips-lin-squeeze v0.1"),
])
def test_each_rule_gives_its_reason(rec, why):
    verdict = comparability(rec)
    assert not verdict.comparable
    assert any(why in r for r in verdict.reasons), verdict.reasons


def test_a_protocol_that_caps_the_images_is_followed_not_cut_short():
    # dgm-eval scores at most max_images per set: a 60000-image task scoring 50000 followed it
    def counted(planned, scored, cap):
        rec = _edit(lambda r: r["counts"].update(planned=planned, scored=scored))
        if cap is not None:
            rec["protocol"]["settings"]["inputs"] = {"max_images": cap}
        return [r for r in comparability(rec).reasons if "images where the task asks" in r]

    assert counted(60000, 50000, 50000) == []
    assert counted(60000, 50000, None) == ["scored 50000 images where the task asks 60000"]
    assert counted(60000, 40000, 50000) == ["scored 40000 images where the task asks 50000"]
    assert counted(30000, 30000, 50000) == []


def test_what_keeps_a_record_comparable():
    sweep = _with(suite={"name": "imagenet256", "version": 1, "overrides": {
        "tasks.repa-sde-cfg.generation.sampler.cfg_scale": 4.0,
        "tasks.repa-sde-cfg.generation.seed": 3, "tasks.other.reference.stats": "x",
        "tasks.repa-sde-cfg.protocol": "adm", "tasks.repa-sde-cfg.metrics.isc": {}}})
    assert comparability(sweep).comparable  # sampler, seed, protocol, metrics, another task's
    lpips = _with(extractors={"lpips-squeeze": LPIPS_SQUEEZE})
    assert comparability(lpips).comparable
    # `diffbench score` records: no suite task asks for a count, the rest is judged.
    score = new_record(kind="score", metrics={"fid": {"value": 3.0}},
                       **{**as_measured("torch-fidelity", 0), "counts": {"real": 7, "fake": 9}})
    assert comparability(score).comparable


TINY = """
name: tiny
version: 1
tasks:
  digits:
    condition: class
    generation: {images_per_condition: 7, seed: 0, sampler: {num_classes: 10}}
    protocol: demo-digits
    metrics: {fid: {}, accuracy: {}}
    reference:
      dataset: {name: digits, reader: sklearn-digits, args: {size: 32, split: test}}
"""
PUBLISHED = """
published_format: 1
suite: tiny
protocol: demo-digits
entries:
  - {key: tiny/paper, task: digits, model: The Paper, source: 'Doe, Table 1', metrics: {fid: 30.0}}
"""


def random_digits_weights(path: Path) -> Path:
    """A randomly initialised demo classifier (the real architecture), saved as safetensors."""
    import torch
    from safetensors.torch import save_file

    from diffbench.features.digits import DigitsNet

    torch.manual_seed(0)
    save_file(DigitsNet().state_dict(), str(path))
    return path


def _run(*args) -> object:
    return CliRunner().invoke(main, ["run", *map(str, args)])


@pytest.mark.slow
def test_report_keeps_random_weights_and_smoke_runs_apart(tmp_path):
    suite = tmp_path / "tiny.yaml"
    suite.write_text(textwrap.dedent(TINY))
    random = random_digits_weights(tmp_path / "random.safetensors")
    common = (suite, "--model", "toy", "--model-arg", "size=32")
    full = _run(*common, "--out", tmp_path / "full")
    rand = _run(*common, "--out", tmp_path / "random", "--weights",
                f"digits-classifier={random}")
    smoke = _run(*common, "--out", tmp_path / "smoke", "--limit", "20")
    for res in (full, rand, smoke):
        assert res.exit_code == 0, res.output
    # The console says why, on stderr, one line per reason; the full run says nothing.
    assert "warning" not in full.stderr
    assert [line for line in rand.stderr.splitlines() if "warning" in line] == [
        f"diffbench: warning: digits: not comparable to published numbers: digits-classifier: "
        f"weights sha256 {_sha(random)[:12]}… are not the official digits-classifier (shipped) "
        "file (random, fine-tuned or another file)"]
    warned = smoke.stderr.splitlines()
    assert any("smoke run (--limit)" in w for w in warned)
    assert not any("where the task asks" in w for w in warned)  # --limit plans 20: smoke rule
    assert any("fid: fewer images (20) than feature dimensions (64)" in w for w in warned)

    pub = tmp_path / "published.yaml"
    pub.write_text(PUBLISHED)
    out = tmp_path / "report"
    res = CliRunner().invoke(main, ["report", str(tmp_path / "full"), str(tmp_path / "random"),
                                    str(tmp_path / "smoke"), "-o", str(out),
                                    "--published-from", str(pub)])
    assert res.exit_code == 0, res.output
    frame = pd.read_csv(out / "report.csv")
    fid = frame[frame.metric == "fid"].set_index("run_id")
    ids = {name: json.loads((tmp_path / name / "results" / "digits.json").read_text())["run_id"]
           for name in ("full", "random", "smoke")}
    assert bool(fid.loc[ids["full"], "comparable"]) and pd.isna(fid.loc[ids["full"], "reason"])
    assert not fid.loc[ids["random"], "comparable"]
    assert "not the official digits-classifier" in fid.loc[ids["random"], "reason"]
    assert not fid.loc[ids["smoke"], "comparable"]
    assert "smoke run" in fid.loc[ids["smoke"], "reason"]
    assert bool(fid.loc["tiny/paper", "comparable"])

    # Markdown: the ranked table holds the paper and the full run only; the others follow apart.
    md = (out / "report.md").read_text()
    ranked, apart = md.split("### tiny · digits")[1].split("Not comparable to published numbers")
    assert "The Paper" in ranked and ranked.count("| toy") == 1 and "| 70 | measured |" in ranked
    assert apart.count("| toy") == 2 and "smoke run" in apart and "not the official" in apart
    # HTML: the sortable board holds the paper and the full run; the rest sit in the apart table.
    page = (out / "index.html").read_text()
    board = page.split('<table class="board">')[1].split("</table>")[0]
    rest = page.split('<table class="apart">')[1].split("</table>")[0]
    assert "The Paper" in board and board.count('<tr class="measured">') == 1
    assert rest.count('<tr class="measured">') == 1 and rest.count('<tr class="smoke">') == 1
    assert "not comparable" in page.split('<table class="apart">')[0][-200:].lower()
    for text in (page, md, (out / "report.csv").read_text()):
        assert str(tmp_path) not in text  # run folders, weights files, suite file


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_score_warns_and_its_records_have_a_readable_heading(tmp_path):
    write_images(tmp_path / "real-set", 12, seed=0, size=(32, 32))
    write_images(tmp_path / "my-samples", 12, seed=1, size=(32, 32))
    random = random_digits_weights(tmp_path / "random.safetensors")
    res = CliRunner().invoke(main, [
        "score", "--real", str(tmp_path / "real-set"), "--fake", str(tmp_path / "my-samples"),
        "--protocol", "demo-digits", "--metrics", "fid,isc", "--weights",
        f"digits-classifier={random}", "--json", str(tmp_path / "score.json")])
    assert res.exit_code == 0, res.output
    warnings = [line for line in res.stderr.splitlines() if line.startswith("diffbench: warning")]
    assert len(warnings) == 2, res.stderr
    assert "not the official digits-classifier" in warnings[0]
    assert "fid: fewer images (12) than feature dimensions (64)" in warnings[1]
    out = tmp_path / "report"
    assert CliRunner().invoke(main, ["report", str(tmp_path / "score.json"), "-o",
                                     str(out)]).exit_code == 0
    md = (out / "report.md").read_text()
    assert "### real-set vs my-samples · protocol `demo-digits`" in md and "(score)" not in md
    page = (out / "index.html").read_text()
    assert "<h2>real-set vs my-samples</h2>" in page and str(tmp_path) not in page


def test_no_local_path_reaches_a_report(tmp_path):
    rec = record("sit-repa", 2.0)
    rec["model"]["args"] = {"ckpt": "/home/someone/ckpts/last.pt", "repo": "~/IDM-VTON",
                            "adapter": {"weights": {"vae": "/srv/models/vae.safetensors"}}}
    rec["suite"]["overrides"] = {"tasks.repa-sde-cfg.reference.stats": "/data/secret/ref.npz"}
    rec["inputs"] = {"fake": {"kind": "samples", "path": str(tmp_path / "gone" / "samples")}}
    write(rec, tmp_path / "run" / "results.json")
    build_report([tmp_path / "run"], tmp_path / "r", published=False)
    for name in ("index.html", "report.md", "report.csv"):
        text = (tmp_path / "r" / name).read_text()
        for path in ("/home/someone", "~/IDM", "/srv/models", "/data/secret", str(tmp_path)):
            assert path not in text, (name, path)
    page = (tmp_path / "r" / "index.html").read_text()
    assert "last.pt" in page and "ref.npz" in page and "samples not found" in page


def test_csv_cells_cannot_run_as_formulas(tmp_path):
    names = ["=HYPERLINK(\"http://x\")", "+1+1", "-2+3", "@SUM(A1)", "\tTAB", "\rCR", "plain"]
    for i, name in enumerate(names):
        rec = record(name, -0.5)  # a negative number stays a number
        write(rec, tmp_path / "runs" / f"r{i}" / "results.json")
    build_report([tmp_path / "runs"], tmp_path / "r", published=False)
    with open(tmp_path / "r" / "report.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    models = {r["model"] for r in rows}
    assert models == {"'" + n for n in names[:-1]} | {"plain"}
    assert {r["value"] for r in rows if r["metric"] == "fid"} == {"-0.5"}


def test_markdown_cells_cannot_break_the_table_or_inject_html(tmp_path):
    write(record("a|b <img src=x onerror=alert(1)> [x](http://e)", 2.0),
          tmp_path / "run" / "results.json")
    build_report([tmp_path / "run"], tmp_path / "r", published=False)
    md = (tmp_path / "r" / "report.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| a\\|"))
    assert row.startswith(r"| a\|b &lt;img src=x onerror=alert(1)&gt; \[x\](http://e) (cfg")
    header = next(line for line in md.splitlines() if line.startswith("| model |"))
    cells = re.compile(r"(?<!\\)\|")  # an unescaped pipe starts a cell
    assert len(cells.findall(row)) == len(cells.findall(header))
    assert "<img" not in md


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_report_refuses_a_non_finite_record_in_one_line(tmp_path, text):
    path = write(record("m", 2.0), tmp_path / "results.json")
    path.write_text(path.read_text().replace('"value": 2.0', f'"value": {text}'))
    res = CliRunner().invoke(main, ["report", str(path), "-o", str(tmp_path / "r")])
    assert res.exit_code == 2
    assert res.stderr.count("\n") == 1 and "metrics.fid.value is" in res.stderr
    assert "finite numbers only" in res.stderr and not (tmp_path / "r").exists()


def _with_fd_dinov2(others: dict | None, sha256: str | None = None) -> dict:
    """An ImageNet record with fd_dinov2 computed under its own protocol (edm2) on DINOv2
    features, as suites/imagenet256.yaml asks beside the ADM metrics."""
    from diffbench.features.base import fingerprint_hash
    from diffbench.weights import WEIGHTS

    rec = record("m", 2.0)
    fingerprint = {"extractor": "dinov2-vitl14", "arch": "vitl14",
                   "weights_sha256": sha256 or WEIGHTS["dinov2-vitl14"].sha256 or "1" * 64}
    rec["extractors"]["dinov2-vitl14"] = fingerprint
    rec["metrics"]["fd_dinov2"] = {"value": 50.0, "higher_is_better": False, "protocol": "edm2",
                                   "extractor": fingerprint_hash(fingerprint)}
    if others is not None:
        rec["protocol"]["others"] = others
    return rec


def test_a_metrics_own_protocol_and_weights_mark_that_metric_only():
    from diffbench.protocols import get_protocol

    edm2 = json.loads(json.dumps(get_protocol("edm2").settings()))
    # No settings recorded for edm2: fd_dinov2 is marked, the ADM numbers stay comparable.
    verdict = comparability(_with_fd_dinov2(None))
    assert verdict.comparable
    assert any("fd_dinov2: computed under protocol 'edm2', whose settings the record does not "
               "carry" in r for r in verdict.metric_reasons("fd_dinov2"))
    assert verdict.metric_reasons("fid") == ()
    # Settings recorded and equal: only the weights remain (DINOv2's checksum is unpublished).
    verdict = comparability(_with_fd_dinov2({"edm2": edm2}))
    assert verdict.comparable
    assert [r for r in verdict.metric_reasons("fd_dinov2") if "protocol" in r] == []
    assert any("no checksum of dinov2-vitl14 is published" in r
               for r in verdict.metric_reasons("fd_dinov2"))
    assert verdict.all_reasons() == verdict.metric_reasons("fd_dinov2")
    # Settings changed: the change is named, on that metric.
    changed = json.loads(json.dumps(edm2))
    changed["resize"] = "pil"
    verdict = comparability(_with_fd_dinov2({"edm2": changed}))
    assert verdict.comparable
    assert any("fd_dinov2: protocol 'edm2' changed: resize" in r
               for r in verdict.metric_reasons("fd_dinov2")), verdict.metrics
    # Weights every metric reads stay a reason against the whole record.
    rec = _with_fd_dinov2({"edm2": edm2})
    for entry in rec["metrics"].values():
        entry["extractor"] = rec["metrics"]["fd_dinov2"]["extractor"]
    assert not comparability(rec).comparable


def test_report_marks_a_cell_not_its_row(tmp_path):
    from diffbench.protocols import get_protocol

    edm2 = json.loads(json.dumps(get_protocol("edm2").settings()))
    write(_with_fd_dinov2({"edm2": edm2}), tmp_path / "run" / "results.json")
    build_report([tmp_path / "run"], tmp_path / "r")
    frame = pd.read_csv(tmp_path / "r" / "report.csv")
    mine = frame[frame.origin == "measured"].set_index("metric")
    assert bool(mine.loc["fid", "comparable"]) and pd.isna(mine.loc["fid", "reason"])
    assert not mine.loc["fd_dinov2", "comparable"]
    assert "dinov2-vitl14" in mine.loc["fd_dinov2", "reason"]
    md = (tmp_path / "r" / "report.md").read_text()
    table = md.split("### imagenet256 · repa-sde-cfg")[1]
    assert "Not comparable to published numbers" not in table  # the row is ranked ...
    assert re.search(r"\| m \(.*\|.* †", table)  # ... its FD_DINOv2 cell marked
    assert "† m · " in table and "no checksum of dinov2-vitl14 is published" in table
    page = (tmp_path / "r" / "index.html").read_text()
    board = page.split('<table class="board">')[1].split("</table>")[0]
    assert board.count('class="marked"') == 1 and 'title="dinov2-vitl14' in board


def test_a_run_records_the_settings_of_a_metrics_own_protocol(tmp_path):
    from diffbench.protocols import get_protocol
    from diffbench.resolve import resolve_task
    from diffbench.suite import load_suite

    task = load_suite("imagenet256").suite.tasks["repa-sde-cfg"]
    assert task.metrics["fd_dinov2"].protocol == "edm2"
    others = resolve_task(task.metrics, task.protocol).others
    recorded = {name: proto.settings() for name, proto in others.items()}
    assert list(recorded) == ["edm2"]
    rec = _with_fd_dinov2(json.loads(json.dumps(recorded)))
    assert not [r for r in comparability(rec).metric_reasons("fd_dinov2") if "protocol" in r]
    assert json.loads(json.dumps(get_protocol("edm2").settings())) == json.loads(
        json.dumps(recorded["edm2"]))


def test_display_only_arguments_keep_a_record_comparable():
    """A task whose FID sets only ``scale: 100`` computes the protocol's FID: comparable. A
    setting that changes the number (KID's subset size) makes it another protocol."""
    from diffbench.resolve import resolve_task

    def reasons(args):
        settings = resolve_task(args, "adm").protocol.settings()
        record = {"kind": "score", "protocol": {"name": "adm", "settings": settings},
                  "metrics": {}}
        return [r for r in comparability(record).reasons if "protocol" in r]

    assert reasons({"fid": {"scale": 100}, "kid": {"scale": 1000}}) == []
    assert reasons({"kid": {"subset_size": 50, "scale": 1000}}) == [
        "protocol 'adm' changed: params.kid.subset_size is 50, the protocol's is 1000"]


def _former_shape(settings: dict) -> dict:
    """`settings` as diffbench recorded them up to 2026-12-06: isc, kid and prc in fields of
    their own (``{}`` when the protocol set none), display settings left under ``params``."""
    old = json.loads(json.dumps(settings))
    params = old.pop("params")
    for metric in ("isc", "kid", "prc"):
        entry = params.pop(metric, {})
        shown = {k: entry.pop(k) for k in ("scale",) if k in entry}
        old[metric] = entry
        if shown:
            params[metric] = shown
    return {**old, "params": params}


@pytest.mark.parametrize("protocol", ["adm", "torch-fidelity", "clean-fid", "demo-digits",
                                      "catvton", "ladi"])
def test_a_record_of_the_former_settings_shape_is_judged_as_a_current_one(protocol):
    """Records written before isc/kid/prc moved under ``params`` (the committed demo runs,
    users' old run folders) compare with today's protocols and with today's records."""
    from diffbench.comparability import current_settings
    from diffbench.protocols import get_protocol
    from diffbench.resolve import resolve_task

    new = json.loads(json.dumps(get_protocol(protocol).settings()))
    old = _former_shape(new)
    assert old != new and current_settings(old) == new

    def reasons(settings, others=None):
        record = {"kind": "score", "protocol": {"name": protocol, "settings": settings,
                                                **({"others": others} if others else {})},
                  "metrics": {"fid": {"value": 1.0, "protocol": "edm2"}} if others else {}}
        verdict = comparability(record)
        return [r for r in verdict.all_reasons() if "protocol" in r]

    assert reasons(old) == reasons(new) == []
    # a changed setting is still named, in today's terms, whichever shape recorded it
    changed = json.loads(json.dumps(resolve_task({"kid": {"subset_size": 7}}, protocol)
                                    .protocol.settings()))
    assert reasons(_former_shape(changed)) == reasons(changed) == [
        f"protocol '{protocol}' changed: params.kid.subset_size is 7, the protocol's is "
        f"{new['params']['kid']['subset_size']}"]
    # the settings of a metric's own protocol (`protocol.others`) are read the same way
    edm2 = json.loads(json.dumps(get_protocol("edm2").settings()))
    assert reasons(old, {"edm2": _former_shape(edm2)}) == []


def test_the_committed_demo_records_of_the_former_shape_keep_their_verdict():
    """reports/demo/runs/ keeps records of the former shape (not regenerated): still comparable."""
    from diffbench.results import read

    root = Path(__file__).resolve().parent.parent / "reports" / "demo" / "runs"
    for path in sorted(root.glob("*/results/*.json")):
        rec = read(path)
        assert "kid" in rec["protocol"]["settings"], "a record of the former shape"
        assert not [r for r in comparability(rec).all_reasons() if "protocol" in r], path
def test_score_records_are_named_by_their_two_sets_not_a_run_id():
    from diffbench.report.table import model_name, place

    score = new_record(kind="score", metrics={"fid": {"value": 3.0}},
                       **{**as_measured("torch-fidelity", 0), "counts": {"real": 7, "fake": 9},
                          "inputs": {"real": {"kind": "folder", "path": "/data/ref", "n": 7},
                                     "fake": {"kind": "folder", "path": "/x/samples", "n": 9}}})
    assert model_name(score)[0] == "ref vs samples"
    assert place(score)[1] == "ref vs samples"
