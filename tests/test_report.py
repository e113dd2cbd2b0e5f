"""`diffbench report`: tidy CSV, Markdown and HTML; protocols apart; published rows; escaping."""

from __future__ import annotations

import pandas as pd
from click.testing import CliRunner

from diffbench.cli import main
from diffbench.report.table import COLUMNS
from diffbench.results import new_record, write


def record(model, fid, protocol="adm", task="repa-sde-cfg", suite="imagenet256", ci=None):
    metrics = {"fid": {"value": fid, "higher_is_better": False},
               "precision": {"value": 0.7, "std": 0.01}}
    if ci:
        metrics["fid"]["ci"] = {"low": ci[0], "high": ci[1]}
    return new_record(kind="run", protocol=protocol, metrics=metrics,
                      counts={"fake": 50000}, suite={"name": suite, "version": 1}, task=task,
                      model={"name": model, "args": {"cfg": 1.8}})


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


def test_html_escapes_model_names(tmp_path):
    write(record("<script>alert(1)</script>", 3.0), tmp_path / "results.json")
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
