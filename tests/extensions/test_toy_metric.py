"""A new scheduled metric in one file: a function of the MetricContext, registered by name.

``toy_logit_rms``: the root-mean-square logit on the training set, computed from what the
context hands over (model and data), checked at step 0 against the model at initialisation
that ``ctx.initial_model()`` gives (rebuilt here independently from (config, seed)).
"""

import pandas as pd
import pytest
import torch

import groklab
from groklab.metrics.registry import MetricContext, register_metric
from groklab.models import build_model
from groklab.seeding import generator
from groklab.tasks import build_task


@register_metric("toy_logit_rms")
def toy_logit_rms(ctx: MetricContext) -> dict[str, float]:
    with torch.no_grad():
        logits = ctx.model(ctx.train_x)
        logits_0 = ctx.initial_model()(ctx.train_x.cpu())
    return {"toy_logit_rms": float(logits.pow(2).mean().sqrt()),
            "toy_logit_rms_at_init": float(logits_0.pow(2).mean().sqrt())}


def test_a_metric_added_in_one_file_is_a_column_of_the_run(tmp_path):
    config = groklab.load_preset("mlp-add").override(
        "task.p=11", "model.width=16", "train.steps=20", "train.eval_every=10", 'eval.metrics=["toy_logit_rms"]')
    groklab.run(config, out=tmp_path / "run", progress=False)
    metrics = pd.read_parquet(tmp_path / "run" / "metrics.parquet")
    assert list(metrics["step"]) == [0, 10, 20]
    data = build_task(config.task, config.seed)
    model_0 = build_model(config.model, data, generator(config.seed, "init"))
    with torch.no_grad():
        expected = float(model_0(data.train_x).pow(2).mean().sqrt())
    assert metrics["toy_logit_rms"].iloc[0] == pytest.approx(expected, rel=1e-6)
    assert (metrics["toy_logit_rms_at_init"] == metrics["toy_logit_rms"].iloc[0]).all()  # theta_0 stays put
    assert metrics["toy_logit_rms"].iloc[-1] != metrics["toy_logit_rms"].iloc[0]  # the live model moved

