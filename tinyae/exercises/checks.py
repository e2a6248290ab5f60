"""One check per exercise part: run the learner's code on small float64 inputs, compare with
tinyae's own implementation, then the numerical gradient of the learner's own forward.

Each check lists the classic wrong answers of its arrays (``known``); what no entry names,
:func:`checker.pattern` still describes (a sign, a factor, a transpose).  No check holds a
solution: the right numbers always come from tinyae itself.
"""
from __future__ import annotations

import numpy as np

from .. import losses, nn
from ..nn import im2col
from ..optim import Adam
from .checker import Mistake, compare, numeric_check

N, D, M = 5, 4, 3          # batch, inputs, outputs: all different, so a transpose cannot hide


def _rng(stream=0):
    """A fixed generator per input (x, dy, … each from its own stream: no two inputs alike)."""
    return np.random.default_rng(1234 + stream)


def _float32(what, got):
    """A Mistake unless ``got`` is a float32 array (the inputs were float32)."""
    dtype = getattr(got, "dtype", None)
    if dtype != np.float32:
        raise Mistake(f"{what} is {dtype or type(got).__name__} for float32 inputs: a float64 array or number "
                      "crept in (np.where(mask, 1, a) and np.float64(…) are float64; x.dtype.type(a) is not)")


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


# ---------------------------------------------------------------------------
# layers: Linear and the activations share one check
# ---------------------------------------------------------------------------
def _check_layer(learner, mine, ref, x, known_dx=(), known_grads=None, sizes=()):
    """The learner's layer ``mine`` against tinyae's ``ref`` (same parameters) on input x (float64)."""
    name = type(mine).__name__
    known_grads = known_grads or {}
    dy = _rng(2).standard_normal(ref(x).shape)

    mine.float()                           # float32 in, float32 out
    learner.call(mine, x.astype(np.float32))
    dx32 = learner.call(mine.backward, dy.astype(np.float32))
    if dx32 is None:
        raise Mistake(f"{name}.backward(dy) returned None: return dx (None only when need_dx=False)")
    _float32(f"{name}.backward: dx", dx32)
    for pname, p in mine.named_parameters():
        _float32(f"{name}.backward: {pname}.grad", p.grad)

    mine.double()
    params = dict(ref.named_parameters())
    for pname, p in mine.named_parameters():
        p.data[...] = params[pname].data
    compare(f"{name}.forward (given)", learner.call(mine, x), ref(x))
    ref.zero_grad()
    dx_ref = ref.backward(dy)
    dx = learner.call(mine.backward, dy)
    compare(f"{name}.backward: dx", dx, dx_ref, known_dx, sizes)
    for pname, p in mine.named_parameters():
        compare(f"{name}.backward: {pname}.grad", p.grad, params[pname].grad, known_grads.get(pname, ()), sizes)

    first = {pname: p.grad.copy() for pname, p in mine.named_parameters()}
    learner.call(mine.backward, dy)                          # again, without zero_grad: twice the gradient
    for pname, p in mine.named_parameters():
        if np.allclose(p.grad, first[pname]):
            raise Mistake(f"{name}.backward: {pname}.grad: a second backward call left it unchanged: "
                          "backward overwrites .grad (=) instead of adding into it (+=)")
        compare(f"{name}.backward: {pname}.grad after two calls", p.grad, 2 * first[pname])
    mine.zero_grad()
    if learner.call(mine.backward, dy, need_dx=False) is not None:
        raise Mistake(f"{name}.backward(dy, need_dx=False) returned an array: return None then (x is data)")
    for pname, p in mine.named_parameters():
        if not np.allclose(p.grad, first[pname]):
            raise Mistake(f"{name}.backward(dy, need_dx=False): {pname}.grad is not the gradient: "
                          "add the parameter gradients whatever need_dx says")

    arrays = {"x": x, **{pname: p.data for pname, p in mine.named_parameters()}}
    analytic = {"x": dx, **first}
    numeric_check(learner, lambda: float(np.sum(mine(x) * dy)), arrays, analytic, f"{name}.backward")


def linear(learner):
    ref = nn.Linear(D, M, rng=7).double()
    mine = learner.call(learner.get("Linear"), D, M, rng=7)
    x = _rng(1).standard_normal((N, D))
    dy = _rng(2).standard_normal((N, M))       # the dy _check_layer draws
    first_sample = ("only the first sample's dy: sum dy over the batch (axis 0)", dy[0])
    _check_layer(learner, mine, ref, x, known_grads={"bias": (first_sample,)},
                 sizes=((f"N = {N}, the batch size", N),))


def sigmoid(learner):
    x = _rng(1).standard_normal((N, D)) * 2
    y, dy = _sigmoid(x), _rng(2).standard_normal((N, D))
    _check_layer(learner, learner.call(learner.get("Sigmoid")), nn.Sigmoid(), x, known_dx=(
        ("computed with the input x where the formula needs the output y = σ(x): dx = dy·y(1 − y), "
         "with the y that forward cached", dy * x * (1 - x)),
        ("dy·y: the factor (1 − y) is missing", dy * y),
        ("σ applied twice: y is already σ(x), so f'(x) = y(1 − y), not σ(y)(1 − σ(y))",
         dy * _sigmoid(y) * (1 - _sigmoid(y)))))


def tanh(learner):
    x = _rng(1).standard_normal((N, D))
    y, dy = np.tanh(x), _rng(2).standard_normal((N, D))
    _check_layer(learner, learner.call(learner.get("Tanh")), nn.Tanh(), x, known_dx=(
        ("computed with the input x where the formula needs the output y = tanh(x): dx = dy·(1 − y²)",
         dy * (1 - x * x)),
        ("dy·(1 − y): the square is missing, tanh' = 1 − y²", dy * (1 - y)),
        ("tanh applied twice: y is already tanh(x), so f'(x) = 1 − y², not 1 − tanh²(y)",
         dy * (1 - np.tanh(y) ** 2))))


def leaky_relu(learner):
    a = 0.2
    x = _rng(1).standard_normal((N, D))
    dy = _rng(2).standard_normal((N, D))
    _check_layer(learner, learner.call(learner.get("LeakyReLU"), a), nn.LeakyReLU(a), x, known_dx=(
        ("0 where x ≤ 0: that is ReLU's derivative; LeakyReLU passes a·dy there", dy * (x > 0)),
        ("the two slopes swapped: 1 where x > 0, a elsewhere", dy * np.where(x > 0, a, 1)),
        ("a·x where x ≤ 0: the derivative of a·x is a", dy * np.where(x > 0, 1, a * x))))


# ---------------------------------------------------------------------------
# losses
# ---------------------------------------------------------------------------
def _check_loss(learner, cls_name, ref, pred, target, known, sizes=()):
    mine = learner.call(learner.get(cls_name), ref.reduction)
    where = f"{cls_name}({ref.reduction!r}).backward()"
    learner.call(mine, pred.astype(np.float32), target.astype(np.float32))
    _float32(where, learner.call(mine.backward))
    compare(f"{cls_name}({ref.reduction!r}) value (given)", np.asarray(learner.call(mine, pred, target)),
            np.asarray(ref(pred, target)))
    grad = learner.call(mine.backward)
    compare(where, grad, ref.backward(), known, sizes)
    numeric_check(learner, lambda: mine(pred, target), {"pred": pred}, {"pred": grad}, where)


def mse(learner):
    rng = _rng()
    p, t = rng.standard_normal((N, 7)), rng.standard_normal((N, 7))
    n, diff = p.size, p - t
    sizes = ((f"n = N·D = {n}, the number of elements", n), (f"N = {N}, the batch size", N))
    _check_loss(learner, "MSELoss", losses.MSELoss("mean"), p, t, (
        ("divided by the batch size N only: the mean divides by every element, n = N·D", 2 * diff / N),
        ("(p − t)/n: the 2 of d(p − t)²/dp = 2(p − t) is missing", diff / n)), sizes)
    _check_loss(learner, "MSELoss", losses.MSELoss("sum"), p, t, (
        ("divided by n, but reduction 'sum' has no 1/n (s = 1)", 2 * diff / n),), sizes)


def bce_with_logits(learner):
    rng = _rng()
    z, t = rng.standard_normal((N, 7)) * 3, rng.random((N, 7))
    p, n = _sigmoid(z), z.size
    sizes = ((f"n = N·D = {n}, the number of elements", n), (f"N = {N}, the batch size", N))
    _check_loss(learner, "BCEWithLogitsLoss", losses.BCEWithLogitsLoss("mean"), z, t, (
        ("z − t: the sigmoid is missing, dz = (σ(z) − t)·s", (z - t) / n),
        ("(p − t)/(p(1 − p)) is the gradient with respect to the probability p; with respect to the "
         "logits the sigmoid's derivative cancels it: (σ(z) − t)·s", (p - t) / (p * (1 - p)) / n)), sizes)


# ---------------------------------------------------------------------------
# 4: the autoencoder's chain
# ---------------------------------------------------------------------------
def _autoencoder(x):
    """enc, act, dec, out, loss_fn (tinyae's layers, float64), after one forward on x."""
    enc, act, dec, out = nn.Linear(6, 3, rng=3).double(), nn.ReLU(), nn.Linear(3, 6, rng=4).double(), nn.Sigmoid()
    loss_fn = losses.MSELoss()
    loss_fn(out(dec(act(enc(x)))), x)
    return enc, act, dec, out, loss_fn


def _chain_grads(x, skip=()):
    """The gradients of tinyae's chain, each layer's backward in turn, but those in ``skip``."""
    enc, act, dec, out, loss_fn = layers = _autoencoder(x)
    d = loss_fn.backward()
    for name, layer in (("out", out), ("dec", dec), ("act", act), ("enc", enc)):
        if name not in skip:
            d = layer.backward(d, need_dx=name != "enc")
    return _grads(layers)


def _grads(layers):
    return {f"{lname}.{p}": q.grad.copy() for lname, layer in zip(("enc", "dec"), layers[::2])
            for p, q in layer.named_parameters()}


def chain(learner):
    x = _rng(1).random((N, 6))
    layers = _autoencoder(x)
    learner.call(learner.get("backward"), *layers)
    got, want = _grads(layers), _chain_grads(x)
    enc, act, dec, out, loss_fn = layers
    arrays = {k: layer.weight.data if k.endswith("weight") else layer.bias.data
              for k, layer in zip(got, (enc, enc, dec, dec))}
    if all(np.allclose(got[k], want[k]) for k in want):
        numeric_check(learner, lambda: float(loss_fn(out(dec(act(enc(x)))), x)), arrays, got, "backward")
        return
    wrong = {"the Sigmoid's backward is missing: dL/dx̂ went into dec.backward without σ'": ("out",),
             "the ReLU's backward is missing: dec.backward's dh went into enc.backward without [a > 0]": ("act",)}
    for description, skipped in wrong.items():
        candidate = _chain_grads(x, skipped)
        if all(np.allclose(got[k], candidate[k]) for k in got):
            raise Mistake(f"backward: {description}")
    sizes = ((f"n = N·D = {x.size}, the number of pixels", x.size), (f"N = {N}, the batch size", N))
    for k in want:
        compare(f"backward: {k}.grad", got[k], want[k], sizes=sizes)


# ---------------------------------------------------------------------------
# 5: the VAE's latent layer
# ---------------------------------------------------------------------------
def _latent_inputs():
    rng = _rng()
    return (rng.standard_normal((N, M)), rng.standard_normal((N, M)) * 0.7, rng.standard_normal((N, M)),
            rng.standard_normal((N, M)))       # μ, ℓ, ε, dz


def _pair(value, where):
    if not (isinstance(value, tuple) and len(value) == 2):
        raise Mistake(f"{where} returned {type(value).__name__}, not the pair (dμ, dℓ)")
    return value


def kl(learner):
    mu, logvar, _, _ = _latent_inputs()
    ref, mine = losses.GaussianKL("sum"), learner.call(learner.get("GaussianKL"))
    compare("GaussianKL value (given)", np.asarray(learner.call(mine, mu, logvar)), np.asarray(ref(mu, logvar)))
    dmu, dlogvar = _pair(learner.call(mine.backward), "GaussianKL.backward()")
    want_mu, want_logvar = ref.backward()
    sizes = ((f"N = {N}, the batch size (this KL is a sum over the batch, not a mean)", N),)
    compare("GaussianKL.backward(): dμ", dmu, want_mu, sizes=sizes)
    compare("GaussianKL.backward(): dℓ", dlogvar, want_logvar, sizes=sizes, known=(
        ("exp(½ℓ) where exp(ℓ) belongs: the KL's e^ℓ is σ² = exp(ℓ)", 0.5 * (np.exp(0.5 * logvar) - 1)),
        ("½ e^ℓ: the −½ that the ℓ inside (1 + ℓ − μ² − e^ℓ) contributes is missing", 0.5 * np.exp(logvar))))
    mine32 = learner.call(learner.get("GaussianKL"))
    learner.call(mine32, mu.astype(np.float32), logvar.astype(np.float32))
    for g, label in zip(_pair(learner.call(mine32.backward), "GaussianKL.backward()"), ("dμ", "dℓ")):
        _float32(f"GaussianKL.backward(): {label}", g)
    numeric_check(learner, lambda: mine(mu, logvar), {"mu": mu, "logvar": logvar},
                  {"mu": dmu, "logvar": dlogvar}, "GaussianKL.backward()")


def latent(learner):
    mu, logvar, eps, dz = _latent_inputs()
    beta = 0.7
    backward, reparameterize = learner.get("latent_backward"), learner.get("reparameterize")
    kl_ref = losses.GaussianKL("sum")
    kl_ref(mu, logvar)
    kl_mu, kl_logvar = kl_ref.backward()
    std = np.exp(0.5 * logvar)
    through_z = dz * eps * std * 0.5                    # ∂z/∂ℓ = ½ ε σ (the chain of train_step)
    dmu, dlogvar = _pair(learner.call(backward, dz, mu, logvar, eps, beta), "latent_backward")
    where = "latent_backward"
    compare(f"{where}: dμ", dmu, dz + beta * kl_mu, known=(
        ("the KL's gradient β μ is missing from dμ", dz),
        ("β is missing: dμ = dz + β μ", dz + kl_mu),
        ("dz ⊙ σ: ∂z/∂μ = 1 (σ multiplies ε, not μ)", dz * std + beta * kl_mu)))
    compare(f"{where}: dℓ", dlogvar, through_z + beta * kl_logvar, known=(
        ("exp(ℓ) where exp(½ℓ) belongs: ∂z/∂ℓ = ½ ε σ with σ = exp(½ℓ)",
         dz * eps * np.exp(logvar) * 0.5 + beta * kl_logvar),
        ("the ½ of ∂z/∂ℓ = ½ ε σ is missing (d/dℓ exp(½ℓ) = ½ exp(½ℓ))", 2 * through_z + beta * kl_logvar),
        ("ε is missing from ∂z/∂ℓ = ½ ε σ", dz * std * 0.5 + beta * kl_logvar),
        ("the KL's gradient β·½(e^ℓ − 1) is missing from dℓ", through_z),
        ("β is missing: the KL's gradient is multiplied by β", through_z + kl_logvar),
        ("the path through z (dz ⊙ ½ ε σ) is missing", beta * kl_logvar)))
    f32 = [a.astype(np.float32) for a in (dz, mu, logvar, eps)]
    for g, label in zip(_pair(learner.call(backward, *f32, beta), where), ("dμ", "dℓ")):
        _float32(f"{where}: {label}", g)

    def objective():
        z, _ = reparameterize(mu, logvar, eps)
        return float(np.sum(z * dz) + beta * kl_ref(mu, logvar))
    numeric_check(learner, objective, {"mu": mu, "logvar": logvar}, {"mu": dmu, "logvar": dlogvar}, where)


# ---------------------------------------------------------------------------
# 6 and 7: convolution and max pooling
# ---------------------------------------------------------------------------
def conv2d(learner):
    rng = _rng()
    x, w, b = rng.standard_normal((3, 2, 5, 6)), rng.standard_normal((3, 2, 3, 3)), rng.standard_normal(3)
    stride, pads = (2, 2), (1, 1, 1, 1)
    forward, backward = learner.get("conv2d_forward"), learner.get("conv2d_backward")
    y_ref, cols = im2col.conv2d_forward(x, w, b, stride, pads)
    compare("conv2d_forward (given)", learner.call(forward, x, w, b, stride, pads)[0], y_ref)
    dy = rng.standard_normal(y_ref.shape)
    want = im2col.conv2d_backward(dy, cols, x.shape, w, stride, pads)
    got = learner.call(backward, dy, cols, x.shape, w, stride, pads)
    if not (isinstance(got, tuple) and len(got) == 3):
        raise Mistake(f"conv2d_backward returned {type(got).__name__}, not (dx, dw, db)")
    dw_mat = want[1].reshape(3, -1)
    known = {"dw": (("dW = cols · dYᵀ, reshaped: the product is transposed; dW = dY · colsᵀ",
                     dw_mat.T.reshape(w.shape)),)}
    for label, g, r in zip(("dx", "dw", "db"), got, want):
        compare(f"conv2d_backward: {label}", g, r, known.get(label, ()), sizes=((f"N = {x.shape[0]}, the batch size", x.shape[0]),))
    g32 = learner.call(backward, dy.astype(np.float32), cols.astype(np.float32), x.shape, w.astype(np.float32),
                       stride, pads)
    for label, g in zip(("dx", "dw", "db"), g32):
        _float32(f"conv2d_backward: {label}", g)
    numeric_check(learner, lambda: float(np.sum(forward(x, w, b, stride, pads)[0] * dy)),
                  {"x": x, "w": w, "b": b}, dict(zip("xwb", got)), "conv2d_backward")


def _routed(x, dy, k, s, pick="first", add=True):
    """Max pooling's backward as its classic mistakes compute it: ``pick`` "first" (right),
    "last" or "all" of the tied maxima, or "spread" over the window; ``add=False``: = not +=."""
    dx = np.zeros_like(x)
    n, c = x.shape[:2]
    for i in range(dy.shape[2]):
        for j in range(dy.shape[3]):
            win = x[:, :, s * i:s * i + k, s * j:s * j + k].reshape(n, c, k * k)
            if pick == "spread":
                hit = np.full(win.shape, 1.0 / (k * k))
            elif pick == "all":
                hit = (win == win.max(axis=2, keepdims=True)).astype(x.dtype)
            else:
                first = win.argmax(axis=2) if pick == "first" else k * k - 1 - win[:, :, ::-1].argmax(axis=2)
                hit = (np.arange(k * k) == first[:, :, None]).astype(x.dtype)
            g = (hit * dy[:, :, i:i + 1, j]).reshape(n, c, k, k)
            view = dx[:, :, s * i:s * i + k, s * j:s * j + k]
            view[...] = view + g if add else np.where(hit.reshape(g.shape) > 0, g, view)
    return dx


def maxpool(learner):
    rng = _rng()
    k, s = 3, 2                                              # overlapping windows
    shape = (2, 2, 7, 7)
    distinct = rng.permutation(np.prod(shape)).reshape(shape) * 0.1   # no ties: a gradient check is valid
    ties = rng.integers(0, 3, shape).astype(np.float64)               # many ties
    cls = learner.get("MaxPool2d")
    for x, case in ((distinct, "overlapping windows"), (ties, "ties")):
        mine, ref = learner.call(cls, k, s), nn.MaxPool2d(k, s)
        y = ref(x)
        compare(f"MaxPool2d forward (given, {case})", learner.call(mine, x), y)
        dy = rng.standard_normal(y.shape)
        dx = learner.call(mine.backward, dy)
        compare(f"MaxPool2d.backward ({case})", dx, ref.backward(dy), known=(
            ("ties: every tied maximum got the gradient; give it to one, the first in row-major order "
             "(as tinyae and PyTorch do)", _routed(x, dy, k, s, "all")),
            ("ties: the last maximum got the gradient; tinyae and PyTorch give it to the first "
             "(row-major order)", _routed(x, dy, k, s, "last")),
            ("a pixel that wins two overlapping windows kept only one gradient: add them (+=), "
             "don't assign (=)", _routed(x, dy, k, s, add=False)),
            ("the gradient spread evenly over the window: that is average pooling's backward",
             _routed(x, dy, k, s, "spread"))))
        if case == "overlapping windows":
            numeric_check(learner, lambda: float(np.sum(mine(x) * dy)), {"x": x}, {"x": dx}, "MaxPool2d.backward")
            mine32 = learner.call(cls, k, s)
            learner.call(mine32, x.astype(np.float32))
            dx32 = learner.call(mine32.backward, dy.astype(np.float32))
            _float32("MaxPool2d.backward: dx", dx32)


# ---------------------------------------------------------------------------
# 8: Adam
# ---------------------------------------------------------------------------
STEPS, LR, BETAS, EPS = 5, 1e-2, (0.9, 0.999), 1e-8


def _adam_variant(param, grad, m, v, t, correct=(True, True), eps_inside=False, square=True, t_shift=0,
                  eps_on_v=False):
    """A classic wrong Adam step (with the defaults: the right one)."""
    (b1, b2), t = BETAS, t + t_shift
    m[...] = b1 * m + (1 - b1) * grad
    v[...] = b2 * v + (1 - b2) * (grad * grad if square else grad)
    if eps_on_v:      # the paper's "efficient" order: ε added to √v, before the bias correction
        param -= LR * np.sqrt(1 - b2 ** t) / (1 - b1 ** t) * m / (np.sqrt(v) + EPS)
        return
    m_hat = m / (1 - b1 ** t) if correct[0] else m
    v_hat = v / (1 - b2 ** t) if correct[1] else v
    param -= LR * m_hat / (np.sqrt(v_hat + EPS) if eps_inside else np.sqrt(v_hat) + EPS)


def _trajectory(step, param, grads):
    """The parameter after each of the steps ``step(param, grad, m, v, t)``."""
    m, v, out = np.zeros_like(param), np.zeros_like(param), []
    for t, g in enumerate(grads, start=1):
        step(param, g, m, v, t)
        out.append(param.copy())
    return out, m, v


def adam(learner):
    rng = _rng()
    start, grads = rng.standard_normal((4, 3)), rng.standard_normal((STEPS, 4, 3))
    p = nn.Parameter(start.copy())
    opt = Adam([p], lr=LR, betas=BETAS, eps=EPS, flat=False, engine="reference")
    want = []
    for g in grads:
        p.grad[...] = g
        opt.step()
        want.append(p.data.copy())
    update = learner.get("adam_update")
    got, m, v = _trajectory(lambda *a: learner.call(update, *a, lr=LR, betas=BETAS, eps=EPS), start.copy(), grads)
    if all(np.allclose(a, b, rtol=1e-10, atol=1e-12) for a, b in zip(got, want)):
        return
    if not m.any() or not v.any():
        raise Mistake("adam_update: m and v stayed 0: update them in place (m *= β₁; m += …); "
                      "m = … only rebinds a local name, and the next step starts from 0 again")
    variants = {
        "no bias correction: divide m by 1 − β₁ᵗ and v by 1 − β₂ᵗ": dict(correct=(False, False)),
        "m is not bias-corrected: m̂ = m / (1 − β₁ᵗ)": dict(correct=(False, True)),
        "v is not bias-corrected: v̂ = v / (1 − β₂ᵗ)": dict(correct=(True, False)),
        "ε inside the square root: √v̂ + ε, not √(v̂ + ε)": dict(eps_inside=True),
        "v ← β₂ v + (1 − β₂) g: the square g² is missing": dict(square=False),
        "the bias correction uses t + 1: t is 1 at the first step": dict(t_shift=1),
        "ε added to √v, not to √v̂ (the paper's \"efficient\" order): tinyae, like PyTorch, computes "
        "m̂ / (√v̂ + ε)": dict(eps_on_v=True),
    }
    for description, wrong in variants.items():
        candidate, _, _ = _trajectory(lambda *a: _adam_variant(*a, **wrong), start.copy(), grads)
        if all(np.allclose(a, b, rtol=1e-9, equal_nan=True) for a, b in zip(got, candidate)):
            raise Mistake(f"adam_update: {description}")
    t = next(i for i, (a, b) in enumerate(zip(got, want)) if not np.allclose(a, b, rtol=1e-10, atol=1e-12))
    before = start if t == 0 else want[t - 1]
    compare(f"adam_update: the change of param at step {t + 1}", got[t] - before, want[t] - before)
    raise Mistake(f"adam_update: param differs slightly from tinyae's Adam at step {t + 1} "
                  f"(largest difference {np.abs(got[t] - want[t]).max():.1e})")
