"""The HTML report in a real headless Chromium: loads cleanly, sorts on click, escapes names.

Needs Debian's `chromium` and the `playwright` package (`.ci/run` installs both). Outside CI
the test is skipped when they are missing; in CI (CI=true) their absence is a failure.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from diffbench.cli import main
from diffbench.results import new_record, write

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(os.environ.get("DIFFBENCH_TEST_ARTIFACTS", "test-artifacts"))


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


def _record(model, fid):
    return new_record(kind="run", protocol="adm", suite={"name": "imagenet256", "version": 1},
                      task="repa-sde-cfg", model={"name": model},
                      metrics={"fid": {"value": fid}, "recall": {"value": 0.5}},
                      counts={"fake": 100})


@pytest.mark.slow
def test_report_in_headless_chromium(tmp_path):
    _need_browser()
    from playwright.sync_api import sync_playwright

    write(_record("<script>alert(1)</script>", 7.5), tmp_path / "a" / "results.json")
    write(_record("model-b", 3.25), tmp_path / "b" / "results.json")
    out = tmp_path / "report"
    res = CliRunner().invoke(main, ["report", str(tmp_path), "-o", str(out)])
    assert res.exit_code == 0, res.output

    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        page = browser.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("dialog", lambda d: (errors.append(f"dialog: {d.message}"), d.dismiss()))
        page.goto((out / "index.html").as_uri())
        table = page.locator("table.board").first
        first_model = table.locator("tbody tr td:first-child")
        fid_header = table.get_by_role("columnheader", name="FID ↓", exact=True)
        fid_header.click()
        ascending = first_model.all_inner_texts()
        fid_header.click()
        descending = first_model.all_inner_texts()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
        browser.close()

    assert errors == []
    # Sorted by FID ascending: model-b (3.25) first; published rows (1.42, …) come earlier still.
    measured_asc = [t for t in ascending if t in ("model-b", "<script>alert(1)</script>")]
    assert measured_asc == ["model-b", "<script>alert(1)</script>"]
    assert descending[0].startswith("<script>alert(1)</script>")  # shown as text, 7.5 is largest
