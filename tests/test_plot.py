"""tinyae.plot: real PNGs of the documented size, upright row-major grids, atomic writes, the ROC figure."""
import os
import subprocess
import sys

import numpy as np
import pytest
from matplotlib import image as mimage

from strategies import auc_by_pairs
from tinyae import backend, plot

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def read_png(path):
    """Check the file is a PNG and return its pixels (H, W, 3|4) as floats in [0, 1]."""
    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE, f"{path} is not a PNG"
    return mimage.imread(path)


def assert_nontrivial(pixels):
    rgb = pixels[..., :3].reshape(-1, 3)
    assert len(np.unique(rgb, axis=0)) > 2, "the picture is a single colour"


def assert_only(dirpath, names):
    """The folder holds exactly these files: no temp file left behind."""
    assert sorted(os.listdir(dirpath)) == sorted(names)


def grid_size(n, h, w, nrow, scale=2, pad=2):
    cols = min(nrow, n)
    rows = -(-n // cols)
    return scale * (rows * h + (rows + 1) * pad), scale * (cols * w + (cols + 1) * pad)


@pytest.fixture
def digits(rng):
    """Blob-like 28×28 images in [0, 1] (no dataset needed)."""
    yy, xx = np.mgrid[:28, :28]
    imgs = []
    for _ in range(20):
        cy, cx = rng.uniform(8, 20, size=2)
        imgs.append(np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / rng.uniform(10, 40)))
    return np.stack(imgs).astype(np.float32)


# --------------------------------------------------------------------------
# image grids
# --------------------------------------------------------------------------

@pytest.mark.parametrize("n,nrow", [(64, 8), (10, 4), (3, 8), (1, 1)])
@pytest.mark.parametrize("title", [None, "a title"])
def test_image_grid_pixel_size(tmp_path, rng, n, nrow, title):
    imgs = rng.uniform(size=(n, 28, 28))
    path = plot.save_image_grid(imgs, tmp_path / "g.png", nrow=nrow, title=title)
    assert path == str(tmp_path / "g.png")
    px = read_png(path)
    h, w = grid_size(n, 28, 28, nrow)
    assert px.shape[:2] == (h + (plot.title_height(100) if title else 0), w)
    assert_nontrivial(px)
    assert_only(tmp_path, ["g.png"])


def test_image_grid_scale_pad_dpi(tmp_path, rng):
    px = read_png(plot.save_image_grid(rng.uniform(size=(6, 5, 7)), tmp_path / "g.png", nrow=4,
                                       scale=3, pad=1, title="t", dpi=200))
    h, w = grid_size(6, 5, 7, 4, scale=3, pad=1)
    assert px.shape[:2] == (h + plot.title_height(200), w)
    assert plot.title_height(200) == 60


def test_image_grid_row_major_and_values(tmp_path):
    """Image i filled with i/N: image 0 top-left, nrow-1 top-right, nrow starts row 2."""
    n, nrow, scale, pad = 12, 5, 2, 2
    imgs = np.stack([np.full((28, 28), i / n) for i in range(n)])
    px = read_png(plot.save_image_grid(imgs, tmp_path / "g.png", nrow=nrow))
    gray = px[..., 0]
    for i in range(n):
        r, c = divmod(i, nrow)
        y = scale * (pad + r * (28 + pad) + 14)
        x = scale * (pad + c * (28 + pad) + 14)
        assert gray[y, x] == pytest.approx(i / n, abs=1.5 / 255), f"tile {i} at row {r}, col {c}"
        assert np.allclose(px[y, x, :3], gray[y, x])           # gray colormap: R = G = B
    # padding between tiles and the empty cells of the last row are the pad colour (mid grey)
    assert gray[0, 0] == pytest.approx(128 / 255, abs=1 / 255)
    last_y, last_x = scale * (pad + 2 * (28 + pad) + 14), scale * (pad + 4 * (28 + pad) + 14)
    assert gray[last_y, last_x] == pytest.approx(128 / 255, abs=1 / 255)


def test_image_grid_upright_not_transposed(tmp_path):
    """A non-square image with a bright top row and a bright left column stays that way."""
    img = np.zeros((6, 9))
    img[0, :] = 1.0          # top row
    img[:, 0] = 0.5          # left column (below the corner)
    img[0, 0] = 1.0
    scale, pad = 2, 2
    px = read_png(plot.save_image_grid(img[None], tmp_path / "g.png", nrow=1))
    tile = px[scale * pad:scale * (pad + 6), scale * pad:scale * (pad + 9), 0]
    assert tile.shape == (12, 18)
    assert np.allclose(tile[:2, :], 1.0)                       # top row bright
    assert np.allclose(tile[2:, :2], 128 / 255, atol=1 / 255)  # left column grey
    assert np.allclose(tile[2:, 2:], 0.0)                      # rest black


def test_image_grid_accepts_the_usual_shapes(tmp_path, rng):
    imgs = rng.uniform(size=(5, 28, 28)).astype(np.float32)
    ref = read_png(plot.save_image_grid(imgs, tmp_path / "a.png"))
    for name, x in [("b", imgs.reshape(5, 784)), ("c", imgs[:, None]), ("d", imgs.astype(np.float64))]:
        assert np.array_equal(read_png(plot.save_image_grid(x, tmp_path / f"{name}.png")), ref)


def test_image_grid_value_range_and_cmap(tmp_path):
    imgs = np.stack([np.full((4, 4), v) for v in (-1.0, 0.0, 1.0, 5.0)])
    px = read_png(plot.save_image_grid(imgs, tmp_path / "g.png", value_range=(-1, 1), scale=1))
    centres = [px[2 + 2, 2 + c * 6 + 2, 0] for c in range(4)]
    assert centres[0] == pytest.approx(0.0)
    assert centres[1] == pytest.approx(0.5, abs=1.5 / 255)
    assert centres[2] == pytest.approx(1.0) and centres[3] == pytest.approx(1.0)   # clipped
    auto = read_png(plot.save_image_grid(imgs, tmp_path / "h.png", value_range=None, scale=1))
    assert auto[4, 4, 0] == pytest.approx(0.0) and auto[4, 2 + 3 * 6 + 2, 0] == pytest.approx(1.0)
    col = read_png(plot.save_image_grid(imgs, tmp_path / "v.png", cmap="viridis", scale=1))
    assert not np.allclose(col[4, 4, 0], col[4, 4, 1])


@pytest.mark.parametrize("bad,match", [
    (np.zeros((4, 10)), "square"),
    (np.zeros((4, 2, 5, 5)), "channels"),
    (np.zeros((2, 3, 4, 5, 6)), "expected"),
    (np.zeros((0, 28, 28)), "no images"),
    (np.full((2, 4, 4), np.nan), "NaN"),
    (np.array([["a"]]), "numeric"),
])
def test_image_grid_bad_input_writes_nothing(tmp_path, bad, match):
    with pytest.raises(ValueError, match=match):
        plot.save_image_grid(bad, tmp_path / "g.png")
    assert_only(tmp_path, [])


def test_image_grid_bad_options(tmp_path, rng):
    imgs = rng.uniform(size=(4, 8, 8))
    for kwargs, match in [({"nrow": 0}, "nrow"), ({"value_range": (1, 0)}, "greater"),
                          ({"scale": 0}, "scale"), ({"cmap": "no-such-map"}, "colormap"),
                          ({"dpi": -1}, "dpi")]:
        with pytest.raises(ValueError, match=match):
            plot.save_image_grid(imgs, tmp_path / "g.png", **kwargs)
    assert_only(tmp_path, [])


def test_samples_is_an_8x8_grid(tmp_path, rng):
    px = read_png(plot.save_samples(rng.uniform(size=(64, 784)), tmp_path / "s.png"))
    assert px.shape[:2] == grid_size(64, 28, 28, 8) == (484, 484)
    assert_nontrivial(px)


# --------------------------------------------------------------------------
# reconstructions
# --------------------------------------------------------------------------

def test_reconstructions_layout(tmp_path, digits):
    x, xr = digits[:10], digits[:10] ** 2
    px = read_png(plot.save_reconstructions(x[:, None], xr.reshape(10, 784), tmp_path / "r.png"))
    h, w = grid_size(16, 28, 28, 8)                       # 2 rows × 8 tiles
    assert px.shape[0] == h and px.shape[1] > w + 20        # a label column on the left
    assert_nontrivial(px)
    label_col = px[:, :px.shape[1] - w, :3]
    assert label_col.min() < 0.5 and np.median(label_col) == 1.0   # dark text on white
    # first original tile sits right of the label column, top row
    left = px.shape[1] - w
    tile = px[4:4 + 56, left + 4:left + 4 + 56, 0]
    assert np.allclose(tile[::2, ::2], x[0], atol=1.5 / 255)


def test_reconstructions_with_noisy_row_and_title(tmp_path, digits):
    x = digits[:4]
    px = read_png(plot.save_reconstructions(x, x, tmp_path / "r.png", n=8, noisy=x * 0.5,
                                            title="epoch 1"))
    h, _ = grid_size(12, 28, 28, 4)                       # 3 rows of the 4 available images
    assert px.shape[0] == h + plot.title_height(100)
    px2 = read_png(plot.save_reconstructions(x, x, tmp_path / "r2.png", row_labels=["a", "b"], n=2))
    assert px2.shape[0] == grid_size(4, 28, 28, 2)[0]


def test_reconstructions_bad_input(tmp_path, digits):
    with pytest.raises(ValueError, match="shapes differ"):
        plot.save_reconstructions(digits[:4], np.zeros((4, 14, 14)), tmp_path / "r.png")
    with pytest.raises(ValueError, match="row_labels"):
        plot.save_reconstructions(digits[:4], digits[:4], tmp_path / "r.png", row_labels=["only one"])
    with pytest.raises(ValueError, match="n must"):
        plot.save_reconstructions(digits[:4], digits[:4], tmp_path / "r.png", n=0)
    assert_only(tmp_path, [])


# --------------------------------------------------------------------------
# latent space
# --------------------------------------------------------------------------

@pytest.mark.parametrize("k", [2, 3, 16])
def test_latent_scatter(tmp_path, rng, k):
    z = rng.normal(size=(300, k))
    labels = rng.integers(0, 10, size=300)
    px = read_png(plot.save_latent_scatter(z, labels, tmp_path / "z.png", title=f"k={k}"))
    assert_nontrivial(px)
    # tab10's colours (the first ones, at least) appear in the picture
    rgb = np.round(px[..., :3] * 255).reshape(-1, 3)
    found = {tuple(c) for c in np.unique(rgb, axis=0)}
    assert (31, 119, 180) in found and (255, 127, 14) in found


def test_latent_scatter_without_labels_and_float_labels(tmp_path, rng):
    z = rng.normal(size=(50, 2))
    assert_nontrivial(read_png(plot.save_latent_scatter(z, None, tmp_path / "a.png")))
    assert_nontrivial(read_png(plot.save_latent_scatter(z, np.arange(50.0) % 10, tmp_path / "b.png")))


@pytest.mark.parametrize("z,labels,match", [
    (np.zeros((10, 2)), np.zeros(9, int), "labels must have shape"),
    (np.zeros((10, 1)), np.zeros(10, int), "k >= 2"),
    (np.zeros(10), np.zeros(10, int), r"\(N, k\)"),
    (np.full((10, 2), np.inf), np.zeros(10, int), "NaN or infinite"),
    (np.zeros((10, 2)), np.full(10, -1), "non-negative"),
    (np.zeros((10, 2)), np.full(10, 0.5), "non-negative integers"),
    (np.zeros((10, 2)), np.full(10, 25), "at most 20"),
])
def test_latent_scatter_bad_input(tmp_path, z, labels, match):
    with pytest.raises(ValueError, match=match):
        plot.save_latent_scatter(z, labels, tmp_path / "z.png")
    assert_only(tmp_path, [])


def test_manifold_grid_of_gaussian_quantiles(tmp_path):
    scipy_stats = pytest.importorskip("scipy.stats")
    seen = []

    def decode(z):
        seen.append(z)
        # image brightness follows z1, so the figure is not blank
        return np.repeat(1 / (1 + np.exp(-z[:, :1])), 784, axis=1)

    px = read_png(plot.save_manifold(decode, tmp_path / "m.png", n=15, title="manifold"))
    assert_nontrivial(px)
    (z,) = seen
    assert z.shape == (225, 2) and z.dtype == np.float32 and isinstance(z, np.ndarray)
    q = scipy_stats.norm.ppf(np.linspace(0.05, 0.95, 15))
    assert np.allclose(np.unique(z[:, 0]), q, atol=1e-6)
    assert np.allclose(np.unique(z[:, 1]), q, atol=1e-6)
    # row-major over the grid: z1 varies along a row, z2 decreases down the rows (top = largest)
    grid = z.reshape(15, 15, 2)
    assert np.allclose(grid[0, :, 0], q, atol=1e-6) and np.allclose(grid[:, 0, 1], q[::-1], atol=1e-6)


def test_manifold_grid_range_and_bad_decoder(tmp_path):
    seen = []

    def decode(z):
        seen.append(z)
        return np.tile(np.linspace(0, 1, 784), (len(z), 1))

    plot.save_manifold(decode, tmp_path / "m.png", n=5, grid_range=3)
    assert np.allclose(np.unique(seen[0][:, 0]), np.linspace(-3, 3, 5))
    plot.save_manifold(lambda z: np.zeros((len(z), 1, 14, 14)), tmp_path / "m2.png", n=4,
                       grid_range=(-1, 2), image_shape=(14, 14), value_range=None)
    with pytest.raises(ValueError, match="returned 3 images for 16"):
        plot.save_manifold(lambda z: np.zeros((3, 784)), tmp_path / "bad.png", n=4)
    with pytest.raises(ValueError, match="image_shape"):
        plot.save_manifold(lambda z: np.zeros((len(z), 100)), tmp_path / "bad.png", n=4)
    assert_only(tmp_path, ["m.png", "m2.png"])


def test_interpolation(tmp_path):
    seen = []
    a, b = np.array([-2.0, 0.0, 1.0]), np.array([[2.0, 4.0, 1.0]])

    def decode(z):
        seen.append(z)
        return np.tile((z[:, :1] + 2) / 4, (1, 784))

    px = read_png(plot.save_interpolation(decode, a, b, tmp_path / "i.png", steps=5, title="line"))
    assert_nontrivial(px)
    (z,) = seen
    assert z.shape == (5, 3)
    assert np.allclose(z[0], a) and np.allclose(z[-1], b[0])
    assert np.allclose(np.diff(z, axis=0), (b[0] - a) / 4, atol=1e-6)   # a straight line, even steps
    with pytest.raises(ValueError, match="same length"):
        plot.save_interpolation(decode, a, b[:, :2], tmp_path / "bad.png")
    with pytest.raises(ValueError, match="steps"):
        plot.save_interpolation(decode, a, b, tmp_path / "bad.png", steps=1)
    assert_only(tmp_path, ["i.png"])


# --------------------------------------------------------------------------
# curves, filters, histograms
# --------------------------------------------------------------------------

HISTORY = [{"epoch": e, "train_loss": 100 / e, "test_loss": 110 / e, "train_recon": 80 / e,
            "train_kl": 10.0 + e, "time": 1.5, "note": "x"} for e in range(1, 11)]


def test_loss_curves(tmp_path):
    px = read_png(plot.save_loss_curves(HISTORY, tmp_path / "l.png", title="VAE"))
    assert_nontrivial(px)
    read_png(plot.save_loss_curves(HISTORY, tmp_path / "k.png", keys=["train_kl"], logy=True))
    cols = {k: [row[k] for row in HISTORY] for k in ("epoch", "train_loss")}
    read_png(plot.save_loss_curves(cols, tmp_path / "d.png"))
    gappy = [{"train_loss": 3.0}, {"train_loss": 2.0, "test_loss": np.float32(2.5)}, {"train_loss": 1.0}]
    read_png(plot.save_loss_curves(gappy, tmp_path / "g.png"))


def test_loss_curves_bad_input(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        plot.save_loss_curves([], tmp_path / "l.png")
    with pytest.raises(ValueError, match="no numeric train_"):
        plot.save_loss_curves([{"epoch": 1, "loss": 2.0}], tmp_path / "l.png")
    with pytest.raises(ValueError, match="no numeric values"):
        plot.save_loss_curves(HISTORY, tmp_path / "l.png", keys=["test_kl"])
    with pytest.raises(ValueError, match="must be a dict"):
        plot.save_loss_curves([1.0, 2.0], tmp_path / "l.png")
    assert_only(tmp_path, [])


def test_filters_conv_and_dense(tmp_path, rng):
    conv = rng.normal(size=(10, 3, 5, 5))
    px = read_png(plot.save_filters(conv, tmp_path / "c.png", title="conv1"))
    s = 12                                  # ceil(56 / 5)
    cols, rows = 4, 3                       # ceil(sqrt(10)) per row
    assert px.shape[:2] == (rows * s * 5 + (rows + 1) * 2 + plot.title_height(100), cols * s * 5 + (cols + 1) * 2)
    assert_nontrivial(px)
    px = read_png(plot.save_filters(rng.normal(size=(16, 784)), tmp_path / "d.png", nrow=8, scale=1))
    assert px.shape[:2] == (2 * 28 + 3 * 2, 8 * 28 + 9 * 2)


def test_filters_normalised_per_filter_diverging(tmp_path):
    """Each filter scaled by its own max |w|: a tiny filter is as saturated as a big one."""
    w = np.zeros((2, 1, 2, 2))
    w[0, 0] = [[1e-3, -1e-3], [0, 0]]
    w[1, 0] = [[100, -100], [0, 0]]
    px = read_png(plot.save_filters(w, tmp_path / "f.png", nrow=2, scale=1))
    a, b = px[2:4, 2:4, :3], px[2:4, 6:8, :3]
    assert np.allclose(a, b)
    assert a[0, 0, 0] > 0.3 and a[0, 0, 2] < 0.2          # +max → red
    assert a[0, 1, 2] > 0.3 and a[0, 1, 0] < 0.2          # −max → blue
    assert np.all(a[1, 0] > 0.9)                          # 0 → (almost) white


def test_filters_bad_input(tmp_path):
    with pytest.raises(ValueError, match="not a square"):
        plot.save_filters(np.zeros((8, 100 + 1)), tmp_path / "f.png")
    with pytest.raises(ValueError, match="conv weights"):
        plot.save_filters(np.zeros(8), tmp_path / "f.png")
    with pytest.raises(ValueError, match="channel"):
        plot.save_filters(np.zeros((8, 1, 3, 3)), tmp_path / "f.png", channel=2)
    assert_only(tmp_path, [])


def test_filter_comparison(tmp_path, rng):
    px = read_png(plot.save_filter_comparison(rng.normal(size=(32, 784)), rng.normal(size=(20, 784)),
                                              tmp_path / "c.png", n=16, title="filters"))
    assert_nontrivial(px)
    panel = 4 * 56 + 5 * 2
    assert px.shape[1] > 2 * panel
    with pytest.raises(ValueError, match="labels"):
        plot.save_filter_comparison(np.zeros((4, 784)), np.zeros((4, 784)), tmp_path / "x.png",
                                    labels=("one",))
    assert_only(tmp_path, ["c.png"])


def test_histograms(tmp_path, rng):
    groups = {"digit 0": rng.normal(size=500), "others": rng.normal(2, 1, size=(40, 25)),
              "const": np.full(10, 1.0)}
    assert_nontrivial(read_png(plot.save_histograms(groups, tmp_path / "h.png", title="scores",
                                                    xlabel="score", logy=True)))
    read_png(plot.save_histograms({"one": np.ones(5)}, tmp_path / "c.png", bins=10, density=True))
    for bad, match in [({}, "non-empty"), ({"a": np.array([])}, "empty"),
                       ({"a": np.array([1.0, np.nan])}, "NaN"), ([1, 2], "dict")]:
        with pytest.raises(ValueError, match=match):
            plot.save_histograms(bad, tmp_path / "bad.png")
    assert_only(tmp_path, ["h.png", "c.png"])


# --------------------------------------------------------------------------
# ROC figure (roc_auc / roc_curve themselves: tests/test_metrics.py)
# --------------------------------------------------------------------------

def test_save_roc(tmp_path, rng):
    y = rng.random(400) < 0.3
    scores = rng.normal(size=400) + 1.5 * y
    path, auc = plot.save_roc(scores, y, tmp_path / "roc.png", title="anomaly")
    assert auc == pytest.approx(auc_by_pairs(scores, y)) and 0.7 < auc < 1.0
    assert_nontrivial(read_png(path))
    with pytest.raises(ValueError, match="both classes"):
        plot.save_roc(scores, np.zeros(400, bool), tmp_path / "bad.png")
    assert_only(tmp_path, ["roc.png"])


# --------------------------------------------------------------------------
# writing: atomic, parent folders, no global state
# --------------------------------------------------------------------------

def test_creates_parent_dirs_and_overwrites(tmp_path, rng):
    target = tmp_path / "results" / "epoch_1" / "sample_1.png"
    plot.save_samples(rng.uniform(size=(4, 784)), target)
    first = target.read_bytes()
    plot.save_samples(rng.uniform(size=(4, 784)), str(target))
    assert target.read_bytes() != first
    assert_only(target.parent, ["sample_1.png"])


def test_failure_while_writing_keeps_old_file_and_leaves_no_temp(tmp_path, rng, monkeypatch):
    target = tmp_path / "loss.png"
    plot.save_loss_curves(HISTORY, target)
    before = target.read_bytes()

    def broken_savefig(self, fname, **kwargs):
        with open(fname, "wb") as f:
            f.write(b"half a png")
        raise OSError("disk full")

    monkeypatch.setattr("matplotlib.figure.Figure.savefig", broken_savefig)
    with pytest.raises(OSError, match="disk full"):
        plot.save_loss_curves(HISTORY, target)
    assert target.read_bytes() == before
    assert_only(tmp_path, ["loss.png"])


def test_no_pyplot_and_backend_untouched():
    # (matplotlib.get_backend() itself may import pyplot to resolve "auto": read the raw rcParam)
    code = ("import matplotlib, sys, numpy as np, tempfile, os\n"
            "raw = lambda: dict.__getitem__(matplotlib.rcParams, 'backend')\n"
            "before = raw()\n"
            "from tinyae import plot\n"
            "d = tempfile.mkdtemp()\n"
            "plot.save_image_grid(np.zeros((2, 4, 4)), os.path.join(d, 'a.png'), title='t')\n"
            "plot.save_latent_scatter(np.random.rand(20, 3), np.arange(20) % 10, os.path.join(d, 'b.png'))\n"
            "plot.save_loss_curves([{'train_loss': 1.0}], os.path.join(d, 'c.png'))\n"
            "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'\n"
            "assert raw() == before, (raw(), before)\n")
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60,
                   cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.skipif(not backend.cupy_available(), reason="CuPy with a CUDA device is not available")
def test_cupy_inputs(tmp_path, rng):
    import cupy
    imgs = rng.uniform(size=(6, 784)).astype(np.float32)
    ref = read_png(plot.save_image_grid(imgs, tmp_path / "a.png"))
    assert np.array_equal(read_png(plot.save_image_grid(cupy.asarray(imgs), tmp_path / "b.png")), ref)
    z, y = cupy.asarray(rng.normal(size=(50, 2))), cupy.asarray(rng.integers(0, 10, 50))
    plot.save_latent_scatter(z, y, tmp_path / "z.png")
    plot.save_reconstructions(cupy.asarray(imgs), cupy.asarray(imgs), tmp_path / "r.png")
    plot.save_filters(cupy.asarray(rng.normal(size=(4, 1, 3, 3))), tmp_path / "f.png")
    plot.save_histograms({"a": cupy.asarray(rng.normal(size=20))}, tmp_path / "h.png")
    _, auc = plot.save_roc(cupy.asarray([0.1, 0.9]), cupy.asarray([0, 1]), tmp_path / "roc.png")
    assert auc == 1.0
    plot.save_manifold(lambda z: cupy.asarray(np.zeros((len(z), 784)) + z[:, :1] ** 2),
                       tmp_path / "m.png", n=3)
