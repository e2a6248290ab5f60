"""Two actors on one folder (issue 26, item 2), with real processes.

A second run on the same ``--out`` used to delete the first run's temporary files while they
were being written (``remove_orphans(older_than=0)`` for checkpoints and figures), and the
first died with "No such file or directory (….tmp)".  Now a writer holds a lock on its
temporary file and only files that no living process holds are removed (and named).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

# A slow writer: the checkpoint and a figure of `folder`, both half-written until `go` appears.
WRITER = r"""
import os, sys, time
sys.path.insert(0, sys.argv[1])
from tinyae import _files
folder = sys.argv[2]

def slow(f):
    f.write(b"first half ")
    open(os.path.join(folder, "ready"), "w").close()
    deadline = time.time() + 120
    while not os.path.exists(os.path.join(folder, "go")) and time.time() < deadline:
        time.sleep(0.05)
    f.write(b"second half")

def figure(f):
    _files.atomic_write(os.path.join(folder, "reconstruction_1.png"), slow)
    f.write(b"checkpoint")

_files.atomic_write(os.path.join(folder, "checkpoint.npz"), figure)
print("writer finished", flush=True)
"""


def _start_writer(folder: Path):
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(ROOT), str(folder)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (folder / "ready").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the writer never got going"
        time.sleep(0.05)
    temps = sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))
    assert len(temps) == 2, temps
    return proc, temps


def _env(tmp):
    return dict(os.environ, MPLBACKEND="Agg", TINYAE_OFFLINE="1", XDG_CACHE_HOME=str(tmp / "cache"),
                TINYAE_DATA="", OPENBLAS_NUM_THREADS="1", TINYAE_TRACEBACK="")


def test_a_second_run_on_the_same_out_leaves_the_first_runs_writes_alone(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    writer, temps = _start_writer(out)
    try:
        second = subprocess.run([sys.executable, str(EXAMPLES / "ae_mnist.py"), "--data", "embedded", "--limit",
                                 "100", "--epochs", "1", "--no-progress", "--out", str(out)],
                                capture_output=True, text=True, env=_env(tmp_path), cwd=tmp_path, timeout=300)
        assert second.returncode == 0, second.stderr
        assert "removed" not in second.stdout + second.stderr      # nothing of the living writer
        assert all((out / t).exists() for t in temps)
    finally:
        (out / "go").touch()
        stdout, stderr = writer.communicate(timeout=60)
    assert writer.returncode == 0, stderr
    assert "writer finished" in stdout
    assert (out / "checkpoint.npz").read_bytes() == b"checkpoint"     # the first run's write landed whole
    assert [p for p in os.listdir(out) if p.endswith(".tmp")] == []


def test_a_killed_writers_leftovers_are_removed_and_named(tmp_path):
    """What is provably abandoned (its writer is gone, whatever killed it) is still cleaned up."""
    from tinyae import models, plot
    from tinyae.optim import Adam
    from tinyae.train import fit
    import numpy as np

    folder = tmp_path / "run"
    folder.mkdir()
    writer, temps = _start_writer(folder)
    writer.send_signal(signal.SIGKILL)
    writer.communicate(timeout=60)
    assert all((folder / t).exists() for t in temps)
    lines = []
    model = models.build("mlp-ae", sizes=[4, 2], seed=0)
    fit(model, Adam(model.parameters()), np.zeros((8, 4), np.float32), epochs=1, batch_size=4,
        checkpoint=folder / "checkpoint.npz", progress=False, log=lines.append)
    ckpt_temp = next(t for t in temps if t.startswith(".checkpoint.npz."))
    assert any(line.startswith(f"removed {ckpt_temp}: the unfinished write") for line in lines), lines
    plot.save_samples(np.zeros((4, 2, 2), np.float32), folder / "reconstruction_1.png")
    assert [p for p in os.listdir(folder) if p.endswith(".tmp")] == []


def test_remove_orphans_leaves_a_file_another_process_is_writing(tmp_path):
    """The library call itself, without the scripts: locked = in use, unlocked = abandoned."""
    from tinyae import _files
    target = tmp_path / "checkpoint.npz"
    writer, temps = _start_writer(tmp_path)
    try:
        assert _files.remove_orphans(target) == []
        assert _files.remove_orphans(tmp_path / "reconstruction_1.png") == []
        stray = tmp_path / ".checkpoint.npz.abcdefgh.tmp"      # nobody's: removed
        stray.write_bytes(b"x")
        assert _files.remove_orphans(target) == [stray.name]
    finally:
        (tmp_path / "go").touch()
        writer.communicate(timeout=60)
    assert writer.returncode == 0


@pytest.mark.skipif(not hasattr(os, "O_NOFOLLOW"), reason="needs O_NOFOLLOW")
def test_a_symlink_posing_as_a_leftover_is_not_followed(tmp_path):
    from tinyae import _files
    precious = tmp_path / "precious.txt"
    precious.write_text("keep")
    (tmp_path / ".checkpoint.npz.abcdefgh.tmp").symlink_to(precious)
    assert _files.remove_orphans(tmp_path / "checkpoint.npz") == []
    assert precious.read_text() == "keep"
