"""The main job, examples/vae_mnist.py, with its hand-written backward chain, and the minimal
examples/backprop_by_hand.py.

* The script's inline VAE starts from the builder's weights and noise stream (same seed).
* Its hand-written training step gives the gradients of the model's ``backward_loss``
  (float64, the same fixed ε), for both architectures, and stops before the update on a
  non-finite loss.
* End to end on real MNIST (--limit): figures and checkpoint written, and a run stopped
  after epoch 1 and resumed ends with the parameters, Adam state, noise generator and
  history of ``fit`` with the builder (today's path) never interrupted; under mpiexec -n 2
  it writes what ``fit(distributed=True)`` writes.
* train.resume_from refuses another seed and logs changed settings; backprop_by_hand.py's
  loss falls.
"""
import importlib.util
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
from argparse import Namespace

import numpy as np
import threadpoolctl
import pytest

from tinyae import models
from tinyae.optim import Adam
from tinyae.train import fit

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))
import vae_mnist  # noqa: E402  (the script; its body runs only as __main__)

ARCHS = {"tutorial": ("vae-196-64-16", 196, (-1.0, 1.0)),          # builder, pixels, pixel range
         "pytorch-example": ("vae-784-400-20", 784, (0.0, 1.0))}


def pair(arch, latent, seed, beta=1.0):
    """(the script's VAE, the builder's VAE) for the same arguments."""
    name = ARCHS[arch][0]
    return vae_mnist.VAE(arch, latent, seed, beta), models.build(name, latent=latent, beta=beta, seed=seed)


@pytest.mark.parametrize("arch,latent,seed", [("tutorial", 3, 0), ("tutorial", 2, 7),
                                              ("pytorch-example", 20, 1)])
def test_inline_vae_starts_where_the_builder_does(arch, latent, seed):
    mine, theirs = pair(arch, latent, seed)
    a, b = dict(mine.named_parameters()), dict(theirs.named_parameters())
    assert list(a) == list(b)                                   # same names, same order (checkpoints)
    for name in a:
        assert a[name].data.dtype == b[name].data.dtype == np.float32
        np.testing.assert_array_equal(a[name].data, b[name].data, err_msg=name)
    assert mine.rng.bit_generator.state == theirs.rng.bit_generator.state   # ε's stream
    assert mine.builder == theirs.builder
    other = vae_mnist.VAE(arch, latent, seed + 1)
    assert not np.array_equal(other.encoder[0].weight.data, mine.encoder[0].weight.data)


@pytest.mark.parametrize("arch,beta", [("tutorial", 1.0), ("tutorial", 0.3), ("pytorch-example", 2.5)])
def test_hand_written_step_gives_backward_loss_gradients(arch, beta):
    _, d, (lo, hi) = ARCHS[arch]
    latent, n = 4, 6
    mine, theirs = pair(arch, latent, seed=3, beta=beta)
    mine.double()
    theirs.double()
    rng = np.random.default_rng(11)
    x = rng.uniform(lo, hi, size=(n, d))
    eps = rng.standard_normal((n, latent))
    opt = Adam(mine.parameters(), lr=1e-3)

    values = vae_mnist.train_step(mine, opt, x, beta, eps=eps)

    total, parts = theirs.loss(x, eps=eps)
    theirs.zero_grad()
    theirs.backward_loss()
    np.testing.assert_allclose(values, [float(total), float(parts["recon"]), float(parts["kl"])], rtol=1e-13)
    grads = dict(theirs.named_parameters())
    for name, p in mine.named_parameters():
        assert np.any(p.grad != 0), f"{name}: no gradient reached it"
        np.testing.assert_allclose(p.grad, grads[name].grad, rtol=1e-11, atol=1e-13, err_msg=name)
    assert opt.step_count == 1                                  # and the step was taken
    assert not np.array_equal(mine.mean_head.weight.data, theirs.mean_head.weight.data)


def test_hand_written_step_stops_before_the_update_on_a_nan():
    model = vae_mnist.VAE("tutorial", 3, seed=0)
    opt = Adam(model.parameters(), lr=1e-3)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    x = np.zeros((4, 196), dtype=np.float32)
    x[2, 5] = np.nan
    with np.errstate(invalid="ignore"):
        values = vae_mnist.train_step(model, opt, x, 1.0)
    assert np.isnan(values[0]) and np.isnan(values[1])
    assert opt.step_count == 0
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)
    assert all(not np.any(p.grad) for p in model.parameters())


# -- end to end -----------------------------------------------------------------------------------
LIMIT = 320


def run_script(name, tmp_path, mnist_dir, out, *args):
    env = dict(os.environ, MPLBACKEND="Agg", TINYAE_DATA=str(mnist_dir), TINYAE_OFFLINE="1",
               XDG_CACHE_HOME=str(tmp_path / "cache"))
    cmd = [sys.executable, str(EXAMPLES / f"{name}.py"), "--data", "full", "--limit", str(LIMIT),
           "--out", str(out), "--no-progress", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


def contents(path):
    """A checkpoint's arrays; its history without the timings (they differ from run to run)."""
    with np.load(path) as z:
        out = {k: z[k] for k in z.files if k != "meta"}
    out["history"] = [{k: v for k, v in r.items() if k != "seconds"} for r in json.loads(str(out["history"]))]
    return out


def assert_same(a, b):
    assert sorted(a) == sorted(b)
    for k in a:
        if k == "history":
            assert a[k] == b[k]
        else:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_main_job_end_to_end_resumes_bit_for_bit_and_equals_fit(tmp_path, mnist_dir, monkeypatch):
    """1 epoch, then --resume to 2 (β taken from the checkpoint): figures, checkpoint, and the
    parameters, Adam state, ε's generator and history of fit's uninterrupted 2 epochs."""
    out = tmp_path / "run"
    proc = run_script("vae_mnist", tmp_path, mnist_dir, out, "--epochs", "1", "--beta", "0.5", "--threads", "1")
    first = [x for x in proc.stdout.splitlines() if x.startswith("epoch ")]
    assert len(first) == 1 and re.match(r"epoch 1/1  train [\d.]+ \(recon [\d.]+, kl [\d.]+\)  "
                                        r"test [\d.]+ \(recon [\d.]+, kl [\d.]+\)  \([\d.]+ s\)$", first[0])
    assert int(contents(out / "checkpoint.npz")["epoch"]) == 1

    proc = run_script("vae_mnist", tmp_path, mnist_dir, out, "--epochs", "2", "--resume", "--threads", "1")
    assert "resumed from" in proc.stdout and "after epoch 1" in proc.stdout
    assert "epoch 1/2" not in proc.stdout and "epoch 2/2  train" in proc.stdout
    for name in ["reconstruction_1.png", "reconstruction_2.png", "sample_1.png", "sample_2.png",
                 "latent_scatter.png", "interpolation.png", "loss_curves.png"]:
        with open(out / name, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n", name
    mine = contents(out / "checkpoint.npz")
    assert int(mine["epoch"]) == 2 and str(mine["builder"]) == "vae-196-64-16"
    assert mine["history"][1]["test_loss"] < mine["history"][0]["test_loss"]

    # today's path, never interrupted: the builder's model trained by fit on the same digits
    monkeypatch.setenv("TINYAE_DATA", str(mnist_dir))
    from common import load_images
    x_train, _, x_test, _ = load_images(Namespace(data="full", limit=LIMIT), size=14, value_range="symmetric")
    model = models.build("vae-196-64-16", latent=3, beta=0.5, seed=0)
    # on the script's BLAS thread count (one, its default): a float32 GEMM's rounding may depend
    # on how many threads split it (seen with NumPy 1.23's OpenBLAS 0.3.20)
    with threadpoolctl.threadpool_limits(limits=1):
        fit(model, Adam(model.parameters(), lr=1e-3), x_train, x_test, epochs=2, batch_size=64, seed=0,
            checkpoint=tmp_path / "fit.npz", progress=False, log=None)
    assert_same(mine, contents(tmp_path / "fit.npz"))


def test_backprop_by_hand_loss_falls(tmp_path, mnist_dir):
    proc = run_script("backprop_by_hand", tmp_path, mnist_dir, tmp_path / "bh", "--epochs", "2",
                      "--batch-size", "32")
    found = dict(re.findall(r"^(before training|epoch \d): test loss ([\d.]+)$", proc.stdout, re.M))
    before, one, two = (float(found[k]) for k in ("before training", "epoch 1", "epoch 2"))
    assert before > one > two and two < 0.8 * before, proc.stdout
    steps = [float(v) for v in re.findall(r"train loss ([\d.]+)", proc.stdout)]
    assert len(steps) >= 2 and steps[-1] < steps[0]
    assert (tmp_path / "bh" / "checkpoint.npz").is_file()

    # it keeps no checkpoint to resume from: --resume is refused, not ignored
    proc = subprocess.run([sys.executable, str(EXAMPLES / "backprop_by_hand.py"), "--resume", "--out",
                           str(tmp_path / "bh")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: --resume: not supported")


def test_resume_from_checks_like_fit(tmp_path):
    """train.resume_from (what the script resumes with) refuses another seed, keeps the caller's
    learning rate and β, and says so."""
    from tinyae.checkpoint import CheckpointError
    from tinyae.train import resume_from
    x = np.random.default_rng(0).uniform(-1, 1, (96, 196)).astype(np.float32)
    path = tmp_path / "checkpoint.npz"
    model = models.build("vae-196-64-16", latent=3, seed=4)
    fit(model, Adam(model.parameters(), lr=1e-3), x, epochs=1, batch_size=32, seed=4, checkpoint=path,
        progress=False, log=None)

    model = vae_mnist.VAE("tutorial", 3, seed=4, beta=0.5)
    with pytest.raises(CheckpointError, match="seed 4"):
        resume_from(path, model, Adam(model.parameters(), lr=1e-3), seed=5, batch_size=32)
    opt, said = Adam(model.parameters(), lr=3e-4), []
    history, epoch, note = resume_from(path, model, opt, seed=4, batch_size=32, log=said.append)
    assert epoch == 1 and len(history) == 1 and opt.step_count == 3       # 96 / 32 steps restored
    assert opt.lr == pytest.approx(3e-4) and "lr 0.001 -> 0.0003" in note and "beta 1 -> 0.5" in note
    assert said and said[0].startswith(f"resumed from {path} after epoch 1; changed from epoch 2 on")


def _mpiexec():
    """mpiexec beside this Python or on PATH, if mpi4py is installed too; else None."""
    if importlib.util.find_spec("mpi4py") is None:
        return None
    local = pathlib.Path(sys.executable).with_name("mpiexec")
    return str(local) if local.exists() else shutil.which("mpiexec")


@pytest.mark.skipif(_mpiexec() is None, reason='needs mpi4py and mpiexec (pip install -e ".[mpi]")')
def test_main_job_under_mpiexec_equals_fit_distributed(tmp_path):
    """mpiexec -n 2: the hand-written loop with tinyae.distributed's pieces writes the checkpoint
    fit(distributed=True) writes for the builder's model (one log, rank 0's files)."""
    launch = [_mpiexec()]
    if "Open MPI" in subprocess.run([launch[0], "--version"], capture_output=True, text=True).stdout:
        launch += ["--oversubscribe"] + (["--allow-run-as-root"] if os.geteuid() == 0 else [])
    launch += ["-n", "2", sys.executable]
    env = dict(os.environ, MPLBACKEND="Agg", TINYAE_OFFLINE="1", XDG_CACHE_HOME=str(tmp_path / "cache"),
               OPENBLAS_NUM_THREADS="1")
    script = [str(EXAMPLES / "vae_mnist.py"), "--data", "embedded", "--limit", "240", "--epochs", "2",
              "--no-progress", "--out", str(tmp_path / "script")]
    proc = subprocess.run(launch + script, capture_output=True, text=True, timeout=180, env=env, cwd=tmp_path)
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.stdout.count("epoch 2/2  train") == 1
    assert "distributed: 2 processes, global batch 64 (~32 per rank), 4 steps per epoch" in proc.stdout

    code = (f"import sys; sys.path.insert(0, {str(EXAMPLES)!r})\n"
            "from argparse import Namespace\n"
            "from common import load_images\n"
            "from tinyae import models\nfrom tinyae.optim import Adam\nfrom tinyae.train import fit\n"
            "x, _, t, _ = load_images(Namespace(data='embedded', limit=240), size=14,\n"
            "                         value_range='symmetric')\n"
            "m = models.build('vae-196-64-16', latent=3, beta=1.0, seed=0)\n"
            "fit(m, Adam(m.parameters(), lr=1e-3), x, t, epochs=2, batch_size=64, seed=0, progress=False,\n"
            f"    log=None, checkpoint={str(tmp_path / 'fit.npz')!r}, distributed=True)\n")
    proc = subprocess.run(launch + ["-c", code], capture_output=True, text=True, timeout=180, env=env,
                          cwd=tmp_path)
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    mine = contents(tmp_path / "script" / "checkpoint.npz")
    assert mine["history"][-1]["ranks"] == 2
    assert_same(mine, contents(tmp_path / "fit.npz"))
