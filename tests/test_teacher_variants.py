"""`python -m evl_lite teacher-variants`: each variant's overrides reach the model, results are kept."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from toy_ecg import toy_split

from evl_lite.data.benchmark import BenchmarkData
from evl_lite.evaluation.metrics import over_seeds
from evl_lite.experiments import teacher_variants
from evl_lite.experiments.teacher_variants import build_variant, parse_variant, run_variant, variants_markdown


def test_variants_parse_and_bad_ones_are_named():
    assert parse_variant('vit={"model": {"encoder": "vit"}}') == ("vit", {"model": {"encoder": "vit"}})
    assert parse_variant("default=") == ("default", {})
    with pytest.raises(ValueError, match="NAME=JSON"):
        parse_variant('{"model": {}}')
    with pytest.raises(ValueError, match="keys must be among"):
        parse_variant('x={"modle": {}}')
    with pytest.raises(ValueError, match=r"variant x: '\{\"model\": ' is not valid JSON"):
        parse_variant('x={"model": ')


@torch.no_grad()  # only weights are read here
def test_overrides_and_initialisation_changes_reach_the_model():
    base = build_variant({}, smoke=True)  # the recipe: a conv stem with residual blocks along each lead,
    # lead pooling
    assert (base.config.encoder, base.config.tokenizer, base.config.pooling) == ("bert", "stem", "leads")
    assert base.config.stem_blocks == 1
    conv = build_variant({"model": {"encoder": "vit", "tokenizer": "conv"}}, smoke=True)
    assert (conv.config.encoder, conv.config.tokenizer) == ("vit", "conv")
    assert conv.config.d_model == base.config.d_model
    wide = build_variant({"embed_std": 0.5}, smoke=True)
    assert 0.4 < float(wide.lead_embed.weight.std()) < 0.6 and float(base.lead_embed.weight.std()) < 0.05
    linear_spec = {"model": {"tokenizer": "linear", "pooling": "cls"}}  # the recipe before the stem
    linear = build_variant(linear_spec, smoke=True)
    reset = build_variant({**linear_spec, "reset_tokenizer": True}, smoke=True)
    bound = 1 / base.config.patch_len**0.5  # Kaiming-uniform: bound 1 / sqrt(fan_in)
    assert float(reset.patch_embed.weight.abs().max()) <= bound
    assert float(reset.patch_embed.weight.std()) > 2 * float(linear.patch_embed.weight.std())
    again = build_variant({}, smoke=True)  # seeded: the same variant, the same weights
    torch.testing.assert_close(again.classifier.weight, base.classifier.weight)


def test_command_runs_variants_and_keeps_finished_ones(tmp_path):
    env = {**os.environ, "EVL_LITE_DATA": str(tmp_path / "data"), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "evl_lite", "teacher-variants", "--smoke", "--out", str(out),
           "default=", 'vit={"model": {"encoder": "vit"}, "pretrain_epochs": 1}']
    proc = subprocess.run([*cmd, "--seed", "1"], capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads((out / "variants.json").read_text())
    assert [r["name"] for r in record["runs"]] == ["default", "vit"]
    # --seed seeds the model only: the data stay the benchmark's draw, as in teacher-student
    assert all(r["seed"] == 1 and Path(r["path"]).name.endswith("-seed0") for r in record["runs"])
    assert all(0 <= r["test_macro_auc"] <= 1 and len(r["val_curve"]) == 2 for r in record["runs"])
    for r in record["runs"]:  # the macro-AUC is the mean of the per-class AUCs it reports
        per_class = [v for v in r["test_per_class_auc"].values() if v is not None]
        assert set(r["test_per_class_auc"]) == {"NORM", "MI", "STTC", "CD", "HYP"}
        assert r["test_macro_auc"] == pytest.approx(sum(per_class) / len(per_class))
        low, high = r["test_macro_auc_ci95"]  # a bootstrap over the test records, around the figure
        assert 0 <= low <= r["test_macro_auc"] <= high <= 1 and high - low > 0
    assert record["provenance"]["commit"] and "default" in proc.stdout and "vit" in proc.stdout
    assert all("teacher-variants --smoke" in r["command"] for r in record["runs"])
    # nothing to redo
    again = subprocess.run([*cmd, "--seed", "1"], capture_output=True, text=True, env=env, timeout=900)
    assert again.returncode == 0 and json.loads((out / "variants.json").read_text()) == record
    assert cmd[5:7] == ["--out", str(out)]
    bad = subprocess.run([*cmd[:7], 'x={"model": '], capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "error: variant x: " in bad.stderr and "is not valid JSON" in bad.stderr
    table = subprocess.run([*cmd[:7], "--table"], capture_output=True, text=True, env=env, timeout=300)
    assert table.returncode == 0 and table.stdout.strip() == variants_markdown(record)
    none = [*cmd[:6], str(tmp_path / "none")]
    empty = subprocess.run(none, capture_output=True, text=True, env=env, timeout=300)
    assert empty.returncode == 2 and "no variants given" in empty.stderr


def test_variants_table_has_a_row_per_run_with_its_figures():
    run = {"name": "stem", "spec": {"model": {"tokenizer": "stem"}}, "test_macro_auc": 0.8643,
           "val_macro_auc": 0.86, "best_epoch": 17, "seconds": 293.8, "commit": "efc0fd8",
           "test_per_class_auc": {"NORM": 0.917, "MI": 0.801, "STTC": 0.9, "CD": None, "HYP": 0.8}}
    old = {"name": "default", "spec": {}, "test_macro_auc": 0.855, "val_macro_auc": 0.822, "best_epoch": 16,
           "seconds": 115, "commit": "f313b34"}
    lines = variants_markdown({"runs": [old, run]}).splitlines()
    assert len(lines) == 4 and lines[1].startswith("|---")
    assert lines[2] == "| default | `(the recipe)` | 0.855 | 0.822 (17) | not recorded | 115 | f313b34 |"
    assert lines[3] == ('| stem | `{"model": {"tokenizer": "stem"}}` | 0.864 | 0.860 (18) | '
                        "0.917 / 0.801 / 0.900 / - / 0.800 | 294 | efc0fd8 |")


def test_teacher_search_table_is_the_committed_variants_record():
    """The teacher search shows rows of what `teacher-variants --table` prints for the record."""
    root = Path(__file__).resolve().parents[1]
    record = json.loads((root / "results" / "teacher_variants_synthetic" / "variants.json").read_text())
    page = (root / "docs" / "teacher_search.md").read_text()
    header = variants_markdown({"runs": []})
    assert header in page, "docs/teacher_search.md has no teacher-variants table"
    shown = page[page.index(header):].split("\n\n")[0].splitlines()[2:]
    names = [line.split("|")[1].strip() for line in shown]
    runs = {r["name"]: r for r in record["runs"]}
    assert names and set(names) <= set(runs), f"rows not in the record: {set(names) - set(runs)}"
    order = [r["name"] for r in record["runs"]]
    assert names == sorted(names, key=order.index), "rows must keep the record's order"
    assert variants_markdown({"runs": [runs[n] for n in names]}) in page, (
        "docs/teacher_search.md differs from results/teacher_variants_synthetic/variants.json: paste those "
        "rows of `python -m evl_lite teacher-variants --out results/teacher_variants_synthetic --table`"
    )


def test_teacher_search_quotes_the_ptbxl500_variants():
    """Stem + lead pooling against the old recipe on PTB-XL-500, seeds 0-2, as the page quotes them."""
    root = Path(__file__).resolve().parents[1]
    auc = {}
    for seed, directory in enumerate(["teacher_variants_ptbxl500", "teacher_variants_ptbxl500_seed1",
                                      "teacher_variants_ptbxl500_seed2"]):
        for run in json.loads((root / "results" / directory / "variants.json").read_text())["runs"]:
            assert run["seed"] == seed
            auc.setdefault(run["name"], []).append(run["test_macro_auc"])
    quoted = " / ".join(f"{v:.3f}" for v in auc["default"]) + " against " + " / ".join(
        f"{v:.3f}" for v in auc["stem-leads-pooling"])
    assert quoted in " ".join((root / "docs" / "teacher_search.md").read_text().split())


def test_teacher_search_quotes_the_teacher_student_records():
    """The three-seed teacher-student figures of the page: the recipe's, and the full scale's."""
    root = Path(__file__).resolve().parents[1]
    page = " ".join((root / "docs" / "teacher_search.md").read_text().replace("*", "").split())

    def seeds(directory: str, key: str) -> list[float]:
        record = json.loads((root / "results" / directory / "teacher_student.json").read_text())
        return [r[key] for r in sorted(record["per_seed"], key=lambda r: r["seed"])]

    def mean_sd(values: list[float], with_values: bool = False) -> str:
        stats = over_seeds(values)
        text = f"{stats['mean']:.3f} ± {stats['sd']:.3f}"
        return text + " (" + ", ".join(f"{v:.3f}" for v in values) + ")" if with_values else text

    assert f"synthetic {mean_sd(seeds('teacher_student_synthetic', 'teacher_test_macro_auc'))}" in page
    assert f"PTB-XL-500 {mean_sd(seeds('teacher_student_ptbxl500', 'teacher_test_macro_auc'))}" in page
    full = "teacher_student_synthetic_full"
    val = ", ".join(f"{v:.3f}" for v in seeds(full, "teacher_val_macro_auc"))
    assert f"{mean_sd(seeds(full, 'teacher_test_macro_auc'), True)}, validation {val}" in page
    assert f"student {mean_sd(seeds(full, 'student_test_macro_auc'), True)}" in page


# docs/teacher_search.md's table of paired seeds 0, 1, 2: row label -> the committed records of its
# seeds, each (results directory, variant name), or (directory, None) for a teacher-student record
PAIRED_SEED_ROWS = {
    "the recipe": [("teacher_student_synthetic_rerun", None)],
    "5,000 more unlabelled records": [("teacher_student_synthetic_unlabelled5000", None)],
    "the same, fine-tuned in batches of 16": [
        (f"teacher_variants_synthetic_unlabelled5000_seed{s}", "recipe-finetune-batch-16-unlabelled-5000")
        for s in range(3)
    ],
    "the same, validated on a moving average of the weights": [
        (f"teacher_variants_synthetic_unlabelled5000_seed{s}",
         "recipe-finetune-batch-16-unlabelled-5000-ema-0.995") for s in range(3)
    ],
    "20,000 unlabelled records, fine-tuned in batches of 16": [
        (f"teacher_variants_synthetic_unlabelled20000_seed{s}", "recipe-finetune-batch-16-unlabelled-20000")
        for s in range(3)
    ],
}


def _teacher_seeds(root: Path, sources: list) -> tuple[list[float], list[float]]:
    """Test and validation macro-AUC of the teacher over seeds 0, 1, 2, read from committed records."""
    test, val = [], []
    for directory, variant in sources:
        if variant is None:
            record = json.loads((root / "results" / directory / "teacher_student.json").read_text())
            runs = [(r["seed"], r["teacher_test_macro_auc"], r["teacher_val_macro_auc"])
                    for r in record["per_seed"]]
        else:
            record = json.loads((root / "results" / directory / "variants.json").read_text())
            runs = [(r.get("seed", 0), r["test_macro_auc"], r["val_macro_auc"])
                    for r in record["runs"] if r["name"] == variant]
        for _, t, v in sorted(runs):
            test.append(t)
            val.append(v)
    return test, val


@pytest.mark.parametrize("label", list(PAIRED_SEED_ROWS))
def test_teacher_search_paired_seeds_table_quotes_the_records(label):
    root = Path(__file__).resolve().parents[1]
    test, val = _teacher_seeds(root, PAIRED_SEED_ROWS[label])
    assert len(test) == 3, f"{label}: records hold {len(test)} seeds, not 3"
    stats = over_seeds(test)
    rows = [line for line in (root / "docs" / "teacher_search.md").read_text().splitlines()
            if line.startswith(f"| {label} |")]
    assert len(rows) == 1, f"docs/teacher_search.md has {len(rows)} rows labelled {label!r}"
    _, test_cell, val_cell, _ = rows[0].split("|")[1:]
    assert test_cell.replace("*", "").strip() == (
        ", ".join(f"{v:.3f}" for v in test) + f" ({stats['mean']:.3f} ± {stats['sd']:.3f})"
    )
    assert val_cell.strip() == ", ".join(f"{v:.3f}" for v in val)


def test_the_best_teachers_rerun_repeats_it_and_its_interval_is_quoted():
    root = Path(__file__).resolve().parents[1]
    name = "recipe-finetune-batch-16-unlabelled-5000-ema-0.995"
    def runs(record: str) -> list[dict]:
        return json.loads((root / "results" / record / "variants.json").read_text())["runs"]

    (rerun,) = runs("teacher_variants_synthetic_best_rerun_seed0")
    (first,) = [r for r in runs("teacher_variants_synthetic_unlabelled5000_seed0") if r["name"] == name]
    assert rerun["name"] == name and rerun["seed"] == first["seed"] == 0
    assert rerun["test_macro_auc"] == first["test_macro_auc"] and rerun["val_curve"] == first["val_curve"]
    low, high = rerun["test_macro_auc_ci95"]
    for doc in ("docs/results.md", "docs/teacher_search.md"):
        assert f"{low:.3f}-{high:.3f}" in (root / doc).read_text(), f"{doc} does not quote the interval"


def test_a_variant_pretrains_on_the_unlabelled_records_when_given(tmp_path, monkeypatch):
    splits = {name: toy_split(name, n, seed, length=1000) for name, n, seed in
              (("train", 32, 0), ("val", 16, 1), ("test", 16, 2))}
    data = BenchmarkData(root=tmp_path, splits=splits, source="synthetic")
    unlabelled = np.concatenate([data.train.x, toy_split("other", 24, 3, length=1000).x])
    seen = []
    real_pretrain = teacher_variants.pretrain
    monkeypatch.setattr(teacher_variants, "pretrain", lambda model, x, config: seen.append(x) or
                        real_pretrain(model, x, config))
    alone = run_variant("p", {"pretrain_epochs": 1}, data, smoke=True)
    more = run_variant("p", {"pretrain_epochs": 1}, data, smoke=True, unlabelled=unlabelled)
    assert seen[0] is data.train.x and seen[1] is unlabelled
    assert alone["pretraining_records"] == 32 and more["pretraining_records"] == 56
    assert run_variant("n", {}, data, smoke=True)["pretraining_records"] == 0  # no pretraining stage
