"""What a notebook measured, kept for its tests and the run summary, out of the lesson's way.

A lesson records a figure with one call, ``record(heart_rate=hr)`` (or ``record["key"] = v``),
and ends with ``record.done()``, which adds the notebook's wall time and prints one line. Every
call rewrites ``OUTPUT_DIR/metrics.json`` atomically, so a notebook stopped half-way keeps what
it had measured. The tests and ``python -m evl_lite run`` read that file
(:mod:`evl_lite.course.runner`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from evl_lite.atomic import write_json_atomic

METRICS_FILE = "metrics.json"


class Record(dict):
    """A dict of the notebook's figures that writes itself to ``out_dir/metrics.json``."""

    def __init__(self, out_dir: str | os.PathLike, **context):
        super().__init__(context)
        self.path = Path(out_dir) / METRICS_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._start = time.perf_counter()
        self._write()

    def __call__(self, **values) -> None:
        """Record ``name=value`` pairs (JSON-able values)."""
        self.update(values)
        self._write()

    def __setitem__(self, key: str, value) -> None:
        super().__setitem__(key, value)
        self._write()

    def done(self) -> None:
        """Record the notebook's wall time and say, in one line, what was kept and where."""
        self(seconds=round(time.perf_counter() - self._start, 1))
        print(f"recorded {len(self)} metrics in {self.path}")

    def _write(self) -> None:
        write_json_atomic(self.path, dict(self))
