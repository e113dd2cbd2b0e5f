"""`--limit N`: N images spread over the conditions (classes, prompts, pairs), deterministic."""

from __future__ import annotations

import json
from collections import Counter

from click.testing import CliRunner

from diffbench.adapters.base import Request
from diffbench.cli import main
from diffbench.requests import spread


def _requests(conditions: int, per: int, items: bool = False) -> list[Request]:
    out = []
    for c in range(conditions):
        for i in range(per):
            key = f"s{c:03d}-{i}" if items else f"c{c:04d}_{i:03d}"
            out.append(Request(key=key, seed=c * 100 + i, condition={} if items else {"class": c},
                               sampler={}, item=f"s{c:03d}" if items else None))
    return out


def test_round_robin_over_classes():
    picked = spread(_requests(10, 50), 100)
    assert Counter(r.condition["class"] for r in picked) == {c: 10 for c in range(10)}
    assert [r.key for r in picked] == sorted(r.key for r in picked)
    assert spread(_requests(10, 50), 100) == picked  # deterministic
    uneven = Counter(r.condition["class"] for r in spread(_requests(10, 50), 25))
    assert sorted(uneven.values()) == [2] * 5 + [3] * 5  # no class gets two more than another


def test_fewer_images_than_conditions_are_evenly_spaced():
    # DreamBench-like: 750 prompts (items) x 4 images; 100 images span all items evenly
    picked = spread(_requests(750, 4, items=True), 100)
    items = sorted(r.item for r in picked)
    assert len(set(items)) == 100 and items[0] == "s000" and items[-1] >= "s740"
    assert all(r.key.endswith("-0") for r in picked)  # the first image of each chosen prompt
    gaps = {int(b[1:]) - int(a[1:]) for a, b in zip(items, items[1:], strict=False)}
    assert gaps <= {7, 8}


def test_more_than_available_and_unconditional():
    reqs = _requests(3, 2)
    assert spread(reqs, 100) == sorted(reqs, key=lambda r: r.key)
    none = [Request(key=f"{i:06d}", seed=i, condition={}, sampler={}) for i in range(10)]
    assert [r.key for r in spread(none, 3)] == ["000000", "000001", "000002"]


def test_limit_on_the_demo_takes_every_class(tmp_path):
    out = tmp_path / "toy"
    res = CliRunner().invoke(main, ["generate", "demo", "--model", "toy", "--limit", "100",
                                    "--out", str(out)])
    assert res.exit_code == 0, res.output
    manifest = (out / "samples" / "digits-sde-cfg" / "manifest.jsonl").read_text().splitlines()
    classes = Counter(json.loads(line)["condition"]["class"] for line in manifest)
    assert classes == {c: 10 for c in range(10)}  # the first 100 keys gave classes 0 and 1
