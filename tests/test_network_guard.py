"""The suite-wide fixture refuses non-loopback connections and allows loopback."""

from __future__ import annotations

import socket
import threading

import pytest

from tests.conftest import NetworkBlocked


def test_connection_to_public_address_fails():
    with pytest.raises(NetworkBlocked, match="may not reach the network"):
        socket.create_connection(("93.184.216.34", 80), timeout=1)


def test_connection_to_private_address_fails():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with pytest.raises(NetworkBlocked):
            s.connect_ex(("10.0.0.1", 443))
    finally:
        s.close()


def test_urllib_to_the_internet_fails():
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.URLError) as info:
        urllib.request.urlopen("http://1.1.1.1/", timeout=1)
    assert isinstance(info.value.reason, NetworkBlocked)


def test_loopback_is_allowed():
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    accepted = []
    thread = threading.Thread(target=lambda: accepted.append(server.accept()[0]))
    thread.start()
    client = socket.create_connection(("127.0.0.1", port), timeout=2)
    thread.join(timeout=2)
    client.close()
    for conn in accepted:
        conn.close()
    server.close()
    assert len(accepted) == 1
