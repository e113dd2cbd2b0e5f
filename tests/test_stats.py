"""Statistics files: roundtrip, fingerprint check, use by `score`, and the reference cache."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from diffbench import stats as stats_lib
from diffbench.cli import main
from diffbench.errors import DataError
from diffbench.metrics.states import FeatureBank, GaussianMoments


def _w(path) -> list[str]:
    return ["--weights", f"inception-2015-12-05={path}"]


def test_roundtrip_and_header(tmp_path):
    rows = np.random.RandomState(0).randn(30, 5)
    mom = GaussianMoments(5).update(rows)
    fp = {"extractor": "x", "weights_sha256": "ab", "resize": "clean", "size": 299,
          "normalisation": "n"}
    path = stats_lib.save(tmp_path / "s.npz", {"pool3": mom}, {"pool3": FeatureBank(5).update(rows)},
                          fp, "clean-fid", {"path": "somewhere"}, 30)
    st = stats_lib.load(path)
    assert st.n == 30 and st.header["protocol"] == "clean-fid" and stats_lib.is_stats_file(path)
    np.testing.assert_allclose(st.gaussians["pool3"][0], rows.mean(0))
    np.testing.assert_allclose(st.gaussians["pool3"][1], np.cov(rows, rowvar=False))
    assert st.banks["pool3"].dtype == np.float32 and st.banks["pool3"].shape == (30, 5)
    stats_lib.check_fingerprint(st, fp, "here")
    with pytest.raises(DataError, match="another extractor.*resize"):
        stats_lib.check_fingerprint(st, {**fp, "resize": "tf-bilinear"}, "here")
    with np.load(path, allow_pickle=False) as data:  # no pickles anywhere
        assert set(data.files) == {"mu", "sigma", "feats_pool3", "header"}


def _saved(tmp_path):
    rows = np.random.RandomState(0).randn(30, 5)
    return stats_lib.save(tmp_path / "s.npz", {"pool3": GaussianMoments(5).update(rows)},
                          {"pool3": FeatureBank(5).update(rows)}, {"extractor": "x"}, "p",
                          {}, 30)


def _rewrite(path, change) -> None:
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    change(arrays)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def _header(arrays):
    return json.loads(bytes(arrays["header"]).decode())


def _set_header(arrays, header):
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)


def test_checksum_covers_arrays_and_header(tmp_path):
    path = _saved(tmp_path)
    header, names = stats_lib.peek(path)
    assert len(header["sha256"]) == 64 and sorted(names) == ["feats_pool3", "mu", "sigma"]
    assert stats_lib.load(path, require_checksum=True).n == 30
    _rewrite(path, lambda a: a.update(mu=a["mu"] + 1))  # what silently moved FID 37 -> 98
    with pytest.raises(stats_lib.CorruptStatsError, match="checksum mismatch"):
        stats_lib.load(path)
    path = _saved(tmp_path)
    _rewrite(path, lambda a: _set_header(a, {**_header(a), "n": 31}))
    with pytest.raises(stats_lib.CorruptStatsError, match="checksum mismatch"):
        stats_lib.load(path)
    path = _saved(tmp_path)
    _rewrite(path, lambda a: a.update(feats_pool3=a["feats_pool3"][:10]))
    with pytest.raises(stats_lib.CorruptStatsError, match="checksum mismatch"):
        stats_lib.load(path)


def test_file_without_checksum_loads_unless_required(tmp_path):
    """Statistics files of older versions stay usable; the cache recomputes such entries."""
    path = _saved(tmp_path)
    _rewrite(path, lambda a: _set_header(a, {k: v for k, v in _header(a).items()
                                             if k != "sha256"}))
    assert stats_lib.load(path).n == 30
    with pytest.raises(stats_lib.CorruptStatsError, match="no checksum"):
        stats_lib.load(path, require_checksum=True)


@pytest.mark.parametrize("content,needle", [(b"", "the file is empty"),
                                            (b"garbage" * 100, "not an .npz archive")])
def test_empty_and_garbage_files_are_one_line_errors(tmp_path, content, needle):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(content)
    with pytest.raises(stats_lib.CorruptStatsError, match=needle):
        stats_lib.load(bad)


def test_save_is_atomic_and_leaves_no_temporary_file(tmp_path):
    path = _saved(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_not_a_stats_file(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    assert not stats_lib.is_stats_file(bad)
    with pytest.raises(DataError, match="not a diffbench statistics file"):
        stats_lib.load(bad)


@pytest.mark.slow  # two 2048-d Fréchet distances
def test_cli_compute_show_score_and_mismatch(image_sets, inception_weights, tmp_path):
    real, fake = image_sets
    out = tmp_path / "real.npz"
    runner = CliRunner()
    res = runner.invoke(main, ["stats", "compute", str(real), "--protocol", "torch-fidelity",
                               "-o", str(out), "--workers", "0", *_w(inception_weights)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["stats", "show", str(out)])
    assert res.exit_code == 0 and '"n": 60' in res.output and "pool3, sfid" in res.output
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    args = ["--fake", str(fake), "--metrics", "fid", "--workers", "0", *_w(inception_weights)]
    assert runner.invoke(main, ["score", "--real", str(out), "--json", str(a), *args]).exit_code == 0
    assert runner.invoke(main, ["score", "--real", str(real), "--json", str(b), "--no-cache",
                                *args]).exit_code == 0
    fa, fb = (json.loads(p.read_text())["metrics"]["fid"]["value"] for p in (a, b))
    assert fa == pytest.approx(fb, rel=1e-9)
    # Same file under another resize: refused, one line, exit 2.
    res = runner.invoke(main, ["score", "--real", str(out), "--protocol", "clean-fid", *args])
    assert res.exit_code == 2 and "another extractor" in res.output
    assert "Traceback" not in res.output
    # KID needs rows that this file does not hold.
    res = runner.invoke(main, ["score", "--real", str(out), *args[:2], "--metrics", "kid",
                               *args[4:]])
    assert res.exit_code == 2 and "--keep-features" in res.output


def test_reference_cache_is_used(image_sets, tmp_path):
    """The cache, not the extractor, is under test: the small demo-digits protocol's network."""
    real, fake = image_sets
    args = ["score", "--real", str(real), "--fake", str(fake), "--metrics", "kid",
            "--kid-subset-size", "20", "--kid-subsets", "10", "--workers", "0",
            "--protocol", "demo-digits"]
    outs = []
    for i in range(2):
        res = CliRunner().invoke(main, [*args, "--json", str(tmp_path / f"{i}.json")])
        assert res.exit_code == 0, res.output
        outs.append(json.loads((tmp_path / f"{i}.json").read_text()))
    cached = list(stats_lib.cache_dir().glob("*.npz"))
    assert len(cached) == 1
    assert "cache" not in outs[0]["inputs"]["real"] and outs[1]["inputs"]["real"]["cache"]
    assert outs[0]["metrics"]["kid"]["value"] == outs[1]["metrics"]["kid"]["value"]
