"""Teacher-output cache: the frozen teacher is run once per training window, not once per epoch.

Distillation needs the teacher's logits, tokens and pooled embedding for every training
input. Training crops are drawn from a fixed grid of window starts (see
``ECGDataset(window_starts=...)``), so all teacher outputs fit in a table
``[N records, K windows, ...]`` stored in float16 as a safetensors file whose name is a
SHA-256 of the teacher's weights and config, the data and the window grid: a changed
teacher or data set can never be served stale outputs.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from tqdm.auto import tqdm

from evl_lite.atomic import replace_atomically
from evl_lite.data.sources import default_data_root
from evl_lite.models.output import ModelOutput, TokenLayout


def fingerprint(teacher: nn.Module, x: np.ndarray, crop: int, starts: Sequence[int]) -> str:
    """SHA-256 (first 16 hex digits) of the teacher weights + config, the data and the windows."""
    h = hashlib.sha256()
    for name, tensor in sorted(teacher.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    config = getattr(teacher, "config", None)
    if config is not None:
        fields = config.to_dict() if hasattr(config, "to_dict") else {"config": str(config)}
        # not where it was loaded from, nor which library wrote it: a copied checkpoint is the same teacher
        fields = {k: v for k, v in fields.items() if not k.startswith("_") and k != "transformers_version"}
        h.update(json.dumps(fields, sort_keys=True, default=str).encode())
    h.update(np.ascontiguousarray(x, dtype=np.float32).tobytes())
    h.update(json.dumps({"crop": crop, "starts": list(starts)}).encode())
    return h.hexdigest()[:16]


def shared_cache_dir() -> Path:
    """``<data root>/cache/teacher-outputs``: the notebooks' shared store, so the teacher runs over
    the training records once per data set and window grid, not once per notebook."""
    return default_data_root() / "cache" / "teacher-outputs"


class TeacherCache:
    """Callable ``(x, batch) -> ModelOutput`` that looks the teacher's output up by record and window."""

    def __init__(
        self,
        logits: Tensor,
        tokens: Tensor,
        pooled: Tensor,
        starts: Sequence[int],
        layout: TokenLayout,
        path: Path | None = None,
        key: str | None = None,
    ):
        self.key = key  # fingerprint() of the teacher weights, records and windows (None: unknown)
        self.logits = logits  # [N, K, C] float16
        self.tokens = tokens  # [N, K, N_t, d_t] float16
        self.pooled = pooled  # [N, K, d_t] float16
        self.starts = list(starts)
        self._window = {s: k for k, s in enumerate(self.starts)}
        self.layout = layout
        self.path = path

    @classmethod
    @torch.inference_mode()
    def build(
        cls,
        teacher: nn.Module,
        x: np.ndarray,
        crop: int,
        starts: Sequence[int],
        cache_dir: str | os.PathLike | None = None,
        batch_size: int = 64,
        progress: bool = True,
    ) -> TeacherCache:
        """Compute (or load, when ``cache_dir`` holds it) the outputs for x [N, 12, T]."""
        key = fingerprint(teacher, x, crop, starts)
        path = Path(cache_dir) / f"teacher-outputs-{key}.safetensors" if cache_dir is not None else None
        was_training = teacher.training
        teacher.eval()
        device = next(teacher.parameters()).device
        layout = teacher(torch.as_tensor(x[:1, :, starts[0] : starts[0] + crop]).to(device)).token_layout
        if path is not None and path.is_file():
            table = load_file(path)
            teacher.train(was_training)
            return cls(table["logits"], table["tokens"], table["pooled"], starts, layout, path, key)

        xs = torch.as_tensor(x)
        logits, tokens, pooled = [], [], []
        for i in tqdm(range(0, len(xs), batch_size), desc="teacher cache", disable=not progress, leave=False):
            chunk = xs[i : i + batch_size].to(device)
            outs = [teacher(chunk[..., s : s + crop]) for s in starts]
            logits.append(torch.stack([o.logits for o in outs], 1).half().cpu())  # [b, K, C]
            tokens.append(torch.stack([o.tokens for o in outs], 1).half().cpu())  # [b, K, N_t, d_t]
            pooled.append(torch.stack([o.pooled for o in outs], 1).half().cpu())  # [b, K, d_t]
        teacher.train(was_training)
        cache = cls(torch.cat(logits), torch.cat(tokens), torch.cat(pooled), starts, layout, path, key)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            save_file(
                {"logits": cache.logits, "tokens": cache.tokens, "pooled": cache.pooled},
                tmp,
                metadata={"starts": json.dumps(cache.starts), "crop": str(crop)},
            )
            replace_atomically(tmp, path)
        return cache

    def to(self, device: torch.device | str) -> TeacherCache:
        return self  # lookups move to the batch's device in __call__

    def __call__(self, x: Tensor, batch: dict[str, Tensor]) -> ModelOutput:
        index = torch.as_tensor(batch["index"]).cpu()
        try:
            window = torch.tensor([self._window[int(s)] for s in torch.as_tensor(batch["start"]).cpu()])
        except KeyError as exc:
            raise ValueError(f"window start {exc} is not in the cached grid {self.starts}") from None
        device = x.device
        return ModelOutput(
            logits=self.logits[index, window].float().to(device),
            tokens=self.tokens[index, window].float().to(device),
            pooled=self.pooled[index, window].float().to(device),
            token_layout=self.layout,
        )
