"""Agreement with PyTorch for every dense layer, every loss and both optimizers, in float64.

Same weights and inputs on both sides; forward values and all gradients must agree within
1e-6 relative (``max|ours − torch| / max|torch|``).  The worst error per quantity is kept in
``AGREEMENT_WORST`` (a report script reads it).  Skipped cleanly where torch is absent;
CI installs it.
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from strategies import away_from_zero, seeds  # noqa: E402
from tinyae import nn  # noqa: E402
from tinyae.losses import BCELoss, BCEWithLogitsLoss, GaussianKL, MSELoss  # noqa: E402
from tinyae.optim import SGD, Adam  # noqa: E402

RTOL = 1e-6
AGREEMENT_WORST: dict[str, float] = {}


def rel_err(ours, theirs) -> float:
    """max|ours − theirs| / max(max|theirs|, tiny): one relative error for a whole array."""
    ours = np.asarray(ours, dtype=np.float64)
    theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else np.asarray(theirs, np.float64)
    assert ours.shape == theirs.shape, f"shape {ours.shape} vs torch {theirs.shape}"
    if ours.size == 0:
        return 0.0
    return float(np.max(np.abs(ours - theirs)) / max(float(np.max(np.abs(theirs))), np.finfo(np.float64).tiny))


def agree(what: str, ours, theirs, rtol: float = RTOL):
    err = rel_err(ours, theirs)
    AGREEMENT_WORST[what] = max(AGREEMENT_WORST.get(what, 0.0), err)
    assert err <= rtol, f"{what}: relative error {err:.3e} > {rtol:g}"


def t64(a, grad=False):
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def compare_layer(name, ours, theirs, x, rng, extra=()):
    """Forward and backward on both sides; compare y, dx and every parameter gradient.
    ``theirs`` is a torch module or a function of a tensor."""
    ours.double()
    if isinstance(theirs, torch.nn.Module):
        theirs.double()
        # our state_dict loads into torch as is: same names, same shapes
        theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
        assert [n for n, _ in theirs.named_parameters()] == [n for n, _ in ours.named_parameters()]
    xt = t64(x, grad=True)
    yt = theirs(xt)
    dy = rng.standard_normal(tuple(yt.shape))
    yt.backward(t64(dy))
    y = ours(x, *extra)
    ours.zero_grad()
    dx = ours.backward(dy)
    agree(f"{name} forward", y, yt)
    agree(f"{name} dx", dx, xt.grad)
    if isinstance(theirs, torch.nn.Module):
        tp = dict(theirs.named_parameters())
        for n, p in ours.named_parameters():
            agree(f"{name} d{n.split('.')[-1]}", p.grad, tp[n].grad)


# ---------------------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------------------
@given(n=st.integers(1, 6), d=st.integers(1, 8), m=st.integers(1, 8), bias=st.booleans(), seed=seeds)
def test_linear(n, d, m, bias, seed):
    rng = np.random.default_rng(seed)
    compare_layer("Linear", nn.Linear(d, m, bias=bias, rng=rng), torch.nn.Linear(d, m, bias=bias),
                  rng.standard_normal((n, d)), rng)


@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=4), seed=seeds)
def test_relu(shape, seed):
    rng = np.random.default_rng(seed)
    compare_layer("ReLU", nn.ReLU(), torch.nn.ReLU(), away_from_zero(rng, tuple(shape)), rng)


@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=3), slope=st.floats(0.0, 2.0), seed=seeds)
def test_leaky_relu(shape, slope, seed):
    rng = np.random.default_rng(seed)
    compare_layer("LeakyReLU", nn.LeakyReLU(slope), torch.nn.LeakyReLU(slope),
                  away_from_zero(rng, tuple(shape)), rng)


@pytest.mark.parametrize("ours, theirs", [(nn.Tanh, torch.nn.Tanh), (nn.Sigmoid, torch.nn.Sigmoid),
                                          (nn.Identity, torch.nn.Identity)], ids=["Tanh", "Sigmoid", "Identity"])
@given(n=st.integers(1, 6), d=st.integers(1, 8), scale=st.floats(0.1, 3.0), seed=seeds)
def test_smooth_activations(ours, theirs, n, d, scale, seed):
    # scale ≤ 3: deep in saturation (|x| ≳ 15) both libraries compute 1 − y² from a y that is
    # within an ulp of ±1, so a derivative of ~1e-14 is only known to a few percent on either side.
    rng = np.random.default_rng(seed)
    compare_layer(ours.__name__, ours(), theirs(), scale * rng.standard_normal((n, d)), rng)


def test_sigmoid_and_tanh_at_extremes():
    rng = np.random.default_rng(0)
    x = np.array([[-1000.0, -745.0, -40.0, -1e-8, 0.0, 1e-8, 40.0, 745.0, 1000.0]])
    compare_layer("Sigmoid(extreme)", nn.Sigmoid(), torch.nn.Sigmoid(), x, rng)
    compare_layer("Tanh(extreme)", nn.Tanh(), torch.nn.Tanh(), x, rng)


@given(n=st.integers(1, 4), dims=st.lists(st.integers(1, 4), min_size=1, max_size=3), seed=seeds)
def test_flatten_and_reshape(n, dims, seed):
    rng = np.random.default_rng(seed)
    compare_layer("Flatten", nn.Flatten(), torch.nn.Flatten(), rng.standard_normal((n, *dims)), rng)
    compare_layer("Reshape", nn.Reshape(*dims), torch.nn.Unflatten(1, tuple(dims)),
                  rng.standard_normal((n, int(np.prod(dims)))), rng)


@given(n=st.integers(1, 6), d=st.integers(1, 8), p=st.floats(0.0, 0.9), seed=seeds)
def test_dropout_with_torchs_mask(n, d, p, seed):
    """torch.nn.Dropout draws the mask; we read it off its output (x has no zeros) and inject it."""
    rng = np.random.default_rng(seed)
    x = away_from_zero(rng, (n, d))
    torch.manual_seed(seed)
    drop = torch.nn.Dropout(p).train()
    xt = t64(x, grad=True)
    yt = drop(xt)
    mask = (yt != 0).numpy()
    dy = rng.standard_normal((n, d))
    yt.backward(t64(dy))
    ours = nn.Dropout(p, rng=seed)
    agree("Dropout forward", ours(x, mask), yt)
    agree("Dropout dx", ours.backward(dy), xt.grad)
    # eval mode: both are the identity
    drop.eval()
    agree("Dropout eval", ours.eval()(x), drop(t64(x)))


@given(n=st.integers(1, 6), d=st.integers(1, 8), std=st.floats(0.0, 2.0), seed=seeds)
def test_gaussian_noise(n, d, std, seed):
    rng = np.random.default_rng(seed)
    eps = rng.standard_normal((n, d))
    compare_layer("GaussianNoise", nn.GaussianNoise(std), lambda xt: xt + std * t64(eps),
                  rng.standard_normal((n, d)), rng, extra=(eps,))


@given(n=st.integers(1, 6), seed=seeds)
def test_sequential_model(n, seed):
    rng = np.random.default_rng(seed)
    ours = nn.Sequential(nn.Linear(7, 6, rng=rng), nn.LeakyReLU(0.2), nn.Linear(6, 5, rng=rng), nn.Tanh(),
                         nn.Linear(5, 6, rng=rng), nn.Sigmoid(), nn.Reshape(2, 3), nn.Flatten())
    theirs = torch.nn.Sequential(torch.nn.Linear(7, 6), torch.nn.LeakyReLU(0.2), torch.nn.Linear(6, 5),
                                 torch.nn.Tanh(), torch.nn.Linear(5, 6), torch.nn.Sigmoid(),
                                 torch.nn.Unflatten(1, (2, 3)), torch.nn.Flatten())
    x = rng.standard_normal((n, 7))
    compare_layer("Sequential", ours, theirs, x, rng)


# ---------------------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------------------
def compare_loss(name, ours, theirs, args):
    """ours(*args) vs theirs(*tensors); gradients for every argument ours.backward() returns."""
    ts = [t64(a, grad=True) for a in args]
    value_t = theirs(*ts)
    value_t.backward()
    value = ours(*args)
    grads = ours.backward()
    grads = grads if isinstance(grads, tuple) else (grads,)
    agree(f"{name} value", np.asarray(value), value_t)
    for i, g in enumerate(grads):
        agree(f"{name} grad{i}", g, ts[i].grad)


reductions = st.sampled_from(["mean", "sum"])


@given(n=st.integers(1, 6), d=st.integers(1, 8), reduction=reductions, seed=seeds)
def test_mse(n, d, reduction, seed):
    rng = np.random.default_rng(seed)
    compare_loss("MSELoss", MSELoss(reduction), torch.nn.MSELoss(reduction=reduction),
                 (rng.standard_normal((n, d)), rng.standard_normal((n, d))))


@given(n=st.integers(1, 6), d=st.integers(1, 8), reduction=reductions, binary=st.booleans(), seed=seeds)
def test_bce(n, d, reduction, binary, seed):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.01, 0.99, (n, d))
    t = (rng.random((n, d)) < 0.5).astype(float) if binary else rng.random((n, d))
    compare_loss("BCELoss", BCELoss(reduction), torch.nn.BCELoss(reduction=reduction), (p, t))


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_bce_at_zero_and_one_matches_torchs_clamp(reduction):
    p = np.array([[0.0, 1.0, 0.0, 1.0, 1e-300, 1 - 1e-16]])
    t = np.array([[1.0, 0.0, 0.0, 1.0, 1.0, 0.0]])
    compare_loss("BCELoss(p=0/1)", BCELoss(reduction), torch.nn.BCELoss(reduction=reduction), (p, t))
    value = float(BCELoss("sum")(p[:, :2], t[:, :2]))
    assert value == 200.0 == float(torch.nn.BCELoss(reduction="sum")(t64(p[:, :2]), t64(t[:, :2])))


@given(n=st.integers(1, 6), d=st.integers(1, 8), reduction=reductions, scale=st.floats(0.1, 20.0), seed=seeds)
def test_bce_with_logits(n, d, reduction, scale, seed):
    rng = np.random.default_rng(seed)
    compare_loss("BCEWithLogitsLoss", BCEWithLogitsLoss(reduction),
                 torch.nn.BCEWithLogitsLoss(reduction=reduction),
                 (scale * rng.standard_normal((n, d)), rng.random((n, d))))


def test_bce_with_logits_at_extremes():
    z = np.array([[1000.0, -1000.0, 1000.0, -1000.0, 40.0, -40.0]])
    t = np.array([[1.0, 0.0, 0.0, 1.0, 0.3, 0.7]])
    for reduction in ("mean", "sum"):
        compare_loss("BCEWithLogitsLoss(extreme)", BCEWithLogitsLoss(reduction),
                     torch.nn.BCEWithLogitsLoss(reduction=reduction), (z, t))


def torch_gaussian_kl(reduction):
    """KL(N(μ, σ²) ‖ N(0, 1)) from torch.distributions, summed over latent dims per sample."""
    def kl(mu, logvar):
        q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
        p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
        per_sample = torch.distributions.kl_divergence(q, p).sum(dim=1)
        return per_sample.mean() if reduction == "mean" else per_sample.sum()
    return kl


@given(n=st.integers(1, 6), k=st.integers(1, 8), reduction=reductions, seed=seeds)
def test_gaussian_kl(n, k, reduction, seed):
    rng = np.random.default_rng(seed)
    compare_loss("GaussianKL", GaussianKL(reduction), torch_gaussian_kl(reduction),
                 (rng.standard_normal((n, k)), rng.uniform(-3, 3, (n, k))))


# ---------------------------------------------------------------------------------------
# Optimizers
# ---------------------------------------------------------------------------------------
def twin_models(seed):
    ours = nn.Sequential(nn.Linear(5, 8, rng=seed), nn.Tanh(), nn.Linear(8, 3, rng=seed + 1)).double()
    theirs = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).double()
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    return ours, theirs


def run_both(name, ours, theirs, make_ours, make_theirs, steps=20, seed=0):
    """Train both models on the same batches, each with its own gradients; compare every step."""
    rng = np.random.default_rng(seed)
    start = ours.state_dict()
    opt, topt = make_ours(ours.parameters()), make_theirs(theirs.parameters())
    loss, tloss = MSELoss(), torch.nn.MSELoss()
    for step in range(steps):
        x, t = rng.standard_normal((6, 5)), rng.standard_normal((6, 3))
        opt.zero_grad()
        loss(ours(x), t)
        ours.backward(loss.backward())
        opt.step()
        topt.zero_grad()
        tloss(theirs(t64(x)), t64(t)).backward()
        topt.step()
        tp = dict(theirs.named_parameters())
        for n, p in ours.named_parameters():
            agree(f"{name} params", p.data, tp[n])
    # the parameters really moved (the comparison is not of two untouched copies)
    assert all(rel_err(v, start[k]) > 1e-3 for k, v in ours.state_dict().items())


SGD_CONFIGS = {
    "plain": dict(lr=0.1),
    "momentum": dict(lr=0.05, momentum=0.9),
    "dampening": dict(lr=0.05, momentum=0.9, dampening=0.3),
    "nesterov": dict(lr=0.05, momentum=0.9, nesterov=True),
    "weight_decay": dict(lr=0.1, weight_decay=0.05),
    "all": dict(lr=0.03, momentum=0.8, weight_decay=0.01, nesterov=True),
}
ADAM_CONFIGS = {
    "default": dict(),
    "lr": dict(lr=1e-2),
    "weight_decay": dict(lr=1e-2, weight_decay=0.1),
    "betas": dict(lr=5e-3, betas=(0.5, 0.9)),
    "all": dict(lr=2e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.02),
}


@pytest.mark.parametrize("config", list(SGD_CONFIGS))
def test_sgd_tracks_torch_for_20_steps(config):
    kw = SGD_CONFIGS[config]
    ours, theirs = twin_models(0)
    run_both(f"SGD[{config}]", ours, theirs, lambda ps: SGD(ps, **kw), lambda ps: torch.optim.SGD(ps, **kw))


@pytest.mark.parametrize("config", list(ADAM_CONFIGS))
def test_adam_tracks_torch_for_20_steps(config):
    kw = ADAM_CONFIGS[config]
    ours, theirs = twin_models(1)
    run_both(f"Adam[{config}]", ours, theirs, lambda ps: Adam(ps, **kw), lambda ps: torch.optim.Adam(ps, **kw))


@given(lr=st.floats(1e-4, 0.3), momentum=st.floats(0.0, 0.99), weight_decay=st.floats(0.0, 0.1),
       nesterov=st.booleans(), seed=seeds)
def test_sgd_arithmetic_with_injected_gradients(lr, momentum, weight_decay, nesterov, seed):
    """The update rule alone: both optimizers get the same gradient arrays every step."""
    if nesterov and momentum == 0:
        nesterov = False
    kw = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
    _injected("SGD(injected)", lambda ps: SGD(ps, **kw), lambda ps: torch.optim.SGD(ps, **kw), seed)


@given(lr=st.floats(1e-4, 0.1), b1=st.floats(0.0, 0.99), b2=st.floats(0.5, 0.9999),
       eps=st.sampled_from([1e-8, 1e-6]), weight_decay=st.floats(0.0, 0.1), seed=seeds)
def test_adam_arithmetic_with_injected_gradients(lr, b1, b2, eps, weight_decay, seed):
    kw = dict(lr=lr, betas=(b1, b2), eps=eps, weight_decay=weight_decay)
    _injected("Adam(injected)", lambda ps: Adam(ps, **kw), lambda ps: torch.optim.Adam(ps, **kw), seed)


def _injected(name, make_ours, make_theirs, seed, steps=20):
    rng = np.random.default_rng(seed)
    start = [rng.standard_normal((3, 4)), rng.standard_normal(4)]
    ours = [nn.Parameter(a.copy()) for a in start]
    theirs = [torch.nn.Parameter(t64(a)) for a in start]
    opt, topt = make_ours(ours), make_theirs(theirs)
    for _ in range(steps):
        for p, tp in zip(ours, theirs):
            g = rng.standard_normal(p.shape) * rng.uniform(0.01, 10)
            p.grad[...] = g
            tp.grad = t64(g)
        opt.step()
        topt.step()
    for p, tp in zip(ours, theirs):
        agree(name, p.data, tp)
