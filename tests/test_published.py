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


def test_bad_file_is_clear(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("published_format: 1\nsuite: s\nprotocol: adm\nentries:\n"
                    "  - {key: a, task: t, model: m, source: s, metrics: {}}\n")
    with pytest.raises(ConfigError, match="entries.0.metrics"):
        load_published(path)
