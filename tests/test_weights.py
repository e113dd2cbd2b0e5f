"""Weights: resolution order, download with resume and checksum, offline errors, CLI."""

from __future__ import annotations

import hashlib
import http.server
import threading

import pytest
from click.testing import CliRunner

from diffbench import weights as w
from diffbench.cli import main
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
def server():
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
