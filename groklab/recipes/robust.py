"""Recipes for paper 000: Tan & Huang, *Understanding grokking through a robustness viewpoint*."""

from __future__ import annotations

from groklab.presets import load_preset
from groklab.recipes import RecipeContext, Verdict, recipe
from groklab.recipes.plots import curves_figure


@recipe(
    "robust-fig1",
    paper="000 fig. 1",
    claim="Under AdamW with weight decay on modular addition, the l2 weight norm peaks and falls while test "
    "accuracy rises long after training accuracy reached 100%.",
)
def norm_decay(ctx: RecipeContext) -> Verdict:
    seeds = [0] if ctx.quick else [0, 1, 2]
    runs = [ctx.run(load_preset("mlp-add").override(f"seed={s}", "train.steps=4000"), f"seed-{s}") for s in seeds]
    measured, ok = {}, []
    for seed, r in zip(seeds, runs):
        m, s = r.metrics, r.summary
        peak = int(m["step"].iloc[m["weight_norm"].idxmax()])
        peak_norm = float(m["weight_norm"].max())
        t_test = s["t_test_acc"]
        norm_at_test = float(m.loc[m["step"] == t_test, "weight_norm"].iloc[0]) if t_test is not None else float("nan")
        measured.update({
            f"seed{seed}.t_train_acc": s["t_train_acc"],
            f"seed{seed}.t_test_acc": t_test,
            f"seed{seed}.peak_norm_step": peak,
            f"seed{seed}.peak_norm": peak_norm,
            f"seed{seed}.norm_at_t_test_acc": norm_at_test,
        })
        ok.append(t_test is not None and peak < t_test and norm_at_test <= 0.97 * peak_norm)
    notes = ("check per seed: test acc reaches 0.95, the norm peaks before t_test_acc and has fallen by >= 3% "
             f"from its peak when test acc crosses 0.95; held for {sum(ok)} of {len(ok)} seeds.")
    fig = curves_figure(runs, [f"seed {s}" for s in seeds], ["train_acc", "test_acc", "weight_norm"],
                        "Paper 000 fig. 1: weight norm and grokking under AdamW")
    return Verdict(measured, all(ok), notes, fig)
