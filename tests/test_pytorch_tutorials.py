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
    sys.path.insert(0, str(EXAMPLES))
    try:
        spec = importlib.util.spec_from_file_location("ae_mnist_archs", EXAMPLES / "ae_mnist.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(EXAMPLES))
    assert module.ARCHS["survey-784-32"]["epochs"] == 20     # the survey's n_epochs = 20
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


# -- the 14×14 chapter: augmentation, its figures ---------------------------------------------
def test_flip_rotate_transform_is_the_chapters_and_seeded():
    """The examples' transform: random_rotate_flip per image on the (N, 196) batches, drawn from
    the loader's (seed, epoch) stream — the same batches again for the same epoch, others for the next."""
    from tinyae.data import DataLoader, random_rotate_flip
    vae = load_example("vae_mnist")
    x = np.full((40, 196), -1.0, dtype=np.float32)
    x[:, 14 * 3:14 * 11] = np.random.default_rng(0).uniform(-1, 1, (40, 14 * 8))   # rows 3..10 drawn
    t = vae.flip_rotate(14, fill=-1.0)
    out = t(x, np.random.default_rng(5))
    expected = random_rotate_flip(x.reshape(40, 14, 14), np.random.default_rng(5), max_degrees=10.0,
                                  flip_prob=0.5, fill=-1.0).reshape(40, 196)
    np.testing.assert_array_equal(out, expected)
    assert out.shape == x.shape and out.dtype == np.float32
    assert out.min() >= -1.0 - 1e-6 and out.max() <= 1.0 + 1e-6      # bilinear: within the pixel range
    flipped = [np.array_equal(o.reshape(14, 14)[:, ::-1], i.reshape(14, 14)) for o, i in zip(
        load_example("ae_mnist").flip_rotate(14, -1.0, max_degrees=0.0)(x, np.random.default_rng(1)), x)]
    assert 8 < sum(flipped) < 32                                        # about half mirrored
    loader = DataLoader(x, batch_size=16, seed=3, transform=t)
    first = [b for b, _ in loader]
    loader.set_epoch(0)
    again = [b for b, _ in loader]
    later = [b for b, _ in loader]                                      # epoch 1: new order, new angles
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(np.sort(first[0], axis=None), np.sort(later[0], axis=None))
    plain = [b for b, _ in DataLoader(x, batch_size=16, seed=3)]
    assert not any(np.array_equal(a, b) for a, b in zip(first, plain))


def test_vae_mnist_augment_and_resume_keeps_it(tmp_path):
    from tinyae.checkpoint import inspect_checkpoint
    proc, out = run_example("vae_mnist", tmp_path, "--augment", limit=200)
    assert "augmentation: each training batch rotated by U(-10°, 10°) and flipped" in proc.stdout
    assert inspect_checkpoint(out / "checkpoint.npz").settings == {"seed": 0, "batch_size": 64, "augment": True}
    assert png_shape(out / "reconstruction_1.png")[0] == 4 * (2 * 14 + 3 * 2) + title_height(100)
    proc, out = run_example("vae_mnist", tmp_path, "--resume", limit=200, epochs=2)   # --augment left out
    assert "augmentation:" in proc.stdout and "epoch 2/2  train " in proc.stdout
    assert inspect_checkpoint(out / "checkpoint.npz").settings["augment"] is True


def test_ae_mnist_tutorial_augment(tmp_path):
    proc, out = run_example("ae_mnist", tmp_path, "--arch", "tutorial", "--augment", limit=200)
    assert "augmentation: each training batch rotated" in proc.stdout
    assert "model: dense-196-64-16 with a 3-D code" in proc.stdout
    assert len(png_shape(out / "latent_scatter.png")) == 3 and (out / "checkpoint.npz").is_file()


def test_chapter_figures(tmp_path):
    proc, out = run_example("chapter_figures", tmp_path, "--points", "60", limit=2000, epochs=2)
    t = title_height(100)
    for w in ("ae", "vae"):
        h, width = png_shape(out / f"reconstructions_{w}.png")[:2]
        assert h == 4 * (2 * 14 + 3 * 2) + t and width > 4 * (10 * 14 + 11 * 2)      # 2 rows of 10
        assert png_shape(out / f"latent_3d_{w}.png")[:2] == (560, 720)
    assert png_shape(out / "latent_ae_vs_vae.png")[:2] == (560, 1280)
    report = json.loads((out / "chapter.json").read_text())
    for w in ("ae", "vae"):
        m = report["latent"][w]
        assert 0 < m["rms_within_class"] < m["rms_radius"] * 1.5 and len(m["std_per_coordinate"]) == 3
    assert report["settings"]["augment"] is True and "VAE latent space: rms radius" in proc.stdout
    # the chapter's argument: the AE's codes spread out, the VAE's means stay near the origin
    # (after 62 steps already 5× apart; 6.7 vs 1.7 after the 20 epochs of docs/results.md)
    assert report["latent"]["vae"]["rms_radius"] < 0.5 * report["latent"]["ae"]["rms_radius"]


# -- the NYU notebook ----------------------------------------------------------------------------
def test_nyu_autoencoders_script(tmp_path):
    proc, out = run_example("nyu_autoencoders", tmp_path, "--batch-size", "16", limit=2000, epochs=3)
    report = json.loads((out / "nyu.json").read_text())
    models = report["models"]
    assert set(models) == {"standard-30", "standard-500", "denoising-500"}
    assert models["denoising-500"]["corruption"] == ["dropout", 0.5]
    # every model does better on clean digits than on masked ones, and the denoising AE loses the
    # least when its input is masked: its error grows less (as a ratio) than the plain net's.  (That
    # it also beats the plain net outright on masked digits needs the full run: docs/results.md.)
    assert all(m["test_mse_clean"] < m["test_mse_corrupted"] for m in models.values())
    loss = {n: m["test_mse_corrupted"] / m["test_mse_clean"] for n, m in models.items()}
    assert loss["denoising-500"] < loss["standard-500"]
    t = title_height(100)
    assert png_shape(out / "reconstructions.png")[:2] == (2 * (4 * 28 + 5 * 2) + t, 2 * (10 * 28 + 11 * 2))
    assert png_shape(out / "denoising.png")[:2] == (2 * (4 * 28 + 5 * 2) + t, 2 * (10 * 28 + 11 * 2))
    assert png_shape(out / "kernels_d30.png")[:2] == (3 * 56 + 4 * 2 + t, 10 * 56 + 11 * 2)
    assert len(png_shape(out / "kernels_d500.png")) == 3
    h, w = png_shape(out / "interpolation.png")[:2]
    assert h == 2 * (2 * 28 + 3 * 2) + t and w > 2 * (10 * 28 + 11 * 2)
    for name in models:
        assert (out / f"checkpoint_{name}.npz").is_file()


# -- benchmarks/reproduce.py: the tutorials' setups against PyTorch --------------------------------
def test_reproduce_tutorial_setups_match_torch(tmp_path):
    """--quick runs of the issue-16 setups (named with --only; the default set leaves them out):
    tinyae and PyTorch from the same weights on the same (augmented / masked) batches agree."""
    pytest.importorskip("torch")
    root = EXAMPLES.parent
    data = ["--subset", "embedded"]       # 300 of the 5,000 embedded digits: seconds (full MNIST: 3× longer to load)
    names = ["dense-196-64-16", "dense-196-64-16-augment", "vae-196-64-16-augment", "survey-ae-784-32",
             "nyu-784-500", "nyu-denoising-784-500"]
    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, str(root / "benchmarks" / "reproduce.py"), "--quick", "--threads", "1",
                           *data, "--only", *names, "--json", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = {r["setup"]: r for r in json.loads(out.read_text())["results"]}
    assert list(results) == names
    for name, res in results.items():
        (rec,) = res["history"]
        for split in ("train", "test"):
            assert rec["tinyae"][split] == pytest.approx(rec["torch"][split], rel=1e-4), (name, split)
    assert results["survey-ae-784-32"]["batch"] == 20
    plain, augmented = (results[n]["history"][0]["tinyae"]["train"] for n in names[:2])
    assert plain != augmented                     # the same model and order, other (flipped/rotated) batches
    # the same net from the same start on the same batches, once with half the inputs dropped:
    # reconstructing the clean digits from masked ones is harder
    plain, masked = (results[n]["history"][0]["tinyae"]["train"] for n in names[-2:])
    assert masked > plain
