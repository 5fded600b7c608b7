"""Recipes for paper 001: Kumar et al., *Grokking as the transition from lazy to rich dynamics*.

``lazyrich-modular-mlp`` is section 3 and fig. 2: a two-layer MLP groks modular addition under
plain gradient descent without weight decay while its weight norm grows (2a, b), and the
output scale controls how much it groks (2c). The other paper-001 recipes are in
``lazyrich_toy`` (the polynomial toy model) and ``lazyrich_nets`` (MNIST, transformer,
student-teacher, weight decay).
"""

from __future__ import annotations

from typing import Optional

from groklab.config import Config
from groklab.presets import load_preset
from groklab.recipes import RecipeContext, recipe
from groklab.recipes.cards import words
from groklab.recipes.lazyrich_nets import GROK_RATIO, _groks, judge_alpha_sweep, measure_grok, sweep_figure
from groklab.recipes.protocol import Arm, Control, Criterion, Design, most_seeds, seeds_for

# The notebook's scales s; its output is W2 (W1 x)^2 s^2 / (D N) with loss MSE / s^2 and lr 100 / s^2,
# i.e. plain MSE on alpha * f with alpha = s^2 and lr 100 / alpha^2 (groklab's alpha_lr_scaling).
SCALES = (0.5, 1.0, 1.5, 2.0)
MODULAR_STEPS = 100_000  # fig. 2c (fig. 2a, b: the s = 1 run's first 50k steps)
MODULAR_QUICK_STEPS = 35_000
MODULAR_QUICK_SCALES = (0.5, 1.0)


def modular_config(scale: float, steps: int) -> Config:
    """The notebook's fig. 2 network at scale ``s``: preset ``gd-mse`` (x+y mod 23, 90% train,
    width 100, x^2, no biases, N(0,1) weights, full-batch GD lr 100, MSE) with the notebook's
    output scale 1/(D N) (``mean_field``), alpha = s^2, not centred."""
    return load_preset("gd-mse").override(
        "model.parametrization=mean_field", f"model.alpha={scale ** 2:g}", "model.centre=false",
        f"train.steps={steps}", "train.eval_every=100", "train.checkpoint_every=null")


def _key(scale: float) -> str:
    return f"s-{scale:g}"


def _norm_at(run, step: Optional[int]) -> Optional[float]:
    if step is None:
        return None
    m = run.metrics
    return float(m.loc[m["step"] == step, "weight_norm"].iloc[0])


def measure_modular(run) -> dict:
    """:func:`~groklab.recipes.lazyrich_nets.measure_grok` (accuracy thresholds 0.99 / 0.95)
    plus the weight norm when test accuracy first reaches 0.95 over the norm at step 0 (None
    if it never does)."""
    out = measure_grok(run)
    at = _norm_at(run, out["t_test"])
    out["norm_ratio_at_grok"] = None if at is None else at / out["weight_norm_init"]
    s = run.summary  # context, not judged: fig. 2b's loss view (first step at 0.1 x the initial loss)
    out["t_train_loss"], out["t_test_loss"] = s.get("t_train_loss"), s.get("t_test_loss")
    return out


def judge_modular(results) -> list[Criterion]:
    """Fig. 2a, b on the s = 1 arm: it groks (generalises >= ``GROK_RATIO`` x after fitting) and
    its weight norm when it generalises is above the norm at initialisation, in most seeds;
    fig. 2c: :func:`~groklab.recipes.lazyrich_nets.judge_alpha_sweep` from the smallest to the
    largest scale."""
    keys = [a.key for a in results.arms]
    main = results[_key(1.0)]
    return [
        most_seeds(main["grok_ratio"], _groks, "groks without weight decay (s = 1)",
                   f"test acc 0.95 reached >= {GROK_RATIO:g}x after train acc 0.99"),
        most_seeds(main["norm_ratio_at_grok"], lambda v: v > 1.0, "weight norm grew by the time it generalised",
                   "weight norm at test acc 0.95 above the norm at step 0"),
        *judge_alpha_sweep(results, keys[0], keys[-1]),
    ]


@recipe("lazyrich-modular-mlp")
def modular_mlp(ctx: RecipeContext) -> Design:
    steps = MODULAR_QUICK_STEPS if ctx.quick else MODULAR_STEPS
    scales = MODULAR_QUICK_SCALES if ctx.quick else SCALES
    arms = [Arm(_key(s), f"s {s:g} (alpha {s * s:g})", modular_config(s, steps)) for s in scales]
    w = words("lazyrich-modular-mlp", smallest=scales[0], grok_ratio=GROK_RATIO)
    return Design(
        arms=arms, seeds=seeds_for(ctx.quick, 3, 5), measure=measure_modular, judge=judge_modular,
        control=Control((f"model.alpha={scales[0] ** 2:g}",), w["why"]),
        size=f"x+y mod 23, 90% train, width 100, scales {', '.join(f'{s:g}' for s in scales)}, {steps} steps",
        falsifier=w["falsifier"],
        figure=lambda res, ctl: sweep_figure(res, ctl, ["train_acc", "test_acc", "weight_norm"],
                                             "Paper 001 fig. 2: modular addition, plain GD, no weight decay",
                                             {a.key: s * s for a, s in zip(arms, scales)}),
        notes=w["notes"],
    )
