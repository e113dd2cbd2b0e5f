"""The contributor guides (docs/) show the example plugin's real code, and name the test that
runs it; the README's Python API example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUIDES = ("adding-a-metric.md", "adding-a-model.md", "adding-a-suite.md")
INCLUDE = re.compile(r"<!-- include: (?P<path>\S+) -->\n```\w*\n(?P<text>.*?)```\n"
                     r"<!-- end include -->", re.S)


@pytest.mark.parametrize("guide", GUIDES)
def test_guide_includes_are_the_plugin_files(guide):
    text = (ROOT / "docs" / guide).read_text(encoding="utf-8")
    blocks = list(INCLUDE.finditer(text))
    assert blocks, f"{guide}: no included example"
    for block in blocks:
        source = (ROOT / block["path"]).read_text(encoding="utf-8")
        assert block["text"] == source, (
            f"docs/{guide}: the copy of {block['path']} differs from the file; paste the file's "
            "text between its include markers")
    assert "tests/test_plugins.py" in text  # says which test runs its example


def test_guide_entry_points_are_the_plugins():
    import tomllib

    meta = tomllib.loads((ROOT / "tests/plugins/diffbench_example_plugin/pyproject.toml")
                         .read_text())["project"]["entry-points"]
    docs = "".join((ROOT / "docs" / g).read_text(encoding="utf-8") for g in GUIDES)
    for group, entries in meta.items():
        for name, target in entries.items():
            assert f'[project.entry-points."{group}"]\n{name} = "{target}"' in docs, (group, name)


def test_readme_links_the_guides():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for guide in GUIDES:
        assert f"(docs/{guide})" in readme, guide


def test_readme_python_example_runs(tmp_path, monkeypatch):
    """The README's Python block, run as written from an empty folder (it makes its inputs)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    code = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert len(code) == 1, "the README has one Python example"
    monkeypatch.chdir(tmp_path)
    assert not any(tmp_path.iterdir())
    scope: dict = {}
    exec(compile(code[0], "README.md (Python API)", "exec"), scope)  # noqa: S102 - our own README
    assert scope["record"]["metrics"]["fid"]["value"] > 0
    assert scope["results"] == scope["records"] and len(scope["records"]) == 1
