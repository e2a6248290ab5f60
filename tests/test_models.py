"""Models: end-to-end gradient checks (float64) of whole models with their objectives,
the VAE's sampler, the contractive penalties against brute force, tied weights, builders."""
import json

import numpy as np
import pytest

from tinyae import models, nn
from tinyae.gradcheck import check_scalar_function
from tinyae.losses import (ContractivePenalty, KLSparsityPenalty, L1ActivityPenalty,
                           StochasticContractivePenalty, activation_derivatives)
from tinyae.models import AutoEncoder, ContractiveAutoEncoder, TiedLinear, build
from tinyae.nn import Flatten, Linear, Reshape, Sequential, Sigmoid, Tanh

TOL = 1e-6


def model_gradcheck(model, x, check_input=True, mode="auto", **loss_kwargs):
    """Check d(model.loss(x)[0]) / d(every parameter) — and / dx with the target held fixed —
    against central differences, in float64.  ``loss_kwargs`` fix the model's noise."""
    model.double().train()
    x = np.array(x, dtype=np.float64)
    target = x.copy()

    def f():
        return float(model.loss(x, target, **loss_kwargs)[0])

    model.zero_grad()
    model.loss(x, target, **loss_kwargs)
    dx = model.backward_loss(need_dx=check_input)
    arrays = {n: p.data for n, p in model.named_parameters()}
    analytic = {n: p.grad.copy() for n, p in model.named_parameters()}
    if check_input:
        arrays["x"], analytic["x"] = x, dx
    return check_scalar_function(f, arrays, analytic, mode=mode, tol=TOL, name=type(model).__name__)


@pytest.fixture
def x12():
    return np.random.default_rng(0).uniform(0.05, 0.95, size=(5, 12))


# -- end-to-end gradient checks -------------------------------------------------------------
@pytest.mark.parametrize("loss", ["mse", "bce"])
def test_gradcheck_autoencoder(x12, loss):
    model_gradcheck(build("mlp-ae", sizes=[12, 6, 3], activation="tanh", loss=loss), x12)


@pytest.mark.parametrize("loss,beta", [("mse", 1.0), ("bce", 0.5)])
def test_gradcheck_vae_with_fixed_noise(x12, loss, beta):
    model = build("mlp-vae", sizes=[12, 6, 3], activation="tanh", loss=loss, beta=beta)
    eps = np.random.default_rng(1).standard_normal((5, 3))
    model_gradcheck(model, x12, eps=eps)


def test_gradcheck_vae_module_backward(x12):
    """backward(dx̂, dμ, dℓ) of forward's three outputs (the plain Module contract)."""
    from tinyae.gradcheck import check_module
    model = build("mlp-vae", sizes=[12, 6, 3], activation="tanh", loss="mse")
    eps = np.random.default_rng(1).standard_normal((5, 3))

    class Fixed(models.Model):           # forward with ε held fixed
        def __init__(self, vae):
            super().__init__()
            self.vae = vae

        def forward(self, x):
            return self.vae(x, eps=eps)

        def backward(self, *d, need_dx=True):
            return self.vae.backward(*d, need_dx=need_dx)

    assert check_module(Fixed(model), x12, tol=TOL) <= TOL


@pytest.mark.parametrize("corruption,noise", [
    (["mask", 0.3], lambda rng: (rng.random((5, 12)) >= 0.3).astype(np.float64)),
    (["gaussian", 0.2], lambda rng: rng.standard_normal((5, 12))),
])
def test_gradcheck_denoising_with_fixed_corruption(x12, corruption, noise):
    model = build("mlp-ae", sizes=[12, 6, 3], activation="tanh", corruption=corruption)
    model_gradcheck(model, x12, check_input=False, noise=noise(np.random.default_rng(2)))


@pytest.mark.parametrize("penalty", [["l1", 0.05], ["kl", 0.1, 2.0]])
def test_gradcheck_sparse(x12, penalty):
    model_gradcheck(build("sparse-ae", in_features=12, hidden=5, penalty=penalty), x12)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu", "leaky_relu"])
def test_gradcheck_contractive_exact(x12, activation):
    model = build("contractive-ae", sizes=[12, 5], activation=activation, lam=0.5, loss="mse",
                  negative_slope=0.2)
    model_gradcheck(model, x12)


def test_gradcheck_contractive_stochastic_deep(x12):
    model = build("contractive-ae", sizes=[12, 6, 4], activation="tanh", lam=0.5, mode="stochastic",
                  sigma=0.1, n_samples=2, loss="mse")
    eps = np.random.default_rng(3).standard_normal((2, 5, 12))
    model_gradcheck(model, x12, eps=eps)


@pytest.mark.parametrize("builder,kwargs", [
    ("mlp-ae", dict(sizes=[12, 6, 3], activation="tanh", tied=True)),
    ("linear-ae", dict(in_features=12, latent=3, tied=True, bias=True)),
])
def test_gradcheck_tied_weights(x12, builder, kwargs):
    model_gradcheck(build(builder, **kwargs), x12)


def _small_conv_ae(seed=0):
    """A convolutional AE on 1×8×8 images: conv 3@3×3 same, pool, dense | dense, up, conv."""
    from tinyae.nn.conv import Conv2d
    from tinyae.nn.pooling import MaxPool2d, Upsample
    rng = np.random.default_rng(seed)
    enc = Sequential(Conv2d(1, 3, 3, padding="same", rng=rng), Tanh(), MaxPool2d(2), Flatten(),
                     Linear(3 * 4 * 4, 5, rng=rng))
    dec = Sequential(Linear(5, 2 * 4 * 4, rng=rng), Tanh(), Reshape(2, 4, 4), Upsample(2),
                     Conv2d(2, 2, 4, padding="same", rng=rng), Tanh(), Conv2d(2, 1, 3, padding=1, rng=rng))
    return AutoEncoder(enc, dec)


def test_gradcheck_small_conv_autoencoder():
    x = np.random.default_rng(4).uniform(0, 1, size=(2, 1, 8, 8))
    model_gradcheck(_small_conv_ae(), x, mode="full")


@pytest.mark.parametrize("activation,seed", [("relu", 1), ("tanh", 0)])
def test_gradcheck_conv_ae_builder_directional(activation, seed):
    """The real conv-ae architecture (28×28, all layers), directional derivatives, batch 2.
    (With ReLU a random direction can push a unit across its kink within ±ε: seed 0 does,
    by 0.7% on one direction; seed 1 does not.  Tanh has no kinks.)"""
    model = build("conv-ae", activation=activation, seed=seed)
    x = np.random.default_rng(5).uniform(0, 1, size=(2, 1, 28, 28))
    model_gradcheck(model, x, mode="directional")


def test_gradcheck_dense_vae_builder_directional():
    model = build("vae-196-64-16", latent=3, seed=0)
    x = np.random.default_rng(6).uniform(-1, 1, size=(3, 196))
    model_gradcheck(model, x, mode="directional", eps=np.random.default_rng(7).standard_normal((3, 3)))


# -- the VAE --------------------------------------------------------------------------------
def test_vae_sampler_and_kl_use_the_same_parameterisation():
    vae = build("mlp-vae", sizes=[12, 6, 3], activation="tanh", loss="mse").double()
    mean = np.array([[0.5, -1.0, 2.0]])
    logvar = np.array([[0.0, np.log(4.0), np.log(0.25)]])   # σ = 1, 2, 0.5
    eps = np.array([[1.0, 1.0, -2.0]])
    z = vae.reparameterize(mean, logvar, eps)
    np.testing.assert_allclose(z, [[1.5, 1.0, 1.0]])   # μ + σ ε
    # many samples: the empirical variance of z is e^ℓ, the variance the KL term assumes
    vae.rng = np.random.default_rng(0)
    zs = np.stack([vae.reparameterize(mean, logvar) for _ in range(20000)])
    np.testing.assert_allclose(zs.mean(axis=0), mean, atol=0.05)
    np.testing.assert_allclose(zs.var(axis=0), np.exp(logvar), rtol=0.05)


def test_vae_encode_modes_and_forward():
    vae = build("vae-196-64-16", latent=3, seed=1)
    x = np.random.default_rng(0).uniform(-1, 1, size=(4, 196)).astype(np.float32)
    mean, logvar = vae.encode(x)
    assert mean.shape == logvar.shape == (4, 3) and mean.dtype == np.float32
    np.testing.assert_array_equal(vae.encode(x, "deterministic"), mean)
    eps = np.ones((4, 3), np.float32)
    np.testing.assert_allclose(vae.encode(x, "sampled", eps=eps), mean + np.exp(0.5 * logvar), rtol=1e-6)
    x_hat, m2, l2 = vae(x)
    assert x_hat.shape == x.shape and np.all(np.abs(x_hat) <= 1)
    with pytest.raises(ValueError, match="mode"):
        vae.encode(x, "bogus")
    assert vae.sample(5).shape == (5, 196)


def test_vae_loss_parts_and_beta():
    x = np.random.default_rng(0).uniform(-1, 1, size=(4, 196))
    eps = np.random.default_rng(1).standard_normal((4, 3))
    totals = {}
    for beta in (0.0, 1.0, 4.0):
        vae = build("vae-196-64-16", latent=3, beta=beta, seed=1).double()
        total, parts = vae.loss(x, eps=eps)
        assert set(parts) == {"recon", "kl"} and float(parts["kl"]) > 0
        np.testing.assert_allclose(float(total), float(parts["recon"]) + beta * float(parts["kl"]))
        totals[beta] = float(total)
    assert totals[0.0] < totals[1.0] < totals[4.0]


# -- denoising ------------------------------------------------------------------------------
def test_corruption_applies_in_training_only_and_loss_uses_clean_target():
    model = build("mlp-ae", sizes=[12, 6, 3], activation="tanh", corruption=["mask", 0.5], seed=0).double()
    x = np.random.default_rng(0).uniform(0.1, 1, size=(400, 12))
    xc = model.corrupt(x)
    dropped = np.mean(xc == 0)
    assert 0.45 < dropped < 0.55 and np.all((xc == 0) | (xc == x))
    model.eval()
    assert model.corrupt(x) is x
    model.train()
    mask = np.ones_like(x)
    mask[:, :6] = 0
    _, parts = model.loss(x, noise=mask)
    # the reconstruction of the corrupted input, compared with the clean x
    x_hat = model.decoder(model.encoder(x * mask))
    np.testing.assert_allclose(float(parts["recon"]), np.mean((x_hat - x) ** 2))
    gauss = build("mlp-ae", sizes=[12, 6, 3], corruption=["gaussian", 0.1], seed=0).double()
    assert 0.09 < np.std(gauss.corrupt(x) - x) < 0.11
    with pytest.raises(ValueError, match="corruption"):
        build("mlp-ae", sizes=[12, 6, 3], corruption=["salt", 0.1])


# -- sparse penalties -----------------------------------------------------------------------
def test_sparsity_penalties_values():
    h = np.array([[0.1, 0.5, 0.0], [-0.3, 0.5, 0.2]])
    np.testing.assert_allclose(float(L1ActivityPenalty(0.1)(h)), 0.1 * 1.6 / 2)
    np.testing.assert_allclose(float(L1ActivityPenalty(0.1, reduction="sum")(h)), 0.1 * 1.6)
    p = KLSparsityPenalty(rho=0.2, beta=3.0)
    assert float(p(np.full((4, 3), 0.2))) == pytest.approx(0.0, abs=1e-12)   # ρ̂ = ρ: no penalty
    h = np.array([[0.1, 0.9], [0.3, 0.5]])
    rh = h.mean(0)
    kl = 0.2 * np.log(0.2 / rh) + 0.8 * np.log(0.8 / (1 - rh))
    np.testing.assert_allclose(float(p(h)), 3.0 * kl.sum())
    np.testing.assert_allclose(float(KLSparsityPenalty(0.2, 3.0, reduction="sum")(h)), 2 * 3.0 * kl.sum())
    assert np.isfinite(float(p(np.zeros((2, 2)))))                          # dead units: finite


# -- contractive ----------------------------------------------------------------------------
def _brute_jacobian_norm2(f, x, delta=1e-6):
    """Σ_n ‖∂h(x_n)/∂x_n‖²_F by central differences of h, one input coordinate at a time."""
    total = 0.0
    for i in range(x.shape[1]):
        e = np.zeros_like(x)
        e[:, i] = delta
        col = (f(x + e) - f(x - e)) / (2 * delta)       # (N, H): column i of every J_n
        total += np.sum(col ** 2)
    return total


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu", "leaky_relu", "identity"])
def test_contractive_exact_penalty_is_the_jacobian_norm(activation):
    model = build("contractive-ae", sizes=[7, 4], activation=activation, lam=1.0, loss="mse",
                  negative_slope=0.2, seed=2).double()
    x = np.random.default_rng(0).uniform(-1, 1, size=(6, 7))
    _, parts = model.loss(x)
    brute = _brute_jacobian_norm2(model.encoder, x) / 6
    np.testing.assert_allclose(float(parts["contractive"]), brute, rtol=1e-7)


def test_activation_derivatives_match_finite_differences():
    a = np.linspace(-3, 3, 13) + 0.01
    for act, f in [("sigmoid", lambda t: 1 / (1 + np.exp(-t))), ("tanh", np.tanh)]:
        d1, d2 = activation_derivatives(a, act)
        h = 1e-5
        np.testing.assert_allclose(d1, (f(a + h) - f(a - h)) / (2 * h), rtol=1e-7)
        np.testing.assert_allclose(d2, (f(a + h) - 2 * f(a) + f(a - h)) / h ** 2, rtol=1e-3, atol=1e-6)
    with pytest.raises(ValueError):
        activation_derivatives(a, "softsign")


def test_contractive_penalty_asks_the_activation_layer_for_its_derivatives():
    """An activation layer or its name: the same penalty and gradients; a layer without
    derivatives(a) is refused by name."""
    rng = np.random.default_rng(4)
    a, W = rng.uniform(-2, 2, size=(5, 3)), rng.standard_normal((3, 6))
    for layer, name in [(nn.LeakyReLU(0.3), "leaky_relu"), (nn.Tanh(), "tanh"), (nn.Sigmoid(), "sigmoid")]:
        by_layer = ContractivePenalty(0.7, layer)
        by_name = ContractivePenalty(0.7, name, negative_slope=0.3)
        assert by_layer.act is layer and by_layer.activation == name
        assert float(by_layer(a, W)) == float(by_name(a, W))
        for g_layer, g_name in zip(by_layer.backward(), by_name.backward()):
            np.testing.assert_array_equal(g_layer, g_name)
    with pytest.raises(TypeError, match=r"ContractivePenalty: the activation Linear.*no derivatives\(a\) method"):
        ContractivePenalty(0.1, nn.Linear(2, 2))


def test_stochastic_contractive_estimate_is_unbiased_for_a_linear_encoder():
    """h = Wx + b: every draw gives ‖Wε‖², whose mean is ‖W‖²_F and variance 2‖WᵀW‖²_F."""
    rng = np.random.default_rng(0)
    W = rng.standard_normal((4, 7))
    x = rng.standard_normal((1, 7))
    K = 20000
    eps = rng.standard_normal((K, 1, 7))
    sigma = 0.3                                      # any σ: the encoder is linear
    est = StochasticContractivePenalty(lam=1.0, sigma=sigma)
    h0, hk = x @ W.T, (x + sigma * eps) @ W.T
    per_draw = np.sum((hk - h0) ** 2, axis=(1, 2)) / sigma ** 2
    np.testing.assert_allclose(float(est(h0, hk)), per_draw.mean())
    exact = np.sum(W ** 2)
    var = 2 * np.sum((W.T @ W) ** 2)
    assert abs(per_draw.mean() - exact) < 4 * np.sqrt(var / K)
    np.testing.assert_allclose(per_draw.var(), var, rtol=0.1)


def test_stochastic_contractive_matches_exact_for_small_sigma():
    """A curved (tanh) encoder: bias O(σ²) + noise O(1/√(KN)); both small here."""
    exact = build("contractive-ae", sizes=[10, 6], activation="tanh", lam=1.0, loss="mse", seed=3).double()
    stoch = build("contractive-ae", sizes=[10, 6], activation="tanh", lam=1.0, loss="mse", seed=3,
                  mode="stochastic", sigma=0.01, n_samples=400).double()
    x = np.random.default_rng(1).uniform(-1, 1, size=(20, 10))
    pe = float(exact.loss(x)[1]["contractive"])
    ps = float(stoch.loss(x)[1]["contractive"])
    assert abs(ps - pe) / pe < 0.03


def test_contractive_exact_needs_one_layer():
    with pytest.raises(ValueError, match="one-layer encoder"):
        build("contractive-ae", sizes=[10, 6, 4], mode="exact")
    with pytest.raises(ValueError, match="mode"):
        build("contractive-ae", sizes=[10, 6], mode="approximate")


def test_contractive_penalty_shapes_checked():
    with pytest.raises(ValueError, match="expected a"):
        ContractivePenalty()(np.zeros((3, 4)), np.zeros((5, 2)))


# -- tied weights ---------------------------------------------------------------------------
def test_tied_weights_share_one_parameter_and_sum_gradients():
    tied = build("linear-ae", in_features=6, latent=2, bias=True, tied=True, seed=0).double()
    names = [n for n, _ in tied.named_parameters()]
    assert names == ["encoder.0.weight", "encoder.0.bias", "decoder.0.bias"]
    assert tied.decoder[0].weight is tied.encoder[0].weight
    W = tied.encoder[0].weight.data.copy()
    # the same model untied, with decoder weight Wᵀ: the tied grad is the sum of both grads
    untied = build("linear-ae", in_features=6, latent=2, bias=True, seed=0).double()
    untied.encoder[0].weight.data[...] = W
    untied.encoder[0].bias.data[...] = tied.encoder[0].bias.data
    untied.decoder[0].weight.data[...] = W.T
    untied.decoder[0].bias.data[...] = tied.decoder[0].bias.data
    x = np.random.default_rng(0).standard_normal((5, 6))
    for m in (tied, untied):
        m.zero_grad()
        m.loss(x)
        m.backward_loss()
    np.testing.assert_allclose(float(tied.loss(x)[0]), float(untied.loss(x)[0]))
    np.testing.assert_allclose(tied.encoder[0].weight.grad,
                               untied.encoder[0].weight.grad + untied.decoder[0].weight.grad.T, rtol=1e-12)
    with pytest.raises(TypeError):
        TiedLinear(Sigmoid())


# -- builders -------------------------------------------------------------------------------
INPUTS = {"dense-196-64-16": (3, 196), "vae-196-64-16": (3, 196), "ae-784-32": (3, 784),
          "ae-784-250-16": (3, 784), "conv-ae": (2, 1, 28, 28), "vae-784-400-20": (3, 784),
          "linear-ae": (3, 784), "sparse-ae": (3, 784), "contractive-ae": (3, 784),
          "mlp-ae": (3, 784), "mlp-vae": (3, 784), "vae-784-64-2-keras": (3, 784),
          "conv-ae-transposed": (2, 1, 28, 28), "conv-ae-unpool": (2, 1, 28, 28),
          "conv-ae-upsample": (2, 1, 28, 28)}
PARTS = {"vae-196-64-16": {"recon", "kl"}, "vae-784-400-20": {"recon", "kl"}, "mlp-vae": {"recon", "kl"},
         "vae-784-64-2-keras": {"recon", "kl"},
         "sparse-ae": {"recon", "sparsity"}, "contractive-ae": {"recon", "contractive"}}


def test_every_builder_is_covered():
    assert set(models.available()) == set(INPUTS)


@pytest.mark.parametrize("name", sorted(INPUTS))
def test_builders_shapes_dtype_and_record(name):
    model = build(name, seed=3)
    assert model.builder == (name, {"seed": 3})
    x = np.random.default_rng(0).uniform(0, 1, size=INPUTS[name]).astype(np.float32)
    out = model(x)
    out = out[0] if isinstance(out, tuple) else out
    assert out.shape == x.shape and out.dtype == np.float32
    total, parts = model.loss(x)
    assert total.dtype == np.float32 and np.isfinite(float(total))
    assert set(parts) == PARTS.get(name, {"recon"})
    model.zero_grad()
    model.backward_loss()
    assert all(p.grad.dtype == np.float32 and np.all(np.isfinite(p.grad)) for p in model.parameters())
    # the same seed builds the same weights
    again = build(name, seed=3)
    for (n1, a), (n2, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert n1 == n2 and np.array_equal(a, b)


def test_builder_parameter_counts():
    # PyTorch examples/vae: 784·400+400 + 2(400·20+20) + 20·400+400 + 400·784+784
    assert build("vae-784-400-20").num_parameters() == 652824
    assert build("ae-784-32").num_parameters() == 784 * 32 + 32 + 32 * 784 + 784
    assert build("dense-196-64-16", latent=3).num_parameters() == (
        196 * 64 + 64 + 64 * 16 + 16 + 16 * 3 + 3 + 3 * 16 + 16 + 16 * 64 + 64 + 64 * 196 + 196)


def test_conv_ae_shapes_through_the_layers():
    model = build("conv-ae")
    x = np.zeros((1, 1, 28, 28), np.float32)
    shapes = []
    for m in list(model.encoder) + list(model.decoder):
        x = m(x)
        shapes.append(tuple(x.shape[1:]))
    assert shapes[2] == (4, 14, 14) and shapes[5] == (8, 7, 7) and shapes[6] == (392,)
    assert shapes[9] == (16,)
    assert shapes[-1] == (1, 28, 28) and (16, 7, 7) in shapes and (4, 28, 28) in shapes


def test_build_errors():
    with pytest.raises(KeyError, match="unknown model builder"):
        build("resnet-50")
    with pytest.raises(TypeError, match="JSON"):
        build("mlp-ae", seed=np.random.default_rng(0))
    kw = json.loads(json.dumps({"corruption": ("mask", 0.2)}))
    assert build("mlp-ae", sizes=[4, 2], corruption=("mask", 0.2)).builder == ("mlp-ae", {"sizes": [4, 2], **kw})


def test_any_sequential_works_and_logits_output():
    """A hand-assembled AE; with BCEWithLogitsLoss forward returns probabilities."""
    from tinyae.losses import BCEWithLogitsLoss
    rng = np.random.default_rng(0)
    ae = AutoEncoder(Sequential(Linear(6, 3, rng=rng), Tanh()), Sequential(Linear(3, 6, rng=rng)),
                     loss=BCEWithLogitsLoss())
    x = rng.uniform(0, 1, size=(4, 6)).astype(np.float32)
    y = ae(x)
    assert np.all((y > 0) & (y < 1))
    np.testing.assert_allclose(y, 1 / (1 + np.exp(-ae.decoder(ae.encoder(x)))), rtol=1e-6)
    assert ae.builder is None
    from tinyae.gradcheck import check_module
    assert check_module(ae, x, tol=TOL) <= TOL
    cae = ContractiveAutoEncoder(Linear(6, 3, rng=rng), Sequential(Linear(3, 6, rng=rng)), lam=0.3)
    model_gradcheck(cae, x)


@pytest.mark.parametrize("name, kwargs, shape", [
    ("dense-196-64-16", {}, (4, 196)),
    ("vae-196-64-16", {}, (4, 196)),
    ("conv-ae", {}, (2, 1, 28, 28)),
    ("linear-ae", {"in_features": 12, "latent": 3, "tied": True}, (4, 12)),
    ("sparse-ae", {"in_features": 12, "hidden": 5}, (4, 12)),
    ("contractive-ae", {"sizes": (12, 5)}, (4, 12)),
    ("contractive-ae", {"sizes": (12, 6, 3), "mode": "stochastic"}, (4, 12)),
])
def test_models_skip_the_input_gradient_by_default(name, kwargs, shape):
    """A model's input is data: backward_loss returns None unless asked for dL/dx, and the
    parameter gradients are the same either way."""
    x = np.random.default_rng(0).uniform(0.05, 0.95, shape)
    noise = {}
    if "vae" in name:
        noise = {"eps": np.random.default_rng(1).standard_normal((shape[0], 3))}
    if kwargs.get("mode") == "stochastic":
        noise = {"eps": np.random.default_rng(1).standard_normal((1,) + shape)}
    grads, dxs = [], []
    for need_dx in (False, True):
        model = build(name, **kwargs).double()
        model.zero_grad()
        model.loss(x, **noise)
        dxs.append(model.backward_loss(need_dx=need_dx) if need_dx else model.backward_loss())
        grads.append({n: p.grad.copy() for n, p in model.named_parameters()})
    assert dxs[0] is None and dxs[1].shape == x.shape
    for n in grads[0]:
        np.testing.assert_array_equal(grads[0][n], grads[1][n], err_msg=n)
