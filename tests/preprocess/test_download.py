"""Datasets on first use: downloads from a local HTTP server on 127.0.0.1 serving archives made here.

Covers the download protocol (good file, checksum mismatch, an interrupted transfer resumed, a server that
ignores ranges, 404), safe tar extraction, and the whole ``evrobust preprocess <name>`` path without --raw.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from evrobust.errors import UserInputError
from evrobust.preprocess import download
from evrobust.preprocess.download import RawSource, Resource, fetch
from evrobust.preprocess.extract import extract_tar

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@dataclass
class Server:
    """What the test server serves and what it was asked."""

    base: str
    files: dict[str, bytes] = field(default_factory=dict)
    cut_after: dict[str, int] = field(default_factory=dict)  # path -> bytes sent before dropping (once)
    ignore_range: bool = False
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server(base="")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep pytest's output clean
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            path = self.path.lstrip("/")
            state.requests.append((path, self.headers.get("Range")))
            if path not in state.files:
                self.send_error(404, "Not Found")
                return
            body = state.files[path]
            start = 0
            spec = self.headers.get("Range")
            if spec and not state.ignore_range:
                start = int(spec.removeprefix("bytes=").split("-")[0])
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            cut = state.cut_after.pop(path, None)
            if cut is not None:  # promise the whole body, send part of it, drop the connection
                self.wfile.write(body[start : start + cut])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body[start:])

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def blob(n: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def no_partials(folder: Path) -> bool:
    return not list(folder.rglob("*.part")) and not list(folder.rglob("*.partial"))


# ---------------------------------------------------------------------------------------------- fetch


def test_good_download(server: Server, tmp_path: Path) -> None:
    data = blob(3 * download.CHUNK_BYTES + 123)
    server.files["a.bin"] = data
    seen: list[int] = []
    out = fetch(
        Resource("a.bin", server.url("a.bin"), md5(data)),
        tmp_path / "a.bin",
        on_progress=lambda name, done, total: seen.append(done),
    )
    assert out.read_bytes() == data
    assert server.requests == [("a.bin", None)]
    assert seen[-1] == len(data) and seen == sorted(seen)
    assert no_partials(tmp_path)


def test_checksum_mismatch_is_refused_and_the_file_removed(server: Server, tmp_path: Path) -> None:
    data = blob(5000)
    server.files["a.bin"] = data
    wrong = md5(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(UserInputError, match=f"MD5 {md5(data)}, not the published {wrong}; removed it"):
        fetch(Resource("a.bin", server.url("a.bin"), wrong), tmp_path / "a.bin", retries=1)
    assert list(tmp_path.iterdir()) == [tmp_path / ".a.bin.lock"]  # neither the file nor its partial


def test_interrupted_transfer_is_resumed_with_a_range_request(server: Server, tmp_path: Path) -> None:
    data = blob(200_000, seed=1)
    server.files["a.bin"] = data
    server.cut_after["a.bin"] = 70_000
    out = fetch(Resource("a.bin", server.url("a.bin"), md5(data)), tmp_path / "a.bin", backoff=0.0)
    assert out.read_bytes() == data
    assert server.requests == [("a.bin", None), ("a.bin", "bytes=70000-")]
    assert no_partials(tmp_path)


def test_a_partial_file_from_an_earlier_run_is_continued(server: Server, tmp_path: Path) -> None:
    data = blob(50_000, seed=2)
    server.files["a.bin"] = data
    (tmp_path / "a.bin.part").write_bytes(data[:12_345])
    fetch(Resource("a.bin", server.url("a.bin"), md5(data)), tmp_path / "a.bin")
    assert (tmp_path / "a.bin").read_bytes() == data
    assert server.requests == [("a.bin", "bytes=12345-")]


def test_a_complete_partial_file_gets_416_and_is_checked(server: Server, tmp_path: Path) -> None:
    data = blob(1000, seed=3)
    server.files["a.bin"] = data
    (tmp_path / "a.bin.part").write_bytes(data)
    fetch(Resource("a.bin", server.url("a.bin"), md5(data)), tmp_path / "a.bin")
    assert (tmp_path / "a.bin").read_bytes() == data and not (tmp_path / "a.bin.part").exists()


def test_a_server_that_ignores_ranges_restarts_the_file(server: Server, tmp_path: Path) -> None:
    data = blob(40_000, seed=4)
    server.files["a.bin"] = data
    server.ignore_range = True
    (tmp_path / "a.bin.part").write_bytes(b"stale bytes from another file")
    fetch(Resource("a.bin", server.url("a.bin"), md5(data)), tmp_path / "a.bin")
    assert (tmp_path / "a.bin").read_bytes() == data


def test_404_is_one_line_naming_the_file_and_where_to_put_it(server: Server, tmp_path: Path) -> None:
    hint = "put a.bin (from the page) into D/, or pass --raw DIR"
    with pytest.raises(UserInputError) as info:
        fetch(Resource("a.bin", server.url("a.bin"), "0" * 32), tmp_path / "a.bin", hint=hint)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(
        f"cannot download a.bin from {server.url('a.bin')} (HTTP 404 Not Found); {hint}"
    )
    assert server.requests == [("a.bin", None)]  # a 404 is final: no retries
    assert not (tmp_path / "a.bin").exists() and no_partials(tmp_path)


def test_no_server_at_all_gives_up_after_the_retries(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match=r"cannot download a.bin from http://127.0.0.1:9/a.bin \("):
        fetch(
            Resource("a.bin", "http://127.0.0.1:9/a.bin", "0" * 32),
            tmp_path / "a.bin",
            retries=2,
            backoff=0.0,
            timeout=5,
        )
    assert not (tmp_path / "a.bin").exists()


# ---------------------------------------------------------------------------------------------- tar


def tar_gz(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return buffer.getvalue()


def test_extract_writes_the_top_folder_only(tmp_path: Path) -> None:
    archive = tmp_path / "x.tar.gz"
    archive.write_bytes(tar_gz({"top/a": b"A", "top/sub/b": b"BB"}))
    out = extract_tar(archive, tmp_path, "top")
    assert (out / "a").read_bytes() == b"A" and (out / "sub" / "b").read_bytes() == b"BB"
    assert no_partials(tmp_path)


@pytest.mark.parametrize(
    ("members", "links", "why"),
    [
        ({"top/a": b"A", "top/../../evil": b"x"}, None, "outside top/"),
        ({"/etc/evil": b"x"}, None, "outside top/"),
        ({"top/a": b"A", "other/b": b"x"}, None, "outside top/"),
        ({"top/a": b"A"}, {"top/link": "/etc/passwd"}, "link or special file"),
    ],
    ids=["dotdot", "absolute", "other-folder", "symlink"],
)
def test_unsafe_members_stop_the_extraction_and_nothing_is_left(
    tmp_path: Path, members: dict[str, bytes], links: dict[str, str] | None, why: str
) -> None:
    archive = tmp_path / "x.tar.gz"
    archive.write_bytes(tar_gz(members, links))
    (tmp_path / "raw").mkdir()
    with pytest.raises(UserInputError, match=f"not a safe archive to extract: .*{why}"):
        extract_tar(archive, tmp_path / "raw", "top")
    assert list((tmp_path / "raw").iterdir()) == []
    assert not (tmp_path / "evil").exists()


def test_truncated_archive_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    data = tar_gz({"top/a": blob(100_000), "top/b": blob(100_000, seed=5)})
    archive = tmp_path / "x.tar.gz"
    archive.write_bytes(data[: len(data) // 2])
    (tmp_path / "raw").mkdir()
    with pytest.raises(UserInputError, match="cannot be extracted .*delete it and rerun"):
        extract_tar(archive, tmp_path / "raw", "top")
    assert list((tmp_path / "raw").iterdir()) == []


# ---------------------------------------------------------------------------------------------- whole path


def cifar10_tar() -> bytes:
    """A cifar-10-python.tar.gz in the official layout: 4 images per batch, protocol-2 pickles."""
    rng = np.random.default_rng(7)
    members = {
        "cifar-10-batches-py/batches.meta": pickle.dumps(
            {b"label_names": [c.encode() for c in CLASSES], b"num_vis": 3072}, protocol=2
        )
    }
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), b"labels": [0, 1, 2, 3]}
        members[f"cifar-10-batches-py/{name}"] = pickle.dumps(batch, protocol=2)
    return tar_gz(members)


def cifar10dvs_zips(tmp: Path) -> dict[str, bytes]:
    """Per-class zips as released (``<class>/cifar10_<class>_<i>.aedat``), 2 small AEDAT 2.0 files each."""
    from evrobust.preprocess.aedat2 import write_aedat2
    from evrobust.preprocess.events import make_events

    rng = np.random.default_rng(8)
    zips = {}
    for c in CLASSES:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as zf:
            for i in range(2):
                n = 400
                ev = make_events(
                    np.sort(rng.integers(0, 10_000, n)),
                    rng.integers(0, 128, n),
                    rng.integers(0, 128, n),
                    rng.integers(0, 2, n),
                )
                write_aedat2(tmp / "f.aedat", ev)
                zf.writestr(f"{c}/cifar10_{c}_{i}.aedat", (tmp / "f.aedat").read_bytes())
        zips[f"{c}.zip"] = buffer.getvalue()
    return zips


def serve_source(server: Server, monkeypatch: pytest.MonkeyPatch, name: str, files: dict[str, bytes]) -> None:
    """Point ``name``'s official resources at the test server (same file names, MD5s of the served bytes)."""
    real = download.RAW_SOURCES[name]
    server.files.update(files)
    resources = tuple(Resource(r.file, server.url(r.file), md5(files[r.file])) for r in real.resources)
    monkeypatch.setitem(download.RAW_SOURCES, name, RawSource(name, resources, real.page, real.extract))


def invoke(*args: str):  # noqa: ANN201 - typer's Result
    from evrobust.pipelines.cli.app import app

    return CliRunner().invoke(app, list(args))


def test_preprocess_cifar10_with_no_options_downloads_extracts_and_builds(
    server: Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    serve_source(server, monkeypatch, "cifar10", {"cifar-10-python.tar.gz": cifar10_tar()})
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EVROBUST_DATA", raising=False)
    result = invoke("preprocess", "cifar10")  # ./data, with the progress bars
    assert result.exit_code == 0, result.output
    first = result.stdout.splitlines()[0]
    assert (
        first
        == "defaults: --raw data/raw/cifar10 (downloaded on first use) --out data/cifar10.zarr --progress"
    )
    size = len(server.files["cifar-10-python.tar.gz"]) / 1000
    assert (
        f"{size:.1f}/{size:.1f} kB" in result.stderr
    )  # the download bar (bytes done/total, rate, time left)
    data = tmp_path / "data"
    assert (data / "raw" / "cifar10" / "cifar-10-batches-py" / "test_batch").is_file() and no_partials(data)
    assert (data / "cifar10.zarr" / "zarr.json").is_file()
    assert server.requests == [("cifar-10-python.tar.gz", None)]
    # A second run finds everything in place: no request, the store is already complete.
    again = invoke("preprocess", "cifar10", "--no-progress")
    assert again.exit_code == 0 and "already complete" in again.output
    assert len(server.requests) == 1


def test_preprocess_cifar10dvs_without_raw_reads_the_downloaded_zips_in_place(
    server: Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from evrobust.preprocess.store import read_attrs

    zips = cifar10dvs_zips(tmp_path)
    serve_source(server, monkeypatch, "cifar10dvs", zips)
    server.cut_after["cat.zip"] = 100  # one transfer drops on the way and is resumed
    data = tmp_path / "data"
    result = invoke("preprocess", "cifar10dvs", "--frames", "2", "--data-dir", str(data), "--mode", "sync")
    assert result.exit_code == 0, result.output
    raw = data / "raw" / "cifar10dvs"
    assert sorted(p.name for p in raw.glob("*.zip")) == sorted(zips)
    assert ("cat.zip", "bytes=100-") in server.requests
    store = data / "cifar10dvs-T2-number-48.zarr"
    attrs = read_attrs(store)
    assert attrs["complete"] and attrs["sources"][0] == "airplane.zip::airplane/cifar10_airplane_0.aedat"


def test_no_download_names_the_files_and_the_folder(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = invoke("preprocess", "cifar10dvs", "--data-dir", str(data), "--no-download")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert lines == [
        f"error: the cifar10dvs raw files are not in {data}/raw/cifar10dvs and --no-download was given; put "
        + ", ".join(f"{c}.zip" for c in CLASSES)
        + f" (from {download.RAW_SOURCES['cifar10dvs'].page}) into {data}/raw/cifar10dvs/, or pass --raw DIR"
    ]
    assert not data.exists()


def test_404_from_the_cli_is_one_line_exit_2(
    server: Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    serve_source(server, monkeypatch, "cifar100", {"cifar-100-python.tar.gz": b"x"})
    del server.files["cifar-100-python.tar.gz"]
    result = invoke("preprocess", "cifar100", "--data-dir", str(tmp_path / "d"), "--no-progress")
    assert result.exit_code == 2
    assert result.stdout.startswith("defaults: --raw ")  # where the files go, before the download starts
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: cannot download cifar-100-python.tar.gz from ") and "HTTP 404" in line
    assert f"into {tmp_path / 'd' / 'raw' / 'cifar100'}/" in line
    assert not (tmp_path / "d" / "cifar100.zarr").exists()


def test_a_corrupt_archive_in_place_is_refused_and_left_for_the_user(tmp_path: Path) -> None:
    raw = tmp_path / "d" / "raw" / "cifar10"
    raw.mkdir(parents=True)
    (raw / "cifar-10-python.tar.gz").write_bytes(b"not the archive")
    result = invoke("preprocess", "cifar10", "--data-dir", str(tmp_path / "d"))
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert (
        f"error: {raw}/cifar-10-python.tar.gz has MD5 {md5(b'not the archive')}, not the published " in line
    )
    assert "delete it and rerun" in line
    assert sorted(p.name for p in raw.iterdir()) == ["cifar-10-python.tar.gz"]  # nothing half-written


def test_a_data_dir_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "d").write_text("")
    result = invoke("preprocess", "cifar10", "--data-dir", str(tmp_path / "d"))
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: {tmp_path / 'd'} is a file, not a directory; give --data-dir a directory"
    ]


def unwritable_dir(tmp_path: Path) -> Path:
    """A directory where files cannot be created (mode 0o500; /proc where root ignores the mode)."""
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o500)
    try:
        (d / "probe").touch()
    except OSError:
        return d
    (d / "probe").unlink()
    if Path("/proc/self").is_dir():
        return Path("/proc")
    pytest.skip("no directory here refuses writes (running as root on a system without /proc)")


def test_an_unwritable_data_dir(tmp_path: Path) -> None:
    d = unwritable_dir(tmp_path)
    try:
        result = invoke("preprocess", "cifar10", "--data-dir", str(d))
    finally:
        (tmp_path / "ro").chmod(0o700)
    assert result.exit_code == 2
    [line] = result.output.strip().splitlines()  # the whole output
    assert line.startswith(f"error: cannot write to the data directory {d}/raw/cifar10 (")
    assert list((tmp_path / "ro").iterdir()) == []


def test_download_module_never_imports_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys, evrobust.preprocess.download as d, evrobust.preprocess.extract\n"
        "d.raw_folder('cifar10'); d.get_raw_source('cifar10dvs')\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cifar10dvs_urls_and_md5s_are_spikingjelly_s() -> None:
    """The resource table equals the one in spikingjelly's cifar10_dvs.py (read as text, never imported)."""
    import importlib.util
    import re

    spec = importlib.util.find_spec("spikingjelly")  # locates the package without running it
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("spikingjelly is not installed")
    text = (Path(next(iter(spec.submodule_search_locations))) / "datasets" / "cifar10_dvs.py").read_text()
    theirs = re.findall(r'"(\w+\.zip)",\s*"(https://[^"]+)",\s*"([0-9a-f]{32})"', text)
    ours = [(r.file, r.url, r.md5) for r in download.RAW_SOURCES["cifar10dvs"].resources]
    assert len(theirs) == 10 and sorted(theirs) == sorted(ours)
