"""Conv2d and ConvTranspose2d: hand-computed values, the plain-loop reference, float64
gradient checks, PyTorch agreement, "same" padding, dtypes, and the error messages."""
import numpy as np
import pytest
from hypothesis import given

from strategies import conv_configs, conv_transpose_configs, shape_of
from tinyae import backend
from tinyae.gradcheck import check_module
from tinyae.nn import _conv_direct as direct
from tinyae.nn import _conv_engine as engine
from tinyae.nn import reference as ref
from tinyae.nn.conv import Conv2d, ConvTranspose2d
from tinyae.nn._conv_args import same_padding

RTOL, ATOL = 1e-6, 1e-9


def make_conv(cfg, seed=0):
    return Conv2d(cfg["c"], cfg["f"], cfg["kernel"], cfg["stride"], cfg["padding"], bias=cfg["bias"], rng=seed)


def make_conv_t(cfg, seed=0):
    return ConvTranspose2d(cfg["c"], cfg["f"], cfg["kernel"], cfg["stride"], cfg["padding"],
                           cfg["output_padding"], bias=cfg["bias"], rng=seed)


def inputs(cfg, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape_of(cfg))


def sym(p):
    return p[0], p[0], p[1], p[1]


# ---------------------------------------------------------------------------
# small cases computed by hand
# ---------------------------------------------------------------------------
def test_conv2d_by_hand():
    # kernel [[1, 0], [0, -1]]: y[r, s] = x[r, s] - x[r+1, s+1] = -5 for x = arange(16) in 4×4
    conv = Conv2d(1, 1, 2, rng=0).double()
    conv.weight.data[...] = [[[[1, 0], [0, -1]]]]
    conv.bias.data[...] = 0.5
    x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    np.testing.assert_array_equal(conv(x), np.full((1, 1, 3, 3), -4.5))
    # dy = 1 everywhere: dx = Σ over windows of the kernel; dw[i, j] = Σ of the 3×3 block at (i, j)
    dx = conv.backward(np.ones((1, 1, 3, 3)))
    expected_dx = np.zeros((4, 4))
    expected_dx[:3, :3] += 1
    expected_dx[1:, 1:] -= 1
    np.testing.assert_array_equal(dx[0, 0], expected_dx)
    np.testing.assert_array_equal(conv.weight.grad[0, 0], [[45, 54], [81, 90]])
    np.testing.assert_array_equal(conv.bias.grad, [9])


def test_conv2d_padding_and_stride_by_hand():
    # a 3×3 box filter over ones with padding 1 counts the in-image pixels of each window
    conv = Conv2d(1, 1, 3, padding=1, bias=False, rng=0).double()
    conv.weight.data[...] = 1
    y = conv(np.ones((1, 1, 3, 3)))
    np.testing.assert_array_equal(y[0, 0], [[4, 6, 4], [6, 9, 6], [4, 6, 4]])
    conv = Conv2d(1, 1, 3, stride=2, padding=1, bias=False, rng=0).double()
    conv.weight.data[...] = 1
    y = conv(np.ones((1, 1, 5, 5)))
    np.testing.assert_array_equal(y[0, 0], [[4, 6, 4], [6, 9, 6], [4, 6, 4]])


def test_conv_transpose2d_by_hand():
    # stride 2, kernel 2×2 of ones: every input pixel becomes a 2×2 block
    ct = ConvTranspose2d(1, 1, 2, stride=2, bias=False, rng=0).double()
    ct.weight.data[...] = 1
    y = ct(np.array([[[[1.0, 2.0]]]]))
    np.testing.assert_array_equal(y[0, 0], [[1, 1, 2, 2], [1, 1, 2, 2]])
    # stride 1: the stamps overlap and add
    ct = ConvTranspose2d(1, 1, 2, bias=False, rng=0).double()
    ct.weight.data[...] = 1
    y = ct(np.ones((1, 1, 2, 2)))
    np.testing.assert_array_equal(y[0, 0], [[1, 2, 1], [2, 4, 2], [1, 2, 1]])
    # backward: dx[h, w] = Σ of dy over the 2×2 stamp of (h, w)
    dx = ct.backward(np.arange(9.0).reshape(1, 1, 3, 3))
    np.testing.assert_array_equal(dx[0, 0], [[8, 12], [20, 24]])


def test_output_shapes_of_the_tutorial_autoencoder():
    x = np.zeros((2, 1, 28, 28), np.float32)
    assert Conv2d(1, 16, 3, stride=2, padding=1, rng=0)(x).shape == (2, 16, 14, 14)
    assert Conv2d(1, 16, 7, rng=0)(x).shape == (2, 16, 22, 22)
    h = np.zeros((2, 32, 7, 7), np.float32)
    assert ConvTranspose2d(32, 16, 3, stride=2, padding=1, output_padding=1, rng=0)(h).shape == (2, 16, 14, 14)
    assert ConvTranspose2d(32, 16, 7, rng=0)(h).shape == (2, 16, 13, 13)


# ---------------------------------------------------------------------------
# the fast layers against the plain-loop reference
# ---------------------------------------------------------------------------
@given(conv_configs())
def test_conv2d_matches_loop_reference(cfg):
    conv = make_conv(cfg).double()
    x = inputs(cfg)
    y = conv(x)
    b = conv.bias.data if conv.bias is not None else None
    pads = sym(cfg["padding"])
    np.testing.assert_allclose(y, ref.conv2d(x, conv.weight.data, b, cfg["stride"], pads), rtol=RTOL, atol=ATOL)
    dy = np.random.default_rng(1).standard_normal(y.shape)
    dx = conv.backward(dy)
    rdx, rdw, rdb = ref.conv2d_backward(x, conv.weight.data, dy, cfg["stride"], pads)
    np.testing.assert_allclose(dx, rdx, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(conv.weight.grad, rdw, rtol=RTOL, atol=ATOL)
    if conv.bias is not None:
        np.testing.assert_allclose(conv.bias.grad, rdb, rtol=RTOL, atol=ATOL)


@given(conv_transpose_configs())
def test_conv_transpose2d_matches_loop_reference(cfg):
    ct = make_conv_t(cfg).double()
    x = inputs(cfg)
    y = ct(x)
    b = ct.bias.data if ct.bias is not None else None
    expected = ref.conv_transpose2d(x, ct.weight.data, b, cfg["stride"], cfg["padding"], cfg["output_padding"])
    np.testing.assert_allclose(y, expected, rtol=RTOL, atol=ATOL)
    dy = np.random.default_rng(1).standard_normal(y.shape)
    dx = ct.backward(dy)
    rdx, rdw, rdb = ref.conv_transpose2d_backward(x, ct.weight.data, dy, cfg["stride"], cfg["padding"])
    np.testing.assert_allclose(dx, rdx, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(ct.weight.grad, rdw, rtol=RTOL, atol=ATOL)
    if ct.bias is not None:
        np.testing.assert_allclose(ct.bias.grad, rdb, rtol=RTOL, atol=ATOL)

ROUTES = [r for r in (engine.FLIPPED, engine.IM2COL, engine.DIRECT) if r != engine.DIRECT or direct.available()]


@pytest.mark.parametrize("f, c", [(1, 3), (3, 1), (2, 2)])
def test_both_input_gradient_routes_agree(f, c):
    """conv2d_backward_data takes the direct route for stride 1 and few channels (with Numba),
    else the flipped-kernel route for F < C and col2im otherwise; here every route is forced
    on the same problem."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((f, c, 3, 2))
    pads, (h, wd) = (1, 0, 0, 1), (5, 4)
    oh, ow = h + 1 - 3 + 1, wd + 1 - 2 + 1
    dy_cols = rng.standard_normal((f, oh * ow * 2))
    route = engine.conv2d_route(f, c, (3, 2), (1, 1), pads)
    assert route == (engine.DIRECT if direct.preferred() else engine.FLIPPED if f < c else engine.IM2COL)
    got = engine.conv2d_backward_data(dy_cols, w, (oh, ow), (h, wd), (1, 1), pads, route)
    dcols = (w.reshape(f, -1).T @ dy_cols).reshape(c, 3, 2, oh, ow, 2)
    via_col2im = engine.col2im_chwn(dcols, (1, 1), out=np.zeros((c, h + 1, wd + 1, 2)))[:, 1:1 + h, 0:wd]
    np.testing.assert_allclose(got, via_col2im, rtol=RTOL, atol=ATOL)
    for forced in ROUTES:                           # every route is right whatever F and C
        np.testing.assert_allclose(engine.conv2d_backward_data(dy_cols, w, (oh, ow), (h, wd), (1, 1), pads, forced),
                                   via_col2im, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("route", ["flipped", "direct"])
@pytest.mark.parametrize("f, c, kernel, pads", [(1, 3, (3, 2), (1, 0, 0, 1)), (2, 5, (4, 4), (1, 2, 1, 2)),
                                                (3, 4, (1, 1), (0, 0, 0, 0)), (6, 2, (3, 3), (1, 1, 1, 1))])
def test_stride1_routes_forward_and_weight_gradient_match_im2col(route, f, c, kernel, pads):
    """On the flipped route (stride 1) conv2d_forward goes through col2im and conv2d_backward
    takes dw from the im2col of dy; on the direct route both are compiled loops without
    im2col.  On each, y must equal the plain im2col product, dw the plain dy @ im2col(xpad)ᵀ,
    and dx the col2im route's (6 filters: a block of four and a remainder of two)."""
    if route == engine.DIRECT and not direct.available():
        pytest.skip("the direct route needs Numba (the fast extra)")
    rng = np.random.default_rng(1)
    (kh, kw), (h, wd), n = kernel, (5, 6), 3
    w = rng.standard_normal((f, c, kh, kw))
    x = rng.standard_normal((c, h, wd, n))
    xpad = engine.pad_chwn(x, pads)
    oh, ow = xpad.shape[1] - kh + 1, xpad.shape[2] - kw + 1
    dy_cols = rng.standard_normal((f, oh * ow * n))
    rule = engine.DIRECT if direct.preferred() else engine.FLIPPED if f < c else engine.IM2COL
    assert engine.conv2d_route(f, c, kernel, (1, 1), pads) == rule
    y = engine.conv2d_forward(x, w, (1, 1), pads, (oh, ow), route)            # via col2im on this route
    np.testing.assert_allclose(y, engine.conv2d_chwn(xpad, w, (1, 1), (oh, ow))[0], rtol=RTOL, atol=ATOL)
    dx, dw = engine.conv2d_backward(x, dy_cols, w, (1, 1), pads, (oh, ow), route)
    dw_plain = engine.conv2d_backward_weight(xpad, dy_cols, kernel, (1, 1), (oh, ow))
    np.testing.assert_allclose(dw, dw_plain, rtol=RTOL, atol=ATOL)
    dcols = (w.reshape(f, -1).T @ dy_cols).reshape(c, kh, kw, oh, ow, n)
    dxpad = engine.col2im_chwn(dcols, (1, 1), out=np.zeros(xpad.shape))
    np.testing.assert_allclose(dx, dxpad[:, pads[0]:pads[0] + h, pads[2]:pads[2] + wd], rtol=RTOL, atol=ATOL)
    _, dw_only = engine.conv2d_backward(x, dy_cols, w, (1, 1), pads, (oh, ow), route, need_dx=False)
    np.testing.assert_allclose(dw_only, dw_plain, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("band_bytes", [1, 3000])   # one output row per band; a few rows per band
@pytest.mark.parametrize("layer, shape", [
    (lambda: Conv2d(2, 3, (3, 2), stride=(2, 1), padding=1, rng=0), (2, 2, 9, 6)),
    (lambda: Conv2d(3, 2, 4, padding="same", rng=0), (2, 3, 7, 5)),          # flipped-kernel route
    (lambda: ConvTranspose2d(3, 2, 3, stride=2, padding=1, output_padding=1, rng=0), (2, 3, 5, 4)),
    (lambda: ConvTranspose2d(2, 3, 3, rng=0), (2, 2, 5, 4)),
])
def test_bands_give_the_same_numbers(monkeypatch, band_bytes, layer, shape):
    """im2col and col2im run over bands of output rows; any band size gives the same result."""
    x = np.random.default_rng(0).standard_normal(shape)
    whole = layer().double()
    y = whole(x)
    dy = np.random.default_rng(1).standard_normal(y.shape)
    dx = whole.backward(dy)
    monkeypatch.setattr(engine, "BAND_BYTES", band_bytes)
    splits, row_bands = [], engine.row_bands
    monkeypatch.setattr(engine, "row_bands", lambda oh, nbytes: splits.append(row_bands(oh, nbytes)) or splits[-1])
    banded = layer().double()
    np.testing.assert_allclose(banded(x), y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(banded.backward(dy), dx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(banded.weight.grad, whole.weight.grad, rtol=1e-12, atol=1e-12)
    assert all(len(bands) > 1 for bands in splits)      # every loop really ran over several bands


def test_row_bands_cover_the_rows_once():
    assert engine.row_bands(5, engine.BAND_BYTES) == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]
    assert engine.row_bands(5, engine.BAND_BYTES // 2) == [(0, 2), (2, 4), (4, 5)]
    assert engine.row_bands(5, 1) == [(0, 5)]
    assert engine.band_input_rows(2, 4, kh=3, sh=2) == slice(4, 9)


# ---------------------------------------------------------------------------
# gradient checks in float64
# ---------------------------------------------------------------------------
@given(conv_configs(max_hw=7))
def test_conv2d_gradcheck(cfg):
    check_module(make_conv(cfg), inputs(cfg))


@given(conv_transpose_configs(max_hw=4))
def test_conv_transpose2d_gradcheck(cfg):
    check_module(make_conv_t(cfg), inputs(cfg))


@pytest.mark.parametrize("k", [2, 4, 6])
def test_same_padding_even_kernel_gradcheck(k):
    conv = Conv2d(2, 3, k, padding="same", rng=0)
    check_module(conv, np.random.default_rng(0).standard_normal((2, 2, 7, 6)))


# ---------------------------------------------------------------------------
# "same" padding
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("kh, kw", [(2, 2), (4, 4), (6, 6), (7, 7), (6, 3), (2, 5), (1, 4)])
def test_same_padding_matches_explicit_asymmetric_padding(kh, kw):
    """Keras: total padding K-1, the extra row/column at the bottom/right for even K."""
    rng = np.random.default_rng(0)
    conv = Conv2d(2, 3, (kh, kw), padding="same", rng=0).double()
    x = rng.standard_normal((2, 2, 9, 8))
    y = conv(x)
    assert y.shape == (2, 3, 9, 8)
    pads = ((kh - 1) // 2, kh - 1 - (kh - 1) // 2, (kw - 1) // 2, kw - 1 - (kw - 1) // 2)
    explicit = ref.conv2d(ref.pad(x, pads), conv.weight.data, conv.bias.data, (1, 1), (0, 0, 0, 0))
    np.testing.assert_allclose(y, explicit, rtol=RTOL, atol=ATOL)
    dy = rng.standard_normal(y.shape)
    rdx, rdw, rdb = ref.conv2d_backward(x, conv.weight.data, dy, (1, 1), pads)
    np.testing.assert_allclose(conv.backward(dy), rdx, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(conv.weight.grad, rdw, rtol=RTOL, atol=ATOL)


def test_same_padding_builds_the_tutorial_6x6_and_7x7_convolutions():
    x = np.zeros((1, 1, 28, 28), np.float32)
    assert Conv2d(1, 4, 6, padding="same", rng=0)(x).shape == (1, 4, 28, 28)
    assert Conv2d(1, 4, 7, padding="same", rng=0)(x).shape == (1, 4, 28, 28)
    assert same_padding(6, 7) == (2, 3, 3, 3)


def test_valid_padding_is_zero():
    conv = Conv2d(1, 1, 3, padding="valid", rng=0)
    assert conv.pads == (0, 0, 0, 0)
    assert conv(np.zeros((1, 1, 5, 5), np.float32)).shape == (1, 1, 3, 3)


# ---------------------------------------------------------------------------
# agreement with PyTorch (float64)
# ---------------------------------------------------------------------------
def _torch_compare(ours, theirs, x, torch):
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(ours.weight.data))
        if ours.bias is not None:
            theirs.bias.copy_(torch.from_numpy(ours.bias.data))
    y = ours(x)
    xt = torch.from_numpy(x.copy()).requires_grad_()
    yt = theirs(xt)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=RTOL, atol=ATOL)
    dy = np.random.default_rng(7).standard_normal(y.shape)
    dx = ours.backward(dy)
    yt.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), rtol=RTOL, atol=ATOL)
    if ours.bias is not None:
        np.testing.assert_allclose(ours.bias.grad, theirs.bias.grad.numpy(), rtol=RTOL, atol=ATOL)


@given(conv_configs())
def test_conv2d_matches_torch(cfg):
    torch = pytest.importorskip("torch")
    ours = make_conv(cfg).double()
    theirs = torch.nn.Conv2d(cfg["c"], cfg["f"], cfg["kernel"], cfg["stride"], cfg["padding"],
                             bias=cfg["bias"]).double()
    _torch_compare(ours, theirs, inputs(cfg), torch)


@given(conv_transpose_configs())
def test_conv_transpose2d_matches_torch(cfg):
    torch = pytest.importorskip("torch")
    ours = make_conv_t(cfg).double()
    theirs = torch.nn.ConvTranspose2d(cfg["c"], cfg["f"], cfg["kernel"], cfg["stride"], cfg["padding"],
                                      cfg["output_padding"], bias=cfg["bias"]).double()
    _torch_compare(ours, theirs, inputs(cfg), torch)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("k", [3, 4, 5])
def test_same_padding_matches_torch(k):
    torch = pytest.importorskip("torch")
    ours = Conv2d(2, 3, k, padding="same", rng=0).double()
    theirs = torch.nn.Conv2d(2, 3, k, padding="same").double()
    _torch_compare(ours, theirs, np.random.default_rng(0).standard_normal((2, 2, 7, 8)), torch)


def test_torch_state_dict_loads_directly():
    torch = pytest.importorskip("torch")
    theirs = torch.nn.ConvTranspose2d(3, 2, (3, 2), stride=2)
    ours = ConvTranspose2d(3, 2, (3, 2), stride=2, rng=0)
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    np.testing.assert_array_equal(ours.weight.data, theirs.weight.detach().numpy())


# ---------------------------------------------------------------------------
# conventions: init, dtype, accumulation
# ---------------------------------------------------------------------------
def test_init_bounds_and_seeding():
    conv = Conv2d(3, 5, (2, 4), rng=0)
    bound = 1 / np.sqrt(3 * 2 * 4)
    assert conv.weight.shape == (5, 3, 2, 4) and conv.bias.shape == (5,)
    assert np.abs(conv.weight.data).max() <= bound and np.abs(conv.bias.data).max() <= bound
    np.testing.assert_array_equal(conv.weight.data, Conv2d(3, 5, (2, 4), rng=0).weight.data)
    ratio = conv.bias.data / conv.weight.data.reshape(-1)[:5]   # an int seed is one stream:
    assert not np.allclose(ratio, ratio[0])                     # the bias does not replay the weight
    ct = ConvTranspose2d(3, 5, (2, 4), rng=0)
    bound = 1 / np.sqrt(5 * 2 * 4)  # PyTorch: fan_in from weight.shape[1] * KH * KW
    assert ct.weight.shape == (3, 5, 2, 4)
    assert np.abs(ct.weight.data).max() <= bound and np.abs(ct.weight.data).max() > 0.8 * bound
    assert Conv2d(3, 5, 2, bias=False, rng=0).bias is None
    assert [n for n, _ in ct.named_parameters()] == ["weight", "bias"]


@pytest.mark.parametrize("layer", [
    lambda: Conv2d(2, 3, 3, stride=2, padding=1, rng=0),
    lambda: Conv2d(3, 2, 3, padding=1, rng=0),            # F < C: the flipped-kernel input gradient
    lambda: ConvTranspose2d(2, 3, 3, stride=2, padding=1, output_padding=1, rng=0),
    lambda: ConvTranspose2d(3, 2, 3, padding=1, rng=0),
])
def test_float32_is_preserved_and_gradients_accumulate(layer):
    layer = layer()
    x = np.random.default_rng(0).standard_normal((2, layer.in_channels, 6, 6)).astype(np.float32)
    y = layer(x)
    dy = np.ones_like(y)
    dx = layer.backward(dy)
    assert y.dtype == dx.dtype == layer.weight.grad.dtype == layer.bias.grad.dtype == np.float32
    assert dx.shape == x.shape and dx.flags.c_contiguous and y.flags.c_contiguous
    first = layer.weight.grad.copy()
    layer(x)
    layer.backward(dy)
    np.testing.assert_allclose(layer.weight.grad, 2 * first, rtol=1e-6)
    layer.zero_grad()
    assert not layer.weight.grad.any()


def test_backward_accepts_a_non_contiguous_dy():
    conv = Conv2d(2, 3, 3, padding=1, rng=0).double()
    x = np.random.default_rng(0).standard_normal((2, 2, 5, 5))
    y = conv(x)
    dy = np.asfortranarray(np.random.default_rng(1).standard_normal(y.shape))
    np.testing.assert_allclose(conv.backward(dy), conv.backward(np.ascontiguousarray(dy)), rtol=1e-12)


def test_repr():
    assert repr(Conv2d(1, 4, 5)) == "Conv2d(1, 4, kernel_size=(5, 5))"
    assert repr(Conv2d(1, 4, 6, padding="same", bias=False)) == \
        "Conv2d(1, 4, kernel_size=(6, 6), padding='same', bias=False)"
    assert repr(ConvTranspose2d(8, 4, 3, 2, 1, 1)) == \
        "ConvTranspose2d(8, 4, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), output_padding=(1, 1))"


# ---------------------------------------------------------------------------
# errors name the layer and the numbers
# ---------------------------------------------------------------------------
def test_wrong_channels():
    with pytest.raises(ValueError, match=r"Conv2d\(1, 4, kernel_size=\(5, 5\)\) expected 1 input channels, got 3"):
        Conv2d(1, 4, 5, rng=0)(np.zeros((2, 3, 28, 28), np.float32))
    with pytest.raises(ValueError, match=r"ConvTranspose2d\(8, 4.*expected 8 input channels, got 4"):
        ConvTranspose2d(8, 4, 3, rng=0)(np.zeros((2, 4, 7, 7), np.float32))


def test_kernel_larger_than_padded_input():
    with pytest.raises(ValueError, match=r"Conv2d\(1, 1, kernel_size=\(5, 5\), padding=\(1, 1\)\): "
                                         r"kernel size \(5, 5\) is larger than the padded input \(5, 4\)"):
        Conv2d(1, 1, 5, padding=1, rng=0)(np.zeros((1, 1, 3, 2), np.float32))


@pytest.mark.parametrize("kwargs, match", [
    (dict(in_channels=0, out_channels=4, kernel_size=3), "in_channels must be a positive int, got 0"),
    (dict(in_channels=1, out_channels=-2, kernel_size=3), "out_channels must be a positive int, got -2"),
    (dict(in_channels=1, out_channels=4, kernel_size=0), r"kernel_size must be positive, got \(0, 0\)"),
    (dict(in_channels=1, out_channels=4, kernel_size=(3, -1)), r"kernel_size must be positive, got \(3, -1\)"),
    (dict(in_channels=1, out_channels=4, kernel_size=3, stride=0), r"stride must be positive, got \(0, 0\)"),
    (dict(in_channels=1, out_channels=4, kernel_size=3, padding=-1), r"padding must be non-negative"),
    (dict(in_channels=1, out_channels=4, kernel_size=3, padding="full"), "padding must be an int, a pair"),
    (dict(in_channels=1, out_channels=4, kernel_size=3.5), "kernel_size must be an int or a pair"),
    (dict(in_channels=1, out_channels=4, kernel_size=3, stride=2, padding="same"),
     r"padding='same' needs stride 1, got stride \(2, 2\)"),
])
def test_bad_conv2d_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Conv2d(**kwargs)


def test_bad_conv_transpose2d_arguments():
    with pytest.raises(ValueError, match=r"output_padding \(2, 2\) must be smaller than the stride \(2, 2\)"):
        ConvTranspose2d(2, 2, 3, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="padding must be an int or a pair"):
        ConvTranspose2d(2, 2, 3, padding="same")
    with pytest.raises(ValueError, match=r"non-positive output size \(-1, -1\)"):
        ConvTranspose2d(1, 1, 1, padding=1, rng=0)(np.zeros((1, 1, 1, 1), np.float32))


def test_bad_inputs():
    conv = Conv2d(1, 2, 3, rng=0)
    with pytest.raises(ValueError, match="expected a 4-D input"):
        conv(np.zeros((1, 5, 5), np.float32))
    with pytest.raises(ValueError, match="float64"):
        conv(np.zeros((1, 1, 5, 5)))                    # parameters are float32
    with pytest.raises(RuntimeError, match="backward called before forward"):
        Conv2d(1, 2, 3, rng=0).backward(np.zeros((1, 2, 3, 3), np.float32))
    conv(np.zeros((1, 1, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"expected dy = dL/d\(output\) with its forward output.s shape \(1, 2, 3, 3\)"):
        conv.backward(np.zeros((1, 2, 4, 4), np.float32))
    conv(np.zeros((1, 1, 5, 5), np.float32))
    with pytest.raises(TypeError, match=r"dtype float32; got shape \(1, 2, 3, 3\) and dtype float64"):
        conv.backward(np.zeros((1, 2, 3, 3)))                # a float64 dy into a float32 layer


@pytest.mark.gpu
def test_cupy_matches_numpy():
    if not backend.cupy_available():
        pytest.skip("CuPy with a CUDA device is not available")
    cupy = backend.cupy_module()      # or its CPU stand-in (TINYAE_FAKE_CUPY=1)
    for make in (lambda: Conv2d(3, 4, 3, stride=2, padding=1, rng=0), lambda: Conv2d(4, 2, 5, padding="same", rng=0),
                 lambda: ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1, rng=0)):
        cpu, gpu = make().double(), make().to("cupy", np.float64)
        x = np.random.default_rng(0).standard_normal((2, cpu.in_channels, 8, 8))
        y = cpu(x)
        dy = np.random.default_rng(1).standard_normal(y.shape)
        np.testing.assert_allclose(gpu(cupy.asarray(x)).get(), y, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(gpu.backward(cupy.asarray(dy)).get(), cpu.backward(dy), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(gpu.weight.grad.get(), cpu.weight.grad, rtol=1e-10, atol=1e-12)
