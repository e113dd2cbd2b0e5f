"""`diffbench run`: generate, score, record; resume; smoke runs; sweeps; score-only tasks; errors."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from diffbench import results
from diffbench.cli import main
from diffbench.data.digits import DigitsSource
from diffbench.data.samples import SampleSet
from diffbench.features import build_extractor
from diffbench.metrics import functional as F
from tests.conftest import write_images

DEMO_LIKE = """
name: demo-like
version: 3
tasks:
  digits:
    condition: class
    generation: {images_per_condition: 6, seed: 1, sampler: {num_classes: 10}}
    protocol: demo-digits
    metrics: {fid: {}, isc: {args: {splits: 2}}, prc: {}, accuracy: {}}
    reference:
      dataset: {name: digits, reader: sklearn-digits, args: {size: 32, split: test}}
"""


def write(tmp_path: Path, text: str, name: str = "suite.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def run(*args: str):
    return CliRunner().invoke(main, ["run", *map(str, args)])


def test_run_generates_scores_and_records(tmp_path):
    suite = write(tmp_path, DEMO_LIKE)
    res = run(suite, "--model", "toy", "--model-arg", "size=32", "--out", tmp_path / "r")
    assert res.exit_code == 0, res.output
    record = results.read(tmp_path / "r" / "results" / "digits.json")
    assert record["kind"] == "run" and record["task"] == "digits"
    assert record["suite"]["name"] == "demo-like" and record["suite"]["version"] == 3
    assert record["protocol"]["name"] == "demo-digits"
    assert record["protocol"]["settings"]["params"]["isc"]["splits"] == 2  # suite args are recorded
    assert set(record["metrics"]) == {"fid", "isc", "precision", "recall", "accuracy"}
    assert record["counts"] == {"planned": 60, "generated": 60, "real": 360, "scored": 60}
    assert record["model"]["name"] == "toy" and record["model"]["args"]["size"] == 32
    assert "digits-classifier" in record["extractors"]
    assert record["generation"]["made_now"] == 60 and not record.get("smoke")
    samples = SampleSet(tmp_path / "r" / "samples" / "digits")
    assert len(samples) == 60 and samples.condition(samples.keys[0])["class"] in range(10)


def test_run_values_equal_a_direct_computation(tmp_path):
    suite = write(tmp_path, DEMO_LIKE)
    assert run(suite, "--model", "toy", "--model-arg", "size=32", "--out",
               tmp_path / "r").exit_code == 0
    record = results.read(tmp_path / "r" / "results" / "digits.json")
    samples = SampleSet(tmp_path / "r" / "samples" / "digits")
    ext = build_extractor("digits")
    import torch

    def feats(source):
        out = ext.forward(torch.stack([ext.preprocess(source[i]) for i in range(len(source))]))
        return out["features"].numpy().astype(np.float64), out["logits"].numpy()

    real_f, _ = feats(DigitsSource(32, "test"))
    fake_f, fake_l = feats(samples)
    fid = F.frechet_distance(real_f.mean(0), np.cov(real_f, rowvar=False), fake_f.mean(0),
                             np.cov(fake_f, rowvar=False))
    assert record["metrics"]["fid"]["value"] == pytest.approx(fid, rel=1e-6)
    labels = np.array([samples.condition(k)["class"] for k in samples.keys])
    acc = float((fake_l.argmax(1) == labels).mean())
    assert record["metrics"]["accuracy"]["value"] == pytest.approx(acc, abs=1e-12)
    isc = F.inception_score(fake_l, 2, 2020)[0]
    assert record["metrics"]["isc"]["value"] == pytest.approx(isc, rel=1e-5)


def test_rerun_resumes_and_does_not_rescore(tmp_path):
    suite = write(tmp_path, DEMO_LIKE)
    out = tmp_path / "r"
    assert run(suite, "--model", "toy", "--model-arg", "size=32", "--out", out).exit_code == 0
    first = results.read(out / "results" / "digits.json")
    (out / "samples" / "digits" / "c0003_002.png").unlink()
    res = run(suite, "--model", "toy", "--model-arg", "size=32", "--out", out)
    assert res.exit_code == 0 and "generated 1, already there 59" in res.output
    again = run(suite, "--model", "toy", "--model-arg", "size=32", "--out", out)
    assert "up to date, not rescored" in again.output
    forced = run(suite, "--model", "toy", "--model-arg", "size=32", "--out", out, "--rescore")
    assert forced.exit_code == 0 and "up to date" not in forced.output
    last = results.read(out / "results" / "digits.json")
    assert last["metrics"]["fid"]["value"] == first["metrics"]["fid"]["value"]


def test_limit_is_a_marked_smoke_run(tmp_path):
    suite = write(tmp_path, DEMO_LIKE)
    res = run(suite, "--model", "toy", "--model-arg", "size=32", "--out", tmp_path / "r",
              "--limit", "12")
    assert res.exit_code == 0 and "smoke run" in res.output
    record = results.read(tmp_path / "r" / "results" / "digits.json")
    assert record["smoke"] is True and record["counts"]["scored"] == 12
    assert record["notes"][0].startswith("smoke run")


@pytest.mark.slow  # over ~10 s on 2 cores (docs/development.md)
def test_sweep_runs_each_value_and_records_it(tmp_path):
    suite = write(tmp_path, DEMO_LIKE)
    res = run(suite, "--model", "toy", "--model-arg", "size=32", "--out", tmp_path / "r",
              "--sweep", "cfg_scale=1,2.5")
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in (tmp_path / "r" / "results").iterdir())
    assert names == ["digits@cfg_scale=1.json", "digits@cfg_scale=2.5.json"]
    rec = results.read(tmp_path / "r" / "results" / "digits@cfg_scale=2.5.json")
    assert rec["sweep"] == {"cfg_scale": 2.5} and rec["sampler"]["cfg_scale"] == 2.5
    manifest = (tmp_path / "r" / "samples" / "digits@cfg_scale=2.5" / "manifest.jsonl")
    assert json.loads(manifest.read_text().splitlines()[0])["sampler"]["cfg_scale"] == 2.5


def test_score_task_matches_diffbench_score(tmp_path):
    """The two drivers, not the network, are under test: the small demo-digits protocol's."""
    real = write_images(tmp_path / "real", 24, 0)
    fake = write_images(tmp_path / "fake", 24, 1, shift=40)
    suite = write(tmp_path, """
        name: folders-mini
        version: 1
        tasks:
          tf:
            kind: score
            dataset: {name: generated, reader: folder}
            protocol: demo-digits
            metrics: {fid: {}, kid: {args: {subset_size: 10}}}
            reference:
              dataset: {name: real, reader: folder}
        """)
    res = run(suite, "--data", f"generated={fake}", "--data", f"real={real}", "--out",
              tmp_path / "r")
    assert res.exit_code == 0, res.output
    rec = results.read(tmp_path / "r" / "results" / "tf.json")
    out = tmp_path / "score.json"
    res = CliRunner().invoke(main, ["score", "--real", str(real), "--fake", str(fake),
                                    "--protocol", "demo-digits", "--metrics", "fid,kid",
                                    "--kid-subset-size", "10", "--json", str(out)])
    assert res.exit_code == 0, res.output
    direct = json.loads(out.read_text())
    for name in ("fid", "kid"):
        assert rec["metrics"][name]["value"] == pytest.approx(direct["metrics"][name]["value"],
                                                              rel=1e-9)
    assert rec["model"] is None and rec["counts"]["scored"] == 24


@pytest.mark.parametrize("args, message", [
    ((), "pass --model"),
    (("--model", "toy", "--task", "nope"), "--task nope: not in"),
    (("--model", "toyy"), "did you mean 'toy'"),
    (("--model", "toy", "--sweep", "cfg_scale"), "expected NAME=v1,v2"),
    (("--model", "toy", "--sweep", "temperature=1,2"), "not understood by ToyAdapter"),
])
def test_user_errors_are_one_line(tmp_path, args, message):
    suite = write(tmp_path, DEMO_LIKE)
    res = run(suite, "--out", tmp_path / "r", *args)
    assert res.exit_code == 2 and message in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "r" / "samples").exists()


def test_missing_data_location_names_the_three_ways(tmp_path):
    suite = write(tmp_path, DEMO_LIKE.replace(
        "dataset: {name: digits, reader: sklearn-digits, args: {size: 32, split: test}}",
        "dataset: {name: digits-ref, reader: folder}"))
    res = run(suite, "--model", "toy", "--out", tmp_path / "r")
    assert res.exit_code == 2
    assert "--data digits-ref=PATH" in res.output and "DIFFBENCH_DATA_DIGITS_REF" in res.output
    assert "diffbench config set data.digits-ref" in res.output


def test_metric_arg_gives_every_task_that_scores_the_metric_its_argument(tmp_path):
    """`run --metric-arg isc.splits=3` is `--set tasks.digits.metrics.isc.args.splits=3`: the
    record's protocol carries it (another protocol's settings), a bad one stops before work."""
    suite = write(tmp_path, DEMO_LIKE)
    res = run(suite, "--model", "toy", "--model-arg", "size=32", "--out", tmp_path / "r",
              "--metric-arg", "isc.splits=3", "--metric-arg", "fid.scale=100")
    assert res.exit_code == 0, res.output
    record = results.read(tmp_path / "r" / "results" / "digits.json")
    assert record["protocol"]["settings"]["params"]["isc"]["splits"] == 3
    assert record["metrics"]["fid"]["scale"] == 100.0
    assert record["suite"]["overrides"]["tasks.digits.metrics.isc.args.splits"] == 3
    from diffbench.comparability import comparability

    reasons = [r for r in comparability(record).reasons if "protocol" in r]
    assert reasons == ["protocol 'demo-digits' changed: params.isc.splits is 3, the protocol's is 10"]
    res = run(suite, "--model", "toy", "--out", tmp_path / "bad", "--protocol-arg", "max_images=5")
    assert res.exit_code == 2 and "--protocol-arg max_images: no task of suite 'demo-like' has " \
        "a protocol with that setting (theirs: none)" in res.stderr, res.output
    for bad, needle in (("kid.subsets=2", "--metric-arg kid: no task of suite 'demo-like'"),
                        ("isc.splitz=2", "isc.args.splitz: unknown argument"),
                        ("isc=2", "expected METRIC.ARG=VALUE")):
        res = run(suite, "--model", "toy", "--out", tmp_path / "bad", "--metric-arg", bad)
        assert res.exit_code == 2 and needle in res.stderr, (bad, res.output)
    assert not (tmp_path / "bad").exists()
