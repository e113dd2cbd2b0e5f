"""Pareto plots: PNG and SVG written, one front per model, staircase shape, literal labels."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import numpy as np
from PIL import Image

from diffbench.pareto import sweep_front
from diffbench.report.plots import COLOURS, plot_fronts, step_path

SVG = "{http://www.w3.org/2000/svg}"


def sweep(points):
    records = [{"run_id": str(v), "sweep": {"rg_scale": v},
                "metrics": {"clip_t": {"value": x}, "dino": {"value": y}}}
               for v, x, y in points]
    return sweep_front(records, "clip_t", "dino", "rg_scale")


FRONTS = {
    "DCO": sweep([(0, 0.30, 0.60), (1, 0.29, 0.66), (2, 0.27, 0.70), (3, 0.25, 0.69),
                  (4, 0.22, 0.72)]),
    "DreamBooth": sweep([(0, 0.31, 0.55), (1.5, 0.30, 0.62), (3, 0.28, 0.64), (4.5, 0.27, 0.6)]),
    "cost $5 <b>": sweep([(1, 0.26, 0.58), (2, 0.24, 0.61)]),  # '$' and markup stay text
}


def _front_paths(svg_text):
    root = ET.fromstring(svg_text)
    out = {}
    for g in root.iter(f"{SVG}g"):
        gid = g.get("id", "")
        if re.fullmatch(r"pareto-front-\d+", gid):
            d = g.find(f"{SVG}path").get("d")
            out[gid] = [tuple(map(float, m)) for m in re.findall(r"[ML] ([-\d.]+) ([-\d.]+)", d)]
    return out


def test_one_front_per_model_png_and_svg(tmp_path):
    png, svg = plot_fronts(FRONTS, tmp_path / "p" / "f.png", tmp_path / "p" / "f.svg",
                           "dreambooth · subject")
    paths = _front_paths(svg.read_text())
    assert sorted(paths) == ["pareto-front-0", "pareto-front-1", "pareto-front-2"]
    # A staircase through k front points has 2k - 1 vertices.
    for i, pareto in enumerate(FRONTS.values()):
        k = sum(p["on_front"] for p in pareto["points"])
        assert len(paths[f"pareto-front-{i}"]) == 2 * k - 1
    # Dominated points are drawn apart (greyed): DCO has one (rg_scale 3), DreamBooth one (4.5).
    text = svg.read_text()
    assert 'id="pareto-dominated-0"' in text and 'id="pareto-dominated-1"' in text
    assert 'id="pareto-dominated-2"' not in text
    image = np.asarray(Image.open(png).convert("RGB"))
    assert image.shape == (460, 640, 3)
    for colour in COLOURS[:3]:  # every model's line colour is on the picture
        rgb = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
        assert (np.abs(image.astype(int) - rgb).sum(axis=2) < 30).sum() > 50, colour


def test_same_fronts_same_files(tmp_path):
    a = plot_fronts(FRONTS, tmp_path / "a.png", tmp_path / "a.svg")
    b = plot_fronts(FRONTS, tmp_path / "b.png", tmp_path / "b.svg")
    assert a[0].read_bytes() == b[0].read_bytes() and a[1].read_bytes() == b[1].read_bytes()


def test_step_path_corners_are_worse_on_both_axes():
    front = [(0.22, 0.72), (0.27, 0.70), (0.30, 0.60)]
    assert step_path(front, True, True) == [(0.22, 0.72), (0.22, 0.70), (0.27, 0.70),
                                            (0.27, 0.60), (0.30, 0.60)]
    # Lower x is better (a cost), higher y is better: the staircase rises to the right.
    cost = [(1.0, 0.5), (2.0, 0.7)]
    assert step_path(cost, False, True) == [(1.0, 0.5), (2.0, 0.5), (2.0, 0.7)]
    assert step_path([(1.0, 1.0)], True, True) == [(1.0, 1.0)]
