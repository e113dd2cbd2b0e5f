"""The HTML report in a real headless Chromium: loads cleanly, sorts on click, escapes names,
shows its gallery and Pareto plot, states version, time and weights, keeps rows that are not
comparable apart and shows no local path. The screenshot is kept as a test artifact
(``test-artifacts/report.png``, or ``$DIFFBENCH_TEST_ARTIFACTS``).

Needs Debian's `chromium` and the `playwright` package (`.ci/run` installs both). Outside CI
the test is skipped when they are missing; in CI (CI=true) their absence is a failure.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from diffbench import __version__
from diffbench.cli import main
from diffbench.features.digits import DEFAULT_WEIGHTS
from diffbench.fsutil import file_sha256
from diffbench.results import write
from tests.test_report import XSS, as_measured, demo_metrics, demo_record, demo_runs

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(os.environ.get("DIFFBENCH_TEST_ARTIFACTS", "test-artifacts"))
# A closed network otherwise fills the log with refused connections (and slows start-up).
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _need_browser():
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing = "the playwright package"
    else:
        missing = None if CHROMIUM else "Debian's chromium"
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{missing} is not installed; .ci/run should have installed it")
        pytest.skip(f"{missing} is not installed (pip install playwright; apt-get install chromium)")


def _models(table) -> list[str]:
    return [t.split(" [")[0] for t in table.locator("tbody tr td:first-child").all_inner_texts()]


@pytest.mark.slow
def test_report_in_headless_chromium(tmp_path):
    _need_browser()
    from playwright.sync_api import sync_playwright

    pub = demo_runs(tmp_path)
    apart = incomparable_runs(tmp_path)
    out = tmp_path / "report"
    res = CliRunner().invoke(main, ["report", str(tmp_path / "run0"), str(tmp_path / "run1"),
                                    *map(str, apart), "-o", str(out), "--published-from",
                                    str(pub)])
    assert res.exit_code == 0, res.output

    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("dialog", lambda d: (errors.append(f"dialog: {d.message}"), d.dismiss()))
        page.on("request", lambda r: None if r.url.startswith(("file:", "data:"))
                else errors.append(f"request to {r.url}"))
        page.goto((out / "index.html").as_uri())
        table = page.locator("table.board").first
        table.locator("th", has_text="FD (digits) ↓").click()
        fid_best_first = _models(table)
        table.locator("th", has_text="FD (digits) ↓").click()
        fid_reversed = _models(table)
        table.locator("th", has_text="Accuracy ↑").click()
        accuracy_best_first = _models(table)
        images = page.eval_on_selector_all(
            "table.gallery img, figure.pareto img", "els => els.map(e => e.naturalWidth)")
        gallery_caption = page.locator("table.gallery .caption", has_text="nine").first.inner_text()
        about = page.locator("p.about").inner_text()
        weights = page.locator("table.weights tbody tr").all_inner_texts()
        apart_rows = page.locator("table.apart").first.locator("tbody tr").all_inner_texts()
        shown = page.locator("body").inner_text() + page.content()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
        browser.close()

    assert errors == []
    # Lower FID first: the paper's 30.1, toy-small 38.5, the escaped model 52.25, 61.0.
    assert fid_best_first == ["Digits-GAN (paper)", "toy-small", XSS, "Other net"]
    assert fid_reversed == fid_best_first[::-1]
    # Higher accuracy first; rows without a value (published, no accuracy) last.
    assert accuracy_best_first[:2] == ["toy-small", XSS]
    # digits: 6 rows × 2 models; the guidance sweep: 6 rows × 8 runs; one Pareto plot
    assert len(images) == 6 * 2 + 6 * 8 + 1 and all(w > 0 for w in images)
    assert gallery_caption == '<img src=x onerror="alert(2)"> nine'  # a prompt shown as text
    # The page says what made it, when, and with which weights per protocol.
    assert re.fullmatch(rf"diffbench {re.escape(__version__)} · generated \d{{4}}-\d\d-\d\d "
                        rf"\d\d:\d\d:\d\d UTC · results recorded by diffbench "
                        rf"{re.escape(__version__)}", about), about
    official = file_sha256(DEFAULT_WEIGHTS)[:12]
    assert [w.split("\t") for w in weights] == [
        ["demo-digits", "digits-classifier (shipped)", official, "official"],
        ["demo-digits", "digits-classifier (shipped)", "ab" * 6, "not official"]]
    # The random-weights and smoke runs are listed apart with their reason, never ranked.
    assert len(apart_rows) == 2 and "random-weights" not in fid_best_first
    assert any("random-weights" in r and "not the official" in r for r in apart_rows)
    assert any("smoke-run" in r and "smoke run (--limit)" in r for r in apart_rows)
    # No absolute local path anywhere: sample folders, weights files, model arguments.
    assert str(tmp_path) not in shown and "/home/" not in shown and "ckpt=last.pt" in shown


def incomparable_runs(root: Path) -> list[Path]:
    """A run with random extractor weights and a --limit run, beside the comparable demo runs."""
    runs = []
    for name, fields in (("random-weights", as_measured("demo-digits", 200, sha256="ab" * 32)),
                         ("smoke-run", {"smoke": True})):
        rec = demo_record(root / name, name, "digits", demo_metrics(20.0, 2.5, 0.9, 0.9, 0.99),
                          {"c1-0": {"class": 1}}, seed=5, **fields)
        del rec["inputs"]  # no gallery column: the gallery counts below stay those of the demo
        rec["model"]["args"] = {"ckpt": str(root / "ckpts" / "last.pt")}
        write(rec, root / name / "results" / "digits.json")
        runs.append(root / name)
    return runs
