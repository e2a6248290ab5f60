"""The example scripts in a hostile environment (issue 26, items 8-10).

* Say what actually failed: every OSError used to be "free some disk space" (a read-only
  folder, a file removed by another run, a permission); the out-of-memory line blamed
  --batch-size whatever the cause.  A closed stdout (``… | head -1``) stopped training before
  any checkpoint: now the run goes on.
* Very small data: ``ae_mnist.py --limit 1`` failed in the KernelPCA figure and
  ``conv_ae_mnist.py --limit 2`` in the latent scatter, after training; now they draw what
  can be drawn.
* ``PYTHONIOENCODING=ascii`` with a Unicode --out failed at the very end of a finished run.
"""
from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinyae import models, plot
from tinyae.checkpoint import load_checkpoint
from tinyae.optim import Adam
from tinyae.train import TrainingError, fit

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def env(tmp, **extra):
    return dict(os.environ, MPLBACKEND="Agg", TINYAE_OFFLINE="1", XDG_CACHE_HOME=str(tmp / "cache"),
                TINYAE_DATA="", TINYAE_TRACEBACK="", OPENBLAS_NUM_THREADS="1", **extra)


def script(tmp, name, *argv, **extra):
    return subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), "--data", "embedded", "--no-progress",
                           *map(str, argv)], capture_output=True, text=True, env=env(tmp, **extra), cwd=tmp,
                          timeout=300)


@pytest.fixture(scope="module")
def common():
    sys.path.insert(0, str(EXAMPLES))
    try:
        import common
    finally:
        sys.path.remove(str(EXAMPLES))
    return common


# --------------------------------------------------------------------------
# Item 8: what failed, not always "free some disk space"; a closed stdout
# --------------------------------------------------------------------------

@pytest.mark.parametrize("code, words, not_words", [
    (errno.ENOSPC, ["No space left", "free some disk space"], []),
    (errno.EROFS, ["Read-only file system", "read-only: pass another --out"], ["disk space"]),
    (errno.EACCES, ["Permission denied", "an --out you can write to"], ["disk space"]),
    (errno.ENOENT, ["No such file or directory", "removed while the run used it"], ["disk space"]),
    (errno.EIO, ["Input/output error"], ["disk space"]),
])
def test_an_os_error_gets_the_advice_that_fits(common, code, words, not_words):
    line = common._os_error(OSError(code, os.strerror(code), "/somewhere/checkpoint.npz"))
    assert all(w in line for w in words) and not any(w in line for w in not_words), line
    assert "(/somewhere/checkpoint.npz)" in line


def test_a_read_only_folder_is_not_blamed_on_the_disk(tmp_path, monkeypatch):
    model = models.build("mlp-ae", sizes=[4, 2], seed=0)

    def read_only(f, **arrays):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(np, "savez", read_only)
    with pytest.raises(TrainingError) as info:
        fit(model, Adam(model.parameters()), np.zeros((8, 4), np.float32), epochs=1, batch_size=4,
            checkpoint=tmp_path / "ck.npz", progress=False, log=None)
    msg = str(info.value)
    assert "(Read-only file system)" in msg and "read-only file system: choose another folder" in msg
    assert "disk space" not in msg


def test_out_of_memory_says_what_could_not_be_allocated(common, capsys):
    def body(args):
        raise MemoryError("Unable to allocate 59.6 GiB for an array with shape (1000000000, 16) and data type "
                          "float32")

    parser = common.make_parser("x", "x", epochs=1, batch_size=1)
    with pytest.raises(SystemExit) as info:
        common.run_cli(body, parser, argv=[])
    assert info.value.code == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith("error: out of memory (Unable to allocate 59.6 GiB") and "--latent-dim" in line


@pytest.mark.parametrize("error", [ValueError, OSError, RuntimeError])
def test_a_ctrl_c_a_library_turned_into_its_own_error_is_still_a_ctrl_c(common, capsys, error):
    """A library whose clean-up raises while a KeyboardInterrupt unwinds (zipfile's "Close the
    writing handle before closing the zip" was one) hides the Ctrl-C behind its own error:
    run_cli looks behind it and answers as for Ctrl-C (exit 130, one line), whatever the error;
    the same errors without a Ctrl-C behind them are a user's error or a bug, as before."""
    def body(args):
        try:
            raise KeyboardInterrupt
        finally:
            raise error("a library's clean-up failed")

    parser = common.make_parser("x", "x", epochs=1, batch_size=1)
    with pytest.raises(SystemExit) as info:
        common.run_cli(body, parser, argv=[])
    assert info.value.code == 130
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err and "clean-up" not in err

    def plain(args):
        raise error("a library's clean-up failed")
    if error is RuntimeError:                      # not a user's mistake: the traceback stays
        with pytest.raises(RuntimeError):
            common.run_cli(plain, parser, argv=[])
    else:
        with pytest.raises(SystemExit) as info:
            common.run_cli(plain, parser, argv=[])
        assert info.value.code == 2 and capsys.readouterr().err.startswith("error: ")


def test_a_closed_stdout_does_not_stop_training(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, str(EXAMPLES / "ae_mnist.py"), "--data", "embedded", "--limit", "100",
                             "--epochs", "2", "--no-progress", "--out", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env(tmp_path), cwd=tmp_path)
    proc.stdout.readline()                # `| head -1`
    proc.stdout.close()
    stderr = proc.communicate(timeout=300)[1].decode()
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr and "Broken pipe" not in stderr
    assert load_checkpoint(out / "checkpoint.npz").epoch == 2


# --------------------------------------------------------------------------
# Item 9: very small data; item 10: an ASCII terminal and a Unicode --out
# --------------------------------------------------------------------------

def test_one_training_image_and_an_ascii_terminal(tmp_path):
    out = tmp_path / "résumé"
    r = script(tmp_path, "ae_mnist", "--epochs", "1", "--limit", "1", "--out", out, PYTHONIOENCODING="ascii")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert r.stdout.strip().splitlines()[-1].startswith("wrote to ") and "r\\xe9sum\\xe9" in r.stdout
    assert (out / "kernel_pca_2d.png").exists() and (out / "latent_scatter.png").exists()


def test_a_one_image_test_set(tmp_path):
    r = script(tmp_path, "conv_ae_mnist", "--epochs", "1", "--limit", "2", "--out", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out" / "latent_scatter.png").exists()


def test_figures_of_a_handful_of_codes(tmp_path):
    one = np.random.default_rng(0).standard_normal((1, 8)).astype(np.float32)
    plot.save_latent_scatter(one, np.array([3]), tmp_path / "scatter.png")
    plot.save_kernel_pca(one, np.array([3]), tmp_path / "kpca2.png")
    plot.save_kernel_pca(np.vstack([one, one + 1]), np.array([3, 4]), tmp_path / "kpca3.png", n_components=3)
    assert all((tmp_path / n).stat().st_size > 0 for n in ("scatter.png", "kpca2.png", "kpca3.png"))


def _default_sigint():
    """In the child: SIGINT back to its default (a background pytest starts children with it ignored)."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_a_ctrl_c_that_lands_in_a_weakref_callback_is_not_lost(tmp_path):
    """A SIGINT that arrives while Python runs a weakref callback (or a finalizer) raises there,
    where Python prints "Exception ignored" and goes on: the run would train to its end and
    exit 0.  run_cli asks for such a lost interrupt again: one line, exit 130."""
    body = tmp_path / "lost_interrupt.py"
    body.write_text(f"""
import os, signal, sys, time, weakref
sys.path.insert(0, {str(EXAMPLES)!r})
import common

class Thing:
    pass

def body(args):
    thing = Thing()
    keep = weakref.ref(thing, lambda ref: os.kill(os.getpid(), signal.SIGINT))   # Ctrl-C inside the callback
    del thing
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:        # the work a lost Ctrl-C would let finish
        time.sleep(0.01)
    print("finished")

common.run_cli(body, common.make_parser("lost_interrupt", "test", epochs=1, batch_size=8), ["--out", {str(tmp_path / "out")!r}])
""")
    proc = subprocess.run([sys.executable, str(body)], capture_output=True, text=True, env=env(tmp_path),
                          cwd=tmp_path, timeout=120, preexec_fn=_default_sigint)
    assert proc.returncode == 130, (proc.stdout, proc.stderr)
    assert "finished" not in proc.stdout and "Exception ignored" not in proc.stderr
    assert proc.stderr.strip().startswith("interrupted") and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
