"""Command line: ``python -m evl_lite <command>``.

Every command prints machine-readable JSON where it reports numbers, so tests and
benchmarks can parse it. Bad input ends with a one-line error naming the file and the
problem (exit status 2), never a traceback.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from evl_lite.errors import ECGDataError


def _print_json(obj: object) -> None:
    print(json.dumps(obj, indent=2))


def _data_summary(args: argparse.Namespace) -> int:
    from evl_lite.data.ptbxl import summary

    _print_json(summary(args.path))
    return 0


def _data_synth(args: argparse.Namespace) -> int:
    from evl_lite.data.synthetic import generate_dataset

    out = generate_dataset(args.out, n_records=args.records, seed=args.seed, write_hr=args.hr, progress=True)
    _print_json({"out": str(out), "records": args.records, "seed": args.seed})
    return 0


def _data_download(args: argparse.Namespace) -> int:
    from evl_lite.data.download import PTBXL_URL, download_ptbxl

    dest = download_ptbxl(args.dest, base_url=args.base_url or PTBXL_URL, include=args.include or None)
    _print_json({"dest": str(dest)})
    return 0


def _data_check(args: argparse.Namespace) -> int:
    from evl_lite.data.check import check_dataset

    problems = check_dataset(args.path, progress=not args.quiet, unlabelled=args.unlabelled)
    for problem in problems:
        print(problem)
    print(f"{len(problems)} problem(s) in {args.path}", file=sys.stderr)
    return 1 if problems else 0


def _bench_synth(args: argparse.Namespace) -> int:
    from evl_lite.data.synthetic import benchmark_generation

    _print_json(benchmark_generation(n_records=args.records, seed=args.seed))
    return 0


def _bench_models(args: argparse.Namespace) -> int:
    from evl_lite.experiments.benchmarks import bench_models

    _print_json(bench_models(length=args.length, repeats=args.repeats))
    return 0


def _bench_distill(args: argparse.Namespace) -> int:
    from evl_lite.experiments.benchmarks import bench_distillation_epoch

    _print_json(bench_distillation_epoch(n_train=args.records))
    return 0


def _bench_components(args: argparse.Namespace) -> int:
    from evl_lite.experiments.benchmarks import bench_components

    _print_json(bench_components(batch_size=args.batch_size, repeats=args.repeats))
    return 0


def _methods_arg(text: str) -> list[str]:
    from evl_lite.distillation.names import parse_methods

    try:
        return parse_methods(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _labelled_arg(text: str) -> list[int | str]:
    from evl_lite.data.label_budget import parse_budgets

    try:
        return parse_budgets(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _distill_arg(text: str):
    from evl_lite.distillation.evl import DistillConfig

    try:
        return DistillConfig.from_json(text)
    except (ValueError, TypeError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _grid_arg(text: str) -> dict | list:
    from evl_lite.experiments.tuning import grid_configs

    try:
        grid = json.loads(text)
        grid_configs(grid)
    except (ValueError, TypeError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return grid


def _tune(args: argparse.Namespace) -> int:
    from evl_lite.experiments.tuning import run_tuning

    run_tuning(args.data, args.path, args.method, args.grid, args.seeds, args.out, args.transfer, args.smoke,
               progress=not args.quiet)
    print((Path(args.out) / "tuning.md").read_text())
    return 0


def _experiment(args: argparse.Namespace) -> int:
    if args.folds == "rotate":
        from evl_lite.experiments.rotation import run_rotation

        if args.labelled != ["all"] or args.transfer or args.unlabelled:
            raise ECGDataError(None, "--folds rotate trains every method with every label of its training "
                               "folds; --labelled, --transfer and --unlabelled are for the single split")
        results = run_rotation(args.data, args.path, args.methods, args.seeds, args.out, args.smoke,
                               backbone=args.teacher, distill_config=args.distill, progress=not args.quiet)
    else:
        from evl_lite.experiments.single_split import run_experiment

        results = run_experiment(args.data, args.path, args.methods, args.seeds, args.out, args.unlabelled,
                                 args.smoke, args.teacher, distill_config=args.distill,
                                 progress=not args.quiet, labelled=args.labelled, transfer_dir=args.transfer)
    from evl_lite.training.loop import process_state

    if process_state().is_main_process:
        print(Path(args.out) / "results.md")
        print((Path(args.out) / "results.md").read_text() if results else "")
    return 0


def _results(args: argparse.Namespace) -> int:
    from evl_lite.experiments.results_page import update_readme

    changed = update_readme(args.readme, args.dirs)
    print(f"{args.readme}: results section {'updated' if changed else 'already up to date'}")
    return 0


def _headline(args: argparse.Namespace) -> int:
    from evl_lite.experiments.headline import HEADLINE_FILE, headline_lines, update_page, write_headline

    out = args.out or HEADLINE_FILE
    result = write_headline(args.sources, out)
    print("\n".join(headline_lines(result)))
    print(f"written to {out}")
    if args.page:
        changed = update_page(args.page, result)
        print(f"{args.page}: headline block {'updated' if changed else 'already up to date'}")
    return 0


def _notebooks(args: argparse.Namespace) -> int:
    from evl_lite.course.hygiene import check_notebooks, strip_notebooks

    if args.action == "colab":
        from evl_lite.course.colab import update_colab_links
        from evl_lite.course.runner import list_notebooks, notebook_dir

        notebooks = [Path(p) for p in args.paths] if args.paths else list_notebooks()
        readme = None if args.paths else notebook_dir().parent / "README.md"  # only for the whole course
        for path in update_colab_links(notebooks, readme if readme and readme.is_file() else None):
            print(f"updated {path}")
        return 0
    if args.action == "strip":
        for path in strip_notebooks(args.paths or None):
            print(f"stripped {path}")
        return 0
    problems = check_notebooks(args.paths or None)
    for line in problems:
        print(line)
    return 1 if problems else 0


def _exercises(args: argparse.Namespace) -> int:
    from evl_lite.course.exercises import exercises_command

    return exercises_command(args)


def _bench_teacher_step(args: argparse.Namespace) -> int:
    from evl_lite.experiments.benchmarks import bench_teacher_step

    try:
        against = json.loads(args.against)
    except json.JSONDecodeError as exc:
        print(f"error: --against {args.against!r} is not valid JSON ({exc})", file=sys.stderr)
        return 2
    if not isinstance(against, dict):
        print(f"error: --against must be a JSON object of teacher config fields, not {args.against!r}",
              file=sys.stderr)
        return 2
    _print_json(bench_teacher_step(against, repeats=args.repeats))
    return 0


def _bench_splits(args: argparse.Namespace) -> int:
    from evl_lite.experiments.benchmarks import bench_splits

    _print_json(bench_splits(args.data, args.path, repeats=args.repeats))
    return 0


def _bench_deployment(args: argparse.Namespace) -> int:
    from evl_lite.experiments.benchmarks import bench_edge

    _print_json(bench_edge(args.experiment, args.method, args.seed, args.repeats))
    return 0


def _bench_predict(args: argparse.Namespace) -> int:
    from evl_lite.experiments.benchmarks import bench_predict

    _print_json(bench_predict(args.path, records=args.records, threads=args.threads))
    return 0


def _teacher_variants(args: argparse.Namespace) -> int:
    from evl_lite.data.benchmark import load_benchmark_data, unlabelled_records
    from evl_lite.experiments.teacher_variants import parse_variant, run_variants, variants_markdown

    try:
        variants = [parse_variant(v) for v in args.variants]
    except ValueError as exc:  # json.JSONDecodeError included
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not variants:  # --table alone prints what OUT already holds
        existing = Path(args.out) / "variants.json"
        if not args.table:
            print("error: no variants given (NAME=JSON ...), and no --table", file=sys.stderr)
            return 2
        if not existing.is_file():
            print(f"error: {existing} does not exist", file=sys.stderr)
            return 2
        print(variants_markdown(json.loads(existing.read_text())))
        return 0
    # --seed seeds the model and its training only: the data stay the benchmark's draw (synthetic
    # seed 0, as in teacher-student and experiment) unless --data-seed asks for another one
    data = load_benchmark_data(args.data, args.path, smoke=args.smoke, seed=args.data_seed, progress=False)
    unlabelled = unlabelled_records(data, args.unlabelled, progress=False) if args.unlabelled else None
    record = run_variants(variants, data, args.out, args.smoke, args.seed, unlabelled)
    if args.table:
        print(variants_markdown(record))
        return 0
    for run in record["runs"]:
        print(f"{run['name']:<24} val {run['val_macro_auc']:.3f}  test {run['test_macro_auc']:.3f}  "
              f"{run['seconds']:.0f} s")
    return 0


def _teacher_student(args: argparse.Namespace) -> int:
    from evl_lite.experiments.teacher_student import run_teacher_student

    summary = run_teacher_student(args.data, args.path, args.seeds, args.out, args.unlabelled, args.smoke)
    _print_json(
        {
            k: summary[k]
            for k in (
                "data",
                "seeds",
                "n_train",
                "n_val",
                "n_test",
                "n_unlabelled",
                "teacher_test_macro_auc",
                "student_test_macro_auc",
            )
        }
    )
    return 0


def _foundation_train(args: argparse.Namespace) -> int:
    from evl_lite.foundation.make import train_foundation

    command = shlex.join(["python", "-m", "evl_lite", *args.argv])
    card = train_foundation(args.data, args.out, args.path, args.unlabelled, args.init, args.smoke, args.seed,
                            progress=not args.quiet, command=command)
    _print_json({"out": str(card.directory), "parameters": card.fields["parameters"],
                 "seconds": round(card.fields["seconds"], 1),
                 **{name: round(m["value"], 4) for name, m in card.fields["metrics"].items()}})
    return 0


def _foundation_cards(args: argparse.Namespace) -> int:
    from evl_lite.foundation.hub import cards_markdown

    print(cards_markdown())
    return 0


def _foundation_ensemble(args: argparse.Namespace) -> int:
    from evl_lite.atomic import write_json_atomic
    from evl_lite.foundation.ensemble import compare_ensemble, ensemble_markdown

    result = compare_ensemble(args.teachers, args.data, args.path, progress=not args.quiet)
    if args.out:
        write_json_atomic(Path(args.out), result)
    print(ensemble_markdown(result) if not args.json else json.dumps(result, indent=1))
    return 0


def _foundation_ship(args: argparse.Namespace) -> int:
    from evl_lite.foundation.make import ship

    print(ship(args.teacher, args.name))
    return 0


def _run(args: argparse.Namespace) -> int:
    from evl_lite.course.runner import run_collection

    summary = run_collection(
        mode=args.mode,
        data_source=args.data,
        data_dir=args.path,
        out_dir=args.out,
        seed=args.seed,
        only=args.only,
        resume=args.resume,
    )
    failed = [name for name, entry in summary["notebooks"].items() if entry["status"] != "ok"]
    print(json.dumps({"out": summary["out_dir"], "failed": failed, "seconds": summary["seconds"]}))
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m evl_lite",
        description="EVL-ECG Lite: data, benchmarks and the notebook course from the command line.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    data = commands.add_parser("data", help="inspect, generate or download ECG datasets in the PTB-XL layout")
    data_cmds = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    p = data_cmds.add_parser("summary", help="print records, superclass counts and fold sizes as JSON")
    p.add_argument("path", help="directory in the PTB-XL layout")
    p.set_defaults(func=_data_summary)
    p = data_cmds.add_parser("check", help="read every record; one line per problem; exit 1 if any")
    p.add_argument("path", help="directory in the PTB-XL layout")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--unlabelled", action="store_true",
                   help="a pretraining set: normalised units (NU) accepted, no strat_fold split needed")
    p.set_defaults(func=_data_check)
    p = data_cmds.add_parser("synth", help="write a synthetic dataset in the PTB-XL layout")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--records", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hr", action="store_true", help="also write 500 Hz records (records500/)")
    p.set_defaults(func=_data_synth)
    p = data_cmds.add_parser("download", help="download a public dataset (resumable, SHA-256 verified)")
    p.add_argument("dataset", choices=["ptbxl"])
    p.add_argument("dest", help="destination directory")
    p.add_argument("--base-url", default=None, help="mirror to download from (default: PhysioNet)")
    p.add_argument("--include", nargs="*", help="only files whose path starts with one of these prefixes")
    p.set_defaults(func=_data_download)

    bench = commands.add_parser("bench", help="benchmarks that print their figures as JSON")
    bench_cmds = bench.add_subparsers(dest="bench_command", metavar="SUBCOMMAND", required=True)
    p = bench_cmds.add_parser("synth", help="time the synthetic generator (target: 2,000 records <= 60 s)")
    p.add_argument("--records", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_bench_synth)

    p = bench_cmds.add_parser("models", help="teacher vs student: parameters, FLOPs, CPU latency, memory")
    p.add_argument("--length", type=int, default=1000, help="input length in samples (10 s at 100 Hz)")
    p.add_argument("--repeats", type=int, default=20, help="timed repetitions per latency figure")
    p.set_defaults(func=_bench_models)
    p = bench_cmds.add_parser("distill", help="distillation epoch (teacher cache) vs plain student epoch")
    p.add_argument("--records", type=int, default=512, help="training records in the timed epoch")
    p.set_defaults(func=_bench_distill)
    p = bench_cmds.add_parser(
        "components", help="forward + backward time of each EVL component vs the student"
    )
    p.add_argument("--batch-size", type=int, default=64, help="ECGs per batch")
    p.add_argument("--repeats", type=int, default=20, help="timed repetitions (the median is reported)")
    p.set_defaults(func=_bench_components)
    p = bench_cmds.add_parser(
        "teacher-step", help="training step of the teacher recipe vs the recipe with other config fields"
    )
    p.add_argument("--against", default='{"stem_blocks": 0}', help="JSON: teacher config fields to override")
    p.add_argument("--repeats", type=int, default=20, help="timed repetitions (the median is reported)")
    p.set_defaults(func=_bench_teacher_step)
    p = bench_cmds.add_parser("splits", help="load the benchmark splits: every record read vs the cache")
    p.add_argument("--data", choices=("synthetic", "ptbxl"), default="synthetic")
    p.add_argument("--path", help="dataset directory (required for --data ptbxl)")
    p.add_argument("--repeats", type=int, default=3, help="timed repetitions (the median is reported)")
    p.set_defaults(func=_bench_splits)
    p = bench_cmds.add_parser("deployment", help="teacher vs student at the edge; int8 and ONNX versions")
    p.add_argument("experiment", help="a finished `experiment --out` directory")
    p.add_argument("--method", default="evl")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=20, help="timed repetitions (the median is reported)")
    p.set_defaults(func=_bench_deployment)
    p = bench_cmds.add_parser(
        "predict", help="records/s of `predict` end to end (read, preprocess, predict): onnxruntime, PyTorch")
    p.add_argument("path", nargs="?", default=None,
                   help="a directory of records (default: ../shared/data/ptbxl-500/records100, 500 records)")
    p.add_argument("--records", type=int, default=500, help="at most this many records")
    p.add_argument("--threads", type=int, default=2, help="threads of onnxruntime and PyTorch (default 2)")
    p.set_defaults(func=_bench_predict)

    p = commands.add_parser(
        "experiment",
        help="teacher once, then every method x seed; writes results.json and results.md (resumable)",
    )
    p.add_argument("--data", choices=["synthetic", "ptbxl"], default="synthetic")
    p.add_argument("--path", default=None, help="dataset directory (required for --data ptbxl)")
    p.add_argument("--unlabelled", default=None,
                   help="unlabelled records for a workshop teacher's pretraining (with --teacher DIR)")
    from evl_lite.distillation.names import DEFAULT_METHODS, METHODS

    p.add_argument("--methods", type=_methods_arg, default=",".join(DEFAULT_METHODS),
                   help=f"comma-separated, from {', '.join(METHODS)} (default: %(default)s)")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--out", required=True)
    p.add_argument("--teacher", default=None,
                   help="a shipped teacher's name or a teacher directory (default: the shipped "
                   "foundation teacher of --data; a directory without a model card is a workshop "
                   "teacher, made if missing)")
    p.add_argument("--labelled", type=_labelled_arg, default=["all"],
                   help="label budgets, e.g. 50,100,all: the student gets the labels of N training records "
                   "(stratified, per seed); the rest join the transfer set (default: all)")
    p.add_argument("--transfer", default=None,
                   help="unlabelled records (PTB-XL layout, NU or mV) that only the distillation losses read")
    p.add_argument("--folds", choices=["benchmark", "rotate"], default="benchmark",
                   help="benchmark: train folds 1-8, validate on 9, test on 10; rotate: every fold tested "
                   "once (validation the next), a teacher per rotation fine-tuned from --teacher's "
                   "pretrained backbone (default ptbxl), out-of-fold predictions pooled")
    p.add_argument("--distill", type=_distill_arg, default=None,
                   help="distillation settings changed from the defaults, as JSON, e.g. "
                   '\'{"ot_weight": 0.5}\' (choose them with `tune`, on validation)')
    p.add_argument("--smoke", action="store_true", help="tiny models and data, 2 epochs (seconds)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_experiment)

    p = commands.add_parser(
        "tune", help="try distillation settings on validation only (never the test split); resumable"
    )
    p.add_argument("--data", choices=["synthetic", "ptbxl"], default="synthetic")
    p.add_argument("--path", default=None, help="dataset directory (required for --data ptbxl)")
    p.add_argument("--method", type=lambda t: _methods_arg(t)[0], default="evl", help="the method to tune")
    p.add_argument("--grid", type=_grid_arg, required=True,
                   help="settings to try, as JSON: every combination of '{\"ot_weight\": [0.5, 1, 2]}', "
                   "or a list of configurations '[{}, {\"ot_weight\": 2}]'")
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--transfer", default=None, help="unlabelled records the distillation losses also read")
    p.add_argument("--out", required=True)
    p.add_argument("--smoke", action="store_true", help="tiny models and data, 2 epochs (seconds)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_tune)

    p = commands.add_parser(
        "notebooks",
        help="check or strip notebook outputs (they are committed clean); colab: bring badges and "
        "setup cells in step with evl_lite.course.colab.REPOSITORY",
    )
    p.add_argument("action", choices=["check", "strip", "colab"])
    p.add_argument("paths", nargs="*", help="notebooks (default: notebooks/*.ipynb)")
    p.set_defaults(func=_notebooks)

    p = commands.add_parser(
        "exercises", help="write learner copies of the notebooks: solution cells become exercises with checks"
    )
    p.add_argument("--out", required=True, help="directory for the learner copies (same file names)")
    p.add_argument("notebooks", nargs="*", help="notebooks to copy (default: notebooks/*.ipynb)")
    p.set_defaults(func=_exercises)

    p = commands.add_parser("results", help="regenerate docs/results.md's tables from results.json files")
    p.add_argument("readme", help="the page holding the <!-- results:begin/end --> block (docs/results.md)")
    p.add_argument("dirs", nargs="+", help="experiment output directories, in the order to show them")
    p.set_defaults(func=_results)

    p = commands.add_parser(
        "headline", help="does EVL clear the paper's bar? one line per setting, from results.json files"
    )
    p.add_argument("sources", nargs="+", help="experiment directories, DIR or DIR@BUDGET (one label budget)")
    p.add_argument("--out", default=None, help="where to write it (default: the reading notebook 07 prints)")
    p.add_argument("--page", default=None, help="also rewrite this page's <!-- headline:begin/end --> block")
    p.set_defaults(func=_headline)

    p = commands.add_parser(
        "teacher-student", help="train teacher and scratch student over seeds; test macro-AUC as JSON"
    )
    p.add_argument("--data", choices=["synthetic", "ptbxl"], default="synthetic")
    p.add_argument("--path", default=None, help="dataset directory (required for --data ptbxl)")
    p.add_argument("--unlabelled", default=None, help="unlabelled PTB-XL records for pretraining")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--out", required=True)
    p.add_argument("--smoke", action="store_true", help="tiny models and data (seconds)")
    p.set_defaults(func=_teacher_student)

    p = commands.add_parser(
        "teacher-variants", help="fine-tune teacher variants (NAME=JSON recipe overrides); macro-AUC of each"
    )
    p.add_argument("variants", nargs="*", help='NAME=JSON, e.g. vit=\'{"model": {"encoder": "vit"}}\'')
    p.add_argument("--table", action="store_true",
                   help="print OUT/variants.json as a Markdown table (with no variants: run nothing)")
    p.add_argument("--data", choices=["synthetic", "ptbxl"], default="synthetic")
    p.add_argument("--path", default=None, help="dataset directory (required for --data ptbxl)")
    p.add_argument("--out", required=True, help="variants.json goes here; finished variants are kept")
    p.add_argument("--seed", type=int, default=0, help="seed of the model's initialisation and training")
    p.add_argument("--data-seed", type=int, default=0,
                   help="which synthetic draw (default 0: the benchmark of teacher-student and experiment)")
    p.add_argument("--unlabelled", default=None,
                   help="records for pretraining, with the training split (as in teacher-student)")
    p.add_argument("--smoke", action="store_true", help="tiny models and data (seconds)")
    p.set_defaults(func=_teacher_variants)

    foundation = commands.add_parser("foundation", help="make the foundation teacher once, and ship it")
    foundation_cmds = foundation.add_subparsers(dest="foundation_command", metavar="SUBCOMMAND",
                                                required=True)
    p = foundation_cmds.add_parser(
        "train", help="masked-patch pretraining + fine-tuning; OUT gets weights and a model card (resumable)"
    )
    p.add_argument("--data", choices=["synthetic", "ptbxl"], default="synthetic")
    p.add_argument("--path", default=None,
                   help="dataset to fine-tune on (synthetic default: the 24,000-record corpus, seed 1000)")
    p.add_argument("--unlabelled", default=None,
                   help="records to pretrain on (required for --data ptbxl: ptbxl-unlabelled, only those)")
    p.add_argument("--init", default=None, help="start from the weights of this teacher (name or directory)")
    p.add_argument("--out", required=True, help="the teacher's directory; OUT/training: the resumable state")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true", help="a tiny teacher on a tiny corpus (seconds; tests)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_foundation_train)
    p = foundation_cmds.add_parser("ship", help="copy a verified teacher into the package (load_teacher)")
    p.add_argument("teacher", help="a directory written by `foundation train`")
    p.add_argument("--name", required=True, help="the name load_teacher will know it by (synthetic, ptbxl)")
    p.set_defaults(func=_foundation_ship)
    p = foundation_cmds.add_parser(
        "ensemble", help="each teacher's macro-AUC and their probability-averaging ensemble's")
    p.add_argument("teachers", nargs="+", help="shipped names or teacher directories (at least two)")
    p.add_argument("--data", choices=["synthetic", "ptbxl"], default="ptbxl")
    p.add_argument("--path", help="the dataset directory (required for --data ptbxl)")
    p.add_argument("--out", help="also write the comparison to this JSON file")
    p.add_argument("--json", action="store_true", help="print JSON instead of a Markdown table")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_foundation_ensemble)
    p = foundation_cmds.add_parser("cards", help="the shipped teachers' model cards as a Markdown table")
    p.set_defaults(func=_foundation_cards)

    from evl_lite.predict.command import add_predict_parser

    add_predict_parser(commands)

    p = commands.add_parser("run", help="execute the notebook collection with papermill")
    p.add_argument("--mode", choices=["smoke", "workshop", "full"], default="smoke",
                   help="smoke: seconds per notebook (tests); workshop: minutes, the notebooks' defaults; "
                   "full: longer schedules and more synthetic data (EVL_LITE_SCALE=full)")
    p.add_argument("--data", choices=["synthetic", "ptbxl"], default="synthetic")
    p.add_argument("--path", default=None, help="dataset directory (required for --data ptbxl)")
    p.add_argument("--out", required=True, help="for executed notebooks, html/, index.html, summary.json")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", nargs="*", default=None, help="run only notebooks whose name starts with these")
    p.add_argument("--resume", action="store_true",
                   help="keep what an earlier run in --out finished; start at the first unfinished notebook")
    p.set_defaults(func=_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # the command line, for the records
    try:
        return args.func(args)
    except ECGDataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
