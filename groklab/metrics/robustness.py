"""Scheduled metrics of paper 000 (robustness viewpoint), registered by name.

Ask for them with ``--set eval.metrics='["matrix_info","sharpness",...]'``. Each returns
``{column: float}``; the columns it adds to ``metrics.parquet`` are:

====================  ====================================================================
metric                columns
====================  ====================================================================
``matrix_info``       ``matrix_info.pe``, ``.pmi`` (at ``MATRIX_INFO_SIGMA``), ``.pe_clean``,
                      ``.pmi_clean`` (sigma = 0), ``.mid``, ``.ed`` (Defs. 4.1-4.4)
``sharpness``         ``sharpness``: Hutchinson estimate of tr(Hessian of the training loss)
``top_eigenvalue``    ``top_eigenvalue``: largest Hessian eigenvalue (Lanczos)
``input_grad_norm``   ``input_grad_norm``: mean |d loss_i / d x_i| at the one-hot inputs
``robustness``        ``robustness_radius``: eps(W) of Theorem 3.2
``sparsity_entropy``  ``sparsity_entropy.logit_entropy_a1`` / ``_a2`` (matrix entropy of the
                      logits, orders 1 and 2), ``.logit_sparsity``, ``.param_entropy_a1`` /
                      ``_a2``, ``.param_sparsity`` (Figs. 19, 20; sparsity = l1/l2 / sqrt(N))
``nn_accuracy``       ``nn_accuracy.embedding``, ``nn_accuracy.logits``: 1-NN (cosine)
                      accuracy of test pairs against training pairs (Fig. 14b)
``group_laws``        ``group_laws.abelian_acc``, ``.abelian_logit_dist``,
                      ``.abelian_embed_dist``, ``.doubling_acc``, ``.zero_identity_acc``,
                      ``.associativity_acc``, ``.inverse_embed_dist`` (section 5, Figs. 9-18)
``heldout_laws``      the same laws scored on held-out (test) pairs only:
                      ``heldout_laws.abelian_acc``, ``.wrong_pair_agree``, ``.both_wrong``,
                      ``.logit_dist_rel``, ``.embed_dist_rel``, ``.doubling_acc``,
                      ``.doubling_loss``, ``.zero_identity_acc``, ``.zero_identity_loss``,
                      ``.associativity_acc`` (see :func:`heldout_laws_metric`)
``matrix_info_sweep`` ``matrix_info_sweep.{pe,pmi,mid,ed}_<sigma>`` for each sigma in
                      ``MATRIX_INFO_SWEEP`` (the same quantities as ``matrix_info``)
====================  ====================================================================

Data and cost. Every data-based metric but ``group_laws`` and ``nn_accuracy`` reads the
same fixed, seeded subset of at most ``MAX_SAMPLES`` training pairs (``matrix_info`` the
first ``MATRIX_INFO_SAMPLES`` of them), seeded by the run seed only, so every step looks at
the same pairs and a curve is not noise from resampling.
Stochastic estimators draw from a generator seeded by (run seed, metric, step), so a resumed
run reproduces them. Hessian metrics cost ``HESSIAN_PROBES`` or up to ``LANCZOS_ITERS``
Hessian-vector products; ``sharpness`` and ``robustness`` share one trace estimate per
evaluation (through :attr:`MetricContext.shared`).

Schedule (see :mod:`groklab.metrics.registry`). ``input_grad_norm`` and ``sparsity_entropy``
(one forward pass over the subset) are registered ``cheap`` and run at every evaluation; the
others are ``expensive`` and by default run at log-spaced evaluations
(``eval.metrics_per_decade``); ``eval.metrics_every`` overrides both.

Estimator noise. ``sharpness``: Hutchinson with ``HESSIAN_PROBES`` Rademacher probes (unbiased;
relative spread ~ sqrt(2 sum_{i!=j} H_ij^2 / HESSIAN_PROBES) / tr H). ``top_eigenvalue``: Lanczos
stopped when the top Ritz value changes by less than ``LANCZOS_TOL`` relative (a slight
underestimate: Ritz values approach the eigenvalue from below; on ``mlp-add`` at 8 steps from 0 to
2500, within 2.5% (mostly 1%) of an 80-iteration run, where 20 power iterations were off by up
to 6%). ``nn_accuracy``: a fixed subset of ``NN_MAX_QUERIES`` test pairs, so a binomial standard
error of at most ``0.5 / sqrt(NN_MAX_QUERIES)`` (0.022) around the all-test value.

Inputs. Input-space quantities need dense inputs: a model with a ``one_hot(pairs)`` encoder
(the MLP) is evaluated at ``one_hot(a) ++ one_hot(b)`` plus noise. A model on token ids (the
transformer) has no input space to perturb, so ``matrix_info.pe``, ``.pmi``, ``.mid``, ``.ed``
and ``input_grad_norm`` are NaN for it; the clean entropies use the one-hot pair encoding
as the input layer for every model. Embeddings are the activations at the hook point the
model declares as its ``embedding_hook`` (:mod:`groklab.models.protocol`).

Matrix entropies of all-zero features (the logits of a centred lazy model at step 0) are
undefined and recorded as NaN.

The loss whose Hessian is measured is the run's training objective (``train.loss``). The
paper's theory uses the MSE loss ``1/(2n) sum_i |f(x_i) - onehot(y_i)|^2``; ``train.loss=mse``
is that loss times 2 / n_classes (see :func:`groklab.objective.loss_fn`), so its
sharpness is the paper's times the same constant.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor, nn

from groklab.metrics import geometry, group_laws, matrix_info
from groklab.metrics.registry import MetricContext, register_metric
from groklab.models.protocol import dense_inputs, embedding_from_cache, n_operands, one_hot_pairs, unwrap
from groklab.seeding import derive_seed, generator

__all__ = [
    "MATRIX_INFO_SIGMA",
    "MAX_SAMPLES",
    "HESSIAN_PROBES",
    "LANCZOS_ITERS",
    "LANCZOS_TOL",
    "ROBUSTNESS_LIPSCHITZ",
    "sweep_column",
    "MATRIX_INFO_SWEEP",
    "heldout_mask",
]

MATRIX_INFO_SIGMA = 0.1  # noise std per input coordinate for PE / PMI / MID / ED
MATRIX_INFO_SWEEP = (0.03, 0.1, 0.3)  # matrix_info_sweep's sigmas: noise energy 0.1x, 1x, 9x a one-hot pair's mod 97
MAX_SAMPLES = 1024  # training pairs the data-based metrics look at
MATRIX_INFO_SAMPLES = 512  # of those, matrix_info uses the first (its n x n eigvalsh dominates)
HESSIAN_PROBES = 4  # Rademacher probes of the Hutchinson trace estimate
LANCZOS_ITERS = 20  # Hessian-vector products of the top-eigenvalue Lanczos iteration (at most)
LANCZOS_TOL = 1e-3  # relative change of the top Ritz value that stops it
ROBUSTNESS_LIPSCHITZ = 0.0  # L of Theorem 3.2 (unknown; 0 gives the largest radius the bound allows)
NN_MAX_REFERENCES = 8192  # training pairs the 1-NN classifier searches
NN_MAX_QUERIES = 512  # test pairs it classifies (binomial standard error <= 0.022)
MAX_GROUP_PAIRS = 4096  # pairs (a, b) of the commutativity tests; more -> a seeded subset
_CHUNK = 16384


# --------------------------------------------------------------------------------------
# private helpers
# --------------------------------------------------------------------------------------


def _rng(ctx: MetricContext, purpose: str) -> torch.Generator:
    """A CPU generator for one metric at one step, independent of the other metrics."""
    return generator(derive_seed(ctx.config.seed, f"metrics.{purpose}"), str(ctx.step))


def _subset(n: int, k: int, ctx: MetricContext, purpose: str, device: torch.device) -> Tensor:
    """Indices of a fixed (seed-only, same at every step) random subset of at most k of n,
    in random order, so any prefix is a random subset too."""
    if n <= k:
        return torch.arange(n, device=device)
    g = generator(ctx.config.seed, f"metrics.subset.{purpose}")
    return torch.randperm(n, generator=g)[:k].to(device)


def _train_subset(ctx: MetricContext) -> tuple[Tensor, Tensor]:
    idx = _subset(len(ctx.train_y), MAX_SAMPLES, ctx, "train", ctx.train_x.device)
    return ctx.train_x[idx], ctx.train_y[idx]


def _forward(model: nn.Module, x: Tensor) -> Tensor:
    return torch.cat([model(x[i : i + _CHUNK]) for i in range(0, len(x), _CHUNK)])


def _embed_and_logits(model: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """Embeddings ``(B, d)`` (as :func:`embedding` reads them) and logits from one forward pass."""
    embeds, logits = [], []
    for i in range(0, len(x), _CHUNK):
        cache: dict = {}
        logits.append(model(x[i : i + _CHUNK], cache))
        embeds.append(embedding_from_cache(cache, len(logits[-1]), unwrap(model).embedding_hook))
    return torch.cat(embeds), torch.cat(logits)


def _params(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach() for k, v in model.named_parameters() if v.requires_grad}


def _training_loss_fn(ctx: MetricContext) -> tuple[Callable[[dict], Tensor], dict[str, Tensor]]:
    """``loss(params)`` on the training subset, through the model's explicit (cache) path,
    which every attention backend can differentiate twice."""
    x, y = _train_subset(ctx)
    objective = ctx.objective
    model = ctx.model

    def loss(params: dict) -> Tensor:
        return objective(torch.func.functional_call(model, params, (x,), {"cache": {}}), y)

    return loss, _params(model)


def _defined(fn: Callable[..., Tensor], *args) -> float:
    """``float(fn(*args))``, or NaN where a matrix entropy is undefined (all-zero features,
    e.g. the logits of a centred lazy model at initialisation)."""
    try:
        return float(fn(*args))
    except ValueError:
        return float("nan")


def _noise(shape: torch.Size, g: torch.Generator, like: Tensor) -> Tensor:
    return torch.randn(shape, generator=g, dtype=like.dtype).to(like.device)


# --------------------------------------------------------------------------------------
# metrics
# --------------------------------------------------------------------------------------


@register_metric("matrix_info", cost="expensive")
@torch.no_grad()
def matrix_info_metric(ctx: MetricContext) -> dict[str, float]:
    """PE, PMI at ``MATRIX_INFO_SIGMA`` and at 0, and MID, ED on the training subset.

    The input layer is the one-hot pair encoding (plus noise); the noise is drawn once from a
    seed-only generator, so every step perturbs the same pairs by the same noise.
    """
    pairs = _train_subset(ctx)[0][:MATRIX_INFO_SAMPLES]
    model = ctx.model
    clean_x = one_hot_pairs(pairs, n_operands(model))
    logits = _forward(model, pairs)
    pe0 = _defined(matrix_info.renyi_entropy, logits)
    pmi0 = _defined(matrix_info.mutual_information, clean_x, logits)
    out = {"matrix_info.pe_clean": pe0, "matrix_info.pmi_clean": pmi0}
    perturbed = _perturbed_info(ctx, pairs, (MATRIX_INFO_SIGMA,), pe0, pmi0)[MATRIX_INFO_SIGMA]
    return {
        "matrix_info.pe": perturbed["pe"],
        "matrix_info.pmi": perturbed["pmi"],
        **out,
        "matrix_info.mid": perturbed["mid"],
        "matrix_info.ed": perturbed["ed"],
    }


def _perturbed_info(ctx: MetricContext, pairs: Tensor, sigmas, pe0: float,
                    pmi0: float) -> dict[float, dict[str, float]]:
    """``{sigma: {pe, pmi, mid, ed}}`` with the dense inputs perturbed by ``sigma`` times one
    standard-normal draw from a seed-only generator (the same draw for every sigma and step);
    NaN for a model without dense inputs."""
    model = ctx.model
    dense = dense_inputs(model, pairs)
    if dense is None:
        nan = float("nan")
        return {s: {"pe": nan, "pmi": nan, "mid": nan, "ed": nan} for s in sigmas}
    noise = _noise(dense.shape, generator(ctx.config.seed, "metrics.matrix_info"), dense)
    clean = (torch.tensor(pe0, dtype=torch.float64), torch.tensor(pmi0, dtype=torch.float64))  # measured on the one-hot pair encoding (any model)
    try:
        profile = matrix_info.perturbation_profile(lambda x: _forward(model, x), dense, noise, sigmas, clean=clean)
    except ValueError:  # all-zero logits (a centred lazy model at initialisation): undefined
        return {s: {"pe": math.nan, "pmi": math.nan, "mid": math.nan, "ed": math.nan} for s in sigmas}
    return {s: {k: float(v) for k, v in values.items()} for s, values in profile.items()}


def sweep_column(quantity: str, sigma: float) -> str:
    """The ``matrix_info_sweep`` column of ``quantity`` (pe, pmi, mid, ed) at noise ``sigma``."""
    return f"matrix_info_sweep.{quantity}_{sigma:g}"


@register_metric("matrix_info_sweep", cost="expensive")
@torch.no_grad()
def matrix_info_sweep_metric(ctx: MetricContext) -> dict[str, float]:
    """PE, PMI, MID and ED (as ``matrix_info``, on the same pairs and the same noise draw) at
    every noise level in ``MATRIX_INFO_SWEEP``: the paper does not give its sigma."""
    pairs = _train_subset(ctx)[0][:MATRIX_INFO_SAMPLES]
    model = ctx.model
    logits = _forward(model, pairs)
    pe0 = _defined(matrix_info.renyi_entropy, logits)
    pmi0 = _defined(matrix_info.mutual_information, one_hot_pairs(pairs, n_operands(model)), logits)
    per_sigma = _perturbed_info(ctx, pairs, MATRIX_INFO_SWEEP, pe0, pmi0)
    return {sweep_column(q, s): v for s, values in per_sigma.items() for q, v in values.items()}


def _hessian_trace(ctx: MetricContext) -> float:
    """Hutchinson estimate of tr(H) on the training subset, computed once per evaluation and
    shared by ``sharpness`` and ``robustness``."""

    def compute() -> float:
        loss, params = _training_loss_fn(ctx)
        return geometry.hessian_trace(loss, params, HESSIAN_PROBES, _rng(ctx, "sharpness"))

    return ctx.shared_value("robustness.hessian_trace", compute)


@register_metric("sharpness", cost="expensive")
def sharpness_metric(ctx: MetricContext) -> dict[str, float]:
    """Hutchinson estimate of tr(H), H the Hessian of the training loss (on the subset)."""
    return {"sharpness": _hessian_trace(ctx)}


@register_metric("top_eigenvalue", cost="expensive")
def top_eigenvalue_metric(ctx: MetricContext) -> dict[str, float]:
    """Largest eigenvalue of the training-loss Hessian by Lanczos iteration."""
    loss, params = _training_loss_fn(ctx)
    value = geometry.top_hessian_eigenvalue(loss, params, LANCZOS_ITERS, _rng(ctx, "top_eigenvalue"), LANCZOS_TOL)
    return {"top_eigenvalue": value}


@register_metric("input_grad_norm", cost="cheap")
def input_grad_norm_metric(ctx: MetricContext) -> dict[str, float]:
    """Mean over training pairs of |d loss_i / d x_i|_2 at the one-hot inputs (NaN without them).

    Sample i's loss depends on x_i only, so the per-sample gradients are the rows of the
    gradient of ``n * mean loss``; the loss stays the one of :mod:`groklab.objective`.
    """
    pairs, labels = _train_subset(ctx)
    dense = dense_inputs(ctx.model, pairs)
    if dense is None:
        return {"input_grad_norm": float("nan")}
    total_loss = lambda x: ctx.objective(ctx.model(x), labels) * len(labels)  # noqa: E731
    return {"input_grad_norm": geometry.input_gradient_norm(total_loss, dense, summed=True)}


@register_metric("robustness", cost="expensive")
def robustness_metric(ctx: MetricContext) -> dict[str, float]:
    """Radius eps(W) of Theorem 3.2 with n = all training pairs, min |x_i|^2 of the one-hot
    inputs (= 2), |W|_F^2 over all trainable parameters, S from the same Hutchinson probes as
    ``sharpness`` and L = ``ROBUSTNESS_LIPSCHITZ``. Negative sharpness estimates (possible
    before interpolation) are clipped to 0, which gives radius 1."""
    s = _hessian_trace(ctx)
    pairs, _ = _train_subset(ctx)
    min_sq = float(one_hot_pairs(pairs, n_operands(ctx.model)).pow(2).sum(1).min())
    frob_sq = float(sum(p.pow(2).sum() for p in _params(ctx.model).values()))
    radius = geometry.robustness_radius(len(ctx.train_y), min_sq, frob_sq, max(s, 0.0), ROBUSTNESS_LIPSCHITZ)
    return {"robustness_radius": radius}


@register_metric("sparsity_entropy", cost="cheap")
@torch.no_grad()
def sparsity_entropy_metric(ctx: MetricContext) -> dict[str, float]:
    """Matrix entropy (orders 1, 2) and l1/l2 sparsity of the logits on the training subset,
    and entropy (orders 1, 2) and sparsity of the parameter magnitudes (paper Figs. 19, 20).
    Sparsities are normalised to (0, 1] (divided by sqrt(N)); low means sparse."""
    pairs, _ = _train_subset(ctx)
    logits = _forward(ctx.model, pairs)
    params = list(_params(ctx.model).values())
    flat = torch.cat([p.reshape(-1) for p in params])
    return {
        "sparsity_entropy.logit_entropy_a1": _defined(matrix_info.renyi_entropy, logits, 1.0),
        "sparsity_entropy.logit_entropy_a2": _defined(matrix_info.renyi_entropy, logits, 2.0),
        "sparsity_entropy.logit_sparsity": float(geometry.sparsity(logits, dim=-1, normalize=True)),
        "sparsity_entropy.param_entropy_a1": _defined(geometry.parameter_entropy, params, 1.0),
        "sparsity_entropy.param_entropy_a2": _defined(geometry.parameter_entropy, params, 2.0),
        "sparsity_entropy.param_sparsity": float(geometry.sparsity(flat, normalize=True)),
    }


@register_metric("nn_accuracy", cost="expensive")
@torch.no_grad()
def nn_accuracy_metric(ctx: MetricContext) -> dict[str, float]:
    """1-nearest-neighbour (cosine) accuracy of test pairs, labelled by the nearest training
    pair, in embedding and in logit space (paper Fig. 14b). Fixed subsets of at most
    ``NN_MAX_REFERENCES`` training and ``NN_MAX_QUERIES`` test pairs."""
    device = ctx.train_x.device
    ref = _subset(len(ctx.train_y), NN_MAX_REFERENCES, ctx, "nn_ref", device)
    qry = _subset(len(ctx.test_y), NN_MAX_QUERIES, ctx, "nn_query", device)
    ry, qy = ctx.train_y[ref], ctx.test_y[qry]
    r_embed, r_logits = _embed_and_logits(ctx.model, ctx.train_x[ref])
    q_embed, q_logits = _embed_and_logits(ctx.model, ctx.test_x[qry])
    return {
        "nn_accuracy.embedding": geometry.nearest_neighbour_accuracy(r_embed, ry, q_embed, qy),
        "nn_accuracy.logits": geometry.nearest_neighbour_accuracy(r_logits, ry, q_logits, qy),
    }


def _shared_forward(model) -> tuple:
    """``predict(a, b)`` (logits) and ``embed(a, b)`` (embeddings) of operand pairs, sharing one
    forward pass per (a, b) tensor pair."""
    passes: dict = {}

    def forward_pass(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
        key = (id(a), id(b))
        if key not in passes:  # the entry keeps a and b alive, so their ids are not reused
            passes[key] = (a, b, _embed_and_logits(model, torch.stack([a, b], 1)))
        return passes[key][2]

    return (lambda a, b: forward_pass(a, b)[1]), (lambda a, b: forward_pass(a, b)[0])


@register_metric("group_laws", cost="expensive")
@torch.no_grad()
def group_laws_metric(ctx: MetricContext) -> dict[str, float]:
    """Group-law tests of paper 000, section 5, on the model's predictions (no labels needed
    except where the true table defines the law).

    ``abelian_acc`` (Fig. 9): fraction of pairs (a, b) with argmax f(a,b) == argmax f(b,a),
    over all m^2 pairs (a seeded subset when more than ``MAX_GROUP_PAIRS``); ``abelian_logit_dist``
    (Fig. 11) and ``abelian_embed_dist`` (Fig. 18): mean l2 distance between the logits /
    embeddings of (a, b) and (b, a); ``associativity_acc`` (Fig. 16): (x.x).x == x.(x.x) with
    the inner product decoded by argmax; ``doubling_acc`` (x.x == true square),
    ``zero_identity_acc`` (x.e == x and e.x == x) and ``inverse_embed_dist`` (mean distance of
    embed(x, x^-1) to their mean, Fig. 14a) need the true table, and are NaN where the task's
    table is incomplete (``x/y``) or has no identity / inverses (e.g. ``x-y``).
    """
    model, device = ctx.model, ctx.train_x.device
    m = n_operands(model)
    n_classes = _forward(model, ctx.train_x[:1]).shape[-1]
    predict, embed = _shared_forward(model)

    a, b = group_laws.all_pairs(m)
    keep = _subset(m * m, MAX_GROUP_PAIRS, ctx, "group_pairs", torch.device("cpu"))
    a, b = a[keep].to(device), b[keep].to(device)
    nan = float("nan")
    out = {
        "group_laws.abelian_acc": group_laws.abelian_accuracy(predict, a, b),
        "group_laws.abelian_logit_dist": group_laws.abelian_logit_distance(predict, a, b),
        "group_laws.abelian_embed_dist": group_laws.abelian_embedding_distance(embed, a, b),
        "group_laws.doubling_acc": nan,
        "group_laws.zero_identity_acc": nan,
        "group_laws.associativity_acc": nan,
        "group_laws.inverse_embed_dist": nan,
    }
    if n_classes == m:  # predictions can be fed back as operands
        out["group_laws.associativity_acc"] = group_laws.associativity_accuracy(predict, torch.arange(m, device=device))
    table = None if ctx.task.table is None else ctx.task.table.cayley()
    if table is None:
        return out
    table = table.to(device)
    out["group_laws.doubling_acc"] = group_laws.doubling_accuracy(predict, table)
    try:
        out["group_laws.zero_identity_acc"] = group_laws.zero_identity_accuracy(predict, table)
        out["group_laws.inverse_embed_dist"] = group_laws.inverse_embedding_distance(embed, table)
    except ValueError:  # no identity or no unique inverses: not a group
        pass
    return out


def heldout_mask(test_pairs: Tensor, m: int) -> Tensor:
    """``(m, m)`` bool on CPU: True for the operand pairs ``(a, b)`` in ``test_pairs`` ``(B, 2)``."""
    mask = torch.zeros(m, m, dtype=torch.bool)
    pairs = test_pairs.long().cpu()
    mask[pairs[:, 0], pairs[:, 1]] = True
    return mask


def _or_nan(fn: Callable[..., float], *args) -> float:
    """``fn(*args)``, or NaN where the law has no pair to score (ValueError)."""
    try:
        return float(fn(*args))
    except ValueError:
        return float("nan")


@register_metric("heldout_laws", cost="expensive")
@torch.no_grad()
def heldout_laws_metric(ctx: MetricContext) -> dict[str, float]:
    """The group laws of ``group_laws`` scored on held-out pairs only (pairs in the test split),
    so that memorised training pairs cannot make a law look learnt.

    Swap pairs: ordered test pairs ``(a, b)``, ``a != b``, whose swap ``(b, a)`` is a test pair
    too (a seeded subset of at most ``MAX_GROUP_PAIRS``). On them: ``abelian_acc`` (argmax
    agreement), ``wrong_pair_agree`` and ``both_wrong`` (:func:`~groklab.metrics.group_laws.
    wrong_pair_agreement`: agreement among the pairs wrong both ways, which accuracy does not
    imply, and their share), ``logit_dist_rel`` and ``embed_dist_rel``
    (:func:`~groklab.metrics.group_laws.relative_swap_distance` against the same pairs in a fixed
    seeded shuffle). Laws with targets, on their held-out pairs: ``doubling_acc`` / ``_loss``
    ((x, x) -> x.x), ``zero_identity_acc`` / ``_loss`` ((x, e) and (e, x) -> x), and
    ``associativity_acc`` (x with both outer pairs (s, x), (x, s) held out, s the model's x.x).
    Losses are cross-entropies, the paper's measure in Fig. 15. NaN where a law has no held-out
    pair or the task's table is incomplete or has no identity.
    """
    model, device = ctx.model, ctx.train_x.device
    m = n_operands(model)
    held = heldout_mask(ctx.test_x, m)  # (m, m) on CPU
    predict, embed = _shared_forward(model)

    a, b = group_laws.all_pairs(m)
    swap = held[a, b] & held[b, a] & (a != b)
    a, b = a[swap], b[swap]
    keep = _subset(len(a), MAX_GROUP_PAIRS, ctx, "heldout_pairs", torch.device("cpu"))
    a, b = a[keep].to(device), b[keep].to(device)
    nan = float("nan")
    out = dict.fromkeys(["abelian_acc", "wrong_pair_agree", "both_wrong", "logit_dist_rel", "embed_dist_rel",
                         "doubling_acc", "doubling_loss", "zero_identity_acc", "zero_identity_loss",
                         "associativity_acc"], nan)
    if len(a):
        perm = torch.randperm(len(a), generator=generator(ctx.config.seed, "metrics.heldout_perm")).to(device)
        out["abelian_acc"] = group_laws.abelian_accuracy(predict, a, b)
        out["logit_dist_rel"] = group_laws.relative_swap_distance(predict, a, b, perm)
        out["embed_dist_rel"] = group_laws.relative_swap_distance(embed, a, b, perm)
    n_classes = _forward(model, ctx.train_x[:1]).shape[-1]
    if n_classes == m:
        out["associativity_acc"] = _or_nan(group_laws.associativity_accuracy, predict,
                                           torch.arange(m, device=device), held.to(device))
    table = None if ctx.task.table is None else ctx.task.table.cayley()
    if table is not None:
        table = table.to(device)
        if len(a):
            out["wrong_pair_agree"], out["both_wrong"] = group_laws.wrong_pair_agreement(predict, a, b, table)
        x = torch.arange(m, device=device)
        diag = x[held.diagonal().to(device)]
        out["doubling_acc"] = _or_nan(group_laws.law_accuracy, predict, diag, diag, table[diag, diag])
        out["doubling_loss"] = _or_nan(group_laws.law_loss, predict, diag, diag, table[diag, diag])
        try:
            e = group_laws.identity_element(table)
        except ValueError:  # no identity: not a group
            e = None
        if e is not None:
            right, left = x[held[:, e].to(device)], x[held[e, :].to(device)]  # (x, e) and (e, x) held out
            za = torch.cat([right, torch.full_like(left, e)])
            zb = torch.cat([torch.full_like(right, e), left])
            target = torch.cat([right, left])
            out["zero_identity_acc"] = _or_nan(group_laws.law_accuracy, predict, za, zb, target)
            out["zero_identity_loss"] = _or_nan(group_laws.law_loss, predict, za, zb, target)
    return {f"heldout_laws.{k}": v for k, v in out.items()}
