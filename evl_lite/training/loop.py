"""One training loop for the teacher, the scratch student and every distilled student.

Built on HF Accelerate, so the same code runs on a CPU, one GPU or many processes
(``accelerate launch``) unchanged. The objective is a plug-in :class:`Objective`
(an ``nn.Module``): its learnable parts (a distillation loss's projectors) are optimised
with the model. Recipe after the PTB-XL benchmark (Strodthoff et al. 2021): AdamW with a
one-cycle schedule, random fixed-length crops for training, and evaluation as the maximum
of the sigmoid outputs over sliding windows; model selection and early stopping on the
validation macro-AUC. With ``ema_decay`` set, validation and selection read an exponential
moving average of the weights instead (:mod:`evl_lite.training.weight_average`).

Every epoch writes ``history.csv``/``history.json`` and a checkpoint directory atomically
(written aside, then renamed), so an interrupted run resumes where it stopped
(``resume=True``) and reaches the same result as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator, PartialState
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Sampler
from tqdm.auto import tqdm

from evl_lite.atomic import replace_atomically, write_json_atomic
from evl_lite.data.dataset import ECGDataset, ECGSplit, make_loader
from evl_lite.evaluation.metrics import macro_auc
from evl_lite.models.output import ModelOutput
from evl_lite.training.weight_average import WeightAverage


@dataclass
class TrainConfig:
    """Hyper-parameters of one run (defaults: the PTB-XL benchmark's recipe, scaled down)."""

    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-2  # peak learning rate of the one-cycle schedule
    lr_scale: dict[str, float] | None = None  # parameter-name prefix -> multiple of lr (parameter_groups)
    weight_decay: float = 1e-2
    crop: int | None = 250  # training window in samples (2.5 s at 100 Hz); None = whole record
    eval_windows: int = 7  # sliding windows at evaluation, prediction = max over windows
    patience: int | None = None  # early stopping after this many epochs without improvement
    grad_clip: float | None = 1.0
    ema_decay: float | None = None  # validate and keep a moving average of the weights (weight_average.py)
    seed: int = 0
    progress: bool = True


def parameter_groups(
    named: list[tuple[str, nn.Parameter]], lr: float, lr_scale: dict[str, float] | None
) -> list[dict]:
    """Optimizer groups: a parameter whose name starts with a key of ``lr_scale`` gets ``lr * scale``.

    The first matching prefix wins; every other parameter forms the first group, at ``lr``.
    Frozen parameters are left out. A prefix that matches nothing is an error (a typo would
    otherwise change nothing silently).
    """
    lr_scale = lr_scale or {}
    groups: dict[float, list[nn.Parameter]] = {1.0: []}
    used = set()
    for name, parameter in named:
        if not parameter.requires_grad:
            continue
        prefix = next((k for k in lr_scale if name.startswith(k)), None)
        used.add(prefix)
        groups.setdefault(lr_scale[prefix] if prefix else 1.0, []).append(parameter)
    if unused := set(lr_scale) - used:
        raise ValueError(f"lr_scale prefixes {sorted(unused)} match no trainable parameter")
    return [{"params": ps, "lr": lr * scale} for scale, ps in groups.items() if ps]


@dataclass
class TrainResult:
    best_val_auc: float
    best_epoch: int
    history: list[dict[str, float]] = field(default_factory=list)
    out_dir: str | None = None


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch, and ask torch for deterministic kernels on the CPU.

    Deterministic mode would also fill every new tensor with NaN before use; that only shows
    reads of uninitialised memory and changes no result (tested); its cost on a teacher step is
    small, 0.95x-1.10x in four runs (``python -m evl_lite bench teacher-step``, ``nan_fill_ratio``).
    A seed repeats a run exactly on the same kind of CPU only: the math libraries under PyTorch
    (oneDNN, MKL) pick kernels by instruction set, which sum in another order, and training
    amplifies the last-bit differences (README, "What this shows"; results files name the CPU).
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = False


def process_state() -> PartialState:
    """The processes of this run (one, or several under ``accelerate launch``), CPU unless a GPU exists.

    The state is shared by every Accelerator of the process, so create it (or the first
    Accelerator) with the same ``cpu`` flag everywhere: see :func:`train`.
    """
    return PartialState(cpu=not torch.cuda.is_available())


def window_starts(length: int, crop: int | None, n_windows: int) -> list[int]:
    """Start samples of ``n_windows`` evenly spaced crops covering a record of ``length``."""
    if crop is None or crop >= length:
        return [0]
    return sorted({int(round(s)) for s in np.linspace(0, length - crop, max(n_windows, 1))})


class EpochShuffle(Sampler[int]):
    """A permutation of range(n) that depends only on (seed, epoch).

    A resumed run therefore replays exactly the order an uninterrupted run would have used,
    without saving any sampler state; every process of a multi-process run agrees on it.
    """

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=generator).tolist())

    def __len__(self) -> int:
        return self.n


class Objective(nn.Module):
    """A training objective: ``forward(output, batch, teacher_output) -> (loss, {term: value})``.

    ``needs_teacher``: the loop then provides the teacher's output for the same inputs.
    """

    needs_teacher: bool = False

    def forward(
        self, output: ModelOutput, batch: dict[str, Tensor], teacher_output: ModelOutput | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        raise NotImplementedError


def labelled_bce(logits: Tensor, batch: dict[str, Tensor]) -> Tensor:
    """Mean BCE(sigmoid(z), y) over the batch's labelled rows (``batch["labelled"]`` [B]; absent: all).

    logits, y [B, C]. Unlabelled rows (a label budget's transfer records) contribute nothing: a
    batch without labelled rows gives exactly 0, still part of the graph.
    """
    y = batch["y"].float()  # [B, C]
    labelled = batch.get("labelled")
    if labelled is None or bool(labelled.all()):  # every row: the plain mean, as before label budgets
        return F.binary_cross_entropy_with_logits(logits, y)
    per_row = F.binary_cross_entropy_with_logits(logits, y, reduction="none").mean(dim=1)  # [B]
    weight = labelled.to(per_row.dtype)  # [B] 1 labelled, 0 not
    return (per_row * weight).sum() / weight.sum().clamp(min=1.0)


class Supervised(Objective):
    """Multi-label binary cross-entropy on the superclass targets of the labelled rows: BCE(sigmoid(z), y)."""

    def forward(self, output, batch, teacher_output=None):
        loss = labelled_bce(output.logits, batch)
        return loss, {"bce": float(loss.detach())}


class Distillation(Objective):
    """``w_sup * BCE + sum_k w_k * L_k(student, teacher, batch)`` over distillation losses L_k.

    Each ``L_k`` is an ``nn.Module`` called ``(student_output, teacher_output, batch)`` that
    returns ``(loss, extras)``; its parameters (projectors) train with the student. BCE reads
    the labelled rows only (:func:`labelled_bce`); every ``L_k`` reads every row.
    """

    needs_teacher = True

    def __init__(
        self,
        losses: dict[str, nn.Module],
        weights: dict[str, float] | None = None,
        supervised_weight: float = 1.0,
    ):
        super().__init__()
        self.losses = nn.ModuleDict(losses)
        self.weights = {name: 1.0 for name in losses} | (weights or {})
        self.supervised_weight = supervised_weight

    def forward(self, output, batch, teacher_output=None):
        if teacher_output is None:
            raise ValueError("Distillation needs the teacher's output")
        bce = labelled_bce(output.logits, batch)
        total = self.supervised_weight * bce
        logs = {"bce": float(bce.detach())}
        for name, loss_fn in self.losses.items():
            value, _ = loss_fn(output, teacher_output, batch)
            total = total + self.weights[name] * value
            logs[name] = float(value.detach())
        return total, logs


@torch.inference_mode()
def predict(
    model: nn.Module, x: np.ndarray | Tensor, crop: int | None = 250, n_windows: int = 7, batch_size: int = 64
) -> np.ndarray:
    """Sigmoid probabilities [N, C]: the maximum over sliding windows of ``crop`` samples."""
    was_training = model.training
    model.eval()
    x = torch.as_tensor(x)
    device = next(model.parameters()).device
    starts = window_starts(x.shape[-1], crop, n_windows)
    width = x.shape[-1] if crop is None else min(crop, x.shape[-1])
    probs = []
    for i in range(0, len(x), batch_size):
        chunk = x[i : i + batch_size].to(device)
        per_window = [torch.sigmoid(model(chunk[..., s : s + width]).logits) for s in starts]
        probs.append(torch.stack(per_window).amax(dim=0).float().cpu())
    model.train(was_training)
    return torch.cat(probs).numpy()


# ----------------------------------------------------------------------------- checkpoints


def save_checkpoint(
    directory: Path,
    model: nn.Module,
    objective: nn.Module,
    optimizer,
    scheduler,
    state: dict[str, Any],
    best_model_state: dict[str, Tensor],
    averaged_state: dict[str, Tensor] | None = None,
) -> None:
    """Write the resumable state into ``directory`` atomically (temp dir, then rename).

    At every instant ``directory`` or ``directory.old`` holds a complete checkpoint, whatever
    point a kill interrupts (see :func:`find_checkpoint`).
    """
    tmp = directory.with_name(directory.name + ".tmp")
    old = directory.with_name(directory.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)

    def save_tensors(tensors: dict[str, Tensor], name: str) -> None:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, tmp / name)

    save_tensors(model.state_dict(), "model.safetensors")
    save_tensors(best_model_state, "best_model.safetensors")
    if averaged_state is not None:
        save_tensors(averaged_state, "averaged_model.safetensors")
    if objective_state := objective.state_dict():
        save_tensors(objective_state, "objective.safetensors")
    # Optimiser and scheduler state hold only tensors and numbers: loaded with weights_only=True.
    torch.save(
        {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, tmp / "trainer_state.pt"
    )
    (tmp / "state.json").write_text(json.dumps(state))
    if directory.exists():
        # ``directory`` only ever appears by renaming a complete ``tmp``, so it is complete; an
        # ``old`` beside it is what an interrupted earlier save left half-removed: drop it first
        # (renaming onto a non-empty directory fails)
        shutil.rmtree(old, ignore_errors=True)
        os.replace(directory, old)
    replace_atomically(tmp, directory)
    shutil.rmtree(old, ignore_errors=True)


def find_checkpoint(directory: Path) -> Path | None:
    for candidate in (directory, directory.with_name(directory.name + ".old")):
        if (candidate / "state.json").is_file():
            return candidate
    return None


def _write_history(out_dir: Path, history: list[dict[str, float]]) -> None:
    write_json_atomic(out_dir / "history.json", history)
    tmp = out_dir / ".history.csv.tmp"
    keys = sorted({k for row in history for k in row}, key=lambda k: (k != "epoch", k))
    with tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)
    replace_atomically(tmp, out_dir / "history.csv")


# ----------------------------------------------------------------------------- the loop


def train(
    model: nn.Module,
    train_split: ECGSplit,
    val_split: ECGSplit,
    config: TrainConfig | None = None,
    objective: Objective | None = None,
    teacher: Any | None = None,
    out_dir: str | os.PathLike | None = None,
    resume: bool = False,
    accelerator: Accelerator | None = None,
) -> TrainResult:
    """Train ``model`` (returns ModelOutput) on ``train_split``, select on ``val_split`` macro-AUC.

    ``teacher``: when the objective needs one, a callable ``(x, batch) -> ModelOutput`` such as
    a frozen model or a :class:`~evl_lite.distillation.teacher_cache.TeacherCache`. At the end the model
    holds the weights of the best validation epoch.
    """
    config = config or TrainConfig()
    objective = objective or Supervised()
    if objective.needs_teacher and teacher is None:
        raise ValueError(f"{type(objective).__name__} needs a teacher")
    seed_everything(config.seed)
    accelerator = accelerator or Accelerator(cpu=not torch.cuda.is_available())
    out = Path(out_dir) if out_dir is not None else None

    crop = config.crop if config.crop and config.crop < train_split.x.shape[-1] else None
    starts = window_starts(train_split.x.shape[-1], crop, config.eval_windows)
    train_ds = ECGDataset(train_split, crop=crop, random_crop=crop is not None, window_starts=starts,
                          seed=config.seed)
    val_ds = ECGDataset(val_split, crop=None)
    sampler = EpochShuffle(len(train_ds), config.seed)
    # config.batch_size is the global batch: under N processes each takes batch_size / N of every
    # step, so the optimisation sees the same batches and steps whatever the number of processes
    per_process_batch = max(1, config.batch_size // accelerator.num_processes)
    train_loader = DataLoader(train_ds, batch_size=per_process_batch, sampler=sampler)
    val_loader = make_loader(val_ds, config.batch_size, shuffle=False)

    named = [*model.named_parameters(), *(("objective." + n, p) for n, p in objective.named_parameters())]
    groups = parameter_groups(named, config.lr, config.lr_scale)
    params = [p for group in groups for p in group["params"]]
    optimizer = torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
    steps = config.epochs * max(
        1,
        len(train_loader) // accelerator.num_processes
        + int(len(train_loader) % accelerator.num_processes > 0),
    )
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=[group["lr"] for group in groups], total_steps=max(steps, 1)
    )
    needs_teacher = objective.needs_teacher
    model, optimizer, train_loader, val_loader, scheduler = accelerator.prepare(
        model, optimizer, train_loader, val_loader, scheduler
    )
    if any(p.requires_grad for p in objective.parameters()):  # DDP refuses modules without any
        objective = accelerator.prepare(objective)
    else:
        objective = objective.to(accelerator.device)
    if teacher is not None and hasattr(teacher, "to"):
        teacher = teacher.to(accelerator.device)

    history: list[dict[str, float]] = []
    best_auc, best_epoch, start_epoch = -1.0, -1, 0
    unwrapped = accelerator.unwrap_model(model)
    best_state = {k: v.detach().clone() for k, v in unwrapped.state_dict().items()}
    average = WeightAverage(unwrapped, config.ema_decay) if config.ema_decay is not None else None
    ckpt_dir = out / "checkpoint" if out is not None else None
    if resume and ckpt_dir is not None and (found := find_checkpoint(ckpt_dir)) is not None:
        state = json.loads((found / "state.json").read_text())
        unwrapped.load_state_dict(load_file(found / "model.safetensors"))
        best_state = load_file(found / "best_model.safetensors")
        if (found / "objective.safetensors").is_file():
            accelerator.unwrap_model(objective).load_state_dict(load_file(found / "objective.safetensors"))
        trainer_state = torch.load(found / "trainer_state.pt", weights_only=True)
        optimizer.load_state_dict(trainer_state["optimizer"])
        scheduler.load_state_dict(trainer_state["scheduler"])
        history, best_auc, best_epoch = state["history"], state["best_auc"], state["best_epoch"]
        averaged_file = found / "averaged_model.safetensors"
        if (average is not None) != averaged_file.is_file():  # selection would switch weights mid-run
            raise ValueError(
                f"{found}: the checkpoint was written {'without' if average else 'with'} ema_decay and "
                f"this run has ema_decay={config.ema_decay}; resume with the config it was made with"
            )
        if average is not None:
            average.load(load_file(averaged_file), state["averaged_updates"])
        start_epoch = state["epoch"] + 1

    bar = tqdm(
        range(start_epoch, config.epochs),
        desc="epochs",
        disable=not (config.progress and accelerator.is_main_process),
        initial=start_epoch,
        total=config.epochs,
    )
    for epoch in bar:
        # Crops and dropout draw from torch's RNG, reseeded per epoch so resuming replays them.
        torch.manual_seed(config.seed * 100_003 + epoch)
        train_loader.set_epoch(epoch)  # Accelerate's loader passes it on to EpochShuffle
        train_ds.set_epoch(epoch)  # and this epoch's random crops
        model.train()
        objective.train()
        sums: dict[str, float] = {}
        n_batches = 0
        for batch in train_loader:
            output = model(batch["x"])
            teacher_output = teacher(batch["x"], batch) if needs_teacher else None
            loss, logs = objective(output, batch, teacher_output)
            optimizer.zero_grad(set_to_none=True)
            accelerator.backward(loss)
            if config.grad_clip:
                accelerator.clip_grad_norm_(params, config.grad_clip)
            optimizer.step()
            scheduler.step()
            if average is not None:
                average.update()
            logs["loss"] = float(loss.detach())
            for k, v in logs.items():
                sums[k] = sums.get(k, 0.0) + v
            n_batches += 1

        # training losses averaged over the batches of every process
        keys = sorted(sums)
        totals = accelerator.reduce(
            torch.tensor(
                [sums[k] for k in keys] + [n_batches], dtype=torch.float64, device=accelerator.device
            ),
            reduction="sum",
        ).tolist()
        # with ema_decay, validation and model selection read the averaged weights
        with average.swapped_in() if average is not None else contextlib.nullcontext():
            val_auc, val_n = evaluate_loader(model, val_loader, accelerator, config.crop, config.eval_windows)
            if val_auc > best_auc:
                best_auc, best_epoch = val_auc, epoch
                best_state = {k: v.detach().clone() for k, v in unwrapped.state_dict().items()}
        row = {
            "epoch": epoch,
            "val_macro_auc": val_auc,
            "val_n": val_n,
            "lr": scheduler.get_last_lr()[0],
            **{f"train_{k}": v / max(totals[-1], 1) for k, v in zip(keys, totals, strict=False)},
        }
        history.append(row)
        bar.set_postfix(loss=f"{row['train_loss']:.3f}", val_auc=f"{val_auc:.3f}")
        if out is not None and accelerator.is_main_process:
            out.mkdir(parents=True, exist_ok=True)
            _write_history(out, history)
            save_checkpoint(
                ckpt_dir,
                unwrapped,
                accelerator.unwrap_model(objective),
                optimizer,
                scheduler,
                {
                    "epoch": epoch,
                    "history": history,
                    "best_auc": best_auc,
                    "best_epoch": best_epoch,
                    "config": asdict(config),
                    **({"averaged_updates": average.updates} if average is not None else {}),
                },
                best_state,
                average.state if average is not None else None,
            )
        accelerator.wait_for_everyone()
        if config.patience is not None and epoch - best_epoch >= config.patience:
            break

    unwrapped.load_state_dict(best_state)
    return TrainResult(
        best_val_auc=best_auc, best_epoch=best_epoch, history=history, out_dir=str(out) if out else None
    )


def evaluate_loader(
    model: nn.Module, loader, accelerator: Accelerator, crop: int | None, n_windows: int
) -> tuple[float, int]:
    """Validation macro-AUC and the number of records it covers, gathered from every process."""
    probs, targets = [], []
    for batch in loader:
        p = torch.from_numpy(predict(model, batch["x"], crop, n_windows)).to(batch["y"].device)
        p, y = accelerator.gather_for_metrics((p, batch["y"]))
        probs.append(p.cpu())
        targets.append(y.cpu())
    y_all = torch.cat(targets).numpy()
    p_all = torch.cat(probs).numpy()
    try:
        return float(macro_auc(y_all, p_all)[0]), len(y_all)
    except ValueError:
        return float("nan"), len(y_all)
