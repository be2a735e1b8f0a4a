"""Atomic writes: a reader (or a run resumed after a kill or a power cut) never sees a half-written file.

Write to a temporary sibling, flush it to the disk (``fsync``), then ``os.replace`` it into
place (atomic on POSIX and Windows) and flush the directory entry, so that after a crash the
path holds either the old content or the new one, never a torn or empty file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def fsync_path(path: str | os.PathLike, recursive: bool = True) -> None:
    """Flush a file, or a directory (with ``recursive``, every file below it first), to the disk.

    Platforms that cannot open a directory for syncing (Windows) skip the directory.
    """
    path = Path(path)
    below = [p for p in path.rglob("*") if p.is_file()] if recursive and path.is_dir() else []
    targets = [*below, path]
    for target in targets:
        try:
            fd = os.open(target, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)


def replace_atomically(tmp: str | os.PathLike, target: str | os.PathLike) -> None:
    """Move the finished ``tmp`` (a file or a directory) onto ``target``: fsync, replace, fsync the parent."""
    fsync_path(tmp)
    os.replace(tmp, target)
    fsync_path(Path(target).parent, recursive=False)  # the new name, not the siblings' contents


def replace_directory(tmp: str | os.PathLike, target: str | os.PathLike) -> None:
    """Put the finished directory ``tmp`` in place of ``target`` (which may exist): at every instant
    ``target`` or its ``.<name>.old`` sibling holds a complete directory."""
    import shutil

    target = Path(target)
    old = target.with_name(f".{target.name}.old")
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    replace_atomically(tmp, target)
    shutil.rmtree(old, ignore_errors=True)


def write_text_atomic(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # per process: concurrent writers never collide
    tmp.write_text(text, encoding=encoding)
    replace_atomically(tmp, path)


def write_notebook_atomic(path: str | os.PathLike, nb: Any) -> None:
    """Write the notebook ``nb`` to ``path`` atomically, byte for byte as ``nbformat.write`` would."""
    import nbformat

    text = nbformat.writes(nb)
    write_text_atomic(path, text if text.endswith("\n") else text + "\n")


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2, default=str))
