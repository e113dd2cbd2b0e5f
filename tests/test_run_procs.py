"""`diffbench run` under torchrun (2 ranks, gloo): same images and the same metric values."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from diffbench import results
from tests._faults import torchrun

pytestmark = pytest.mark.procs  # every test here starts Python processes

SUITE = """
name: procs
version: 1
tasks:
  digits:
    condition: class
    generation: {images_per_condition: 5, seed: 4, sampler: {num_classes: 10}}
    protocol: demo-digits
    metrics: {fid: {}, kid: {args: {subset_size: 20}}, isc: {args: {splits: 5}}, prc: {},
              accuracy: {}}
    reference:
      dataset: {name: digits, reader: sklearn-digits, args: {size: 32, split: test}}
"""


def _run(out, ranks: int):
    cmd = [sys.executable, "-m", "diffbench", "-q", "run", str(out.parent / "suite.yaml"), "--model", "toy",
           "--model-arg", "size=32", "--batch-size", "3", "--score-batch-size", "7",
           "--workers", "0", "--out", str(out)]
    if ranks > 1:
        cmd = torchrun(ranks, *cmd[1:])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DIFFBENCH_NO_PROGRESS": "1"}
    res = subprocess.run(cmd, env=env, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return results.read(out / "results" / "digits.json")


@pytest.mark.slow
def test_two_ranks_give_the_same_images_and_values(tmp_path):
    (tmp_path / "suite.yaml").write_text(textwrap.dedent(SUITE))
    one = _run(tmp_path / "one", 1)
    two = _run(tmp_path / "two", 2)
    assert two["environment"]["world_size"] == 2 and two["generation"]["ranks"] == 2
    manifest = "samples/digits/manifest.jsonl"
    assert (tmp_path / "one" / manifest).read_bytes() == (tmp_path / "two" / manifest).read_bytes()
    assert one["inputs"]["fake"]["content_sha256"] == two["inputs"]["fake"]["content_sha256"]
    for name, entry in one["metrics"].items():
        other = two["metrics"][name]
        # Feature rows are gathered back into global order and moments summed in one process's
        # batch order: every value is bit-identical.
        assert other["value"] == entry["value"], name
        assert other.get("std") == entry.get("std"), name
