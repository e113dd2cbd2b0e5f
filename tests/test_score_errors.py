"""Bad inputs to `diffbench score`: exit code 2 and one line on stderr, never a traceback."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from diffbench.cli import main


def _png_folder(folder, n=5, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rs = np.random.RandomState(seed)
    for i in range(n):
        Image.fromarray(rs.randint(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    return _png_folder(tmp_path_factory.mktemp("good"))


def _score(real, fake, weights, metrics="prc"):
    res = CliRunner().invoke(main, ["score", "--real", str(real), "--fake", str(fake),
                                    "--metrics", metrics, "--workers", "0", "--no-cache",
                                    "--prc-features", "pool3",
                                    "--weights", f"inception-2015-12-05={weights}"])
    return res


def _score_small(real, fake, metrics="prc"):
    """`_score` on the small demo-digits protocol: for tests of the image reader, not the network."""
    return CliRunner().invoke(main, ["score", "--real", str(real), "--fake", str(fake),
                                     "--metrics", metrics, "--workers", "0", "--no-cache",
                                     "--protocol", "demo-digits"])


def _assert_user_error(res, needle):
    assert res.exit_code == 2, res.output
    # Other lines may be log warnings (e.g. "not the official weights"); one error line.
    lines = [x for x in res.output.splitlines() if x.startswith("diffbench: error:")]
    assert len(lines) == 1, res.output
    assert needle in lines[0] and "Traceback" not in res.output


def _corrupt(folder):
    (folder / "9.png").write_bytes(b"definitely not a png")


def _truncated(folder):
    src = (folder / "0.png").read_bytes()
    (folder / "9.png").write_bytes(src[: len(src) // 2])


@pytest.mark.parametrize("spoil,needle", [(_corrupt, "9.png"), (_truncated, "9.png")])
def test_bad_image_files(good, tmp_path, spoil, needle):
    fake = _png_folder(tmp_path / "fake", seed=1)
    spoil(fake)
    _assert_user_error(_score_small(good, fake), needle)


def test_empty_folder(good, inception_weights, tmp_path):
    (tmp_path / "empty").mkdir()
    _assert_user_error(_score(good, tmp_path / "empty", inception_weights), "no images found")


def test_npz_without_arr0_and_wrong_dtype(good, inception_weights, tmp_path):
    np.savez(tmp_path / "a.npz", images=np.zeros((4, 8, 8, 3), np.uint8))
    _assert_user_error(_score(good, tmp_path / "a.npz", inception_weights), "no 'arr_0'")
    np.savez(tmp_path / "b.npz", arr_0=np.zeros((4, 8, 8, 3), np.float32))
    _assert_user_error(_score(good, tmp_path / "b.npz", inception_weights), "expected uint8")


def test_too_few_images(good, inception_weights, tmp_path):
    one = _png_folder(tmp_path / "one", n=1)
    _assert_user_error(_score(good, one, inception_weights, "fid"), "at least 2")
    _assert_user_error(_score(good, one, inception_weights, "kid"), "subset size")


def test_unknown_metric_and_protocol(good, inception_weights):
    _assert_user_error(_score(good, good, inception_weights, "fid,bogus"), "bogus")
    res = CliRunner().invoke(main, ["score", "--real", str(good), "--fake", str(good),
                                    "--protocol", "adn"])
    _assert_user_error(res, "adn")


def test_other_modes_are_converted_like_pil(good, tmp_path):
    """RGBA/L/P/16-bit files are accepted (converted as torch-fidelity/clean-fid do)."""
    folder = tmp_path / "modes"
    folder.mkdir()
    rgb = np.random.RandomState(2).randint(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(rgb).convert("RGBA").save(folder / "a.png")
    Image.fromarray(rgb).convert("L").save(folder / "b.png")
    Image.fromarray(rgb).convert("P").save(folder / "c.png")
    Image.fromarray(rgb[..., 0].astype(np.uint16) * 257).save(folder / "d.png")
    Image.fromarray(rgb).save(folder / "e.png")
    res = _score_small(good, folder)
    assert res.exit_code == 0, res.output
    assert "precision" in res.output
