"""Command-line glue: ``python -m evl_lite predict ...`` and ``python -m evl_lite student ship|export``.

``predict`` prints one JSON list (``--format json``) or a table per record on stdout, and one line
``error: <file>: <problem>`` on stderr per record it cannot read; the other records are still
predicted, and the exit status is then 2. A problem with the model or the report directory stops
everything before any output (exit 2).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys

from evl_lite.constants import SUPERCLASSES
from evl_lite.errors import ECGDataError

# Imported only by the functions that run: registering the commands must not load torch.


def table_text(prediction, model: dict) -> str:
    """A readable block for one :class:`~evl_lite.predict.pipeline.Prediction` (``--format table``)."""
    from evl_lite.predict.pipeline import NOTE

    seconds = prediction.n_samples_in / prediction.fs_in
    p, t = prediction.probabilities, prediction.thresholds
    lines = [
        f"record  {prediction.ref.shown} ({prediction.ref.kind}, {prediction.fs_in:g} Hz, {seconds:.1f} s"
        + (", NU" if prediction.normalised else "") + ")",
        f"model   {model['name']} ({model['method']}, seed {model['seed']}, teacher {model['teacher']}), "
        f"{model['runtime']}",
        f"{'class':<6}{'probability':>12}{'threshold':>11}  {'decision':<9}window that drove it",
    ]
    for c, name in enumerate(SUPERCLASSES):
        a, b = prediction.window_seconds(prediction.driver(c))
        flag = "flagged" if p[c] >= t[c] else "-"
        lines.append(f"{name:<6}{p[c]:>12.3f}{t[c]:>11.3f}  {flag:<9}{a:.2f}-{b:.2f} s")
    decision = ", ".join(prediction.decision) or "none (no superclass reaches its threshold)"
    lines.append(f"decision: {decision}")
    lines.append(NOTE)
    return "\n".join(lines)


def predict_command(args: argparse.Namespace) -> int:
    from evl_lite.predict.pipeline import Prediction, predict_records
    from evl_lite.predict.predictor import load_predictor
    from evl_lite.predict.records import find_records
    from evl_lite.predict.report import check_report_dir, write_report

    report = check_report_dir(args.report) if args.report else None
    predictor = load_predictor(args.model, threads=args.threads)
    found = find_records(args.paths)
    refs = [r for r in found if not isinstance(r, ECGDataError)]
    predicted = iter(predict_records(refs, predictor, allow_normalised=args.allow_normalised,
                                     keep_inputs=report is not None,
                                     progress=len(refs) > 20 and sys.stderr.isatty()))
    results = [r if isinstance(r, ECGDataError) else next(predicted) for r in found]  # in the order given
    failed = [r for r in results if isinstance(r, ECGDataError)]
    for exc in failed:
        print(f"error: {exc}", file=sys.stderr)
    predictions = [r for r in results if isinstance(r, Prediction)]
    model = predictor.describe()
    if args.format == "json":
        print(json.dumps([p.to_json(model) for p in predictions], indent=2))
    else:
        print("\n\n".join(table_text(p, model) for p in predictions))
    if report is not None:
        write_report(report, results, predictor)
        print(f"report: {report / 'index.html'}", file=sys.stderr)
    return 2 if failed else 0


def ship_command(args: argparse.Namespace) -> int:
    from evl_lite.predict.from_experiment import ship_student
    from evl_lite.predict.student_hub import StudentCard

    command = shlex.join(["python", "-m", "evl_lite", *args.argv])
    out = ship_student(args.source, args.out, args.path, command=command)
    f = StudentCard.read(out).fields
    print(json.dumps({"out": str(out), "method": f["method"], "seed": f["seed"],
                      "validation_macro_auc": f["metrics"]["validation_macro_auc"]["value"],
                      "test_macro_auc": f["metrics"]["test_macro_auc"]["value"],
                      "test_macro_auc_ci95": f["metrics"]["test_macro_auc"]["ci"],
                      "thresholds": f["thresholds"], "sha256": f["sha256"]}, indent=2))
    return 0


def export_command(args: argparse.Namespace) -> int:
    from evl_lite.predict.predictor import export_student, load_predictor

    path, parity = export_student(load_predictor(args.model), args.out)
    print(json.dumps({"out": str(path), "parity_max_abs_logit": parity}))
    return 0


def add_predict_parser(commands) -> None:
    """Register ``predict`` and ``student`` on the top-level subparsers."""
    p = commands.add_parser(
        "predict", help="classify ECG records (WFDB, EDF, directories) with the shipped distilled student",
        description="The five PTB-XL superclass probabilities of each record, the decision with thresholds "
                    "tuned on validation, and the windows that drove it. Educational use only, not a "
                    "diagnosis.")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="WFDB record (with or without extension), EDF file, or directory (searched "
                        "recursively)")
    p.add_argument("--model", default=None,
                   help="shipped student name (default: ptbxl-student), a student directory (card.json), an "
                        "experiment directory or one of its runs, or an ONNX export (.onnx)")
    p.add_argument("--format", choices=("json", "table"), default="json")
    p.add_argument("--report", default=None, metavar="DIR",
                   help="also write one offline HTML page per record and index.html into DIR")
    p.add_argument("--allow-normalised", action="store_true",
                   help="accept records in normalised units (NU); they are not filtered again")
    p.add_argument("--threads", type=int, default=None,
                   help="onnxruntime threads (default: the CPUs, up to 4)")
    p.set_defaults(func=predict_command)

    student = commands.add_parser("student", help="ship the distilled student predict uses, or export it")
    cmds = student.add_subparsers(dest="student_command", metavar="SUBCOMMAND", required=True)
    p = cmds.add_parser("ship", help="choose an experiment's distilled student on validation; write it with "
                                     "its model card (weights, config, thresholds, SHA-256)")
    p.add_argument("--from", dest="source", required=True,
                   help="a finished `experiment --out` directory (or one of its runs/<method>/seed<k>)")
    p.add_argument("--out", required=True,
                   help="the student's directory, e.g. evl_lite/predict/weights/ptbxl-student")
    p.add_argument("--path", default=None, help="the experiment's dataset directory, if moved")
    p.set_defaults(func=ship_command)
    p = cmds.add_parser("export", help="write the student as ONNX (card in the metadata; parity checked)")
    p.add_argument("--model", default=None, help="as for predict (default: ptbxl-student)")
    p.add_argument("--out", required=True, help="the .onnx file")
    p.set_defaults(func=export_command)
