"""Group-law tests for models of a binary operation (paper 000, section 5 and appendix).

A model of a group operation on ``m`` elements (``m = p`` for addition mod p, ``m = n!`` for
the permutation group S_n) is probed through

* ``predict(a, b) -> logits``: ``a, b`` LongTensors ``(B,)`` of operand indices in
  ``[0, m)``, logits ``(B, m)`` over the result index. Operands and results share one index
  set, so a predicted result can be fed back as an operand (associativity test).
* ``embed(a, b) -> (B, d)``: any internal representation of the pair (optional).

The true operation, where a law needs it, is given as a Cayley table ``table`` (``(m, m)``
LongTensor with ``table[a, b] = a * b``); :func:`addition_table` builds the one for addition
mod p. Which laws need what:

==============================  ===========  ====================================================
law                             needs table  with ``addition_table(p)`` it is
==============================  ===========  ====================================================
:func:`abelian_accuracy`        optional     prediction(a+b) == prediction(b+a)
:func:`abelian_logit_distance`  no           |logits(a,b) - logits(b,a)|
:func:`doubling_accuracy`       yes          prediction(x+x) == 2x mod p
:func:`zero_identity_accuracy`  yes          prediction(x+0) == x and prediction(0+x) == x
:func:`associativity_accuracy`  no           (x+x)+x == x+(x+x), inner sum = model argmax
:func:`inverse_embedding_dist.` yes          spread of embed(x, -x) around their mean
:func:`wrong_pair_agreement`    yes          agreement of f(a,b), f(b,a) where both are wrong
:func:`relative_swap_distance`  no           |e(a,b) - e(b,a)| / |e(a,b) - e(unrelated pair)|
:func:`law_accuracy`, `_loss`   (targets)    accuracy / cross-entropy on chosen pairs
==============================  ===========  ====================================================

Held-out scoring. Laws scored on pairs that include training pairs partly measure memorisation
(a fitted model answers its training pairs correctly, so e.g. ``x+0 = x`` holds on every
training pair long before it generalises). :func:`associativity_accuracy` takes an ``allowed``
mask of pairs, :func:`law_accuracy` / :func:`law_loss` take any pairs, so callers can score the
laws on held-out pairs only. On held-out pairs, doubling and zero identity are the test
accuracy on a subset; the swap agreement among pairs whose predictions are both wrong
(:func:`wrong_pair_agreement`) is what accuracy does not imply: with independent errors it is
at chance, and it is high only if the model treats (a, b) and (b, a) alike where it is wrong.

Only the abelian law is specific to commutative groups; the others hold in every group
(doubling reads "x*x equals the true square", zero identity uses the group's identity, the
inverse test uses the group's inverses), so all of them run on S_n tables too. The
commutativity tests on a non-abelian group measure symmetry the model should *not* have on
non-commuting pairs; pass ``table`` to :func:`abelian_accuracy` to restrict it to pairs
that truly commute.

Evaluation functions run under ``torch.no_grad`` and do not change the model's train/eval
mode. :func:`abelian_loss` is the differentiable regulariser.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

__all__ = [
    "addition_table",
    "all_pairs",
    "abelian_accuracy",
    "abelian_logit_distance",
    "abelian_embedding_distance",
    "doubling_accuracy",
    "zero_identity_accuracy",
    "associativity_accuracy",
    "inverse_embedding_distance",
    "identity_element",
    "wrong_pair_agreement",
    "relative_swap_distance",
    "law_accuracy",
    "law_loss",
    "abelian_loss",
]

Predict = Callable[[Tensor, Tensor], Tensor]
Embed = Callable[[Tensor, Tensor], Tensor]


# --------------------------------------------------------------------------------------
# tables and pairs
# --------------------------------------------------------------------------------------


def addition_table(p: int) -> Tensor:
    """Cayley table of addition mod ``p``: ``(p, p)`` LongTensor, ``table[a, b] = (a+b) % p``."""
    r = torch.arange(p)
    return (r[:, None] + r[None, :]) % p


def all_pairs(m: int) -> tuple[Tensor, Tensor]:
    """All ``m^2`` ordered pairs ``(a, b)`` as two LongTensors ``(m*m,)``, ``a`` major."""
    r = torch.arange(m)
    return r.repeat_interleave(m), r.repeat(m)


def _check_table(table: Tensor) -> Tensor:
    if table.dim() != 2 or table.shape[0] != table.shape[1]:
        raise ValueError(f"table must be square, got shape {tuple(table.shape)}")
    return table.long()


def _identity(table: Tensor) -> int:
    """Index ``e`` with ``e*x = x*e = x`` for all ``x``."""
    r = torch.arange(table.shape[0], device=table.device)
    for e in range(table.shape[0]):
        if torch.equal(table[e], r) and torch.equal(table[:, e], r):
            return e
    raise ValueError("table has no identity element")


def identity_element(table: Tensor) -> int:
    """The identity ``e`` of a Cayley table (``e*x = x*e = x``); ValueError if there is none."""
    return _identity(_check_table(table))


def _inverses(table: Tensor) -> Tensor:
    """``(m,)`` LongTensor with ``table[x, inv[x]] = e``."""
    hits = table == _identity(table)  # (m, m)
    if not bool((hits.sum(dim=1) == 1).all()):
        raise ValueError("table does not define unique right inverses")
    return hits.long().argmax(dim=1)


def _elements(x: Tensor | None, table: Tensor) -> Tensor:
    return torch.arange(table.shape[0], device=table.device) if x is None else x.long()


# --------------------------------------------------------------------------------------
# evaluation helpers shared by the laws
# --------------------------------------------------------------------------------------


def _logits(predict: Predict, a: Tensor, b: Tensor) -> Tensor:
    out = predict(a, b)
    if out.dim() != 2 or out.shape[0] != a.shape[0]:
        raise ValueError(f"predict must return (B, m) logits, got {tuple(out.shape)}")
    return out


def _predicted(predict: Predict, a: Tensor, b: Tensor) -> Tensor:
    """Predicted result index ``(B,)`` = argmax of the logits."""
    return _logits(predict, a, b).argmax(dim=-1)


def _fraction(hits: Tensor) -> float:
    if hits.numel() == 0:
        raise ValueError("no pairs to evaluate")
    return float(hits.float().mean())


def _unit(x: Tensor) -> Tensor:
    norms = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    return x / torch.where(norms > 0, norms, torch.ones_like(norms))


def _mean_swap_distance(
    fn: Callable[[Tensor, Tensor], Tensor], a: Tensor, b: Tensor, normalize: bool
) -> float:
    """Mean ``|fn(a, b) - fn(b, a)|_2`` over pairs; rows l2-normalised first if asked."""
    ab = fn(a, b).reshape(a.shape[0], -1)  # (B, d)
    ba = fn(b, a).reshape(a.shape[0], -1)  # (B, d)
    if normalize:
        ab, ba = _unit(ab), _unit(ba)
    return float(torch.linalg.vector_norm(ab - ba, dim=-1).mean())


# --------------------------------------------------------------------------------------
# laws
# --------------------------------------------------------------------------------------


@torch.no_grad()
def abelian_accuracy(
    predict: Predict, a: Tensor, b: Tensor, table: Tensor | None = None
) -> float:
    """Abelian test (paper Fig. 9): fraction of pairs with ``argmax f(a,b) == argmax f(b,a)``.

    No labels are needed. Without ``table`` all given pairs count (the paper's test, right
    for abelian groups such as addition mod p). With the true ``table`` only pairs that
    commute in the group (``table[a,b] == table[b,a]``) count, which is the commutation law
    a correct model of a non-abelian group (e.g. S_n) satisfies.

    Args:
        predict: ``predict(a, b) -> (B, m)`` logits.
        a, b: ``(B,)`` operand indices, e.g. from :func:`all_pairs` or a data split.
        table: optional ``(m, m)`` Cayley table.

    Returns:
        Fraction in ``[0, 1]``.
    """
    a, b = a.long(), b.long()
    if table is not None:
        table = _check_table(table)
        commuting = table[a, b] == table[b, a]
        a, b = a[commuting], b[commuting]
    return _fraction(_predicted(predict, a, b) == _predicted(predict, b, a))


@torch.no_grad()
def abelian_logit_distance(
    predict: Predict, a: Tensor, b: Tensor, normalize: bool = False
) -> float:
    """Mean l2 distance between the logits of ``(a, b)`` and ``(b, a)`` (paper Fig. 11).

    ``(1/B) sum_i |f(a_i, b_i) - f(b_i, a_i)|_2``; with ``normalize`` each logit vector is
    l2-normalised first (distance in ``[0, 2]``, insensitive to logit scale).
    """
    return _mean_swap_distance(lambda x, y: _logits(predict, x, y), a.long(), b.long(), normalize)


@torch.no_grad()
def abelian_embedding_distance(
    embed: Embed, a: Tensor, b: Tensor, normalize: bool = False
) -> float:
    """Mean l2 distance between the embeddings of ``(a, b)`` and ``(b, a)`` (paper Fig. 18).

    ``(1/B) sum_i |e(a_i, b_i) - e(b_i, a_i)|_2`` with ``embed(a, b) -> (B, ...)`` flattened to
    ``(B, d)``; with ``normalize`` embeddings are l2-normalised first (cosine geometry,
    distance in ``[0, 2]``, comparable across training steps with growing norms).
    """
    return _mean_swap_distance(embed, a.long(), b.long(), normalize)


@torch.no_grad()
def doubling_accuracy(predict: Predict, table: Tensor, x: Tensor | None = None) -> float:
    """Doubling law (paper Fig. 15): fraction of ``x`` with ``argmax f(x, x) == x*x``.

    For ``addition_table(p)`` the target is ``2x mod p``. This is the supervised accuracy on
    the diagonal pairs, so it is only a "law" test on diagonals held out from training.

    Args:
        predict: ``predict(a, b) -> (B, m)`` logits.
        table: ``(m, m)`` Cayley table giving the true squares ``table[x, x]``.
        x: ``(B,)`` elements to test; all ``m`` elements by default.
    """
    table = _check_table(table)
    x = _elements(x, table)
    return _fraction(_predicted(predict, x, x) == table[x, x])


@torch.no_grad()
def zero_identity_accuracy(predict: Predict, table: Tensor, x: Tensor | None = None) -> float:
    """Zero-identity law (paper Fig. 15): ``x + 0 = x`` and ``0 + x = x``.

    The identity ``e`` is read off ``table`` (``0`` for addition mod p). Returns the mean over
    both orders, ``(#[argmax f(x, e) == x] + #[argmax f(e, x) == x]) / (2 B)``.

    Args:
        predict: ``predict(a, b) -> (B, m)`` logits.
        table: ``(m, m)`` Cayley table.
        x: ``(B,)`` elements; all ``m`` by default.
    """
    table = _check_table(table)
    x = _elements(x, table)
    e = torch.full_like(x, _identity(table))
    hits = torch.cat([_predicted(predict, x, e) == x, _predicted(predict, e, x) == x])
    return _fraction(hits)


@torch.no_grad()
def associativity_accuracy(predict: Predict, x: Tensor, allowed: Tensor | None = None) -> float:
    """Associativity law (paper Fig. 16): ``(x+x)+x == x+(x+x)`` as the model computes it.

    The inner ``s = x+x`` is the model's own argmax prediction, then the fraction of ``x``
    with ``argmax f(s, x) == argmax f(x, s)`` is returned. Needs no labels or table and
    holds in every group (powers of one element commute).

    Args:
        predict: ``predict(a, b) -> (B, m)`` logits.
        x: ``(B,)`` elements, e.g. ``torch.arange(m)``.
        allowed: optional ``(m, m)`` bool mask of pairs that may be scored (e.g. held-out
            pairs): only ``x`` whose outer pairs ``(s, x)`` and ``(x, s)`` are both allowed
            count. Raises ValueError when none is.
    """
    x = x.long()
    s = _predicted(predict, x, x)
    if allowed is not None:
        keep = allowed[s, x] & allowed[x, s]
        x, s = x[keep], s[keep]
        if x.numel() == 0:
            raise ValueError("no pairs to evaluate")
    return _fraction(_predicted(predict, s, x) == _predicted(predict, x, s))


@torch.no_grad()
def inverse_embedding_distance(
    embed: Embed, table: Tensor, x: Tensor | None = None, normalize: bool = False
) -> float:
    """Inverse law ``x + (-x) = 0`` as embedding spread (paper Fig. 14a).

    All pairs ``(x, x^-1)`` have the same true result (the identity), so a model that has
    learnt the law maps them to one point. Returns ``(1/B) sum_x |e_x - mean_y e_y|_2`` with
    ``e_x = embed(x, x^-1)`` flattened to ``(B, d)`` (l2-normalised first if ``normalize``).
    For ``addition_table(p)`` the inverse of ``x`` is ``(-x) mod p``.

    Args:
        embed: ``embed(a, b) -> (B, ...)``.
        table: ``(m, m)`` Cayley table (gives the inverses).
        x: ``(B,)`` elements; all ``m`` by default.
        normalize: l2-normalise the embeddings before measuring.
    """
    table = _check_table(table)
    x = _elements(x, table)
    emb = embed(x, _inverses(table)[x]).reshape(x.shape[0], -1)  # (B, d)
    if normalize:
        emb = _unit(emb)
    centre = emb.mean(dim=0, keepdim=True)  # (1, d)
    return float(torch.linalg.vector_norm(emb - centre, dim=-1).mean())


@torch.no_grad()
def wrong_pair_agreement(predict: Predict, a: Tensor, b: Tensor, table: Tensor) -> tuple[float, float]:
    """Commutativity beyond accuracy: among the pairs whose predictions for ``(a, b)`` and
    ``(b, a)`` are *both wrong* (per ``table``), the fraction where the two wrong answers agree.

    Agreement on pairs where a prediction is right is implied by accuracy; where both are
    wrong it is not: with errors independent between the two orders it is near chance
    (``1/(m-1)`` for uniform errors), and it is 1 for a model that is symmetric, f(a,b) =
    f(b,a), whatever it gets wrong.

    Args:
        predict: ``predict(a, b) -> (B, m)`` logits.
        a, b: ``(B,)`` operand indices (pairs with ``a == b`` agree trivially; leave them out).
        table: ``(m, m)`` Cayley table giving the true results.

    Returns:
        ``(agreement, share_both_wrong)``: the agreement (NaN when no pair is wrong both ways)
        and the share of the given pairs that are wrong both ways.
    """
    table = _check_table(table)
    a, b = a.long(), b.long()
    ab, ba = _predicted(predict, a, b), _predicted(predict, b, a)
    both_wrong = (ab != table[a, b]) & (ba != table[b, a])
    n = int(both_wrong.sum())
    share = _fraction(both_wrong)
    if n == 0:
        return float("nan"), share
    return float((ab[both_wrong] == ba[both_wrong]).float().mean()), share


@torch.no_grad()
def relative_swap_distance(fn: Callable[[Tensor, Tensor], Tensor], a: Tensor, b: Tensor, perm: Tensor) -> float:
    """Mean ``|fn(a, b) - fn(b, a)|`` divided by the mean ``|fn(a, b) - fn(a', b')|`` for
    unrelated pairs ``(a', b') = (a[perm], b[perm])``: how far swapping the operands moves a
    representation, in units of how far apart the representations of two random pairs are.
    Scale-free (a model whose logits or activations grow does not look less commutative), 0
    for a symmetric representation, about 1 when a swap moves it as far as a random other pair.

    Args:
        fn: ``fn(a, b) -> (B, ...)``, e.g. the logits or an embedding.
        a, b: ``(B,)`` operand indices.
        perm: ``(B,)`` a permutation of ``range(B)`` (seeded by the caller, fixed over steps).
    """
    a, b, perm = a.long(), b.long(), perm.long()
    rep = fn(a, b).reshape(a.shape[0], -1)  # (B, d)
    swapped = fn(b, a).reshape(a.shape[0], -1)  # (B, d)
    swap = torch.linalg.vector_norm(rep - swapped, dim=-1).mean()
    unrelated = torch.linalg.vector_norm(rep - rep[perm], dim=-1).mean()
    return float(swap / unrelated) if float(unrelated) > 0 else float("nan")


@torch.no_grad()
def law_accuracy(predict: Predict, a: Tensor, b: Tensor, target: Tensor) -> float:
    """Fraction of pairs with ``argmax f(a, b) == target``: a law scored on chosen pairs, e.g.
    doubling ``(x, x) -> 2x`` or zero identity ``(x, 0) -> x`` on held-out pairs only."""
    return _fraction(_predicted(predict, a.long(), b.long()) == target.long())


@torch.no_grad()
def law_loss(predict: Predict, a: Tensor, b: Tensor, target: Tensor) -> float:
    """Mean cross-entropy of ``softmax f(a, b)`` against ``target`` on the given pairs (the
    paper's Fig. 15 scores the laws by this loss, not by accuracy)."""
    if a.numel() == 0:
        raise ValueError("no pairs to evaluate")
    logits = _logits(predict, a.long(), b.long())
    return float(torch.nn.functional.cross_entropy(logits.float(), target.long()))


def abelian_loss(logits_ab: Tensor, logits_ba: Tensor) -> Tensor:
    """Differentiable commutativity regulariser (paper Fig. 10), in nats.

    Symmetrised KL divergence (half the Jeffreys divergence) between the predictive
    distributions ``p = softmax(logits_ab)`` and ``q = softmax(logits_ba)``, averaged over
    the batch: ``(1/B) sum_i 1/2 [KL(p_i||q_i) + KL(q_i||p_i)]
    = (1/B) sum_i 1/2 sum_c (p_ic - q_ic)(log p_ic - log q_ic)``.
    Zero iff the two distributions agree (logits may differ by a per-row constant), positive
    otherwise; symmetric in its arguments, so both orders get the same gradient pull.

    Args:
        logits_ab: ``(B, m)`` logits for ``(a, b)``.
        logits_ba: ``(B, m)`` logits for ``(b, a)``.

    Returns:
        Scalar tensor.
    """
    if logits_ab.shape != logits_ba.shape:
        raise ValueError(f"shape mismatch: {tuple(logits_ab.shape)} vs {tuple(logits_ba.shape)}")
    log_p = torch.log_softmax(logits_ab, dim=-1)
    log_q = torch.log_softmax(logits_ba, dim=-1)
    return 0.5 * ((log_p.exp() - log_q.exp()) * (log_p - log_q)).sum(dim=-1).mean()
