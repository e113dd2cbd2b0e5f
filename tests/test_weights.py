"""Weights: resolution order, download with resume and checksum, offline errors, CLI."""

from __future__ import annotations

import hashlib
import http.server
import re
import threading

import pytest
from click.testing import CliRunner

from diffbench import weights as w
from diffbench.cli import main
from diffbench.download import OFFLINE_VARS
from diffbench.errors import WeightsError

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


class _Handler(http.server.BaseHTTPRequestHandler):
    ranges: list[str] = []
    body = PAYLOAD
    support_range = True

    def do_GET(self):  # noqa: N802 - http.server's naming
        rng = self.headers.get("Range")
        type(self).ranges.append(rng or "")
        start = int(rng.split("=")[1].split("-")[0]) if rng and self.support_range else 0
        data = self.body[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(monkeypatch):
    """A loopback file server; downloads are on (conftest turns HF_HUB_OFFLINE on for the rest)."""
    for name in OFFLINE_VARS:
        monkeypatch.delenv(name, raising=False)
    _Handler.ranges = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def spec(server, monkeypatch):
    s = w.WeightSpec("test-net", f"{server}/test-net-abcd.pth", "test-net-abcd.pth",
                     hashlib.sha256(PAYLOAD).hexdigest(), None, len(PAYLOAD), "MIT", "test")
    monkeypatch.setitem(w.WEIGHTS, "test-net", s)
    return s


def test_fetch_verifies_and_places_file(spec):
    path = w.fetch("test-net")
    assert path == w.home() / spec.filename and path.read_bytes() == PAYLOAD
    assert w.resolve("test-net", offline=True) == path  # found without the network


def test_fetch_resumes_partial_download(spec):
    part = w.home() / (spec.filename + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(PAYLOAD[:1000])
    path = w.fetch("test-net")
    assert path.read_bytes() == PAYLOAD
    assert _Handler.ranges == ["bytes=1000-"]
    assert not part.exists()


def test_checksum_failure_leaves_nothing(spec, monkeypatch):
    monkeypatch.setitem(w.WEIGHTS, "test-net", w.WeightSpec(
        **{**spec.__dict__, "sha256": "0" * 64}))
    with pytest.raises(WeightsError, match="does not match"):
        w.fetch("test-net")
    assert not list(w.home().glob("test-net*"))


def test_offline_missing_names_the_fix(spec, monkeypatch):
    monkeypatch.setenv("DIFFBENCH_OFFLINE", "1")
    with pytest.raises(WeightsError) as info:
        w.resolve("test-net")
    msg = str(info.value)
    assert "diffbench weights fetch test-net" in msg
    assert "diffbench weights import test-net" in msg
    assert _Handler.ranges == []  # nothing was requested


@pytest.mark.parametrize("variable", ["DIFFBENCH_OFFLINE", "HF_HUB_OFFLINE"])
@pytest.mark.parametrize("value", ["1", "true", "YES", "on"])
def test_offline_variables_stop_every_download(spec, monkeypatch, tmp_path, variable, value):
    """One offline check: either variable, any true spelling, stops an explicit fetch too."""
    from diffbench import download

    monkeypatch.setenv(variable, value)
    assert download.is_offline()
    with pytest.raises(WeightsError, match=f"downloads are off \\({variable}={value}\\).*"
                                           "diffbench weights import test-net"):
        w.fetch("test-net")
    assert _Handler.ranges == [] and not (w.home() / spec.filename).exists()
    monkeypatch.setenv(variable, "0")
    assert not download.is_offline()


def test_unreachable_server_is_clear(spec, monkeypatch):
    monkeypatch.setitem(w.WEIGHTS, "test-net", w.WeightSpec(
        **{**spec.__dict__, "url": "http://127.0.0.1:9/none.pth"}))
    with pytest.raises(WeightsError, match="cannot download"):
        w.fetch("test-net")


def test_resolution_order(spec, tmp_path, monkeypatch):
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / spec.filename).write_bytes(PAYLOAD)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert w.resolve("test-net", offline=True) == hub / spec.filename
    explicit = tmp_path / "mine.pth"
    explicit.write_bytes(b"fine-tuned weights")
    assert w.resolve("test-net", {"test-net": explicit}) == explicit
    assert not w.is_official("test-net", explicit)
    with pytest.raises(WeightsError, match="file not found"):
        w.resolve("test-net", {"test-net": tmp_path / "none.pth"})
    bad_cache = w.home() / spec.filename
    bad_cache.parent.mkdir(parents=True, exist_ok=True)
    bad_cache.write_bytes(b"corrupt")
    with pytest.raises(WeightsError, match="does not match"):
        w.resolve("test-net", offline=True)


def test_prefix_check():
    s = w.WeightSpec("p", "http://127.0.0.1/x", "x", None, "deadbeef", None, "MIT", "")
    with pytest.raises(WeightsError, match="published prefix deadbeef"):
        w.check(s, __import__("pathlib").Path(__file__))


def test_cli_import_list_verify(spec, tmp_path):
    src = tmp_path / "copied.pth"
    src.write_bytes(PAYLOAD)
    runner = CliRunner()
    res = runner.invoke(main, ["weights", "import", "test-net", str(src)])
    assert res.exit_code == 0, res.output
    assert "present" in runner.invoke(main, ["weights", "list"]).stdout
    assert runner.invoke(main, ["weights", "verify", "test-net"]).exit_code == 0
    wrong = tmp_path / "wrong.pth"
    wrong.write_bytes(b"nope")
    res = runner.invoke(main, ["weights", "import", "test-net", str(wrong)])
    assert res.exit_code == 2 and "does not match" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    res = runner.invoke(main, ["weights", "fetch", "no-such-net"])
    assert res.exit_code == 2 and "unknown weights" in res.stderr


def test_bare_explicit_path_and_verify_by_path(spec, tmp_path):
    mine = tmp_path / "any-name.pth"
    mine.write_bytes(PAYLOAD)
    assert w.resolve("test-net", {"": mine}) == mine
    assert w.is_official("test-net", mine)
    with pytest.raises(WeightsError, match="matches no known weights"):
        w.verify(mine)
    named = tmp_path / spec.filename
    named.write_bytes(PAYLOAD[:-1])
    with pytest.raises(WeightsError, match="does not match"):
        w.verify(named)
    with pytest.raises(WeightsError, match="diffbench weights fetch test-net"):
        w.verify("test-net")  # known but absent


def test_list_weights_rows_and_json(spec, tmp_path):
    import json

    names = {r["name"]: r for r in w.list_weights()}
    assert {"inception-2015-12-05", "vgg16-imagenet", "clip-vit-b-32-openai"} <= set(names)
    assert names["test-net"]["where"] is None
    w.import_file("test-net", _write(tmp_path / "c.pth", PAYLOAD))
    res = CliRunner().invoke(main, ["weights", "list", "--json"])
    assert res.exit_code == 0
    rows = {r["name"]: r for r in json.loads(res.stdout)}
    assert rows["test-net"]["where"] == str(w.home() / spec.filename)
    assert rows["inception-2015-12-05"]["sha256"].startswith("6726825d")


def test_registry_specs_are_consistent():
    for s in w.WEIGHTS.values():
        assert s.url.startswith("https://") and s.filename
        # A checksum, or an explicit statement that none is published (the file's own sha256
        # is then recorded in every fingerprint that uses it).
        assert s.sha256 or s.sha256_prefix or "sha256 unknown" in s.description, s.name
        if s.sha256 and s.sha256_prefix:
            assert s.sha256.startswith(s.sha256_prefix)
    clip = w.WEIGHTS["clip-vit-b-32-openai"]
    assert clip.sha256 in clip.url


def _write(path, data):
    path.write_bytes(data)
    return path


def test_resume_restarts_when_server_ignores_range(spec, monkeypatch):
    monkeypatch.setattr(_Handler, "support_range", False)
    part = w.home() / (spec.filename + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"x" * 1000)  # not a prefix of the payload: appending would corrupt it
    assert w.fetch("test-net").read_bytes() == PAYLOAD
    assert _Handler.ranges == ["bytes=1000-"]


def test_digest_cache_skips_rehash(tmp_path, monkeypatch):
    f = _write(tmp_path / "f.bin", PAYLOAD)
    expected = hashlib.sha256(PAYLOAD).hexdigest()
    assert w.sha256_of(f) == expected
    monkeypatch.setattr(w, "file_sha256", None)  # a second hash would fail
    assert w.sha256_of(f) == expected


def test_config_set_weights_is_used_after_the_option(spec, tmp_path):
    """`diffbench config set weights.NAME PATH`: after --weights, before the weights home."""
    official = _write(tmp_path / "official.pth", PAYLOAD)
    tuned = _write(tmp_path / "tuned.pth", b"fine-tuned")
    runner = CliRunner()
    res = runner.invoke(main, ["config", "set", "weights.test-net", str(official)])
    assert res.exit_code == 0, res.output
    assert w.resolve("test-net", offline=True) == official
    assert w.resolve("test-net", {"test-net": tuned}) == tuned  # the option wins
    w.import_file("test-net", official)  # the weights home comes after the config
    assert w.resolve("test-net", offline=True) == official
    listing = runner.invoke(main, ["weights", "list"]).stdout
    assert str(official) in listing
    assert runner.invoke(main, ["weights", "verify", "test-net"]).stdout.strip().endswith(
        f"({official})")
    runner.invoke(main, ["config", "set", "weights.test-net", str(tmp_path / "gone.pth")])
    with pytest.raises(WeightsError, match=r"config.yaml \(weights.test-net\): file not found"):
        w.resolve("test-net", offline=True)


def test_weights_list_has_a_header_and_one_sha256_format(spec):
    out = CliRunner().invoke(main, ["weights", "list"]).stdout.splitlines()
    assert out[0].split() == ["NAME", "STATE", "SHA256", "CHECK", "LICENCE"]
    rows = {x.split()[0]: x.split() for x in out[1:] if not x.startswith(" ")}
    assert rows["inception-2015-12-05"][2:4] == ["6726825d", "sha256"]  # full digest known
    assert rows["vgg16-imagenet"][2:4] == ["397923af", "prefix"]  # only the published prefix
    assert rows["dino-vits16"][2:4] == ["-", "none"]
    assert all(re.fullmatch(r"[0-9a-f]{8}|-", r[2]) for r in rows.values())


@pytest.mark.parametrize("argv", [
    ["score", "--real", "no-such-ref", "--fake", "no-such-samples", "--protocol", "clean-fid"],
    ["stats", "compute", "no-such-folder", "-o", "stats.npz"],
    ["run", "demo", "--model", "toy", "--out", "runs/x"],
])
def test_an_unknown_weights_name_is_refused_before_any_work(argv, tmp_path, monkeypatch):
    """`--weights inception=FILE` (the name misspelt): exit 2, one line with a "did you mean",
    before the folders are read, a model is built or anything is written."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "w.pth").write_bytes(b"x")
    res = CliRunner().invoke(main, [*argv, "--weights", "inception=w.pth"])
    assert res.exit_code == 2, res.output
    err = res.stderr.strip().splitlines()
    known = ", ".join(sorted([*w.WEIGHTS, *w.LOCAL_NAMES]))
    assert err == ["diffbench: error: --weights inception=w.pth: unknown weights 'inception'; "
                   f"did you mean 'inception-2015-12-05'? (known: {known}; `diffbench weights "
                   "list`)"], res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.pth"]  # nothing written


def test_close_spellings_and_bare_paths():
    with pytest.raises(WeightsError, match="did you mean 'vgg16-imagenet'"):
        w.check_names({"vgg16-imagent": "f"})
    with pytest.raises(WeightsError, match="did you mean 'dinov2-vitl14'"):
        w.spec("dinov2-vitl")
    w.check_names({"": "f", "inception-2015-12-05": "g"})  # a bare --weights PATH is fine
    w.check_names({"digits-classifier": "f", "lpips-lin-alex": "g"})  # never downloaded
    w.check_names(None)


def test_a_name_a_suite_gives_is_known():
    w.check_names({"my-dino": "f"}, {"my-dino"})
    with pytest.raises(WeightsError, match="did you mean 'my-dino'"):
        w.check_names({"my-din": "f"}, {"my-dino"})
