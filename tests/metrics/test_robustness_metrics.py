"""The registered paper-000 metrics: columns in metrics.parquet, and values checked against
independent computations at a fixed init."""

import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

import groklab
from groklab.metrics import geometry, matrix_info, robustness
from groklab.metrics.registry import METRICS
from groklab.models import MLP
from groklab.store.rundir import RunDir
from groklab.training.loop import Trainer
from tests.conftest import tiny

ALL = ["matrix_info", "sharpness", "top_eigenvalue", "input_grad_norm", "robustness", "sparsity_entropy",
       "nn_accuracy", "group_laws"]
COLUMNS = [
    "matrix_info.pe", "matrix_info.pmi", "matrix_info.pe_clean", "matrix_info.pmi_clean", "matrix_info.mid",
    "matrix_info.ed", "sharpness", "top_eigenvalue", "input_grad_norm", "robustness_radius",
    "sparsity_entropy.logit_entropy_a1", "sparsity_entropy.logit_entropy_a2", "sparsity_entropy.logit_sparsity",
    "sparsity_entropy.param_entropy_a1", "sparsity_entropy.param_entropy_a2", "sparsity_entropy.param_sparsity",
    "nn_accuracy.embedding", "nn_accuracy.logits", "group_laws.abelian_acc", "group_laws.abelian_logit_dist",
    "group_laws.abelian_embed_dist", "group_laws.doubling_acc", "group_laws.zero_identity_acc",
    "group_laws.associativity_acc", "group_laws.inverse_embed_dist",
]  # fmt: skip
TOKEN_NAN = {"matrix_info.pe", "matrix_info.pmi", "matrix_info.mid", "matrix_info.ed", "input_grad_norm"}


def _context(config, tmp_path, step=0):
    trainer = Trainer.create(config, RunDir(tmp_path / "ctx"))
    trainer.model.eval()
    return trainer.metric_context(step)


def test_every_metric_writes_its_columns_to_metrics_parquet(tmp_path):
    config = tiny(eval={"metrics": ALL, "metrics_every": 20})
    groklab.run(config, out=tmp_path / "run", progress=False)
    metrics = pd.read_parquet(tmp_path / "run" / "metrics.parquet")
    core = ["step", "train_loss", "test_loss", "train_acc", "test_acc", "weight_norm"]
    assert list(metrics.columns) == core + COLUMNS
    assert metrics["step"].tolist() == [0, 10, 20, 30, 40]
    scheduled = metrics[metrics["step"] % 20 == 0]
    assert scheduled[COLUMNS].notna().all().all()
    assert metrics[metrics["step"] % 20 != 0][COLUMNS].isna().all().all()
    assert (scheduled["robustness_radius"] > 0).all() and (scheduled["robustness_radius"] <= 1).all()


def test_token_models_get_nan_only_for_input_space_columns(tmp_path):
    config = tiny(model={"name": "transformer", "d_model": 16, "n_heads": 2, "d_mlp": 32}, train={"steps": 0},
                  eval={"metrics": ALL})
    row = groklab.run(config, out=tmp_path / "run", progress=False).metrics.iloc[0]
    for column in COLUMNS:
        assert math.isnan(row[column]) == (column in TOKEN_NAN), column


def test_a_centred_lazy_model_at_init_gets_nan_entropies_not_a_crash(tmp_path):
    config = tiny(model={"alpha": 2.0}, train={"steps": 10}, eval={"metrics": ALL},
                  interventions={"mi": {"weight": 0.1}, "perturb": {"lambda2": 0.1}})  # fmt: skip
    metrics = groklab.run(config, out=tmp_path / "run", progress=False).metrics
    first, last = metrics.iloc[0], metrics.iloc[-1]
    assert math.isnan(first["matrix_info.pe_clean"]) and math.isnan(first["sparsity_entropy.logit_entropy_a1"])
    assert last[COLUMNS].notna().all()


def test_matrix_info_against_the_definitions(tmp_path):
    ctx = _context(tiny(), tmp_path)  # 60 training pairs: all of them are used, in order
    out = METRICS["matrix_info"](ctx)
    model, pairs = ctx.model, ctx.train_x
    with torch.no_grad():
        logits = model(pairs)
        assert out["matrix_info.pe_clean"] == pytest.approx(float(matrix_info.renyi_entropy(logits)), rel=1e-6)
        pmi0 = float(matrix_info.mutual_information(model.one_hot(pairs), logits))
        assert out["matrix_info.pmi_clean"] == pytest.approx(pmi0, rel=1e-6)
        noise = torch.randn((60, 22), generator=groklab.seeding.generator(0, "metrics.matrix_info"))
        noisy = model.one_hot(pairs) + robustness.MATRIX_INFO_SIGMA * noise
        pe = float(matrix_info.renyi_entropy(model(noisy)))
        pmi = float(matrix_info.mutual_information(noisy, model(noisy)))
    assert out["matrix_info.pe"] == pytest.approx(pe, rel=1e-6)
    assert out["matrix_info.pmi"] == pytest.approx(pmi, rel=1e-6)
    assert out["matrix_info.ed"] == pytest.approx(abs(pe - out["matrix_info.pe_clean"]), rel=1e-6)
    assert out["matrix_info.mid"] == pytest.approx(abs(pmi - pmi0), rel=1e-6)
    assert out["matrix_info.ed"] > 0


def test_sharpness_and_top_eigenvalue_match_the_exact_hessian(tmp_path, monkeypatch):
    config = tiny(task={"p": 5, "train_frac": 0.6}, model={"width": 6, "activation": "tanh"})
    ctx = _context(config, tmp_path)
    model, x, y = ctx.model, ctx.train_x, ctx.train_y
    params = {k: v.detach() for k, v in model.named_parameters()}
    hessian = geometry.exact_hessian(
        lambda p: F.cross_entropy(torch.func.functional_call(model, p, (x,)), y), params)  # fmt: skip
    monkeypatch.setattr(robustness, "HESSIAN_PROBES", 3000)
    monkeypatch.setattr(robustness, "LANCZOS_ITERS", 1000)
    monkeypatch.setattr(robustness, "LANCZOS_TOL", 0.0)
    trace = float(torch.diagonal(hessian).sum())
    assert METRICS["sharpness"](ctx)["sharpness"] == pytest.approx(trace, rel=0.05)
    top = float(torch.linalg.eigvalsh(hessian.double()).max())
    assert METRICS["top_eigenvalue"](ctx)["top_eigenvalue"] == pytest.approx(top, rel=1e-3)


def test_robustness_radius_is_theorem_3_2_with_the_sharpness_column(tmp_path):
    config = tiny(train={"steps": 30}, eval={"metrics": ["sharpness", "robustness"], "metrics_every": 30})
    run = groklab.run(config, out=tmp_path / "run", progress=False)
    row = run.metrics.iloc[-1]
    trainer = Trainer.create(config, RunDir(run.dir))
    trainer.restore()
    frob_sq = sum(float(p.detach().pow(2).sum()) for p in trainer.model.parameters())
    expected = geometry.robustness_radius(60, 2.0, frob_sq, max(row["sharpness"], 0.0), 0.0)
    assert row["robustness_radius"] == pytest.approx(expected, rel=1e-5)
    assert expected < 1  # the bound is not trivially 1 here


def test_input_grad_norm_and_nn_accuracy_against_direct_computations(tmp_path):
    ctx = _context(tiny(), tmp_path)
    model = ctx.model
    dense = model.one_hot(ctx.train_x)
    expected = geometry.input_gradient_norm(
        lambda x: F.cross_entropy(model(x), ctx.train_y, reduction="none"), dense)  # fmt: skip
    assert METRICS["input_grad_norm"](ctx)["input_grad_norm"] == pytest.approx(expected, rel=1e-5)

    def hidden(pairs):
        cache = {}
        model(pairs, cache)
        return cache["hidden"]

    with torch.no_grad():
        out = METRICS["nn_accuracy"](ctx)
        emb = geometry.nearest_neighbour_accuracy(hidden(ctx.train_x), ctx.train_y, hidden(ctx.test_x), ctx.test_y)
        log = geometry.nearest_neighbour_accuracy(model(ctx.train_x), ctx.train_y, model(ctx.test_x), ctx.test_y)
    assert out == {"nn_accuracy.embedding": emb, "nn_accuracy.logits": log}


def test_group_laws_of_a_symmetric_model(tmp_path):
    ctx = _context(tiny(), tmp_path)
    model: MLP = ctx.model
    with torch.no_grad():
        model.W_in[11:] = model.W_in[:11]  # f(a, b) = f(b, a) and hidden(a, b) = hidden(b, a)
    out = METRICS["group_laws"](ctx)
    assert out["group_laws.abelian_acc"] == 1.0
    assert out["group_laws.abelian_logit_dist"] == pytest.approx(0.0, abs=1e-6)
    assert out["group_laws.abelian_embed_dist"] == pytest.approx(0.0, abs=1e-6)
    for key in ("doubling_acc", "zero_identity_acc", "associativity_acc"):
        assert 0.0 <= out[f"group_laws.{key}"] <= 1.0


def test_group_laws_without_a_group_table_are_nan(tmp_path):
    ctx = _context(tiny(task={"op": "x/y"}), tmp_path)  # y = 0 is left out: no complete table
    out = METRICS["group_laws"](ctx)
    assert not math.isnan(out["group_laws.abelian_acc"]) and not math.isnan(out["group_laws.associativity_acc"])
    assert math.isnan(out["group_laws.doubling_acc"]) and math.isnan(out["group_laws.inverse_embed_dist"])
    ctx = _context(tiny(task={"op": "x-y"}), tmp_path)  # complete table, but no two-sided identity
    out = METRICS["group_laws"](ctx)
    assert not math.isnan(out["group_laws.doubling_acc"])
    assert math.isnan(out["group_laws.zero_identity_acc"]) and math.isnan(out["group_laws.inverse_embed_dist"])


def test_a_model_of_s3_is_not_abelian_but_a_generalising_model_of_addition_is(tmp_path):
    # S_3: pairs commute only within 3 conjugacy classes (18 of 36), so a model that fits
    # the table must disagree on many swapped pairs.
    s3 = tiny(task={"name": "permutation", "n": 3, "train_frac": 0.8}, model={"width": 64},
              train={"steps": 200, "eval_every": 100, "checkpoint_every": None},
              eval={"metrics": ["group_laws"], "metrics_every": 200})  # fmt: skip
    s3_run = groklab.run(s3, out=tmp_path / "s3", progress=False)
    assert s3_run.summary["train_acc"] == 1.0
    assert s3_run.metrics["group_laws.abelian_acc"].iloc[-1] <= 0.5
    add = tiny(task={"p": 23, "train_frac": 0.8}, model={"width": 64, "activation": "quadratic"},
               optim={"lr": 0.01, "weight_decay": 1.0},
               train={"steps": 600, "eval_every": 50, "checkpoint_every": None},
               eval={"metrics": ["group_laws"], "metrics_every": 600})  # fmt: skip
    add_run = groklab.run(add, out=tmp_path / "add", progress=False)
    assert add_run.summary["test_acc"] >= 0.95
    final = add_run.metrics.iloc[-1]
    assert final["group_laws.abelian_acc"] >= 0.98
    assert final["group_laws.zero_identity_acc"] >= 0.95 and final["group_laws.associativity_acc"] >= 0.95
