"""The Python API is the path the CLI takes: same records, same errors, a light `import diffbench`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

import diffbench
from diffbench.cli import main
from diffbench.errors import ConfigError, ResultsError
from tests.conftest import write_images

# What differs between two scorings of the same inputs: identity, time, and the timings.
VOLATILE = ("run_id", "created", "timings")


def _stable(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in VOLATILE}


def test_score_equals_the_cli_json(tmp_path):
    real, fake = write_images(tmp_path / "real", 40, 0), write_images(tmp_path / "fake", 40, 1,
                                                                      shift=30)
    record = diffbench.score(real, fake, metrics=["fid", "kid", "isc", "prc"],
                             protocol="demo-digits", workers=0, bootstrap=5, cache=False,
                             kid_subset_size=20)
    out = tmp_path / "cli.json"
    res = CliRunner().invoke(main, ["score", "--real", str(real), "--fake", str(fake),
                                    "--protocol", "demo-digits", "--metrics", "fid,kid,isc,prc",
                                    "--workers", "0", "--bootstrap", "5", "--no-cache",
                                    "--kid-subset-size", "20", "--json", str(out)])
    assert res.exit_code == 0, res.output
    cli = json.loads(out.read_text())
    assert _stable(record) == _stable(cli)
    assert list(record["metrics"]) == ["fid", "kid", "isc", "precision", "recall"]
    assert record["protocol"]["settings"]["params"]["kid"]["subset_size"] == 20
    assert record["counts"] == {"real": 40, "fake": 40}
    # the console shows each value with the digits its CI supports, at most its spec's
    # decimals (FID 2, KID 5, IS 1): two significant digits on the half CI
    from diffbench.display import supported_decimals

    fid = record["metrics"]["fid"]
    half = (fid["ci"]["high"] - fid["ci"]["low"]) / 2
    d = supported_decimals(half, 2)
    assert f"fid        {fid['value']:.{d}f} ± {half:.{d}f}" in res.output.splitlines()
    _same_numbers_in_run_and_report(record, res.output, tmp_path)


def _same_numbers_in_run_and_report(record: dict, score_output: str, tmp_path) -> None:
    """`score`, `run` and `report` write each number with the same digits (the spec's)."""
    from types import SimpleNamespace

    from diffbench.cli.run_cmd import summary
    from diffbench.display import format_value

    shown = {k: format_value(k, e) for k, e in record["metrics"].items()}
    lines = score_output.splitlines()
    assert all(f"{k:<10} {v}" in lines for k, v in shown.items())
    point = SimpleNamespace(record=record, reused=True, generation=None,
                            point=SimpleNamespace(name="t"), path=None)
    assert summary(point).splitlines()[1:] == [f"  {k:<10} {v}" for k, v in shown.items()]
    (tmp_path / "results.json").write_text(json.dumps(record))
    res = CliRunner().invoke(main, ["report", str(tmp_path / "results.json"), "--no-published",
                                    "-o", str(tmp_path / "report")])
    assert res.exit_code == 0, res.output
    table = (tmp_path / "report" / "report.md").read_text()
    for text in shown.values():
        assert f"| {text} |" in table, (text, table)


def test_score_errors_are_the_cli_errors(tmp_path):
    real = write_images(tmp_path / "real", 3, 0)
    with pytest.raises(ConfigError, match="--metrics: unknown fdi; choose from fid, sfid"):
        diffbench.score(real, real, metrics="fdi", protocol="demo-digits")
    with pytest.raises(ConfigError, match="does not define sfid"):
        diffbench.score(real, real, metrics="sfid", protocol="demo-digits")
    with pytest.raises(ConfigError, match="accuracy"):  # needs class labels: not two folders
        diffbench.score(real, real, metrics="accuracy", protocol="demo-digits")


def test_load_results_reads_files_and_run_folders(tmp_path):
    real = write_images(tmp_path / "real", 12, 0)
    out = tmp_path / "r.json"
    res = CliRunner().invoke(main, ["score", "--real", str(real), "--fake", str(real),
                                    "--protocol", "demo-digits", "--workers", "0",
                                    "--json", str(out)])
    assert res.exit_code == 0, res.output
    record = diffbench.load_results(out)
    assert record == json.loads(out.read_text())
    (tmp_path / "run" / "results").mkdir(parents=True)
    out.rename(tmp_path / "run" / "results" / "t.json")
    assert diffbench.load_results(tmp_path / "run") == [record]
    with pytest.raises(ResultsError, match="results file not found"):
        diffbench.load_results(tmp_path / "missing.json")


@pytest.mark.procs
def test_import_diffbench_is_light():
    code = ("import sys, diffbench; heavy = [m for m in ('torch', 'numpy') if m in sys.modules]; "
            "assert not heavy, heavy; assert callable(diffbench.score) and "
            "callable(diffbench.run) and callable(diffbench.load_results); "
            "import diffbench.runner; assert callable(diffbench.run)")
    subprocess.run([sys.executable, "-c", code], check=True)
