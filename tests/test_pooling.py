"""MaxPool2d, AvgPool2d, MaxUnpool2d and Upsample: hand-computed values, loop references,
float64 gradient checks, PyTorch agreement (values, indices, gradients) and errors."""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from strategies import distinct, pool_configs, shape_of
from tinyae import backend
from tinyae.gradcheck import check_module
from tinyae.nn import reference as ref
from tinyae.nn.pooling import AvgPool2d, MaxPool2d, MaxUnpool2d, Upsample

RTOL, ATOL = 1e-6, 1e-9


# ---------------------------------------------------------------------------
# hand-computed values
# ---------------------------------------------------------------------------
X44 = np.array([[1, 5, 2, 0],
                [3, 4, 8, 6],
                [0, 9, 1, 1],
                [7, 2, 3, 4]], dtype=np.float64).reshape(1, 1, 4, 4)


def test_max_pool_by_hand():
    pool = MaxPool2d(2, return_indices=True)
    y, idx = pool(X44)
    np.testing.assert_array_equal(y[0, 0], [[5, 8], [9, 4]])
    np.testing.assert_array_equal(idx[0, 0], [[1, 6], [9, 15]])
    assert idx.dtype == np.int64
    dx = pool.backward(np.array([[[[10.0, 20.0], [30.0, 40.0]]]]))
    expected = np.zeros((4, 4))
    expected[0, 1], expected[1, 2], expected[2, 1], expected[3, 3] = 10, 20, 30, 40
    np.testing.assert_array_equal(dx[0, 0], expected)


def test_max_pool_overlapping_windows_add_up():
    # 3×3 windows with stride 1 on a 4×4 map: the 9 wins all four windows
    pool = MaxPool2d(3, stride=1)
    y = pool(X44)
    np.testing.assert_array_equal(y[0, 0], [[9, 9], [9, 9]])
    dx = pool.backward(np.ones((1, 1, 2, 2)))
    assert dx[0, 0, 2, 1] == 4 and dx.sum() == 4


def test_max_pool_ties_go_to_the_first_maximum():
    y, idx = MaxPool2d(2, return_indices=True)(np.ones((1, 1, 2, 2)))
    assert idx[0, 0, 0, 0] == 0


def test_avg_pool_by_hand():
    pool = AvgPool2d(2)
    np.testing.assert_array_equal(pool(X44)[0, 0], [[13 / 4, 16 / 4], [18 / 4, 9 / 4]])
    np.testing.assert_array_equal(pool.backward(np.full((1, 1, 2, 2), 4.0))[0, 0], np.ones((4, 4)))
    # padding counts as zeros in the divisor (count_include_pad=True)
    y = AvgPool2d(3, stride=1, padding=1)(np.ones((1, 1, 3, 3)))
    np.testing.assert_allclose(y[0, 0], np.array([[4, 6, 4], [6, 9, 6], [4, 6, 4]]) / 9)


def test_unpool_by_hand():
    pool, unpool = MaxPool2d(2, return_indices=True), MaxUnpool2d(2)
    y, idx = pool(X44)
    z = unpool(y, idx)
    expected = np.zeros((4, 4))
    expected[0, 1], expected[1, 2], expected[2, 1], expected[3, 3] = 5, 8, 9, 4
    np.testing.assert_array_equal(z[0, 0], expected)
    dz = np.arange(16.0).reshape(1, 1, 4, 4)
    np.testing.assert_array_equal(unpool.backward(dz)[0, 0], [[1, 6], [9, 15]])


def test_upsample_by_hand():
    up = Upsample(2)
    x = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    np.testing.assert_array_equal(up(x)[0, 0], [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]])
    np.testing.assert_array_equal(up.backward(np.ones((1, 1, 4, 4)))[0, 0], [[4, 4], [4, 4]])
    assert Upsample((1, 3))(x).shape == (1, 1, 2, 6)
    assert Upsample(2.0).scale_factor == (2, 2)


# ---------------------------------------------------------------------------
# loop references
# ---------------------------------------------------------------------------
@given(pool_configs())
def test_max_pool_matches_loop_reference(cfg):
    x = distinct(0, shape_of(cfg), spacing=0.1)
    y, idx = MaxPool2d(cfg["kernel"], cfg["stride"], cfg["padding"], return_indices=True)(x)
    ry, ridx = ref.max_pool2d(x, cfg["kernel"], cfg["stride"], cfg["padding"])
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(idx, ridx)


@given(pool_configs())
def test_avg_pool_matches_loop_reference(cfg):
    x = distinct(0, shape_of(cfg), spacing=0.1)
    y = AvgPool2d(cfg["kernel"], cfg["stride"], cfg["padding"])(x)
    np.testing.assert_allclose(y, ref.avg_pool2d(x, cfg["kernel"], cfg["stride"], cfg["padding"]),
                               rtol=RTOL, atol=ATOL)


# ---------------------------------------------------------------------------
# gradient checks in float64
# ---------------------------------------------------------------------------
@given(pool_configs(max_hw=7))
def test_max_pool_gradcheck(cfg):
    check_module(MaxPool2d(cfg["kernel"], cfg["stride"], cfg["padding"]), distinct(0, shape_of(cfg), spacing=0.1))


@given(pool_configs(max_hw=7))
def test_avg_pool_gradcheck(cfg):
    check_module(AvgPool2d(cfg["kernel"], cfg["stride"], cfg["padding"]), distinct(0, shape_of(cfg), spacing=0.1))


@st.composite
def unpool_cases(draw):
    """A pooled map with its indices, from a MaxPool2d whose windows never share a winner."""
    cfg = draw(pool_configs(max_hw=8))
    x = distinct(draw(st.integers(0, 10)), shape_of(cfg), spacing=0.1)
    pool = MaxPool2d(cfg["kernel"], cfg["stride"], cfg["padding"], return_indices=True)
    y, idx = pool(x)
    flat = idx.reshape(idx.shape[0] * idx.shape[1], -1)
    assume(all(len(np.unique(row)) == row.size for row in flat))  # a shared winner: not invertible
    return cfg, y, idx


class UnpoolFixedIndices(MaxUnpool2d):
    """MaxUnpool2d with the indices held fixed, so check_module sees a one-input layer
    (the indices are constants, not something to differentiate)."""

    def __init__(self, indices, output_size, *args):
        super().__init__(*args)
        self.fixed = (indices, output_size)

    def forward(self, x):
        return super().forward(x, *self.fixed)


@given(unpool_cases())
def test_max_unpool_gradcheck(case):
    cfg, y, idx = case
    check_module(UnpoolFixedIndices(idx, (cfg["h"], cfg["w"]), cfg["kernel"], cfg["stride"], cfg["padding"]), y)


@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 5), st.integers(1, 5),
       st.integers(1, 3), st.integers(1, 3))
def test_upsample_gradcheck(n, c, h, w, sh, sw):
    check_module(Upsample((sh, sw)), np.random.default_rng(0).standard_normal((n, c, h, w)))


# ---------------------------------------------------------------------------
# agreement with PyTorch (float64)
# ---------------------------------------------------------------------------
def _torch_grad(fn, x, dy, torch):
    xt = torch.from_numpy(x.copy()).requires_grad_()
    out = fn(xt)
    yt = out[0] if isinstance(out, tuple) else out
    yt.backward(torch.from_numpy(dy))
    return out, xt.grad.numpy()


@given(pool_configs())
def test_max_pool_matches_torch(cfg):
    torch = pytest.importorskip("torch")
    x = distinct(0, shape_of(cfg), spacing=0.1)
    pool = MaxPool2d(cfg["kernel"], cfg["stride"], cfg["padding"], return_indices=True)
    y, idx = pool(x)
    dy = np.random.default_rng(1).standard_normal(y.shape)
    (yt, it), dxt = _torch_grad(torch.nn.MaxPool2d(cfg["kernel"], cfg["stride"], cfg["padding"],
                                                   return_indices=True), x, dy, torch)
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_array_equal(idx, it.numpy())
    np.testing.assert_allclose(pool.backward(dy), dxt, rtol=RTOL, atol=ATOL)


@given(pool_configs())
def test_avg_pool_matches_torch(cfg):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal(shape_of(cfg))
    pool = AvgPool2d(cfg["kernel"], cfg["stride"], cfg["padding"])
    y = pool(x)
    dy = np.random.default_rng(1).standard_normal(y.shape)
    yt, dxt = _torch_grad(torch.nn.AvgPool2d(cfg["kernel"], cfg["stride"], cfg["padding"]), x, dy, torch)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(pool.backward(dy), dxt, rtol=RTOL, atol=ATOL)


@given(unpool_cases(), st.booleans())
def test_max_unpool_matches_torch(case, give_size):
    torch = pytest.importorskip("torch")
    cfg, y, idx = case
    size = (cfg["h"], cfg["w"]) if give_size else None
    unpool = MaxUnpool2d(cfg["kernel"], cfg["stride"], cfg["padding"])
    theirs = torch.nn.MaxUnpool2d(cfg["kernel"], cfg["stride"], cfg["padding"])
    try:
        z = unpool(y, idx, size)
    except ValueError as exc:  # without output_size, pooling may have dropped rows
        assert not give_size
        if "not positive" in str(exc):
            # the default output size is empty: PyTorch returns an empty tensor, tinyae refuses
            assert theirs(torch.from_numpy(y), torch.from_numpy(idx)).numel() == 0
            return
        with pytest.raises(RuntimeError):  # indices fall outside the default output
            theirs(torch.from_numpy(y), torch.from_numpy(idx))
        return
    dz = np.random.default_rng(1).standard_normal(z.shape)
    zt, dyt = _torch_grad(lambda t: theirs(t, torch.from_numpy(idx), size), y, dz, torch)
    np.testing.assert_array_equal(z, zt.detach().numpy())
    np.testing.assert_allclose(unpool.backward(dz), dyt, rtol=RTOL, atol=ATOL)


@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 6), st.integers(1, 6),
       st.integers(1, 3), st.integers(1, 3))
def test_upsample_matches_torch(n, c, h, w, sh, sw):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((n, c, h, w))
    up = Upsample((sh, sw))
    y = up(x)
    dy = np.random.default_rng(1).standard_normal(y.shape)
    yt, dxt = _torch_grad(torch.nn.Upsample(scale_factor=(sh, sw), mode="nearest"), x, dy, torch)
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_allclose(up.backward(dy), dxt, rtol=RTOL, atol=ATOL)


# ---------------------------------------------------------------------------
# conventions and errors
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda: MaxPool2d(3, 2, 1), lambda: MaxPool2d(2), lambda: AvgPool2d(3, 2, 1),
                                  lambda: Upsample(2)])
def test_float32_is_preserved(make):
    layer = make()
    x = distinct(0, (2, 3, 6, 6), spacing=0.1).astype(np.float32)
    y = layer(x)
    dx = layer.backward(np.ones_like(y))
    assert y.dtype == dx.dtype == np.float32 and dx.shape == x.shape


def test_unpool_float32_and_int32_indices():
    x = distinct(0, (2, 3, 6, 6), spacing=0.1).astype(np.float32)
    y, idx = MaxPool2d(2, return_indices=True)(x)
    unpool = MaxUnpool2d(2)
    z = unpool(y, idx.astype(np.int32), output_size=(2, 3, 6, 6))
    assert z.dtype == np.float32 and z.shape == x.shape
    assert unpool.backward(np.ones_like(z)).dtype == np.float32


def test_stride_defaults_to_kernel():
    assert MaxPool2d(3).stride == (3, 3) and AvgPool2d((2, 3)).stride == (2, 3)
    assert MaxUnpool2d(2).stride == (2, 2)


def test_repr():
    assert repr(MaxPool2d(2)) == "MaxPool2d(kernel_size=(2, 2), stride=(2, 2))"
    assert repr(AvgPool2d(3, 2, 1)) == "AvgPool2d(kernel_size=(3, 3), stride=(2, 2), padding=(1, 1))"
    assert repr(Upsample(2)) == "Upsample(scale_factor=2, mode='nearest')"


@pytest.mark.parametrize("make, match", [
    (lambda: MaxPool2d(2, padding=2), r"padding \(2, 2\) must be at most half the kernel size \(2, 2\)"),
    (lambda: AvgPool2d(3, padding=(1, 2)), r"at most half the kernel size"),
    (lambda: MaxPool2d(0), r"kernel_size must be positive, got \(0, 0\)"),
    (lambda: AvgPool2d(2, stride=0), r"stride must be positive"),
    (lambda: MaxPool2d(2, padding=-1), r"padding must be non-negative"),
    (lambda: MaxUnpool2d((2, 0)), r"kernel_size must be positive"),
    (lambda: Upsample(0), r"scale_factor must be positive"),
    (lambda: Upsample(1.5), r"scale_factor must be a positive integer or a pair"),
    (lambda: Upsample(2, mode="bilinear"), r"only mode='nearest'"),
])
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"MaxPool2d\(kernel_size=\(5, 5\).*kernel size \(5, 5\) is larger than "
                                         r"the padded input \(4, 4\)"):
        MaxPool2d(5)(np.zeros((1, 1, 4, 4)))
    with pytest.raises(ValueError, match="expected a 4-D input"):
        AvgPool2d(2)(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="floating-point"):
        Upsample(2)(np.zeros((1, 1, 2, 2), dtype=np.int64))
    with pytest.raises(RuntimeError, match="backward called before forward"):
        MaxPool2d(2).backward(np.zeros((1, 1, 2, 2)))
    y, idx = MaxPool2d(2, return_indices=True)(distinct(0, (1, 2, 4, 4), spacing=0.1))
    with pytest.raises(ValueError, match=r"expected indices of the input's shape \(1, 2, 2, 2\)"):
        MaxUnpool2d(2)(y, idx[:, :1])
    with pytest.raises(ValueError, match="integer indices"):
        MaxUnpool2d(2)(y, idx.astype(np.float64))
    unpool = MaxUnpool2d(2)
    unpool(y, idx)
    with pytest.raises(ValueError, match=r"shape \(1, 2, 4, 4\) and dtype float64; got shape \(1, 2, 2, 2\)"):
        unpool.backward(y)
    pool = AvgPool2d(2)
    pool(np.zeros((1, 1, 4, 4)))
    with pytest.raises(ValueError, match=r"shape \(1, 1, 2, 2\) and dtype float64; got shape \(1, 1, 4, 4\)"):
        pool.backward(np.zeros((1, 1, 4, 4)))
    with pytest.raises(ValueError, match=r"indices must lie in the 2×2 output plane \[0, 4\), "
                                         r"got values in \[0, 15\]"):
        MaxUnpool2d(2)(y, idx, output_size=(2, 2))


@pytest.mark.gpu
def test_cupy_matches_numpy():
    if not backend.cupy_available():
        pytest.skip("CuPy with a CUDA device is not available")
    cupy = backend.cupy_module()      # or its CPU stand-in (TINYAE_FAKE_CUPY=1)
    x = distinct(0, (2, 3, 8, 8), spacing=0.1)
    for make in (lambda: MaxPool2d(3, 2, 1), lambda: AvgPool2d(3, 2, 1), lambda: Upsample(2)):
        cpu, gpu = make(), make()
        y = cpu(x)
        dy = np.random.default_rng(1).standard_normal(y.shape)
        np.testing.assert_allclose(gpu(cupy.asarray(x)).get(), y, rtol=1e-12)
        np.testing.assert_allclose(gpu.backward(cupy.asarray(dy)).get(), cpu.backward(dy), rtol=1e-12)
    y, idx = MaxPool2d(2, return_indices=True)(x)
    z = MaxUnpool2d(2)(cupy.asarray(y), cupy.asarray(idx))
    np.testing.assert_array_equal(z.get(), MaxUnpool2d(2)(y, idx))
