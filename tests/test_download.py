"""Tests of evl_lite.data.download against a local HTTP server that speaks Range requests."""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import shutil
import socket
import threading
from pathlib import Path

import pytest

from evl_lite.data.download import download_ptbxl, parse_sha256sums
from evl_lite.errors import ECGDataError

DATA = Path(__file__).parents[2] / "shared" / "data" / "ptbxl-500"
SUBSET = ["records100/00000/0000"]  # records 1-9 at 100 Hz: 18 small files
REC = "records100/00000/00001_lr.dat"


@pytest.fixture
def source() -> Path:
    if not DATA.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{DATA} is missing (required in CI)")
        pytest.skip(f"{DATA} is missing")
    return DATA


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with ``Range: bytes=N-`` / ``bytes=N-M`` support (or deliberately without)."""

    def do_GET(self) -> None:
        server = self.server
        server.log.append((self.path, self.headers.get("Range")))
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        spec = self.headers.get("Range")
        if spec and not server.ignore_range:
            first, _, last = spec.removeprefix("bytes=").partition("-")
            start, end = int(first), int(last) if last else len(data) - 1
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = data[start : end + 1]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{start + len(body) - 1}/{len(data)}")
        else:
            body = data
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if server.cut_after is not None and self.path.endswith(server.cut_path):
            cut, server.cut_after = server.cut_after, None  # drop the connection once
            self.wfile.write(body[:cut])
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def serve():
    """Factory: serve a directory on 127.0.0.1:<ephemeral>; returns (base_url, server)."""
    servers = []

    def start(root: Path, ignore_range: bool = False):
        handler = functools.partial(RangeHandler, directory=str(root))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        server.log, server.ignore_range = [], ignore_range
        server.cut_after, server.cut_path = None, ""
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/", server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def data_requests(server) -> list[tuple[str, str | None]]:
    return [(path, rng) for path, rng in server.log if not path.endswith("SHA256SUMS.txt")]


def expected_files(root: Path, prefixes: list[str]) -> list[str]:
    rels = [line.split(maxsplit=1)[1] for line in (root / "SHA256SUMS.txt").read_text().splitlines()]
    keep = tuple(prefixes) + ("ptbxl_database.csv", "scp_statements.csv")
    return sorted(rel for rel in rels if rel.startswith(keep))


def mini_tree(root: Path, source: Path, rels: list[str]) -> Path:
    """Copy a few files of ``source`` to ``root`` with a SHA256SUMS.txt taken from ``source``."""
    sums = {line.split(maxsplit=1)[1]: line for line in (source / "SHA256SUMS.txt").read_text().splitlines()}
    for rel in rels:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / rel, root / rel)
    (root / "SHA256SUMS.txt").write_text("\n".join(sums[rel] for rel in rels) + "\n")
    return root


CSVS = ["ptbxl_database.csv", "scp_statements.csv"]


def test_subset_download_is_verified_and_identical(source, serve, tmp_path):
    url, server = serve(source)
    dest = download_ptbxl(tmp_path / "ptbxl", base_url=url, include=SUBSET, progress=False)
    got = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    want = expected_files(source, SUBSET)
    assert len(want) == 20  # 9 records x (.dat, .hea) + 2 CSVs
    assert got == sorted(want + ["SHA256SUMS.txt"])
    for rel in want:
        assert (dest / rel).read_bytes() == (source / rel).read_bytes(), rel
    assert len(data_requests(server)) == 20
    assert all(rng is None for _, rng in data_requests(server))


def test_resume_sends_range_and_completes(source, serve, tmp_path):
    url, server = serve(source)
    whole = (source / REC).read_bytes()
    part = tmp_path / "d" / (REC + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(whole[: len(whole) // 2])
    download_ptbxl(tmp_path / "d", base_url=url, include=["records100/00000/00001"], progress=False)
    assert (f"/{REC}", f"bytes={len(whole) // 2}-") in server.log
    assert (tmp_path / "d" / REC).read_bytes() == whole
    assert not part.exists()


def test_server_ignoring_range_restarts_file(source, serve, tmp_path):
    url, server = serve(source, ignore_range=True)
    whole = (source / REC).read_bytes()
    part = tmp_path / "d" / (REC + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(whole[: len(whole) // 2])  # appending the 200 body would double this half
    download_ptbxl(tmp_path / "d", base_url=url, include=["records100/00000/00001"], progress=False)
    assert (f"/{REC}", f"bytes={len(whole) // 2}-") in server.log
    assert (tmp_path / "d" / REC).read_bytes() == whole


def test_dropped_connection_keeps_part_and_rerun_resumes(source, serve, tmp_path):
    url, server = serve(source)
    whole = (source / REC).read_bytes()
    server.cut_after, server.cut_path = 1000, REC
    dest = tmp_path / "d"
    with pytest.raises(ECGDataError, match=f"{url}{REC}.*re-run to resume"):
        download_ptbxl(dest, base_url=url, include=["records100/00000/00001"], progress=False)
    assert (dest / (REC + ".part")).read_bytes() == whole[:1000]
    assert not (dest / REC).exists()
    download_ptbxl(dest, base_url=url, include=["records100/00000/00001"], progress=False)
    assert (f"/{REC}", "bytes=1000-") in server.log
    assert (dest / REC).read_bytes() == whole


def test_corrupted_file_raises_and_leaves_nothing(source, serve, tmp_path):
    root = mini_tree(tmp_path / "srv", source, CSVS + [REC])
    bad = bytearray((root / REC).read_bytes())
    bad[100] ^= 0xFF
    (root / REC).write_bytes(bytes(bad))
    good_hash = hashlib.sha256((source / REC).read_bytes()).hexdigest()
    bad_hash = hashlib.sha256(bytes(bad)).hexdigest()
    url, _ = serve(root)
    dest = tmp_path / "d"
    with pytest.raises(ECGDataError) as info:
        download_ptbxl(dest, base_url=url, progress=False)
    message = str(info.value)
    assert REC in message and good_hash in message and bad_hash in message
    assert not (dest / REC).exists()
    assert not (dest / (REC + ".part")).exists()


def test_rerun_is_idempotent(source, serve, tmp_path):
    url, server = serve(source)
    dest = tmp_path / "d"
    download_ptbxl(dest, base_url=url, include=SUBSET, progress=False)
    mtimes = {p: p.stat().st_mtime_ns for p in dest.rglob("*.dat")}
    server.log.clear()
    download_ptbxl(dest, base_url=url, include=SUBSET, progress=False)
    assert server.log == [("/SHA256SUMS.txt", None)]
    assert {p: p.stat().st_mtime_ns for p in dest.rglob("*.dat")} == mtimes


def test_existing_wrong_file_is_replaced(source, serve, tmp_path):
    url, _ = serve(source)
    dest = tmp_path / "d"
    (dest / REC).parent.mkdir(parents=True)
    (dest / REC).write_bytes(b"stale")
    download_ptbxl(dest, base_url=url, include=["records100/00000/00001"], progress=False)
    assert (dest / REC).read_bytes() == (source / REC).read_bytes()


@pytest.mark.parametrize("evil", ["../evil", "records100/../../evil", "/etc/evil", "C:/evil", "a\\..\\evil"])
def test_path_escape_rejected(serve, tmp_path, evil):
    root = tmp_path / "srv"
    root.mkdir()
    zero = "0" * 64
    lines = [f"{zero}  ptbxl_database.csv", f"{zero}  scp_statements.csv", f"{zero}  {evil}"]
    (root / "SHA256SUMS.txt").write_text("\n".join(lines) + "\n")
    url, server = serve(root)
    with pytest.raises(ECGDataError, match="unsafe path"):
        download_ptbxl(tmp_path / "d" / "e", base_url=url, progress=False)
    assert data_requests(server) == []
    assert not (tmp_path / "d").exists() and not (tmp_path / "evil").exists()


def test_unreachable_url_names_it(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/ptb-xl/"
    with pytest.raises(ECGDataError, match=f"{url}SHA256SUMS.txt: download failed"):
        download_ptbxl(tmp_path / "d", base_url=url, progress=False, timeout=5)


def test_missing_file_on_server_names_url(source, serve, tmp_path):
    root = mini_tree(tmp_path / "srv", source, CSVS + [REC])
    (root / REC).unlink()
    url, _ = serve(root)
    with pytest.raises(ECGDataError, match=f"{url}{REC}: server answered HTTP 404"):
        download_ptbxl(tmp_path / "d", base_url=url, progress=False)


def test_include_prefix_matching_nothing_is_an_error(source, serve, tmp_path):
    url, _ = serve(source)
    with pytest.raises(ECGDataError, match="record100/"):
        download_ptbxl(tmp_path / "d", base_url=url, include=["record100/"], progress=False)


def test_parse_sha256sums_formats_and_errors():
    h = "ab" * 32
    assert parse_sha256sums(f"{h}  a/b.dat\r\n{h.upper()} *c.csv\n\n", "S") == [
        ("a/b.dat", h),
        ("c.csv", h),
    ]
    with pytest.raises(ECGDataError, match="S: line 1"):
        parse_sha256sums("nothex  a.dat\n", "S")
    with pytest.raises(ECGDataError, match="lists no files"):
        parse_sha256sums("\n", "S")


def test_whole_part_left_by_a_crash_is_verified_not_refetched(source, serve, tmp_path):
    url, server = serve(source)
    whole = (source / REC).read_bytes()
    part = tmp_path / "d" / (REC + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(whole)  # the server answers 416: nothing left to send
    download_ptbxl(tmp_path / "d", base_url=url, include=["records100/00000/00001"], progress=True)
    assert (f"/{REC}", f"bytes={len(whole)}-") in server.log
    assert (tmp_path / "d" / REC).read_bytes() == whole and not part.exists()
