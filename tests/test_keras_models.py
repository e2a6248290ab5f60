"""tinyae.models.keras: Keras's clipped BCE, Keras's Adam and the Keras blog's VAE-2D, checked
by float64 gradient checks, against the tutorial's formulas written in PyTorch autograd, and
against Keras itself where it is installed (KERAS_BACKEND=torch)."""
import os

import numpy as np
import pytest

from tinyae.gradcheck import check_loss
from tinyae.models import build
from tinyae.models.keras import EPSILON, KerasAdam, KerasBCELoss, KerasVAE
from tinyae.nn import Linear, Parameter, ReLU, Sequential, Sigmoid, Tanh

from test_models import model_gradcheck

torch = pytest.importorskip("torch")


def keras_or_skip():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    if os.environ["KERAS_BACKEND"] != "torch":
        pytest.skip("these checks run Keras on the PyTorch backend")
    return pytest.importorskip("keras")


# -- KerasBCELoss ---------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_keras_bce_gradcheck_float64(reduction):
    rng = np.random.default_rng(0)
    p = rng.uniform(0.05, 0.95, size=(4, 7))
    t = rng.uniform(0, 1, size=(4, 7))
    check_loss(KerasBCELoss(reduction), p, t)


def test_keras_bce_clips_value_and_gradient_like_torch_clip():
    """The tutorial's loss in PyTorch autograd: F.binary_cross_entropy(clip(p, ε, 1 − ε), t)."""
    p = np.array([[0.0, 1e-9, 1e-7, 0.3, 1 - 1e-9, 1.0], [0.5, 0.999, 2e-7, 0.01, 0.9, 0.7]])
    t = np.array([[1.0, 1.0, 0.0, 0.2, 0.0, 1.0], [0.5, 1.0, 1.0, 0.0, 0.3, 0.0]])
    loss = KerasBCELoss()
    ours = float(loss(p, t))
    grad = loss.backward()
    tp = torch.tensor(p, requires_grad=True)
    ref = torch.nn.functional.binary_cross_entropy(torch.clip(tp, EPSILON, 1 - EPSILON), torch.tensor(t))
    ref.backward()
    assert ours == pytest.approx(ref.item(), rel=1e-12)
    np.testing.assert_allclose(grad, tp.grad.numpy(), rtol=1e-10, atol=1e-300)
    assert grad[0, 0] == 0 and grad[0, 1] == 0 and grad[0, 4] == 0 and grad[0, 5] == 0   # clipped
    assert float(KerasBCELoss("sum")(np.zeros((1, 1)), np.ones((1, 1)))) == pytest.approx(-np.log(EPSILON))


def test_keras_bce_matches_keras():
    keras = keras_or_skip()
    rng = np.random.default_rng(1)
    p = rng.uniform(0, 1, size=(6, 784)).astype(np.float32)
    p[0, :10] = 0.0
    p[1, :10] = 1.0
    t = rng.uniform(0, 1, size=(6, 784)).astype(np.float32)
    theirs = float(keras.losses.BinaryCrossentropy()(t, p))
    assert float(KerasBCELoss()(p, t)) == pytest.approx(theirs, rel=1e-6)


# -- KerasAdam ------------------------------------------------------------------------------
def _adam_run(opt_cls, steps=30, **kw):
    rng = np.random.default_rng(2)
    p = Parameter(rng.normal(size=(5, 4)))
    grads = [rng.normal(scale=s, size=(5, 4)) for s in np.geomspace(1.0, 1e-6, steps)]
    opt = opt_cls([p], **kw)
    for g in grads:
        p.grad[...] = g
        opt.step()
    return p.data.copy(), grads, rng


def test_keras_adam_is_pytorch_adam_with_eps_over_sqrt_bias2():
    """θ -= lr√(1−β₂ᵗ)/(1−β₁ᵗ) · m/(√v + ε) is PyTorch's update with ε/√(1−β₂ᵗ): step the
    reference by hand."""
    ours, grads, _ = _adam_run(KerasAdam, lr=0.01)
    rng = np.random.default_rng(2)
    theta = rng.normal(size=(5, 4))
    m, v = np.zeros_like(theta), np.zeros_like(theta)
    for t, g in enumerate(grads, 1):
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        theta = theta - 0.01 * np.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t) * m / (np.sqrt(v) + 1e-7)
    np.testing.assert_allclose(ours, theta, rtol=1e-12)
    pytorch_form, _, _ = _adam_run(__import__("tinyae.optim", fromlist=["Adam"]).Adam, lr=0.01, eps=1e-7)
    assert not np.allclose(pytorch_form, theta, rtol=1e-9)      # the ε placement does show


def test_keras_adam_matches_keras_optimizer():
    keras = keras_or_skip()
    rng = np.random.default_rng(3)
    w0 = rng.normal(size=(6, 3)).astype(np.float32)
    grads = [rng.normal(scale=s, size=(6, 3)).astype(np.float32) for s in np.geomspace(1.0, 1e-5, 25)]
    var = keras.Variable(w0.copy())
    kopt = keras.optimizers.Adam()
    p = Parameter(w0.copy())
    ours = KerasAdam([p])
    for g in grads:
        kopt.apply_gradients([(keras.ops.convert_to_tensor(g), var)])
        p.grad[...] = g
        ours.step()
    np.testing.assert_allclose(p.data, keras.ops.convert_to_numpy(var), rtol=2e-5, atol=1e-7)


# -- KerasVAE -------------------------------------------------------------------------------
def small_vae(parameterisation, seed=0):
    g = np.random.default_rng(seed)
    enc = Sequential(Linear(12, 6, rng=g, init="keras"), Tanh())
    return KerasVAE(enc, Linear(6, 2, rng=g), Linear(6, 2, rng=g),
                    Sequential(Linear(2, 6, rng=g), Tanh(), Linear(6, 12, rng=g), Sigmoid()),
                    parameterisation=parameterisation, rng=seed)


@pytest.mark.parametrize("parameterisation", ["keras", "consistent"])
def test_keras_vae_gradcheck_float64(parameterisation):
    x = np.random.default_rng(4).uniform(0.05, 0.95, size=(5, 12))
    eps = np.random.default_rng(5).standard_normal((5, 2))
    model_gradcheck(small_vae(parameterisation), x, eps=eps)


@pytest.mark.parametrize("parameterisation", ["keras", "consistent"])
def test_keras_vae_builder_gradcheck_float64(parameterisation):
    """The published 784-64-2 net itself, directional derivatives, batch 3."""
    model = build("vae-784-64-2-keras", parameterisation=parameterisation, seed=1)
    x = np.random.default_rng(6).uniform(0.05, 0.95, size=(3, 784))
    eps = np.random.default_rng(7).standard_normal((3, 2))
    model_gradcheck(model, x, check_input=False, mode="directional", eps=eps)


def tutorial_loss_torch(model, x, eps, parameterisation):
    """The blog's VAE loss written in PyTorch autograd from its text, on a float64 copy of
    ``model``'s weights: returns (loss, {name: grad})."""
    params = {n: torch.tensor(np.asarray(p.data, dtype=np.float64), requires_grad=True)
              for n, p in model.named_parameters()}

    def dense(prefix, h):
        return h @ params[f"{prefix}.weight"].T + params[f"{prefix}.bias"]

    xt = torch.tensor(x)
    h = torch.relu(dense("encoder.0", xt))
    z_mean, z_log_sigma = dense("mean_head", h), dense("logvar_head", h)
    e = torch.tensor(eps)
    if parameterisation == "keras":
        z = z_mean + torch.exp(z_log_sigma) * (0.1 * e)            # epsilon ~ N(0, 0.1²)
    else:
        z = z_mean + torch.exp(0.5 * z_log_sigma) * e
    out = torch.sigmoid(dense("decoder.2", torch.relu(dense("decoder.0", z))))
    out = torch.clip(out, EPSILON, 1 - EPSILON)
    recon = torch.nn.functional.binary_cross_entropy(out, xt, reduction="none").mean(dim=-1) * 784
    kl = -0.5 * torch.sum(1 + z_log_sigma - z_mean ** 2 - torch.exp(z_log_sigma), dim=-1)
    loss = torch.mean(recon + kl)
    loss.backward()
    return loss.item(), {n: t.grad.numpy() for n, t in params.items()}


@pytest.mark.parametrize("parameterisation", ["keras", "consistent"])
def test_keras_vae_is_the_tutorial_loss(parameterisation):
    model = build("vae-784-64-2-keras", parameterisation=parameterisation, seed=2).double()
    x = np.random.default_rng(8).uniform(0, 1, size=(32, 784))
    eps = np.random.default_rng(9).standard_normal((32, 2))
    total, parts = model.loss(x, eps=eps)
    model.zero_grad()
    model.backward_loss()
    ref, grads = tutorial_loss_torch(model, x, eps, parameterisation)
    assert float(total) == pytest.approx(ref, rel=1e-12)
    assert float(parts["recon"]) + float(parts["kl"]) == pytest.approx(ref, rel=1e-12)
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, grads[name], rtol=1e-9, atol=1e-12, err_msg=name)


def test_keras_vae_sampler_reads_s_as_log_std_with_eps_std_0_1():
    model = small_vae("keras").double()
    mean, s = np.zeros((4, 2)), np.log(np.full((4, 2), 3.0))
    eps = np.ones((4, 2))
    np.testing.assert_allclose(model.reparameterize(mean, s, eps), 0.3)          # e^s · 0.1 · ε
    cons = small_vae("consistent").double()
    np.testing.assert_allclose(cons.reparameterize(mean, s, eps), np.sqrt(3.0))  # e^{s/2} · ε


def test_keras_vae_reports_per_sample_mean_and_rejects_bad_options():
    model = build("vae-784-64-2-keras")
    assert model.reduction == "mean" and model.num_parameters() == 784 * 64 + 64 + 2 * (64 * 2 + 2) + 2 * 64 + 64 + 64 * 784 + 784
    with pytest.raises(ValueError, match="parameterisation must be 'keras'"):
        build("vae-784-64-2-keras", parameterisation="log-std")
    with pytest.raises(ValueError, match="epsilon_std must be a positive number"):
        build("vae-784-64-2-keras", epsilon_std=0)
    assert all(not m.bias.data.any() for m in model.modules() if isinstance(m, Linear))   # Keras's zero biases
    assert isinstance(model.decoder[-1], Sigmoid) and isinstance(model.encoder[1], ReLU)
