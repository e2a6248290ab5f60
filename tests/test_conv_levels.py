"""One hypothesis suite over the three levels of convolution and pooling (as MiniTorch runs
one suite over its backends), all in float64:

* "reference": ``tinyae.nn.reference``, plain loops, the definition;
* "im2col": ``tinyae.nn.im2col``, whole-matrix products, the teaching version;
* "engine": ``tinyae.nn._conv_engine`` (and the pooling layers), what the layers run.

Every level offers the same four operations, each returning ``(y, backward)`` with
``backward(dy)`` giving the gradients.  The im2col level and the engine (each of its routes)
must agree with the reference on drawn shapes, strides, paddings (asymmetric ones too) and
kernels; and at every level, the reference included, backward must be the adjoint of
forward.  Last, the lines docs/backprop.md quotes from the im2col level must exist there.
"""
import pathlib
import re
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from strategies import conv_configs, conv_transpose_configs, distinct, pool_configs, shape_of
from tinyae.nn import _conv_direct as direct
from tinyae.nn import _conv_engine as engine
from tinyae.nn import im2col
from tinyae.nn import reference as ref
from tinyae.nn._conv_args import conv_output_size
from tinyae.nn.pooling import AvgPool2d, MaxPool2d

RTOL, ATOL = 1e-10, 1e-12
ROUTES = [engine.IM2COL, engine.FLIPPED, engine.DIRECT]
ROOT = pathlib.Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------
# the three levels behind one interface: op(...) -> (y, backward)
# ---------------------------------------------------------------------------
def _engine_conv2d(x, w, b, stride, pads, route=None):
    f, c, kh, kw = w.shape
    route = route or engine.conv2d_route(f, c, (kh, kw), stride, pads)
    out_hw = conv_output_size("conv2d", x.shape[2:], (kh, kw), stride, pads)
    x_chwn = engine.to_chwn(x)
    y_cols = engine.conv2d_forward(x_chwn, w, stride, pads, out_hw, route)
    y = engine.from_chwn(y_cols.reshape(f, *out_hw, x.shape[0]))

    def backward(dy):
        dy_cols = engine.to_chwn(dy).reshape(f, -1)
        dx_chwn, dw_mat = engine.conv2d_backward(x_chwn, dy_cols, w, stride, pads, out_hw, route)
        return engine.from_chwn(dx_chwn), dw_mat.reshape(w.shape), dy_cols.sum(axis=1)
    return (y if b is None else y + b[:, None, None]), backward


def _engine_conv_transpose2d(x, w, b, stride, padding, output_padding):
    (n, c, h, wd), (_, f, kh, kw), (ph, pw) = x.shape, w.shape, padding
    pads = (ph, ph, pw, pw)
    out_hw = ((h - 1) * stride[0] - 2 * ph + kh + output_padding[0], (wd - 1) * stride[1] - 2 * pw + kw + output_padding[1])
    x_cols = engine.to_chwn(x).reshape(c, -1)
    route = engine.conv2d_route(c, f, (kh, kw), stride, pads)
    y = engine.from_chwn(engine.conv2d_backward_data(x_cols, w, (h, wd), out_hw, stride, pads, route))

    def backward(dy):
        dx_cols, dw_mat = engine.conv2d_chwn(engine.to_chwn(dy, pads), w, stride, (h, wd), dy_cols=x_cols)
        return engine.from_chwn(dx_cols.reshape(c, h, wd, n)), dw_mat.reshape(w.shape), dy.sum(axis=(0, 2, 3))
    return (y if b is None else y + b[:, None, None]), backward


def _layer_pool(cls):
    def op(x, kernel, stride, padding):
        layer = cls(kernel, stride, padding)
        return layer(x), layer.backward
    return op


def _im2col_conv2d(x, w, b, stride, pads):
    y, cols = im2col.conv2d_forward(x, w, b, stride, pads)
    return y, lambda dy: im2col.conv2d_backward(dy, cols, x.shape, w, stride, pads)


LEVELS = {
    "reference": SimpleNamespace(
        conv2d=lambda x, w, b, s, p: (ref.conv2d(x, w, b, s, p), lambda dy: ref.conv2d_backward(x, w, dy, s, p)),
        conv_transpose2d=lambda x, w, b, s, p, op: (
            ref.conv_transpose2d(x, w, b, s, p, op), lambda dy: ref.conv_transpose2d_backward(x, w, dy, s, p)),
        max_pool2d=lambda x, k, s, p: (ref.max_pool2d(x, k, s, p)[0],
                                       lambda dy: ref.max_pool2d_backward(x, dy, k, s, p)),
        avg_pool2d=lambda x, k, s, p: (ref.avg_pool2d(x, k, s, p), lambda dy: ref.avg_pool2d_backward(x, dy, k, s, p))),
    "im2col": SimpleNamespace(
        conv2d=_im2col_conv2d,
        conv_transpose2d=lambda x, w, b, s, p, op: (
            im2col.conv_transpose2d_forward(x, w, b, s, p, op), lambda dy: im2col.conv_transpose2d_backward(dy, x, w, s, p)),
        max_pool2d=im2col.max_pool2d, avg_pool2d=im2col.avg_pool2d),
    "engine": SimpleNamespace(
        conv2d=_engine_conv2d, conv_transpose2d=_engine_conv_transpose2d,
        max_pool2d=_layer_pool(MaxPool2d), avg_pool2d=_layer_pool(AvgPool2d)),
}
FAST = ["im2col", "engine"]


def _conv_problem(cfg, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape_of(cfg))
    w = rng.standard_normal((cfg["f"], cfg["c"]) + cfg["kernel"])
    return x, w, (rng.standard_normal(cfg["f"]) if cfg["bias"] else None)


def _assert_all_close(got, expected):
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=RTOL, atol=ATOL)


def _forward_backward(op, args, out_seed=1):
    y, backward = op(*args)
    dy = np.random.default_rng(out_seed).standard_normal(y.shape)
    grads = backward(dy)
    return y, dy, (grads if isinstance(grads, tuple) else (grads,))


# ---------------------------------------------------------------------------
# every level against the reference
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("level", FAST)
@given(cfg=conv_configs(asymmetric=True))
def test_conv2d_matches_reference(level, cfg):
    args = _conv_problem(cfg) + (cfg["stride"], cfg["pads"])
    y, dy, grads = _forward_backward(getattr(LEVELS[level], "conv2d"), args)
    ry, _, rgrads = _forward_backward(LEVELS["reference"].conv2d, args)
    np.testing.assert_allclose(y, ry, rtol=RTOL, atol=ATOL)
    _assert_all_close(grads, rgrads)                                # dx, dw, db


def _skip_without_numba(route):
    if route == engine.DIRECT and not direct.available():
        pytest.skip("the direct route needs Numba (the fast extra)")


@pytest.mark.parametrize("route", ROUTES)
@given(cfg=conv_configs(asymmetric=True, max_stride=1))
def test_every_engine_route_matches_reference(route, cfg):
    """The engine picks one route per layer; each route must be right wherever it applies
    (the flipped and direct ones: stride 1, padding smaller than the kernel), whatever F and C."""
    _skip_without_numba(route)
    (kh, kw), (pt, pb, pl, pr) = cfg["kernel"], cfg["pads"]
    assume(route == engine.IM2COL or (max(pt, pb) < kh and max(pl, pr) < kw))
    x, w, b = _conv_problem(cfg)
    y, dy, grads = _forward_backward(lambda *a: _engine_conv2d(*a, route=route), (x, w, b, (1, 1), cfg["pads"]))
    ry, _, rgrads = _forward_backward(LEVELS["reference"].conv2d, (x, w, b, (1, 1), cfg["pads"]))
    np.testing.assert_allclose(y, ry, rtol=RTOL, atol=ATOL)
    _assert_all_close(grads, rgrads)


@given(cfg=conv_configs(asymmetric=True, max_stride=1), channels=st.tuples(st.integers(1, 9), st.integers(1, 9)))
def test_direct_route_matches_reference_on_blocks_of_filters(cfg, channels):
    """The direct route's loops treat filters four at a time and the rest one at a time:
    with F and C drawn up to 9, every block/remainder split of the forward (F filters) and of
    dx (C outputs) is compared with the reference."""
    _skip_without_numba(engine.DIRECT)
    (kh, kw), (pt, pb, pl, pr) = cfg["kernel"], cfg["pads"]
    assume(max(pt, pb) < kh and max(pl, pr) < kw)
    cfg = dict(cfg, f=channels[0], c=channels[1])
    x, w, b = _conv_problem(cfg)
    args = (x, w, b, (1, 1), cfg["pads"])
    y, dy, grads = _forward_backward(lambda *a: _engine_conv2d(*a, route=engine.DIRECT), args)
    ry, _, rgrads = _forward_backward(LEVELS["reference"].conv2d, args)
    np.testing.assert_allclose(y, ry, rtol=RTOL, atol=ATOL)
    _assert_all_close(grads, rgrads)


def test_direct_route_gives_the_same_bits_on_any_number_of_threads(monkeypatch):
    """Every task of the direct route writes its own numbers in a fixed order: 1, 2 and 3
    threads give bit-identical y, dx and dw (float32, the conv AE's Conv2d(8, 4, 6))."""
    _skip_without_numba(engine.DIRECT)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 12, 12, 5)).astype(np.float32)
    w = rng.standard_normal((4, 8, 6, 6)).astype(np.float32)
    dy_cols = rng.standard_normal((4, 12 * 12 * 5)).astype(np.float32)
    pads, results = (2, 3, 2, 3), []
    for threads in (1, 2, 3):
        monkeypatch.setattr(direct, "_threads", lambda t=threads: t)
        y = engine.conv2d_forward(x, w, (1, 1), pads, (12, 12), engine.DIRECT)
        results.append((y, *engine.conv2d_backward(x, dy_cols, w, (1, 1), pads, (12, 12), engine.DIRECT)))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert a.dtype == np.float32 and np.array_equal(a, b)


def test_direct_route_flushes_subnormal_gradients_and_nothing_else():
    """A trained model's saturated sigmoid hands the last convolution a dy with subnormal
    entries, which made its backward 10× slower on the CPU: the direct route sets them to 0
    first.  The result equals the backward of dy with those entries zeroed, bit for bit; the
    caller's dy is not modified; a dy without subnormals is used as it is."""
    _skip_without_numba(engine.DIRECT)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 9, 9, 6)).astype(np.float32)
    w = rng.standard_normal((1, 4, 7, 7)).astype(np.float32)
    dy_cols = rng.standard_normal((1, 9 * 9 * 6)).astype(np.float32)
    tiny = np.finfo(np.float32).tiny
    dy_cols[0, ::7] = tiny * rng.uniform(0.01, 0.9, dy_cols[0, ::7].shape).astype(np.float32)
    assert np.all(np.abs(dy_cols[0, ::7]) < tiny) and np.all(dy_cols[0, ::7] != 0)
    before = dy_cols.copy()
    got = engine.conv2d_backward(x, dy_cols, w, (1, 1), (3, 3, 3, 3), (9, 9), engine.DIRECT)
    zeroed = np.where(np.abs(dy_cols) < tiny, np.float32(0), dy_cols)
    want = engine.conv2d_backward(x, zeroed, w, (1, 1), (3, 3, 3, 3), (9, 9), engine.DIRECT)
    assert np.array_equal(dy_cols, before)
    for a, b in zip(got, want):
        assert np.array_equal(a, b)
    normal = rng.standard_normal((3, 5)).astype(np.float32)
    assert direct.flush_subnormals(normal) is normal


@pytest.mark.parametrize("level", FAST)
@given(cfg=conv_transpose_configs())
def test_conv_transpose2d_matches_reference(level, cfg):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape_of(cfg))
    w = rng.standard_normal((cfg["c"], cfg["f"]) + cfg["kernel"])
    b = rng.standard_normal(cfg["f"]) if cfg["bias"] else None
    args = (x, w, b, cfg["stride"], cfg["padding"], cfg["output_padding"])
    y, _, grads = _forward_backward(LEVELS[level].conv_transpose2d, args)
    ry, _, rgrads = _forward_backward(LEVELS["reference"].conv_transpose2d, args)
    np.testing.assert_allclose(y, ry, rtol=RTOL, atol=ATOL)
    _assert_all_close(grads, rgrads)


@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d"])
@pytest.mark.parametrize("level", FAST)
@given(cfg=pool_configs(), seed=st.integers(0, 100))
def test_pooling_matches_reference(level, op, cfg, seed):
    args = (distinct(seed, shape_of(cfg)), cfg["kernel"], cfg["stride"], cfg["padding"])
    y, _, grads = _forward_backward(getattr(LEVELS[level], op), args)
    ry, _, rgrads = _forward_backward(getattr(LEVELS["reference"], op), args)
    np.testing.assert_allclose(y, ry, rtol=RTOL, atol=ATOL)
    _assert_all_close(grads, rgrads)


# ---------------------------------------------------------------------------
# at every level, the reference included: backward is the adjoint of forward
# ---------------------------------------------------------------------------
def _dot(a, b):
    return float(np.sum(a * b))


@pytest.mark.parametrize("level", list(LEVELS))
@given(cfg=conv_configs(max_hw=6, asymmetric=True), tcfg=conv_transpose_configs(max_hw=4),
       pcfg=pool_configs(max_hw=6))
def test_backward_is_the_adjoint_of_forward(level, cfg, tcfg, pcfg):
    """y is linear in x (and in w): Σ y·dy = Σ x·dx = Σ w·dw without bias.  Max pooling is
    linear on each piece (y = the winners), so Σ y·dy = Σ x·dx holds for it too."""
    ops = LEVELS[level]
    x, w, _ = _conv_problem(cfg)
    y, dy, (dx, dw, _) = _forward_backward(ops.conv2d, (x, w, None, cfg["stride"], cfg["pads"]))
    assert _dot(y, dy) == pytest.approx(_dot(x, dx), rel=1e-10, abs=1e-10)
    assert _dot(y, dy) == pytest.approx(_dot(w, dw), rel=1e-10, abs=1e-10)
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal(shape_of(tcfg)), rng.standard_normal((tcfg["c"], tcfg["f"]) + tcfg["kernel"])
    y, dy, (dx, dw, _) = _forward_backward(ops.conv_transpose2d,
                                           (x, w, None, tcfg["stride"], tcfg["padding"], tcfg["output_padding"]))
    assert _dot(y, dy) == pytest.approx(_dot(x, dx), rel=1e-10, abs=1e-10)
    assert _dot(y, dy) == pytest.approx(_dot(w, dw), rel=1e-10, abs=1e-10)
    for op in ("max_pool2d", "avg_pool2d"):
        x = distinct(3, shape_of(pcfg))
        y, dy, (dx,) = _forward_backward(getattr(ops, op), (x, pcfg["kernel"], pcfg["stride"], pcfg["padding"]))
        assert _dot(y, dy) == pytest.approx(_dot(x, dx), rel=1e-10, abs=1e-10)


# ---------------------------------------------------------------------------
# docs/backprop.md quotes the im2col level: the quotes must stay true
# ---------------------------------------------------------------------------
def _quoted_blocks(markdown, source_name):
    """The code blocks of ``markdown`` whose first line is ``# <source_name>``, as line lists."""
    blocks = re.findall(r"```python\n(.*?)```", markdown, flags=re.S)
    return [b.splitlines()[1:] for b in blocks if b.splitlines()[0].strip() == f"# {source_name}"]


def test_backprop_doc_quotes_the_im2col_source_verbatim():
    source_lines = {line.strip() for line in (ROOT / "tinyae/nn/im2col.py").read_text(encoding="utf-8").splitlines()}
    blocks = _quoted_blocks((ROOT / "docs/backprop.md").read_text(encoding="utf-8"), "tinyae/nn/im2col.py")
    assert len(blocks) >= 3, "docs/backprop.md should quote im2col, conv2d_forward and conv2d_backward"
    quoted = [line.strip() for block in blocks for line in block if line.strip() not in ("", "...")]
    missing = [line for line in quoted if line not in source_lines]
    assert not missing, f"docs/backprop.md quotes lines that tinyae/nn/im2col.py no longer has: {missing}"
    for start, comment in (("y = w_mat @ cols", "# y = W · im2col(x)"), ("dw = dy_mat @ cols.T", "# dW = dy · colsᵀ"),
                           ("dxpad = col2im(w_mat.T @ dy_mat", None), ("dy.shape[2:])", "# dx = col2im(Wᵀ · dy)")):
        assert any(line.startswith(start) and (comment is None or line.endswith(comment)) for line in quoted), \
            f"docs/backprop.md should quote the line {start!r}"


# ---------------------------------------------------------------------------
# a whole model on each level: the conv AEs trained a few steps, the same numbers
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["conv-ae", "conv-ae-transposed"])
def test_a_conv_model_trains_the_same_on_every_level(name):
    """models.build(name) in float64, 3 Adam steps on 2 digits-sized inputs, once per level
    (nn.set_conv_impl), and once more with every stride-1 layer on the engine's direct route:
    the loops, im2col and the engine give the same losses and weights."""
    from tinyae import models, nn
    from tinyae.optim import Adam

    x = np.random.default_rng(0).uniform(0.05, 0.95, (2, 1, 28, 28))
    results = {}
    for impl in nn.conv.IMPLS + ("engine, direct route",):
        model = nn.set_conv_impl(models.build(name, seed=1).double(), impl.split(",")[0])
        convs = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
        assert all(m.impl == impl.split(",")[0] for m in convs)
        if impl.endswith("direct route"):      # whatever conv2d_route chose on this machine
            if not direct.available():
                continue
            for m in convs:
                if m.route != engine.IM2COL or m.stride == (1, 1):
                    m.route = engine.DIRECT
        opt = Adam(model.parameters(), lr=1e-3, engine="reference")
        losses = []
        for _ in range(3):
            total, _ = model.loss(x)
            opt.zero_grad()
            model.backward_loss()
            opt.step()
            losses.append(float(total))
        results[impl] = (losses, [p.data.copy() for p in model.parameters()])
    ref_losses, ref_params = results["loops"]
    for impl in set(results) - {"loops"}:
        losses, params = results[impl]
        np.testing.assert_allclose(losses, ref_losses, rtol=1e-12, atol=0, err_msg=impl)
        for a, b in zip(params, ref_params):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-12, err_msg=impl)


def test_conv_impl_is_checked_and_loops_refuse_what_they_cannot_run():
    from tinyae import nn
    with pytest.raises(ValueError, match=r"Conv2d\(1, 2, kernel_size=3\): impl must be one of \('engine', "):
        nn.Conv2d(1, 2, 3, impl="fast")
    with pytest.raises(ValueError, match=r"impl must be one of"):
        nn.set_conv_impl(nn.Sequential(nn.ConvTranspose2d(1, 2, 3)), "gpu")
    layer = nn.Conv2d(1, 2, 3, rng=0, impl="im2col")
    y = layer(np.ones((1, 1, 4, 4), np.float32))
    assert y.dtype == np.float32 and y.shape == (1, 2, 2, 2)
    assert layer.backward(np.ones_like(y), need_dx=False) is None and layer.weight.grad.any()
