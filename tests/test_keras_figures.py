"""The Keras tutorials' figures (tinyae.plot): per-coordinate code histograms, KernelPCA of
the codes in 2-D and 3-D, the reconstruction-progress GIF — each a real image file of the
documented size, with its content checked where it can be (legend, frames, pixels)."""
import numpy as np
import pytest
from PIL import Image

from tinyae import plot

pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def codes():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 30)
    centres = rng.normal(size=(10, 16))
    return np.tanh(centres[labels] + 0.3 * rng.normal(size=(300, 16))), labels


def opened(path, fmt):
    im = Image.open(path)
    im.load()
    assert im.format == fmt
    return im


@pytest.mark.parametrize("k, ncols, size", [(16, 4, (800, 680)), (5, 4, (800, 360)), (3, 8, (600, 200))])
def test_code_histograms_grid(tmp_path, codes, k, ncols, size):
    z = codes[0][:, :k]
    path = plot.save_code_histograms(z, tmp_path / "h.png", ncols=ncols, title="codes")
    im = opened(path, "PNG")
    assert im.size == size
    arr = np.asarray(im.convert("RGB"), dtype=float)
    assert arr.std() > 10               # drawn, not a blank canvas
    path = plot.save_code_histograms(z, tmp_path / "h2.png", ncols=ncols)
    assert opened(path, "PNG").size == (size[0], size[1] - 40)


@pytest.mark.parametrize("n_components, size", [(2, (640, 560)), (3, (760, 620))])
def test_kernel_pca_scatter(tmp_path, codes, n_components, size):
    z, y = codes
    path = plot.save_kernel_pca(z, y, tmp_path / f"k{n_components}.png", n_components=n_components,
                                title="KernelPCA")
    im = opened(path, "PNG")
    assert im.size == size
    rgb = np.asarray(im.convert("RGB")).reshape(-1, 3)
    # tab10's blue (digit 0) and olive-green (digit 8), at alpha 0.8 on white, are both on the
    # page (points and legend markers)
    for colour in ((31, 119, 180), (188, 189, 34)):
        blended = 0.8 * np.array(colour) + 0.2 * 255
        assert (np.abs(rgb.astype(int) - blended).sum(axis=1) < 40).sum() > 50, colour


def test_kernel_pca_separates_clusters(codes):
    """The projection itself: well-separated digit clusters stay apart in the first two
    kernel components (nearest-centroid accuracy far above chance)."""
    z, y = codes
    p = plot.kernel_pca(z, 2)
    assert p.shape == (300, 2)
    centroids = np.stack([p[y == d].mean(axis=0) for d in range(10)])
    pred = np.argmin(((p[:, None] - centroids[None]) ** 2).sum(-1), axis=1)
    assert (pred == y).mean() > 0.5


def test_kernel_pca_rejects_bad_input(tmp_path, codes):
    z, y = codes
    with pytest.raises(ValueError, match="n_components must be 2 or 3"):
        plot.save_kernel_pca(z, y, tmp_path / "x.png", n_components=4)
    with pytest.raises(ValueError, match="labels must have shape"):
        plot.save_kernel_pca(z, y[:5], tmp_path / "x.png")
    with pytest.raises(ValueError, match="NaN"):
        plot.save_code_histograms(np.full((3, 2), np.nan), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_reconstruction_animation_gif(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.uniform(size=(8, 28, 28))
    stages = {e: np.clip(x + rng.normal(0, 0.5 / e, x.shape), 0, 1) for e in (1, 2, 5)}
    path = plot.save_reconstruction_animation(x, stages, tmp_path / "progress.gif", fps=4)
    im = opened(path, "GIF")
    w = 2 * (8 * 28 + 9 * 2)
    h = 2 * (2 * 28 + 3 * 2) + plot.title_height(100)
    assert im.size == (w, h) and im.n_frames == 3
    assert im.info["duration"] == 250 and im.info.get("loop") == 0
    frames = []
    for i in range(3):
        im.seek(i)
        frames.append(np.asarray(im.convert("L"), dtype=float))
    # the top row (the originals) is the same in every frame; the reconstructions differ
    top = slice(plot.title_height(100) + 4, plot.title_height(100) + 4 + 56)
    bottom = slice(plot.title_height(100) + 4 + 60, h - 4)
    assert np.abs(frames[0][top] - frames[2][top]).mean() < 2
    assert np.abs(frames[0][bottom] - frames[2][bottom]).mean() > 5
    assert not list(tmp_path.glob(".*.tmp"))     # written atomically, nothing left beside it


def test_reconstruction_animation_rejects_mismatch(tmp_path):
    x = np.zeros((4, 28, 28))
    with pytest.raises(ValueError, match="frames is empty"):
        plot.save_reconstruction_animation(x, {}, tmp_path / "a.gif")
    with pytest.raises(ValueError, match="have shape"):
        plot.save_reconstruction_animation(x, {1: np.zeros((3, 28, 28))}, tmp_path / "a.gif")
    with pytest.raises(ValueError, match="fps must be a positive number"):
        plot.save_reconstruction_animation(x, {1: x}, tmp_path / "a.gif", fps=0)
    assert not (tmp_path / "a.gif").exists()


# -- written by the examples -------------------------------------------------------------------
def run_script(name, tmp_path, *args):
    import os
    import subprocess
    import sys
    from pathlib import Path
    script = Path(__file__).resolve().parents[1] / "examples" / f"{name}.py"
    env = dict(os.environ, MPLBACKEND="Agg", TINYAE_OFFLINE="1", XDG_CACHE_HOME=str(tmp_path / "cache"))
    env.pop("TINYAE_DATA", None)
    return subprocess.run([sys.executable, str(script), "--data", "embedded", "--no-progress",
                           "--out", str(tmp_path / name), *args],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)


@pytest.mark.parametrize("grid, which", [("15", "both"), ("quantile", "consistent")])
def test_vae2d_keras_writes_its_figures(tmp_path, grid, which):
    proc = run_script("vae2d_keras", tmp_path, "--epochs", "1", "--limit", "256", "--grid-range", grid,
                      "--parameterisation", which)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    kinds = ["keras", "consistent"] if which == "both" else [which]
    assert ("| parameterisation | test loss per sample (as trained) |" in proc.stdout) == (which == "both")
    assert ("−ELBO" in proc.stdout) and "KL of the sampled posterior" in proc.stdout
    assert ("z = μ + exp(s)·ε, ε ~ N(0, 0.1²)" in proc.stdout) == ("keras" in kinds)
    assert "z = μ + exp(s/2)·ε, ε ~ N(0, 1)" in proc.stdout
    for kind in kinds:
        out = tmp_path / "vae2d_keras" / kind
        manifold = opened(out / "manifold.png", "PNG")
        assert manifold.size == (75 + 840 + 20, 70 + 840 + 45)    # 15×15 tiles of 28 px, doubled, + axes
        assert (out / "manifold_quantile.png").is_file() == (grid != "quantile")
        assert opened(out / "latent_scatter.png", "PNG").size == (640, 560)
        assert opened(out / "samples.png", "PNG").size == (2 * (8 * 28 + 9 * 2), 2 * (8 * 28 + 9 * 2)
                                                           + plot.title_height(100))
        assert (out / "checkpoint.npz").is_file()


def test_vae2d_keras_bad_grid_range_is_one_error_line(tmp_path):
    proc = run_script("vae2d_keras", tmp_path, "--grid-range", "15,-15")
    assert proc.returncode == 2 and "error: argument --grid-range" in proc.stderr
    assert "Traceback" not in proc.stderr
