"""Each intervention on its own: config, hooks, and the numbers they claim to produce."""

import pytest
import torch

from groklab.config import Config, apply_overrides
from groklab.errors import GroklabError
from groklab.interventions.abelian import AbelianConfig
from groklab.interventions.barlow import BarlowConfig
from groklab.interventions.grokfast import GrokfastConfig
from groklab.interventions.mi import MIConfig
from groklab.interventions.perturb import PerturbConfig
from groklab.interventions import (
    AbelianRegulariser,
    BarlowTwins,
    Grokfast,
    Interventions,
    MIRegulariser,
    Perturb,
    barlow_twins_loss,
    build_interventions,
    perturb_sigma,
    swap_operands,
)
from groklab.metrics.group_laws import abelian_loss
from groklab.metrics.matrix_info import mutual_information
from groklab.models import MLP, Transformer
from groklab.models.laziness import Lazy

P = 7


def _mlp(seed=0, width=16, init_scale=1.0):
    return MLP(P, P, width, init_scale=init_scale, generator=torch.Generator().manual_seed(seed))


def _f(t: torch.Tensor) -> float:
    return float(t.detach())


def _pairs(n=20, seed=0):
    return torch.randint(0, P, (n, 2), generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------- config


def test_interventions_are_off_by_default_and_build_to_nothing():
    config = Config()
    # the built-in blocks (tests/extensions registers one more in the same session)
    assert {"perturb", "mi", "abelian", "barlow", "grokfast"} <= set(config.model_dump()["interventions"])
    assert not any(block.on for block in config.interventions.blocks().values())
    assert len(build_interventions(config, _mlp(), torch.device("cpu"))) == 0


def test_dotted_overrides_turn_interventions_on_and_compose():
    config = apply_overrides(
        Config(),
        [
            "interventions.perturb.lambda1=0.5",
            "interventions.perturb.lambda2=0.01",
            "interventions.mi.weight=0.1",
            "interventions.abelian.weight=1",
            "interventions.barlow.weight=0.1",
            "interventions.grokfast.filter=ma",
            "interventions.grokfast.window=10",
        ],
    )
    assert config.interventions.perturb.lambda1 == 0.5 and config.interventions.grokfast.window == 10
    built = build_interventions(config, _mlp(), torch.device("cpu"))
    assert [it.name for it in built] == ["perturb", "mi", "abelian", "barlow", "grokfast"]
    assert Config.from_json(config.to_json()) == config


@pytest.mark.parametrize(
    "override, message",
    [
        ("interventions.perturb.lambda1=-1", "interventions.perturb.lambda1"),
        ("interventions.grokfast.filter=fast", "interventions.grokfast.filter"),
        ("interventions.grokfast.alpha=1", "interventions.grokfast.alpha"),
        ("interventions.abelian.wieght=1", "unknown config key"),
    ],
)
def test_bad_intervention_settings_are_rejected(override, message):
    with pytest.raises(GroklabError, match=message):
        Config().override(override)


def test_the_transformer_cannot_be_perturbed():
    with pytest.raises(GroklabError, match="interventions.perturb perturbs.*model.name='transformer' does not have"):
        Config().override("model.name=transformer", "interventions.perturb.lambda2=0.1")
    with pytest.raises(GroklabError, match="view='swap'"):
        Config().override("model.name=transformer", "interventions.barlow.weight=0.1")
    Config().override("model.name=transformer", "interventions.barlow.weight=0.1", "interventions.barlow.view=swap")


def test_an_unknown_barlow_layer_fails_before_training():
    config = Config().override("interventions.barlow.weight=0.1", "interventions.barlow.layer=nope")
    with pytest.raises(GroklabError, match="interventions.barlow.layer.*hidden"):
        build_interventions(config, _mlp(), torch.device("cpu"))


# ----------------------------------------------------------------------------- perturbation


@pytest.mark.parametrize("train_acc", [0.0, 0.3, 0.9, 1.0])
def test_sigma_follows_the_latest_train_accuracy(train_acc):
    perturb = Perturb(PerturbConfig(lambda1=0.8, lambda2=0.05), torch.Generator())
    columns = perturb.on_evaluate({"train_acc": train_acc})
    assert perturb.sigma == max(0.8 * (1 - train_acc), 0.05) == perturb_sigma(0.8, 0.05, train_acc)
    assert columns == {"perturb.sigma": perturb.sigma}


def test_perturbation_feeds_one_hot_plus_sigma_noise_from_its_generator():
    model, pairs = _mlp(), _pairs()
    perturb = Perturb(PerturbConfig(lambda2=0.3), torch.Generator().manual_seed(5))
    x, y = perturb.transform_batch(model, pairs, pairs[:, 0])
    expected = model.one_hot(pairs) + 0.3 * torch.randn((20, 2 * P), generator=torch.Generator().manual_seed(5))
    assert x.dtype == torch.float32 and x.shape == (20, 2 * P)
    torch.testing.assert_close(x, expected, rtol=0, atol=0)
    assert torch.equal(y, pairs[:, 0])
    # a Lazy-wrapped MLP is perturbed the same way
    lazy = Lazy(model, 2.0, True)
    x2, _ = Perturb(PerturbConfig(lambda2=0.3), torch.Generator().manual_seed(5)).transform_batch(lazy, pairs, None)
    torch.testing.assert_close(x2, expected, rtol=0, atol=0)


def test_zero_sigma_leaves_the_batch_and_the_generator_untouched():
    g = torch.Generator().manual_seed(1)
    before = g.get_state()
    perturb = Perturb(PerturbConfig(lambda1=0.5), g)
    perturb.on_evaluate({"train_acc": 1.0})
    pairs = _pairs()
    x, _ = perturb.transform_batch(_mlp(), pairs, None)
    assert x is pairs and torch.equal(g.get_state(), before)


# ----------------------------------------------------------------------------- abelian loss


def test_swapping_operands_of_pairs_and_of_dense_inputs():
    model, pairs = _mlp(), _pairs()
    assert torch.equal(swap_operands(pairs), pairs[:, [1, 0]])
    assert torch.equal(swap_operands(model.one_hot(pairs)), model.one_hot(pairs[:, [1, 0]]))


def test_abelian_loss_is_zero_for_a_symmetric_model():
    model = _mlp()
    with torch.no_grad():
        model.W_in[P:] = model.W_in[:P]  # f(a, b) = f(b, a) exactly
    pairs = _pairs()
    reg = AbelianRegulariser(AbelianConfig(weight=3.0))
    assert _f(reg.extra_loss(model, pairs, None, model(pairs))) == pytest.approx(0.0, abs=1e-7)


def test_abelian_loss_gradient_pulls_the_two_orders_together():
    model, pairs = _mlp(seed=3, init_scale=4.0), _pairs(40)
    reg = AbelianRegulariser(AbelianConfig(weight=1.0))
    loss = reg.extra_loss(model, pairs, None, model(pairs))
    assert _f(loss) == pytest.approx(_f(abelian_loss(model(pairs), model(pairs[:, [1, 0]]))))
    gap_before = (model(pairs) - model(pairs[:, [1, 0]])).norm()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(20):
        opt.zero_grad()
        reg.extra_loss(model, pairs, None, model(pairs)).backward()
        opt.step()
    assert _f(reg.extra_loss(model, pairs, None, model(pairs))) < 0.2 * _f(loss)
    assert (model(pairs) - model(pairs[:, [1, 0]])).norm() < gap_before


# ----------------------------------------------------------------------------- MI regulariser


def test_mi_term_is_minus_weight_times_matrix_mutual_information():
    model, pairs = _mlp(), _pairs(30)
    reg = MIRegulariser(MIConfig(weight=0.3), torch.Generator())
    logits = model(pairs)
    expected = -0.3 * mutual_information(model.one_hot(pairs), logits)
    torch.testing.assert_close(reg.extra_loss(model, pairs, None, logits), expected)


def test_mi_regularised_steps_raise_the_mutual_information():
    model, pairs = _mlp(seed=1), _pairs(30, seed=2)
    reg = MIRegulariser(MIConfig(weight=1.0), torch.Generator())
    before = -_f(reg.extra_loss(model, pairs, None, model(pairs)))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(30):
        opt.zero_grad()
        reg.extra_loss(model, pairs, None, model(pairs)).backward()
        opt.step()
    assert -_f(reg.extra_loss(model, pairs, None, model(pairs))) > before + 0.05


def test_mi_term_is_skipped_while_the_logits_are_all_zero():
    lazy, pairs = Lazy(_mlp(), 2.0, True), _pairs()  # centred: f - f_0 = 0 at init
    reg = MIRegulariser(MIConfig(weight=1.0), torch.Generator())
    assert reg.extra_loss(lazy, pairs, None, lazy(pairs)) is None


def test_mi_subsamples_large_batches_from_its_generator():
    model, pairs = _mlp(), _pairs(50)
    reg = MIRegulariser(MIConfig(weight=1.0, max_samples=10), torch.Generator().manual_seed(4))
    logits = model(pairs)
    rows = torch.randperm(50, generator=torch.Generator().manual_seed(4))[:10]
    expected = -mutual_information(model.one_hot(pairs)[rows], logits[rows])
    torch.testing.assert_close(reg.extra_loss(model, pairs, None, logits), expected)


# ----------------------------------------------------------------------------- Barlow Twins


def test_barlow_twins_loss_against_a_direct_computation():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(32, 5, generator=g), torch.randn(32, 5, generator=g)
    c = torch.empty(5, 5)
    for i in range(5):
        for j in range(5):
            a = (z1[:, i] - z1[:, i].mean()) / (z1[:, i].var(unbiased=False) + 1e-5).sqrt()
            b = (z2[:, j] - z2[:, j].mean()) / (z2[:, j].var(unbiased=False) + 1e-5).sqrt()
            c[i, j] = (a * b).mean()
    off = sum(c[i, j] ** 2 for i in range(5) for j in range(5) if i != j)
    expected = (sum((1 - c[i, i]) ** 2 for i in range(5)) + 0.1 * off) / 5
    torch.testing.assert_close(barlow_twins_loss(z1, z2, 0.1), expected)
    # identical views with uncorrelated features: C = I, nothing to reduce
    centred = torch.randn(64, 4, generator=g)
    q, _ = torch.linalg.qr(centred - centred.mean(0))  # orthonormal, zero-mean columns
    assert float(barlow_twins_loss(q, q, 1.0)) < 1e-5


def test_barlow_views_noise_on_the_mlp_and_swap_on_the_transformer():
    pairs = _pairs(16)
    mlp_term = BarlowTwins(BarlowConfig(weight=1.0, sigma=0.5), torch.Generator().manual_seed(0))
    value = mlp_term.extra_loss(_mlp(), pairs, None, None)
    assert value.requires_grad and _f(value) > 0
    tf = Transformer(P, P, d_model=8, n_heads=2, d_mlp=16, generator=torch.Generator().manual_seed(0))
    swap_term = BarlowTwins(BarlowConfig(weight=1.0, view="swap"), torch.Generator())
    value = swap_term.extra_loss(tf, pairs, None, None)
    value.backward()
    assert tf.W_E.grad is not None and _f(value) > 0


# ----------------------------------------------------------------------------- Grokfast


def _set_grads(model, grads):
    for p, g in zip(model.parameters(), grads):
        p.grad = g.clone()


def _random_grads(model, seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(p.shape, generator=g) for p in model.parameters()]


def test_grokfast_ema_matches_a_hand_computation_over_three_steps():
    model = _mlp()
    alpha, lamb = 0.9, 2.0
    fast = Grokfast(GrokfastConfig(filter="ema", alpha=alpha, lamb=lamb))
    g1, g2, g3 = (_random_grads(model, s) for s in (1, 2, 3))
    ema = None
    for g in (g1, g2, g3):
        _set_grads(model, g)
        fast.after_backward(model)
        ema = [x.clone() for x in g] if ema is None else [alpha * e + (1 - alpha) * x for e, x in zip(ema, g)]
        for p, x, e in zip(model.parameters(), g, ema):
            torch.testing.assert_close(p.grad, x + lamb * e)
    # step 3 spelled out for the first parameter
    e3 = alpha * (alpha * g1[0] + (1 - alpha) * g2[0]) + (1 - alpha) * g3[0]
    torch.testing.assert_close(next(model.parameters()).grad, g3[0] + lamb * e3)


def test_grokfast_ma_waits_for_a_full_window_then_adds_the_window_mean():
    model = _mlp()
    fast = Grokfast(GrokfastConfig(filter="ma", window=2, lamb=5.0))
    g1, g2, g3 = (_random_grads(model, s) for s in (1, 2, 3))
    _set_grads(model, g1)
    fast.after_backward(model)
    assert all(torch.equal(p.grad, x) for p, x in zip(model.parameters(), g1))  # warm-up
    for prev, g in ((g1, g2), (g2, g3)):
        _set_grads(model, g)
        fast.after_backward(model)
        for p, a, b in zip(model.parameters(), prev, g):
            torch.testing.assert_close(p.grad, b + 5.0 * (a + b) / 2)


def test_grokfast_state_round_trips():
    model = _mlp()
    fast = Grokfast(GrokfastConfig(filter="ma", window=3))
    for s in (1, 2):
        _set_grads(model, _random_grads(model, s))
        fast.after_backward(model)
    tensors, meta = fast.state()
    other = Grokfast(GrokfastConfig(filter="ma", window=3))
    other.load_state(tensors, meta)
    g = _random_grads(model, 3)
    _set_grads(model, g)
    fast.after_backward(model)
    expected = [p.grad.clone() for p in model.parameters()]
    _set_grads(model, g)
    other.after_backward(model)
    assert all(torch.equal(p.grad, e) for p, e in zip(model.parameters(), expected))


# ----------------------------------------------------------------------------- composition


def test_composite_chains_batches_adds_losses_and_prefixes_state():
    model, pairs = _mlp(), _pairs()
    both = Interventions(
        [
            Perturb(PerturbConfig(lambda2=0.1), torch.Generator().manual_seed(0)),
            AbelianRegulariser(AbelianConfig(weight=2.0)),
            MIRegulariser(MIConfig(weight=0.5), torch.Generator()),
        ]
    )
    x, _ = both.transform_batch(model, pairs, None)
    assert x.dtype == torch.float32
    logits = model(x)
    expected = 2.0 * abelian_loss(logits, model(swap_operands(x))) - 0.5 * mutual_information(x, logits)
    torch.testing.assert_close(both.extra_loss(model, x, None, logits), expected)
    tensors, meta = both.state()
    assert set(tensors) == {"interventions.perturb.generator", "interventions.mi.generator"}
    assert meta["perturb"] == {"train_acc": 0.0}
    assert Interventions().extra_loss(model, pairs, None, model(pairs)) is None
