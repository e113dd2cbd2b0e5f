"""Shipped published numbers are well-formed and agree with the suites they cite."""

from __future__ import annotations

import pytest

from diffbench.errors import ConfigError
from diffbench.published import all_published, load_published
from diffbench.suite import default_suites_dir, load_suite


def test_shipped_files_load_and_cite_real_tasks():
    files = all_published()
    assert files
    for pub in files:
        suite = load_suite(default_suites_dir() / f"{pub.suite}.yaml").suite
        for entry in pub.entries:
            assert entry.task in suite.tasks, entry.key
            assert suite.tasks[entry.task].protocol == pub.protocol
            task = suite.tasks[entry.task]
            reported = {k for m in task.metrics
                        for k in (("precision", "recall") if m == "prc" else (m,))}
            assert set(entry.metrics) <= reported, (entry.key, set(entry.metrics) - reported)


def test_repa_headline_number():
    pub = next(p for p in all_published() if p.suite == "imagenet256")
    row = next(e for e in pub.entries if e.key == "imagenet256/repa-sde-cfg")
    assert row.metrics["fid"] == 1.42 and "Table 9" in row.source


def test_tryon_rows_print_kid_times_1000():
    pubs = {p.suite: p for p in all_published() if p.suite in ("vitonhd", "dresscode")}
    vh = next(e for e in pubs["vitonhd"].entries if e.key == "vitonhd/idm-vton-catvton-table1-paired")
    assert vh.metrics == {"ssim": 0.8499, "lpips": 0.0603, "fid": 5.762, "kid": 0.732}
    assert pubs["vitonhd"].raw_value("kid", 0.732) == pytest.approx(0.000732)
    dc = next(e for e in pubs["dresscode"].entries if e.key == "dresscode/idm-vton-leffa-unpaired")
    assert dc.metrics == {"fid": 9.55, "kid": 4.32} and not dc.unverified
    assert all(p.protocol == "catvton" and p.scales == {"kid": 1000} for p in pubs.values())


def test_bad_file_is_clear(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("published_format: 1\nsuite: s\nprotocol: adm\nentries:\n"
                    "  - {key: a, task: t, model: m, source: s, metrics: {}}\n")
    with pytest.raises(ConfigError, match="entries.0.metrics"):
        load_published(path)
    path.write_bytes(b"\xff\xfe published")  # not UTF-8: one line, not a traceback
    with pytest.raises(ConfigError, match="published numbers is not a UTF-8 text file"):
        load_published(path)
    path.write_text("- a list\n")
    with pytest.raises(ConfigError, match="published numbers must be a mapping"):
        load_published(path)
