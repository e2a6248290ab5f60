"""The examples under a real ``mpiexec`` when things go wrong (issue 26, items 3 and 4).

* Ctrl-C (a terminal sends SIGINT to mpiexec and every rank): one line, rank 0's view — the
  checkpoint in --out and the epoch it holds — not rank 1's scratch folder ("no checkpoint
  was written yet"), once rather than once per rank, exit status 130; no ``tinyae-rank*``
  scratch folder is left in the temporary directory, and those of earlier, killed jobs are
  swept.
* Fewer training samples than ranks: refused before training (the job used to train
  nothing, print "train 0.0000" and save "epoch 1"), saying how many samples this rank
  count needs; one error line, not one per rank.
* A last global batch smaller than the rank count is dropped, and the start-up line says so.

Skipped, with the reason, where mpi4py or mpiexec is missing (pip install -e ".[mpi]").
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
sys.path.insert(0, str(ROOT))

from tinyae import distributed  # noqa: E402
from tinyae.checkpoint import load_checkpoint  # noqa: E402
from test_distributed import _mpiexec, needs_mpi  # noqa: E402  (one way to find mpiexec)




def _command(n, script, *argv):
    cmd = [_mpiexec()]
    if "Open MPI" in subprocess.run([cmd[0], "--version"], capture_output=True, text=True).stdout:
        cmd += ["--oversubscribe"] + (["--allow-run-as-root"] if os.geteuid() == 0 else [])
    return cmd + ["-n", str(n), sys.executable, str(EXAMPLES / f"{script}.py"), *map(str, argv)]


def _env(tmp):
    (tmp / "tmpdir").mkdir(exist_ok=True)
    return dict(os.environ, MPLBACKEND="Agg", TINYAE_OFFLINE="1", XDG_CACHE_HOME=str(tmp / "cache"),
                TINYAE_DATA="", TINYAE_TRACEBACK="", OPENBLAS_NUM_THREADS="1", TMPDIR=str(tmp / "tmpdir"))


def _ours(stderr):
    """stderr without the data loader's notes and MPICH's/Open MPI's own abort report."""
    return [line for line in stderr.splitlines()
            if line.strip() and not line.startswith(("tinyae.data: ", "Abort(", "[mpiexec@", "---", "MPI_ABORT"))
            and "MPI_COMM_WORLD" not in line and "NOTE: invoking MPI_ABORT" not in line
            and "You may or may not see output" not in line and "exactly when Open MPI kills them" not in line]


def _run(cmd, env, cwd, timeout=180):
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"still running after {timeout} s\nstdout:\n{out}\nstderr:\n{err}")
    return proc.returncode, out, err


@needs_mpi
@pytest.mark.parametrize("script", ["vae_mnist", "ae_mnist"])
def test_ctrl_c_under_mpi_is_rank_0s_one_line_and_leaves_no_scratch(tmp_path, script):
    env = _env(tmp_path)
    stale = tmp_path / "tmpdir" / "tinyae-rank1-0123abcd-killed"     # a killed job's, its lock free
    stale.mkdir()
    (stale / ".in-use").touch()
    (stale / "reconstruction_1.png").write_bytes(b"x")
    out = tmp_path / "out"
    proc = subprocess.Popen(_command(2, script, "--data", "embedded", "--epochs", "200", "--no-progress",
                                     "--out", out),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 150
        while not (out / "checkpoint.npz").exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert (out / "checkpoint.npz").exists(), proc.communicate(timeout=5) if proc.poll() is not None else ""
        time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGINT)        # what Ctrl-C in a terminal does: every process of the job
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 130, (stdout, stderr)
    assert "Traceback" not in stderr
    lines = _ours(stderr)
    assert len(lines) == 1, stderr
    ckpt = re.escape(str(out / "checkpoint.npz"))
    m = re.fullmatch(rf"interrupted(?: in epoch \d+)?; the checkpoint {ckpt} holds epoch (\d+); --resume continues",
                     lines[0])
    assert m, lines[0]
    assert int(m.group(1)) == load_checkpoint(out / "checkpoint.npz").epoch
    assert [p.name for p in (tmp_path / "tmpdir").iterdir() if p.name.startswith("tinyae-rank")] == []


@needs_mpi
@pytest.mark.parametrize("script", ["vae_mnist", "ae_mnist"])
def test_fewer_samples_than_ranks_is_refused_before_training_in_one_line(tmp_path, script):
    code, stdout, stderr = _run(_command(2, script, "--data", "embedded", "--epochs", "1", "--limit", "1",
                                         "--no-progress", "--out", tmp_path / "out"), _env(tmp_path), tmp_path)
    assert code == 2, (stdout, stderr)
    lines = _ours(stderr)
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ShardedLoader: 1 training sample(s) cannot be shared by 2 processes")
    assert "2 processes need at least 2 samples" in lines[0] and "fewer processes" in lines[0]
    assert "epoch 1/1" not in stdout and "train 0.0000" not in stdout
    assert not (tmp_path / "out" / "checkpoint.npz").exists()


@needs_mpi
def test_dropped_samples_are_on_the_start_up_line(tmp_path):
    code, stdout, stderr = _run(_command(2, "vae_mnist", "--data", "embedded", "--epochs", "1", "--limit", "65",
                                         "--batch-size", "64", "--no-progress", "--out", tmp_path / "out"),
                                _env(tmp_path), tmp_path)
    assert code == 0, (stdout, stderr)
    assert ("distributed: 2 processes, global batch 64 (~32 per rank), 1 steps per epoch; "
            "1 samples per epoch dropped") in stdout


def test_sharded_loader_refuses_fewer_samples_than_ranks():
    with pytest.raises(ValueError, match=r"3 processes need at least 3 samples"):
        distributed.ShardedLoader(np.zeros((2, 4)), batch_size=8, rank=0, size=3, min_steps=1)
    assert len(distributed.ShardedLoader(np.zeros((2, 4)), batch_size=8, rank=0, size=3)) == 0   # asked for
    loader = distributed.ShardedLoader(np.zeros((3, 4)), batch_size=8, rank=2, size=3, min_steps=1)
    assert len(loader) == 1 and [len(xb) for xb, _ in loader] == [1]
