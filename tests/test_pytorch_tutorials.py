"""The PyTorch tutorials (issue 16): the OpenGenus survey's conv variants and its linear AE, the
checkerboard measurement; short real runs of the examples that write their figures."""
import importlib.util
import json
import os
import re
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from matplotlib import image as mimage

from tinyae.models import build
from tinyae.nn import ConvTranspose2d, MaxPool2d, Upsample
from tinyae.plot import title_height

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from test_models import model_gradcheck  # noqa: E402

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"
VARIANTS = ["conv-ae-transposed", "conv-ae-unpool", "conv-ae-upsample"]


def load_example(name):
    """An example script as a module (its functions, without running main)."""
    sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_example(name, tmp_path, *args, limit=300, epochs=1):
    out = tmp_path / name
    env = dict(os.environ, MPLBACKEND="Agg", TINYAE_OFFLINE="1", OPENBLAS_NUM_THREADS="1")
    env.pop("TINYAE_DATA", None)
    cmd = [sys.executable, str(EXAMPLES / f"{name}.py"), "--data", "embedded", "--epochs", str(epochs),
           "--limit", str(limit), "--out", str(out), "--no-progress", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    return proc, out


def png_shape(path):
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    return mimage.imread(path).shape


# -- the survey's conv variants ----------------------------------------------------------------
@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("loss", ["mse", "bce"])
def test_conv_variants_gradcheck(name, loss):
    """Every parameter's gradient and dL/dx of the whole model in float64 (small channels)."""
    model = build(name, channels=[3, 2], loss=loss, seed=4)
    x = np.random.default_rng(1).uniform(0.05, 0.95, (2, 1, 28, 28))
    assert model_gradcheck(model, x) <= 1e-6


def test_conv_variants_layers_and_shapes():
    shapes = {}
    for name in VARIANTS:
        model = build(name, seed=0)
        x = np.random.default_rng(0).uniform(0, 1, (3, 1, 28, 28)).astype(np.float32)
        h = model.encode(x)
        assert h.shape == (3, 8, 7, 7)
        assert model.decode(h).shape == x.shape      # right after encoding: unpool has its indices
        shapes[name] = model.num_parameters()
        kinds = {type(m) for m in model.decoder}
        assert {"conv-ae-transposed": ConvTranspose2d, "conv-ae-upsample": Upsample}.get(name, MaxPool2d) in (
            kinds | {type(m) for m in model.encoder})
    # (a) and (c): the same encoder and decoders of the same size: an equal budget
    assert shapes["conv-ae-transposed"] == shapes["conv-ae-upsample"] == 2633
    a, c = build("conv-ae-transposed", seed=5), build("conv-ae-upsample", seed=5)
    for pa, pc in zip(a.encoder.parameters(), c.encoder.parameters()):
        assert np.array_equal(pa.data, pc.data)


def test_unpool_puts_values_back_at_the_maxima():
    """conv-ae-unpool's decoder input lands where the encoder's last pool found its maxima."""
    model = build("conv-ae-unpool", seed=0)
    x = np.random.default_rng(2).uniform(0, 1, (2, 1, 28, 28)).astype(np.float32)
    h = model.encode(x)
    up = model.decoder[0](h)                          # (2, 8, 14, 14), zeros but at the maxima
    assert up.shape == (2, 8, 14, 14)
    pooled_input = model.encoder[:5](x)                # what the second pool took in
    nonzero = up != 0
    np.testing.assert_array_equal(up[nonzero], pooled_input[nonzero])
    assert nonzero.reshape(2, 8, 7, 2, 7, 2).sum(axis=(3, 5)).max() <= 1   # one value per 2×2 window
    with pytest.raises(ValueError, match="can only decode the batch that was just encoded"):
        model.decode(h[:1])
    with pytest.raises(RuntimeError, match="has not run yet"):
        build("conv-ae-unpool").decode(h)


def test_conv_variants_refuse_bad_channels():
    with pytest.raises(ValueError, match=r"channels must be a pair \[C1, C2\]"):
        build("conv-ae-upsample", channels=[4])
    with pytest.raises(ValueError, match="channels\\[1\\] must be a positive int"):
        build("conv-ae-transposed", channels=[4, 0])


# -- the checkerboard measure ------------------------------------------------------------------
def test_checkerboard_measure_sees_a_printed_checkerboard():
    cb = load_example("checkerboard")
    rng = np.random.default_rng(0)
    noise = rng.uniform(0, 1, (20, 1, 28, 28))
    smooth = sum(np.roll(np.roll(noise, a, axis=2), b, axis=3) for a in (-1, 0, 1) for b in (-1, 0, 1)) / 9
    period2 = np.indices((28, 28)).sum(axis=0) % 2                                  # a checkerboard
    printed = smooth + 0.05 * period2
    same = cb.checkerboard_measure(smooth, smooth)
    assert same[2] == pytest.approx({"ratio": 1.0, "ratio_near": 1.0, "excess": 1.0})
    m = cb.checkerboard_measure(smooth, printed)
    assert m[2]["ratio"] > 10 and m[2]["excess"] > 10 and m[4]["ratio"] == pytest.approx(1.0)
    blurred = smooth
    for axis in (2, 3):   # [1, 2, 1]/4 along both axes: no power left at period 2, a quarter at period 4
        blurred = 0.5 * blurred + 0.25 * (np.roll(blurred, 1, axis=axis) + np.roll(blurred, -1, axis=axis))
    b = cb.checkerboard_measure(smooth, blurred)
    assert b[2]["ratio"] < 1e-20 and 0.01 < b[4]["ratio"] < 0.25
    masks = cb.stride_sets(28, 2, 2)
    assert masks[2].sum() == 3 and masks[4].sum() == 12 and not (masks[2] & masks[4]).any()


def test_checkerboard_script(tmp_path):
    proc, out = run_example("checkerboard", tmp_path, limit=300)
    report = json.loads((out / "checkerboard.json").read_text())
    assert set(report["variants"]) == {"transposed", "upsample"}
    for v in report["variants"].values():
        assert set(v["spectrum"]) == {"2", "4"} and v["spectrum"]["2"]["ratio"] > 0
    t = title_height(100)
    h, w = png_shape(out / "checkerboard.png")[:2]
    assert h == 3 * (3 * 28 + 4 * 2) + t and w > 3 * (10 * 28 + 11 * 2)
    assert png_shape(out / "spectra.png")[:2] == (8 * (28 + 4) + t, 8 * (3 * 28 + 4 * 2))
    assert "excess" in proc.stdout


@pytest.mark.parametrize("decoder", ["unpool"])   # transposed and upsample: test_checkerboard_script
def test_conv_ae_mnist_decoders(tmp_path, decoder):
    proc, out = run_example("conv_ae_mnist", tmp_path, "--decoder", decoder, "--batch-size", "50", limit=150)
    assert f"model: conv-ae-{decoder} with an 8×7×7 code, 2,633 parameters, Adam; loss = MSE" in proc.stdout
    t = title_height(100)
    for name in ("reconstruction_1.png", "reconstructions.png", "filters.png", "latent_scatter.png"):
        assert len(png_shape(out / name)) == 3
    assert png_shape(out / "reconstructions.png")[:2] == (2 * (2 * 28 + 3 * 2) + t, 2 * (8 * 28 + 9 * 2))
    assert not (out / "generated.png").exists()     # no decoding of codes from elsewhere


def test_survey_linear_ae_is_784_32_mse_batch_20(tmp_path):
    proc, out = run_example("ae_mnist", tmp_path, "--arch", "survey-784-32", limit=100)
    assert "model: ae-784-32 with a 32-D code, 50,992 parameters, pytorch init, Adam; loss = MSE" in proc.stdout
    from tinyae.checkpoint import load_checkpoint
    ckpt = load_checkpoint(out / "checkpoint.npz")
    assert ckpt.settings["batch_size"] == 20
    model = ckpt.model
    assert model.builder == ("ae-784-32", {"seed": 0, "latent": 32, "loss": "mse", "init": "pytorch"})
    assert type(model.recon_loss).__name__ == "MSELoss" and type(model.decoder[-1]).__name__ == "Sigmoid"
    assert [p.shape for p in model.parameters()] == [(32, 784), (32,), (784, 32), (784,)]
    assert re.search(r"final test loss 0\.\d+ \(MSE per pixel\)", proc.stdout)


def test_dropout_corruption_is_the_notebooks_scaled_mask():
    """('dropout', 0.5): x ⊙ m / (1 − p), i.e. nn.Dropout(0.5) applied to ones gives masks in {0, 2}."""
    model = build("mlp-ae", sizes=[12, 5], code_activation="tanh", output="tanh", loss="mse",
                  corruption=["dropout", 0.5], seed=1)
    x = np.random.default_rng(0).uniform(-0.9, 0.9, (6, 12))
    keep = (np.random.default_rng(3).random(x.shape) >= 0.5).astype(np.float64)
    model.double()
    np.testing.assert_allclose(model.corrupt(x, keep), x * keep * 2.0)
    assert set(np.unique(model.corrupt(np.ones((50, 12)))).tolist()) == {0.0, 2.0}
    assert model_gradcheck(model, x, check_input=False, noise=keep) <= 1e-6
