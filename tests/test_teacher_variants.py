"""`python -m evl_lite teacher-variants`: each variant's overrides reach the model, results are kept."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from evl_lite.teacher_variants import build_variant, parse_variant


def test_variants_parse_and_bad_ones_are_named():
    assert parse_variant('vit={"model": {"encoder": "vit"}}') == ("vit", {"model": {"encoder": "vit"}})
    assert parse_variant("default=") == ("default", {})
    with pytest.raises(ValueError, match="NAME=JSON"):
        parse_variant('{"model": {}}')
    with pytest.raises(ValueError, match="keys must be among"):
        parse_variant('x={"modle": {}}')


def test_overrides_and_initialisation_changes_reach_the_model():
    base = build_variant({}, smoke=True)
    assert base.config.encoder == "bert" and base.config.tokenizer == "linear"
    conv = build_variant({"model": {"encoder": "vit", "tokenizer": "conv"}}, smoke=True)
    assert (conv.config.encoder, conv.config.tokenizer) == ("vit", "conv")
    assert conv.config.d_model == base.config.d_model
    wide = build_variant({"embed_std": 0.5}, smoke=True)
    assert 0.4 < float(wide.lead_embed.weight.std()) < 0.6 and float(base.lead_embed.weight.std()) < 0.05
    reset = build_variant({"reset_tokenizer": True}, smoke=True)  # Kaiming-uniform: bound 1 / sqrt(fan_in)
    bound = 1 / base.config.patch_len**0.5
    assert float(reset.patch_embed.weight.abs().max()) <= bound
    assert float(reset.patch_embed.weight.std()) > 2 * float(base.patch_embed.weight.std())
    again = build_variant({}, smoke=True)  # seeded: the same variant, the same weights
    torch.testing.assert_close(again.classifier.weight, base.classifier.weight)


def test_command_runs_variants_and_keeps_finished_ones(tmp_path):
    env = {**os.environ, "EVL_LITE_DATA": str(tmp_path / "data"), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "evl_lite", "teacher-variants", "--smoke", "--out", str(out),
           "default=", 'vit={"model": {"encoder": "vit"}, "pretrain_epochs": 1}']
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads((out / "variants.json").read_text())
    assert [r["name"] for r in record["runs"]] == ["default", "vit"]
    assert all(0 <= r["test_macro_auc"] <= 1 and len(r["val_curve"]) == 2 for r in record["runs"])
    for r in record["runs"]:  # the macro-AUC is the mean of the per-class AUCs it reports
        per_class = [v for v in r["test_per_class_auc"].values() if v is not None]
        assert set(r["test_per_class_auc"]) == {"NORM", "MI", "STTC", "CD", "HYP"}
        assert r["test_macro_auc"] == pytest.approx(sum(per_class) / len(per_class))
    assert record["provenance"]["commit"] and "default" in proc.stdout and "vit" in proc.stdout
    assert all("teacher-variants --smoke" in r["command"] for r in record["runs"])
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)  # nothing to redo
    assert again.returncode == 0 and json.loads((out / "variants.json").read_text()) == record
    bad = subprocess.run([*cmd[:6], 'x={"model": '], capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == 2 and "error:" in bad.stderr and "Traceback" not in bad.stderr
