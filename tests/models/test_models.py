import pytest
import torch

from groklab.config import ModelConfig
from groklab.models import MLP, Lazy, Transformer, build_model

P = 7


def pairs(n=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, P, (n, 2), generator=g)


@pytest.mark.parametrize("activation", ["relu", "gelu", "tanh", "quadratic", "poly"])
@pytest.mark.parametrize("parametrization", ["standard", "ntk", "mean_field"])
def test_index_path_equals_one_hot_matmul(activation, parametrization):
    model = MLP(P, P, 16, activation, eps=0.3, parametrization=parametrization, generator=torch.Generator().manual_seed(0))
    x = pairs()
    dense = model.one_hot(x)
    assert dense.shape == (20, 2 * P)
    torch.testing.assert_close(model(x), model(dense))


def test_mlp_against_a_hand_written_forward():
    g = torch.Generator().manual_seed(1)
    model = MLP(P, P, 8, "poly", eps=0.5, parametrization="mean_field", bias=False, generator=g)
    x = pairs(5)
    onehot = torch.zeros(5, 2 * P)
    onehot[torch.arange(5), x[:, 0]] = 1
    onehot[torch.arange(5), P + x[:, 1]] = 1
    h = onehot @ model.W_in.detach() / (2 * P) ** 0.5
    expected = (h + 0.25 * h * h) @ model.W_out.detach() / 8
    torch.testing.assert_close(model(x), expected)


def test_fixed_readout_is_not_a_parameter():
    model = MLP(P, P, 8, train_readout=False, bias=False)
    names = {n for n, _ in model.named_parameters()}
    assert names == {"W_in"}
    assert "W_out" in model.state_dict()


def test_init_scale_multiplies_the_weights():
    a = MLP(P, P, 8, init_scale=1.0, generator=torch.Generator().manual_seed(0))
    b = MLP(P, P, 8, init_scale=3.0, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(b.W_in, 3 * a.W_in)


def _independent_transformer_logits(model: Transformer, x: torch.Tensor) -> torch.Tensor:
    """The model's function written per head with PyTorch's own attention kernel, reading
    only its weights: an implementation independent of both of the model's paths."""
    import torch.nn.functional as F

    h = model.W_E[model.tokens(x)] + model.W_pos
    for block in model.blocks:
        a = block.ln1(h)
        heads = []
        for i in range(block.attn.W_Q.shape[0]):
            q, k, v = (a @ W[i] for W in (block.attn.W_Q, block.attn.W_K, block.attn.W_V))
            heads.append(F.scaled_dot_product_attention(q, k, v, is_causal=True) @ block.attn.W_O[i])
        h = h + sum(heads)
        m = block.mlp
        h = h + torch.relu(block.ln2(h) @ m.W_in + m.b_in) @ m.W_out + m.b_out
    return model.ln_final(h[:, -1]) @ model.W_U


@pytest.mark.parametrize("layernorm, n_layers, op_token", [(False, 1, False), (True, 2, True), (True, 3, False)])
def test_transformer_paths_equal_an_independent_implementation(layernorm, n_layers, op_token):
    model = Transformer(P, P, d_model=16, n_heads=2, d_mlp=32, n_layers=n_layers, layernorm=layernorm, op_token=op_token,
                        generator=torch.Generator().manual_seed(0))
    x = pairs()  # 20 pairs >= P operands: the shared-prefix path
    expected = _independent_transformer_logits(model, x)
    cache = {}
    explicit = model(x, cache)
    torch.testing.assert_close(explicit, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model(x), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model(x[:3]), expected[:3], atol=1e-5, rtol=1e-5)  # small batch: explicit path
    n_ctx = 4 if op_token else 3
    pattern = cache["blocks.0.attn.pattern"]
    assert pattern.shape == (20, 2, n_ctx, n_ctx)
    # causal: nothing attends to the future, rows sum to one
    assert torch.all(pattern.triu(1) == 0)
    torch.testing.assert_close(pattern.sum(-1), torch.ones(20, 2, n_ctx))
    assert cache["embed"].shape == (20, n_ctx, 16)


def test_transformer_shared_prefix_gradients_equal_the_explicit_path():
    model = Transformer(P, P, d_model=16, n_heads=2, d_mlp=32, n_layers=2, layernorm=True, op_token=True,
                        generator=torch.Generator().manual_seed(1))
    x, y = pairs(30, seed=2), torch.randint(0, P, (30,), generator=torch.Generator().manual_seed(3))
    grads = []
    for cache in (None, {}):
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(x, cache), y).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], atol=1e-5, rtol=1e-4, msg=name)


def test_transformer_tokens():
    model = Transformer(P, P, d_model=8, n_heads=2, d_mlp=8, op_token=True)
    assert model.tokens(torch.tensor([[3, 5]])).tolist() == [[3, P, 5, P + 1]]


def test_lazy_centres_scales_and_hides_the_initial_copy():
    torch.manual_seed(0)
    net = MLP(P, P, 16)
    lazy = Lazy(net, alpha=3.0, centre=True)
    x = pairs()
    torch.testing.assert_close(lazy(x), torch.zeros(20, P))  # centred at init
    # gradients flow to the live network only, scaled by alpha
    lazy(x)[:, 0].sum().backward()
    g_lazy = net.W_out.grad.clone()
    net.zero_grad()
    net(x)[:, 0].sum().backward()
    torch.testing.assert_close(g_lazy, 3.0 * net.W_out.grad)
    assert {n for n, _ in lazy.named_parameters()} == {f"net.{n}" for n, _ in net.named_parameters()}
    with torch.no_grad():
        net.W_out.add_(0.1)
    expected = 3.0 * (net(x) - lazy.net_0(x))
    torch.testing.assert_close(lazy(x), expected)
    assert not torch.allclose(net(x), lazy.net_0(x))


def test_build_model_wraps_only_when_needed():
    from groklab.config import TaskConfig
    from groklab.tasks import build_task

    data = build_task(TaskConfig(p=P), seed=0)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    assert isinstance(build_model(ModelConfig(), data, g()), MLP)
    assert isinstance(build_model(ModelConfig(alpha=2.0), data, g()), Lazy)
    assert isinstance(build_model(ModelConfig(centre=True), data, g()), Lazy)
    assert isinstance(build_model(ModelConfig(name="transformer", d_model=8, n_heads=2), data, g()), Transformer)
    # same seed -> same weights
    torch.testing.assert_close(build_model(ModelConfig(), data, g()).W_in, build_model(ModelConfig(), data, g()).W_in)


def test_dense_deep_mlp_against_a_hand_written_forward():
    g = torch.Generator().manual_seed(0)
    for parametrization in ("standard", "ntk"):
        model = MLP(None, 3, 8, "relu", d_in=5, depth=3, parametrization=parametrization, generator=g)
        names = [n for n, _ in model.named_parameters()]
        assert {"W_in", "b_in", "W_mid.0", "b_mid.0", "W_mid.1", "b_mid.1", "W_out", "b_out"} == set(names)
        x = torch.randn(4, 5, generator=g)
        m_in, m_mid, m_out = (1.0, 1.0, 1.0) if parametrization == "standard" else (5**-0.5, 8**-0.5, 8**-0.5)
        h = torch.relu(x @ model.W_in * m_in + model.b_in)
        for W, b in zip(model.W_mid, model.b_mid):
            h = torch.relu(h @ W * m_mid + b)
        cache = {}
        torch.testing.assert_close(model(x, cache), h @ model.W_out * m_out + model.b_out)
        assert torch.equal(cache["hidden"], cache["hidden.2"]) and cache["hidden.0"].shape == (4, 8)


def test_depth_one_keeps_the_old_weights_and_names():
    a = MLP(P, P, 8, generator=torch.Generator().manual_seed(0))
    b = MLP(P, P, 8, generator=torch.Generator().manual_seed(0), depth=1)
    assert list(a.state_dict()) == ["W_in", "b_in", "W_out", "b_out"]
    for k in a.state_dict():
        assert torch.equal(a.state_dict()[k], b.state_dict()[k])
    deep = MLP(P, P, 8, generator=torch.Generator().manual_seed(0), depth=2)
    assert torch.equal(deep.W_in, a.W_in)  # drawn first either way


def test_lazy_deep_mlp_centres_at_init():
    net = MLP(None, 2, 8, d_in=3, depth=2)
    lazy = Lazy(net, 4.0, centre=True)
    x = torch.randn(5, 3)
    assert torch.allclose(lazy(x), torch.zeros(5, 2))
    with torch.no_grad():
        net.W_mid[0].add_(0.1)
    torch.testing.assert_close(lazy(x), 4.0 * (net(x) - lazy.net_0(x)))
    assert "net_0.W_mid.0" in dict(lazy.named_buffers())
