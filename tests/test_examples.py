"""Every example runs end to end on the embedded digits (1 epoch, a few hundred images), writes
its figures as real PNGs of the expected pixel size and a loadable checkpoint; --resume carries
on; --backend cupy without CuPy fails cleanly."""
import os
import pathlib
import re
import subprocess
import sys

import pytest
from matplotlib import image as mimage

from tinyae import backend
from tinyae.checkpoint import load_checkpoint
from tinyae.plot import title_height

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = ["vae_mnist", "ae_mnist", "conv_ae_mnist", "denoising_ae_mnist", "sparse_ae_mnist",
           "contractive_ae_mnist", "anomaly_detection", "linear_ae_vs_pca"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
T = title_height(100)            # the title band of the image grids (dpi 100)


def grid(n, side, scale, nrow=8, pad=2, title=True):
    """(height, width) of an image grid written by tinyae.plot (formula in its docstring)."""
    cols, rows = min(nrow, n), -(-n // min(nrow, n))
    return (scale * (rows * side + (rows + 1) * pad) + (T if title else 0),
            scale * (cols * side + (cols + 1) * pad))


def rows_height(rows, side, scale, pad=2):
    """Height of a save_reconstructions figure with a title (its width depends on the labels)."""
    return scale * (rows * side + (rows + 1) * pad) + T


CURVES = HIST = (480, 720)     # save_loss_curves, save_histograms


def tutorial_figures(k, ncols=4):
    """The Keras tutorial's code figures (examples/keras_figures.py) for a k-D code: sizes."""
    cols = min(ncols, k)
    return {"code_histograms.png": (160 * -(-k // cols) + 40, 200 * cols),
            "kernel_pca_2d.png": (560, 640), "kernel_pca_3d.png": (620, 760)}


def check_gif(path, side, frames, n=8, scale=2, pad=2):
    """progress.gif: a GIF of ``frames`` frames, each 2 rows × n tiles plus a title band."""
    from PIL import Image
    with open(path, "rb") as f:
        assert f.read(6) in (b"GIF87a", b"GIF89a"), f"{path.name} is not a GIF"
    with Image.open(path) as im:
        assert im.format == "GIF" and im.n_frames == frames
        assert im.size == (scale * (n * side + (n + 1) * pad), scale * (2 * side + 3 * pad) + T)
ROC = (520, 560)


def run_example(name, tmp_path, *args, epochs=1, limit=300, backend_name="numpy"):
    out = tmp_path / name
    env = dict(os.environ, MPLBACKEND="Agg", TINYAE_OFFLINE="1", XDG_CACHE_HOME=str(tmp_path / "cache"))
    env.pop("TINYAE_DATA", None)
    cmd = [sys.executable, str(EXAMPLES / f"{name}.py"), "--backend", backend_name, "--data", "embedded",
           "--epochs", str(epochs), "--limit", str(limit), "--out", str(out), "--no-progress", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    return proc, out


def check_run(proc, out, figures, checkpoints=("checkpoint.npz",), epochs=1):
    """Exit 0, the start-up lines, an epoch line, the figures (with sizes) and the checkpoints."""
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    assert proc.stdout.startswith("backend numpy ") and "on CPU" in proc.stdout.splitlines()[0]
    assert "embedded subset" in proc.stderr                       # the data source, from the loader
    assert re.search(r"^data: [\d,]+ train / [\d,]+ test images", proc.stdout, re.M)
    assert f"epoch {epochs}/{epochs}  train " in proc.stdout and "  test " in proc.stdout
    for name, size in figures.items():
        path = out / name
        assert path.is_file(), f"{name} missing; wrote {sorted(p.name for p in out.iterdir())}"
        with open(path, "rb") as f:
            assert f.read(8) == PNG_SIGNATURE, f"{name} is not a PNG"
        shape = mimage.imread(path).shape
        if size is None:
            continue
        if isinstance(size, int):           # only the height is fixed (labelled rows)
            assert shape[0] == size, f"{name}: height {shape[0]}, expected {size}"
        else:
            assert shape[:2] == size, f"{name}: {shape[:2]}, expected {size}"
    for name in checkpoints:
        state = load_checkpoint(out / name)
        assert state.epoch == epochs and state.builder and len(state.history) == epochs
        assert state.model.parameters()


def test_threads_come_from_the_flag_else_the_environment_else_one(monkeypatch):
    """examples/common.set_threads: an explicit call (setup_backend's first), whatever was imported before."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    import common
    asked = []
    monkeypatch.setattr(common.backend, "set_num_threads", lambda n: asked.append(n) or n)
    for var in common.THREADS_ENV:
        monkeypatch.delenv(var, raising=False)
    assert common.set_threads(None) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "many")      # not a number: passed over
    assert common.set_threads(None) == 3
    assert common.set_threads(2) == 2
    assert asked == [1, 3, 2]
    args = common.make_parser("x", "", epochs=1, batch_size=1).parse_args(["--threads", "4"])
    assert args.threads == 4


# -- the main job, with --resume ------------------------------------------------------------
def test_vae_mnist_and_resume(tmp_path):
    proc, out = run_example("vae_mnist", tmp_path)
    check_run(proc, out, {
        "reconstruction_1.png": rows_height(2, 14, 4),
        "sample_1.png": grid(64, 14, 4),
        "latent_scatter.png": (560, 720),          # 3-D scatter with its colour bar
        "interpolation.png": None, "loss_curves.png": CURVES})
    assert "MSE summed over pixels (recon) + KL" in proc.stdout
    first = next(line for line in proc.stdout.splitlines() if line.startswith("epoch 1/1"))
    assert "(recon " in first and ", kl " in first          # the parts, per sample
    assert "final test loss per sample" in proc.stdout

    proc, out = run_example("vae_mnist", tmp_path, "--resume", epochs=2)
    check_run(proc, out, {"reconstruction_2.png": rows_height(2, 14, 4), "sample_2.png": grid(64, 14, 4)},
              epochs=2)
    assert "resumed from" in proc.stdout and "after epoch 1" in proc.stdout
    assert "epoch 1/2" not in proc.stdout and "epoch 2/2  train " in proc.stdout


def test_vae_mnist_pytorch_example_with_2d_latent(tmp_path):
    proc, out = run_example("vae_mnist", tmp_path, "--arch", "pytorch-example", "--latent-dim", "2",
                            limit=256)
    assert "data: 256 train / 51 test images" in proc.stdout
    check_run(proc, out, {
        "reconstruction_1.png": rows_height(2, 28, 2), "sample_1.png": grid(64, 28, 2),
        "latent_scatter.png": (560, 640), "manifold.png": None, "interpolation.png": None})
    assert "vae-784-400-20 with a 2-D latent space" in proc.stdout and "BCE summed" in proc.stdout


# -- the other examples -------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["tutorial", "784-32", "784-250-16"])
def test_ae_mnist(tmp_path, arch):
    proc, out = run_example("ae_mnist", tmp_path, "--arch", arch)
    side, scale = (14, 4) if arch == "tutorial" else (28, 2)
    k = {"tutorial": 3, "784-32": 32, "784-250-16": 16}[arch]
    figures = {"reconstruction_1.png": rows_height(2, side, scale), "latent_scatter.png": None,
               "code_histogram.png": HIST, "loss_curves.png": CURVES, **tutorial_figures(k)}
    if arch == "784-250-16":
        figures["generated.png"] = grid(36, 28, 2, nrow=6)      # N(0, 0.33²) codes, 6×6
    check_run(proc, out, figures)
    check_gif(out / "progress.gif", side, frames=1)


def test_ae_mnist_rejects_a_latent_dim_for_the_fixed_architecture(tmp_path):
    proc, _ = run_example("ae_mnist", tmp_path, "--arch", "784-250-16", "--latent-dim", "8")
    assert proc.returncode == 2 and "fixed 16-D code" in proc.stderr and "Traceback" not in proc.stderr


def test_conv_ae_mnist(tmp_path):
    proc, out = run_example("conv_ae_mnist", tmp_path, limit=200)
    check_run(proc, out, {
        "reconstruction_1.png": rows_height(2, 28, 2),
        "reconstructions.png": grid(16, 28, 2),                # the digits, then epoch 1
        "filters.png": (24 * 5 + 2 * 2 + T, 4 * 24 * 5 + 5 * 2),
        "latent_scatter.png": None, "loss_curves.png": CURVES,
        "generated.png": grid(36, 28, 2, nrow=6), **tutorial_figures(16)})
    check_gif(out / "progress.gif", 28, frames=1)
    assert "16-D tanh code" in proc.stdout and "MSE averaged over pixels" in proc.stdout


@pytest.mark.parametrize("noise", ["gaussian", "mask"])
def test_denoising_ae_mnist(tmp_path, noise):
    proc, out = run_example("denoising_ae_mnist", tmp_path, "--noise", noise)
    three_rows = rows_height(3, 28, 2)
    check_run(proc, out, {"denoised_1.png": three_rows, "denoised.png": three_rows,
                          "denoised_plain.png": three_rows, "filters.png": None, "loss_curves.png": CURVES},
              checkpoints=("checkpoint.npz", "checkpoint_plain.npz"))
    assert "MSE to the clean test digits" in proc.stdout
    assert load_checkpoint(out / "checkpoint.npz").builder_kwargs["corruption"][0] == noise


def test_sparse_ae_mnist(tmp_path):
    proc, out = run_example("sparse_ae_mnist", tmp_path, "--latent-dim", "49")
    check_run(proc, out, {"reconstruction_1.png": rows_height(2, 28, 2), "code_activity.png": HIST,
                          "unit_activity.png": HIST, "filters.png": None, "loss_curves.png": CURVES},
              checkpoints=("checkpoint.npz", "checkpoint_plain.npz"))
    assert "sparse AE: mean code activity" in proc.stdout
    assert "sparsity" in proc.stdout.split("== sparse AE")[1]


def test_contractive_ae_mnist(tmp_path):
    proc, out = run_example("contractive_ae_mnist", tmp_path)
    check_run(proc, out, {"reconstruction_1.png": rows_height(2, 28, 2), "jacobian_norm.png": HIST,
                          "loss_curves.png": CURVES},
              checkpoints=("checkpoint.npz", "checkpoint_plain.npz"))
    assert "‖J(x)‖_F on the test digits" in proc.stdout


def test_anomaly_detection(tmp_path):
    proc, out = run_example("anomaly_detection", tmp_path, "--normal-classes", "0-4")
    check_run(proc, out, {"reconstruction_1.png": rows_height(2, 28, 2), "scores.png": HIST,
                          "roc.png": ROC, "most_anomalous.png": rows_height(2, 28, 2),
                          "loss_curves.png": CURVES})
    assert "training on the 150 training digits 0-4" in proc.stdout
    auc = float(proc.stdout.split("ROC AUC ")[-1].split()[0])
    assert 0.0 <= auc <= 1.0


def test_linear_ae_vs_pca(tmp_path):
    proc, out = run_example("linear_ae_vs_pca", tmp_path, "--latent-dim", "4")
    check_run(proc, out, {"components.png": None, "reconstructions.png": rows_height(3, 28, 2),
                          "loss_curves.png": CURVES},
              checkpoints=("checkpoint.npz", "checkpoint_tied.npz"))
    assert "linear AE (untied)" in proc.stdout and "linear AE (tied)" in proc.stdout
    assert "largest angle" in proc.stdout and "PCA (top 4)" in proc.stdout


# -- no CuPy: a clear message, no traceback -------------------------------------------------------
@pytest.mark.skipif(backend.cupy_available(), reason="CuPy and a GPU are available here")
@pytest.mark.parametrize("name", SCRIPTS)
def test_cupy_backend_without_cupy_fails_cleanly(tmp_path, name):
    proc, out = run_example(name, tmp_path, backend_name="cupy")
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    assert "CuPy" in proc.stderr and "pip install" in proc.stderr
    assert not (out / "checkpoint.npz").exists()
