"""The foundation teacher's recipe: the workshop teacher's architecture, deeper, on far more records.

The architecture is the one the workshop teacher search settled on (a strided convolutional
stem along each lead, one residual block per stride, lead pooling: ``recipes.teacher_recipe``),
with four encoder blocks instead of two, so the teacher has more than 30 times the student's
parameters. Masked-patch pretraining (:mod:`evl_lite.training.pretraining`), then supervised fine-tuning
with the one training loop (:mod:`evl_lite.training.loop`), are sized so that one teacher fits in
two hours on two CPU cores (the card records the measured wall time).
"""

from __future__ import annotations

import dataclasses

from evl_lite.models.teacher import ECGTransformerConfig
from evl_lite.training.loop import TrainConfig
from evl_lite.training.pretraining import PretrainConfig
from evl_lite.training.recipes import teacher_recipe

FOUNDATION_LAYERS = 4  # encoder blocks (the workshop teacher has 2)
MODEL_FIELDS = ("n_layers", "d_model", "n_heads", "ffn", "patch_len", "tokenizer", "stem_blocks", "pooling",
                "dropout")  # what the card's recipe shows; card["config"] holds every field


@dataclasses.dataclass
class FoundationRecipe:
    """Model config and the two schedules of a foundation teacher."""

    model: ECGTransformerConfig
    pretrain: PretrainConfig
    finetune: TrainConfig

    def as_dict(self) -> dict:
        """JSON of the recipe for the model card (without what does not change the weights)."""
        drop = {"seed", "progress"}
        return {
            "model": {k: getattr(self.model, k) for k in MODEL_FIELDS},
            "pretrain": {k: v for k, v in dataclasses.asdict(self.pretrain).items() if k not in drop},
            "finetune": {k: v for k, v in dataclasses.asdict(self.finetune).items() if k not in drop},
        }


def foundation_recipe(source: str, smoke: bool = False, seed: int = 0) -> FoundationRecipe:
    """The recipe for ``source`` (``"synthetic"``: the 24,000-record corpus; ``"ptbxl"``: 352 labels).

    Smoke mode: a tiny model and one epoch of each stage (seconds; for tests).
    """
    if smoke:
        model, pre, fine = teacher_recipe(smoke=True)
        pre.seed = fine.seed = seed
        return FoundationRecipe(model, pre, fine)
    workshop_model, _, _ = teacher_recipe(smoke=False)
    model = ECGTransformerConfig(**{**workshop_model.to_dict(), "n_layers": FOUNDATION_LAYERS})
    if source == "synthetic":  # 19,200 training records: few epochs are many steps
        pre = PretrainConfig(epochs=3, batch_size=64, seed=seed)
        fine = TrainConfig(epochs=16, batch_size=32, lr=1e-3, seed=seed)
    else:  # PTB-XL: 1,537 unlabelled records to pretrain on, 352 labelled to fine-tune on
        pre = PretrainConfig(epochs=30, batch_size=64, seed=seed)
        fine = TrainConfig(epochs=30, batch_size=32, lr=1e-3, seed=seed)
    return FoundationRecipe(model, pre, fine)
