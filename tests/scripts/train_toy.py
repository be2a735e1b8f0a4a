"""Train the student on the toy task; used by tests under plain python and `accelerate launch`.

usage: train_toy.py OUT_DIR EPOCHS [--resume]
"""

import json
import signal
import sys
from pathlib import Path

# Ctrl-C must raise KeyboardInterrupt here as in a terminal, even when this script inherits SIGINT
# ignored (a shell starts background jobs that way: CI launched with `nohup ... &` once let the
# run finish through the SIGINT test's interrupt).
signal.signal(signal.SIGINT, signal.default_int_handler)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from toy_ecg import toy_split  # noqa: E402

from evl_lite.models.student import ECGStudentCNN, StudentConfig  # noqa: E402
from evl_lite.training.loop import TrainConfig, train  # noqa: E402

out, epochs = Path(sys.argv[1]), int(sys.argv[2])
import torch  # noqa: E402

torch.manual_seed(0)
model = ECGStudentCNN(StudentConfig())
result = train(
    model,
    toy_split("train", 96, 0),
    toy_split("val", 40, 1),
    TrainConfig(epochs=epochs, batch_size=16, lr=1e-2, crop=250, progress=False, seed=3),
    out_dir=out,
    resume="--resume" in sys.argv,
)
from accelerate import PartialState  # noqa: E402

(out / f"result-{PartialState().process_index}.json").write_text(
    json.dumps({"best": result.best_val_auc, "history": result.history})
)
