"""Download PTB-XL from PhysioNet, verified file by file, resumable.

PTB-XL (Wagner et al. 2020, Scientific Data 7, 154) is published on PhysioNet
with a ``SHA256SUMS.txt`` at its root: one ``"<sha256>  <relative path>"`` line
per file (the format of coreutils ``sha256sum``). This module reads that list,
fetches every listed file (or those under chosen prefixes) and checks each one
against its SHA-256 before it takes its final name, so a finished file on disk
is always a verified file.

Each file travels as ``<file>.part``; an interrupted download is continued
with an HTTP ``Range: bytes=N-`` request (RFC 9110, section 14). A server that
ignores the range and answers ``200`` instead of ``206`` restarts that file.
Files already present with the right hash are skipped, so re-running is cheap.
Standard library (``urllib.request``) and tqdm only.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import pathlib
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import BinaryIO

from tqdm.auto import tqdm

from evl_lite.atomic import replace_atomically, write_text_atomic
from evl_lite.errors import ECGDataError

# PhysioNet's public file root of PTB-XL (the version the benchmark papers use).
PTBXL_URL = "https://physionet.org/files/ptb-xl/1.0.3/"
SUMS_NAME = "SHA256SUMS.txt"
# Always fetched: without them the records have no labels.
ALWAYS_INCLUDED: tuple[str, ...] = ("ptbxl_database.csv", "scp_statements.csv")

_CHUNK = 1 << 16
_HEX64 = re.compile(r"[0-9a-f]{64}")
_USER_AGENT = "evl-lite-ptbxl-download"
_NETWORK_ERRORS = (urllib.error.URLError, http.client.HTTPException, OSError)


def parse_sha256sums(text: str, source: str) -> list[tuple[str, str]]:
    """Parse ``sha256sum`` output into ``[(relative_path, sha256_hex)]``.

    Every path is checked with :func:`safe_relpath`; ``source`` names the list
    in error messages.
    """
    entries: list[tuple[str, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.strip().split(maxsplit=1)
        digest = parts[0].lower()
        if len(parts) != 2 or not _HEX64.fullmatch(digest):
            raise ECGDataError(source, f"line {number} is not '<sha256>  <path>': {line!r}")
        rel = parts[1].removeprefix("*")  # '*' marks binary mode in sha256sum output
        entries.append((safe_relpath(rel, source), digest))
    if not entries:
        raise ECGDataError(source, "lists no files")
    return entries


def safe_relpath(rel: str, source: str) -> str:
    """Return ``rel`` if it is a plain relative path, else raise ECGDataError.

    Rejects absolute paths, drive letters, backslashes and ``..`` so that no
    entry of a (possibly hostile) checksum list can write outside ``dest``.
    """
    pure = pathlib.PurePosixPath(rel)
    if (
        not rel
        or "\\" in rel
        or pure.is_absolute()
        or pathlib.PureWindowsPath(rel).drive
        or any(part in ("..", "") for part in rel.split("/"))
    ):
        raise ECGDataError(source, f"unsafe path {rel!r} (absolute or '..'), refusing to write it")
    return rel


def select_files(
    entries: list[tuple[str, str]], include: Sequence[str] | None, source: str
) -> list[tuple[str, str]]:
    """Keep the entries under one of the ``include`` prefixes, plus the two CSVs.

    A prefix that matches nothing, or a list without the two CSVs, raises
    ECGDataError (a typo would otherwise silently download nothing).
    """
    listed = {rel for rel, _ in entries}
    missing = [name for name in ALWAYS_INCLUDED if name not in listed]
    if missing:
        raise ECGDataError(source, f"does not list {', '.join(missing)}: is this PTB-XL?")
    if include is None:
        return list(entries)
    prefixes = tuple(include) + ALWAYS_INCLUDED
    for prefix in include:
        if not any(rel.startswith(prefix) for rel in listed):
            raise ECGDataError(source, f"no listed file starts with include prefix {prefix!r}")
    return [(rel, digest) for rel, digest in entries if rel.startswith(prefixes)]


def sha256_file(path: pathlib.Path) -> str:
    """SHA-256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _file_url(base_url: str, rel: str) -> str:
    return base_url.rstrip("/") + "/" + urllib.parse.quote(rel)


def _open(url: str, timeout: float, start: int = 0) -> http.client.HTTPResponse:
    """Open ``url`` (from byte ``start`` if > 0); a 416 answer is returned, not raised."""
    headers = {"User-Agent": _USER_AGENT}
    if start > 0:
        headers["Range"] = f"bytes={start}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416:
            return exc  # type: ignore[return-value]  # HTTPError is a response too
        raise ECGDataError(url, f"server answered HTTP {exc.code} {exc.reason}") from None
    except _NETWORK_ERRORS as exc:
        reason = getattr(exc, "reason", exc)
        raise ECGDataError(url, f"download failed: {reason}") from None


def _fetch_text(url: str, timeout: float) -> str:
    with _open(url, timeout) as response:
        try:
            return response.read().decode("utf-8")
        except _NETWORK_ERRORS as exc:
            raise ECGDataError(url, f"download failed: {exc}") from None
        except UnicodeDecodeError:
            raise ECGDataError(url, "is not UTF-8 text") from None


def _stream(response: BinaryIO, out: BinaryIO, bar: tqdm, url: str, part: pathlib.Path) -> None:
    """Copy ``response`` into ``out``; a broken transfer keeps the .part for resuming."""
    expected = response.headers.get("Content-Length")
    received = 0
    try:
        for block in iter(lambda: response.read(_CHUNK), b""):
            out.write(block)
            received += len(block)
            bar.update(len(block))
    except _NETWORK_ERRORS as exc:
        raise ECGDataError(
            url, f"download interrupted ({exc}); partial data kept in {part}, re-run to resume"
        ) from None
    if expected is not None and received < int(expected):
        raise ECGDataError(
            url,
            f"connection closed after {received} of {expected} bytes; "
            f"partial data kept in {part}, re-run to resume",
        )


def _download_file(url: str, final: pathlib.Path, expected: str, timeout: float, bar: tqdm) -> None:
    """Fetch ``url`` into ``final`` via ``final.part`` (resuming it), verify, then rename."""
    part = final.with_name(final.name + ".part")
    final.parent.mkdir(parents=True, exist_ok=True)
    start = part.stat().st_size if part.exists() else 0
    with _open(url, timeout, start) as response:
        # 416: nothing left to send, the .part is already whole (or wrong): verify it below.
        if response.status != 416:
            resumed = (
                start > 0
                and response.status == 206
                and response.headers.get("Content-Range", "").startswith(f"bytes {start}-")
            )
            # 200 means the server ignored the range: start the file over.
            with open(part, "ab" if resumed else "wb") as out:
                _stream(response, out, bar, url, part)
    actual = sha256_file(part)
    if actual != expected:
        part.unlink()
        raise ECGDataError(
            final, f"SHA-256 mismatch: expected {expected}, got {actual} (from {url}); file deleted"
        )
    replace_atomically(part, final)


def download_ptbxl(
    dest: str | os.PathLike,
    base_url: str = PTBXL_URL,
    include: Sequence[str] | None = None,
    progress: bool = True,
    timeout: float = 30,
) -> pathlib.Path:
    """Download PTB-XL (or the files under ``include`` prefixes) into ``dest``.

    Reads ``SHA256SUMS.txt`` at ``base_url``, then fetches each listed file
    whose path starts with one of ``include`` (all files if None; the two
    CSVs always), verifying its SHA-256. Verified files already in ``dest``
    are skipped; ``.part`` files are resumed. At the end PhysioNet's list is
    copied to ``dest/SHA256SUMS.txt`` (as on PhysioNet; with ``include`` it
    lists more files than were fetched). Returns ``dest``.

    Raises ECGDataError naming the URL on network errors (the ``.part`` stays
    for the next run) and naming the file with both hashes on a mismatch.
    """
    dest = pathlib.Path(dest)
    sums_url = _file_url(base_url, SUMS_NAME)
    sums_text = _fetch_text(sums_url, timeout)
    files = select_files(parse_sha256sums(sums_text, sums_url), include, sums_url)
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    with tqdm(
        total=None, unit="B", unit_scale=True, unit_divisor=1024, desc="PTB-XL", disable=not progress
    ) as bar:
        for done, (rel, expected) in enumerate(files, start=1):
            final = dest / rel
            if not final.resolve().is_relative_to(root):  # a symlink inside dest pointing out
                raise ECGDataError(final, f"resolves outside {dest}, refusing to write it")
            if not (final.is_file() and sha256_file(final) == expected):
                _download_file(_file_url(base_url, rel), final, expected, timeout, bar)
            bar.set_postfix_str(f"{done}/{len(files)} files", refresh=False)
    write_text_atomic(dest / SUMS_NAME, sums_text)
    return dest
