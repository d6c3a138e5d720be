"""A hostile server and a hostile folder against the downloader: every transfer bounded by the expected size,
every protocol error a failed attempt, never a write through a planted link."""

from __future__ import annotations

import hashlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from evrobust.errors import UserInputError
from evrobust.preprocess.download import DOWNLOAD_MARGIN, Resource, fetch

BODY = b"evrobust" * 1000  # 8,000 bytes
MD5 = hashlib.md5(BODY, usedforsecurity=False).hexdigest()


class RawServer:
    """A one-thread TCP server on 127.0.0.1 answering every connection with ``reply`` (raw bytes)."""

    def __init__(self, reply: bytes, body_repeat: int = 0) -> None:
        self.reply, self.body_repeat = reply, body_repeat
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/file.bin"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                try:
                    conn.recv(65536)
                    conn.sendall(self.reply)
                    for _ in range(self.body_repeat):  # stream far more than any resource can have
                        conn.sendall(b"\0" * 65536)
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def serve() -> Iterator[list[RawServer]]:
    servers: list[RawServer] = []
    yield servers
    for s in servers:
        s.close()


def test_a_claimed_size_far_over_the_expected_one_is_refused_at_once(serve: list, tmp_path: Path) -> None:
    server = RawServer(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000000\r\n\r\n" + BODY)
    serve.append(server)
    resource = Resource("file.bin", server.url, MD5, size=len(BODY))
    with pytest.raises(UserInputError, match=r"announced 1,000,000,000,000 bytes \(at most 1,056,576 bytes"):
        fetch(resource, tmp_path / "file.bin", retries=2, backoff=0)
    assert not (tmp_path / "file.bin.part").exists() and not (tmp_path / "file.bin").exists()
    assert server.connections == 1  # refused, not retried


def test_a_body_longer_than_the_expected_size_is_cut_off(serve: list, tmp_path: Path) -> None:
    """No Content-Length, and a stream that never ends: the transfer stops at size + margin."""
    server = RawServer(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", body_repeat=64)  # 4 MiB
    serve.append(server)
    resource = Resource("file.bin", server.url, MD5, size=len(BODY))
    assert resource.max_bytes == len(BODY) + DOWNLOAD_MARGIN
    with pytest.raises(UserInputError, match=r"sent over 1,056,576 bytes"):
        fetch(resource, tmp_path / "file.bin", retries=2, backoff=0)
    assert not (tmp_path / "file.bin.part").exists()


@pytest.mark.parametrize(
    "reply",
    [
        b"garbage that is no status line\r\n\r\n",  # http.client.BadStatusLine
        b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70000 + b"\r\n\r\n",  # http.client.LineTooLong
        b"",  # the server closes without a word: RemoteDisconnected
    ],
)
def test_protocol_errors_are_failed_attempts_then_one_line(serve: list, tmp_path: Path, reply: bytes) -> None:
    server = RawServer(reply)
    serve.append(server)
    resource = Resource("file.bin", server.url, MD5, size=len(BODY))
    with pytest.raises(UserInputError, match=r"cannot download file.bin from http://127.0.0.1") as info:
        fetch(resource, tmp_path / "file.bin", retries=3, backoff=0)
    assert "\n" not in str(info.value)
    assert server.connections == 3  # every protocol error was retried like a dropped connection


@pytest.mark.parametrize("planted", ["file.bin.part", ".file.bin.lock"])
def test_a_link_planted_where_the_downloader_writes_is_refused(
    serve: list, tmp_path: Path, planted: str
) -> None:
    """Before the fix the .part file was opened through a symlink and the link's target overwritten."""
    server = RawServer(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BODY) + BODY)
    serve.append(server)
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    (tmp_path / planted).symlink_to(victim)
    with pytest.raises(UserInputError, match="is a symbolic link"):
        resource = Resource("file.bin", server.url, MD5, size=len(BODY))
        fetch(resource, tmp_path / "file.bin", retries=1, backoff=0)
    assert victim.read_bytes() == b"precious"
    assert not (tmp_path / "file.bin").exists()


def test_an_honest_server_still_works(serve: list, tmp_path: Path) -> None:
    server = RawServer(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BODY) + BODY)
    serve.append(server)
    out = fetch(Resource("file.bin", server.url, MD5, size=len(BODY)), tmp_path / "file.bin", retries=1)
    assert out.read_bytes() == BODY


def test_the_cifar_archives_carry_their_published_sizes() -> None:
    from evrobust.preprocess.download import RAW_SOURCES

    sizes = {r.file: r.size for s in RAW_SOURCES.values() for r in s.resources}
    assert sizes["cifar-10-python.tar.gz"] == 170_498_071
    assert sizes["cifar-100-python.tar.gz"] == 169_001_437
    assert sizes["airplane.zip"] is None  # figshare states none: bounded by the raw_archive cap
