"""`diffbench data`: reference data by name, fetched from a loopback server, checked, resumed;
licensed datasets explained, never downloaded; the data home in the resolution order."""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pytest
from click.testing import CliRunner

from diffbench import refdata
from diffbench.cli import main
from diffbench.errors import DataError
from tests.test_weights import _Handler, server  # noqa: F401 - the loopback server fixture


def _batch(seed: int = 0) -> bytes:
    """A small ADM-format batch: arr_0 uint8 N×H×W×3 and statistics."""
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    np.savez(buf, arr_0=rng.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8),
             mu=rng.normal(size=4), sigma=np.eye(4))
    return buf.getvalue()


BODY = _batch()


@pytest.fixture
def ref(server, monkeypatch):  # noqa: F811 - the fixture imported above
    """A fetchable test dataset served by the loopback server, without a published sha256."""
    monkeypatch.setattr(_Handler, "body", BODY)
    s = refdata.DataSpec("test-ref", "a test batch", "MIT", f"{server}/ref/test_ref.npz",
                         "test_ref.npz", None, "tests")
    monkeypatch.setitem(refdata.DATASETS, "test-ref", s)
    return s


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_fetch_records_the_first_sha256_then_checks_against_it(ref):
    path = refdata.fetch("test-ref")
    assert path == refdata.data_home() / "test_ref.npz" and path.read_bytes() == BODY
    digest = hashlib.sha256(BODY).hexdigest()
    assert refdata.expected_sha256(ref)[0] == digest
    recorded = json.loads((refdata.data_home() / "recorded-sha256.json").read_text())
    assert recorded == {"test-ref": digest}
    # found by name without --data (after --data, environment and config)
    assert refdata.resolve_data("test-ref")[0] == path
    assert "data home" in refdata.resolve_data("test-ref")[1]
    res = invoke("data", "verify", "test-ref")
    assert res.exit_code == 0 and "matches (recorded" in res.stdout, res.output
    # the file changes on disk: verify fails against the recorded digest
    path.write_bytes(_batch(seed=1))
    res = invoke("data", "verify", "test-ref")
    assert res.exit_code == 2 and "does not match test-ref" in res.stderr


def test_fetch_resumes_a_partial_download(ref):
    part = refdata.data_home() / "test_ref.npz.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(BODY[:1000])
    _Handler.ranges = []
    assert refdata.fetch("test-ref").read_bytes() == BODY
    assert _Handler.ranges == ["bytes=1000-"] and not part.exists()


def test_a_wrong_published_sha256_is_refused_and_leaves_nothing(ref, monkeypatch):
    monkeypatch.setitem(refdata.DATASETS, "test-ref", refdata.DataSpec(
        **{**ref.__dict__, "sha256": "0" * 64}))
    res = invoke("data", "fetch", "test-ref")
    assert res.exit_code == 2 and "does not match test-ref" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not list(refdata.data_home().glob("test_ref*"))  # the part is gone too
    # a served file that differs from the recorded digest is refused the same way
    monkeypatch.setitem(refdata.DATASETS, "test-ref", ref)
    refdata.fetch("test-ref")
    monkeypatch.setattr(_Handler, "body", _batch(seed=2))
    with pytest.raises(DataError, match="recorded at the first fetch"):
        refdata.fetch("test-ref", force=True)


def test_a_truncated_or_foreign_file_is_not_a_batch(ref, monkeypatch, tmp_path):
    monkeypatch.setattr(_Handler, "body", BODY[:-100])
    with pytest.raises(DataError, match="not a valid .npz"):
        refdata.fetch("test-ref")
    assert not (refdata.data_home() / "recorded-sha256.json").exists()  # nothing recorded
    other = tmp_path / "x.npz"
    np.savez(other, images=np.zeros((2, 4, 4, 3), np.uint8))
    res = invoke("data", "import", "test-ref", other)
    assert res.exit_code == 2 and "no 'arr_0' array" in res.stderr


def test_import_places_and_checks_a_copied_file(ref, tmp_path):
    src = tmp_path / "copy.npz"
    src.write_bytes(BODY)
    res = invoke("data", "import", "test-ref", src)
    assert res.exit_code == 0, res.output
    assert (refdata.data_home() / "test_ref.npz").read_bytes() == BODY
    listing = invoke("data", "list")
    line = next(x for x in listing.stdout.splitlines() if x.startswith("test-ref"))
    assert "present" in line and hashlib.sha256(BODY).hexdigest()[:8] in line
    rows = {r["name"]: r for r in json.loads(invoke("data", "list", "--json").stdout)}
    assert rows["test-ref"]["sha256_origin"] == "recorded at the first fetch or import"


def test_data_precedence_puts_the_data_home_last(ref, tmp_path, monkeypatch):
    refdata.fetch("test-ref")
    mine = tmp_path / "mine.npz"
    mine.write_bytes(_batch(seed=3))
    monkeypatch.setenv("DIFFBENCH_DATA_TEST_REF", str(mine))
    assert refdata.resolve_data("test-ref") == (mine, "DIFFBENCH_DATA_TEST_REF")
    assert refdata.resolve_data("test-ref", {"test-ref": str(tmp_path)})[1] == "--data"


def test_adm_reference_batches_are_listed_with_their_published_urls():
    base = "https://openaipublic.blob.core.windows.net/diffusion/jul-2021/ref_batches/imagenet/"
    assert refdata.spec("imagenet256-ref").url == base + "256/VIRTUAL_imagenet256_labeled.npz"
    assert refdata.spec("imagenet512-ref").url == base + "512/VIRTUAL_imagenet512.npz"
    for s in refdata.DATASETS.values():
        assert (s.url is None) == bool(s.get and s.layout), s.name  # fetchable xor licensed
        if s.url:
            assert s.url.startswith("https://") and s.url.endswith("/" + str(s.filename))


def test_licensed_datasets_are_explained_and_never_downloaded(tmp_path):
    listing = invoke("data", "list")
    assert listing.exit_code == 0
    text = listing.stdout
    for name, words in (("vitonhd", ("CC BY-NC 4.0", "shadow2496/VITON-HD", "test/image/")),
                        ("dresscode", ("release form", "upper_body/images/")),
                        ("dreambooth", ("google/dreambooth", "prompts_and_classes.txt"))):
        block = text[text.index(name + " "):]
        block = block[:block.index("then: diffbench config set")]
        assert "licensed" in block.splitlines()[0]
        assert all(w in block for w in words), (name, block)
    res = invoke("data", "fetch", "vitonhd")
    assert res.exit_code == 2 and "not downloadable" in res.stderr
    assert "--data vitonhd=PATH" in res.stderr
    # verify checks the layout where the user put it
    root = tmp_path / "zalando-hd-resized"
    (root / "test" / "image").mkdir(parents=True)
    res = invoke("data", "verify", "vitonhd", "--data", f"vitonhd={root}")
    assert res.exit_code == 2 and "lacks" in res.stderr and "test/cloth/" in res.stderr
    (root / "test" / "cloth").mkdir()
    (root / "test_pairs.txt").write_text("00006_00.jpg 00008_00.jpg\n")
    res = invoke("data", "verify", "vitonhd", "--data", f"vitonhd={root}")
    assert res.exit_code == 0 and "layout ok" in res.stdout and "agnostic-mask" in res.stdout


def test_a_missing_location_says_how_to_get_it():
    with pytest.raises(DataError, match="diffbench data fetch imagenet256-ref"):
        refdata.resolve_data("imagenet256-ref")
    with pytest.raises(DataError, match="not downloadable"):
        refdata.resolve_data("dresscode")
