"""The teacher's self-supervised "foundation" stage: masked-patch reconstruction.

As in masked autoencoding for time series and ECG foundation models (He et al. 2022, MAE;
Zhang et al. 2022, MaeFE): a random ``mask_ratio`` of the lead-aware patches is replaced by
a learned mask token and the encoder reconstructs their samples; the loss is the mean
squared error over masked patches only (:meth:`ECGTransformer.masked_patch_loss`).
Unlabelled records are enough, so the teacher can learn ECG structure from far more data
than the labelled split (``../shared/data/ptbxl-unlabelled``: 1,537 records).

Runs on HF Accelerate like :mod:`evl_lite.training.loop`; writes ``pretrain_history.json`` and
the encoder with ``save_pretrained`` (safetensors) when ``out_dir`` is given.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from evl_lite.atomic import replace_atomically, write_json_atomic
from evl_lite.models.teacher import ECGTransformer
from evl_lite.training.loop import EpochShuffle, find_checkpoint, save_checkpoint, seed_everything


@dataclass
class PretrainConfig:
    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.05
    mask_ratio: float = 0.5
    normalize_target: bool = False  # reconstruct each patch z-scored (MAE's normalised pixels)
    crop: int | None = 250  # random windows of this many samples (2.5 s at 100 Hz)
    val_fraction: float = 0.1  # held-out records on which the reconstruction loss is tracked
    seed: int = 0
    progress: bool = True


def _random_crops(x: torch.Tensor, crop: int | None) -> torch.Tensor:
    """One random window of ``crop`` samples per record: [B, 12, T] -> [B, 12, crop]."""
    if crop is None or crop >= x.shape[-1]:
        return x
    starts = torch.randint(x.shape[-1] - crop + 1, (x.shape[0],))
    index = starts[:, None] + torch.arange(crop)[None, :]  # [B, crop]
    return torch.gather(x, 2, index[:, None, :].expand(-1, x.shape[1], -1).to(x.device))


def average_gradients(model: torch.nn.Module, accelerator: Accelerator) -> None:
    """Data parallelism by hand: every gradient becomes its mean over the processes (no-op alone)."""
    if accelerator.num_processes == 1:
        return
    for parameter in model.parameters():
        if parameter.grad is not None:
            parameter.grad = accelerator.reduce(parameter.grad, reduction="mean")


def pretrain(
    teacher: ECGTransformer,
    x: np.ndarray,
    config: PretrainConfig | None = None,
    out_dir: str | os.PathLike | None = None,
    resume: bool = False,
) -> list[dict[str, float]]:
    """Masked-patch pretraining on unlabelled records x [N, 12, T]; returns per-epoch losses.

    The validation loss uses a fixed mask and fixed windows so epochs are comparable. With
    ``out_dir``, every epoch writes a checkpoint atomically (``out_dir/checkpoint``); with
    ``resume`` a run killed part-way starts again at the first unfinished epoch (batches, crops
    and masks are drawn per epoch, so it ends where an uninterrupted run ends), and a finished
    one (``out_dir/pretrained``) is loaded instead of run again.
    """
    config = config or PretrainConfig()
    out = Path(out_dir) if out_dir is not None else None
    if resume and out is not None and (out / "pretrained" / "model.safetensors").is_file():
        teacher.load_state_dict(load_file(out / "pretrained" / "model.safetensors"))
        return json.loads((out / "pretrain_history.json").read_text())
    seed_everything(config.seed)
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    data = torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32))
    n_val = max(1, int(round(config.val_fraction * len(data)))) if len(data) > 1 else 0
    perm = torch.randperm(len(data), generator=torch.Generator().manual_seed(config.seed))
    val, train = data[perm[:n_val]], data[perm[n_val:]]
    if len(train) == 0:
        raise ValueError("pretraining needs at least two records")
    loader = DataLoader(TensorDataset(train), batch_size=config.batch_size,
                        sampler=EpochShuffle(len(train), config.seed))
    optimizer = torch.optim.AdamW(teacher.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    total = max(1, config.epochs * len(loader))
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total)
    # The loss is a method (masked_patch_loss), not forward(): DDP's wrapper would see no forward
    # and refuse the step; the processes average their gradients themselves (average_gradients)
    optimizer, loader, scheduler = accelerator.prepare(optimizer, loader, scheduler)
    model = raw = teacher.to(accelerator.device)

    val_windows = val[..., : config.crop] if config.crop else val
    val_gen = torch.Generator().manual_seed(config.seed + 1)
    val_mask = raw.random_patch_mask(val_windows, config.mask_ratio, generator=val_gen) if n_val else None

    history: list[dict[str, float]] = []
    start_epoch = 0
    ckpt_dir = out / "checkpoint" if out is not None else None
    if resume and ckpt_dir is not None and (found := find_checkpoint(ckpt_dir)) is not None:
        raw.load_state_dict(load_file(found / "model.safetensors"))
        trainer_state = torch.load(found / "trainer_state.pt", weights_only=True)
        optimizer.load_state_dict(trainer_state["optimizer"])
        scheduler.load_state_dict(trainer_state["scheduler"])
        saved = json.loads((found / "state.json").read_text())
        history, start_epoch = saved["history"], saved["epoch"] + 1
    bar = tqdm(
        range(start_epoch, config.epochs),
        desc="pretraining",
        disable=not (config.progress and accelerator.is_main_process),
        initial=start_epoch,
        total=config.epochs,
    )
    for epoch in bar:
        torch.manual_seed(config.seed * 100_003 + epoch)  # crops and masks per epoch: resuming replays them
        loader.set_epoch(epoch)
        model.train()
        losses = []
        for (batch,) in loader:
            loss, _ = raw.masked_patch_loss(_random_crops(batch, config.crop), mask_ratio=config.mask_ratio,
                                            normalize_target=config.normalize_target)
            optimizer.zero_grad(set_to_none=True)
            accelerator.backward(loss)
            average_gradients(raw, accelerator)
            accelerator.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.detach()))
        row = {"epoch": epoch, "train_loss": float(np.mean(losses))}
        if n_val:
            model.eval()
            with torch.inference_mode():
                vloss, _ = raw.masked_patch_loss(val_windows.to(accelerator.device), mask=val_mask,
                                                 normalize_target=config.normalize_target)
            row["val_loss"] = float(vloss)
        history.append(row)
        bar.set_postfix(loss=f"{row['train_loss']:.3f}")
        if out is not None and accelerator.is_main_process:
            write_json_atomic(out / "pretrain_history.json", history)
            state = {"epoch": epoch, "history": history}
            save_checkpoint(ckpt_dir, raw, nn.Module(), optimizer, scheduler, state, raw.state_dict())
        accelerator.wait_for_everyone()
    model.eval()
    if out is not None and accelerator.is_main_process:
        tmp = out / ".pretrained.tmp"
        raw.save_pretrained(tmp)
        shutil.rmtree(out / "pretrained", ignore_errors=True)
        replace_atomically(tmp, out / "pretrained")
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    return history
