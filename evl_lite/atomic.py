"""Atomic writes: a reader (or a run resumed after a kill) never sees a half-written file.

Write to a temporary sibling, then ``os.replace`` it into place (atomic on POSIX and Windows).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # per process: concurrent writers never collide
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    os.replace(tmp, path)
