"""One exception type for bad input: it always names the file and the problem."""

from __future__ import annotations

import os


class ECGDataError(ValueError):
    """Raised when an ECG file or dataset is unusable.

    The message is ``"<path>: <problem>"`` so the user can go straight to the file.
    """

    def __init__(self, path: str | os.PathLike | None, problem: str):
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(problem if path is None else f"{self.path}: {problem}")
