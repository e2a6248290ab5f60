"""Data-parallel training over MPI (tinyae.distributed), with real MPI processes.

The tests launch this very file under ``mpiexec -n 2`` and ``-n 3`` (3 processes on 2 cores:
oversubscribed) as a worker (see ``main`` at the bottom) and compare, in float64, what the
ranks trained with the same training in this (single) process:

* N ranks with local batch B/N end with the parameters of one process with batch B (1e-12
  relative), through ``fit(distributed=True)`` (a mean and a sum reduction, an uneven last
  batch) and through a hand-written loop with DistributedOptimizer (a VAE, ε held fixed);
* a run stopped and resumed under MPI ends bit for bit where an uninterrupted one does, and
  resuming the 2-process checkpoint with 3 processes (re-sharded) still matches one process;
* the NCCL code path (unique id, communicator, in-place allReduce) on a stand-in NCCL module
  that sums with MPI — a CPU dry run, because NCCL needs GPUs (the real one: the gpu test);
* a rank that raises ends the whole job quickly, naming its rank and the error;
* without mpi4py, asking for distributed training says what to install.

Skipped, with the reason, where mpi4py or mpiexec is missing (pip install -e ".[mpi]").
"""
from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

HERE = pathlib.Path(__file__).resolve()
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from tinyae import backend, data, distributed, models  # noqa: E402
from tinyae.optim import Adam  # noqa: E402
from tinyae.train import fit  # noqa: E402

N_TRAIN, N_TEST, BATCH = 250, 60, 24     # 10 full global batches + one of 10 (split 5/5 and 4/3/3)
EPOCHS = 3


# ----------------------------------------------------------------------------------------
# The trainings, written once: run by the MPI ranks (distributed) and by pytest (reference)
# ----------------------------------------------------------------------------------------
def load(mnist):
    """The first 250 + 60 digits of the MNIST test file, 14x14, float64 in [0, 1]."""
    images, _ = data.load_mnist("test", root=mnist, download=False, subset="full", verbose=False)
    x = data.flatten(data.resize(data.to_float(images[:N_TRAIN + N_TEST]), size=14)).astype(np.float64)
    return x[:N_TRAIN], x[N_TRAIN:]


def ae(reduction):
    loss = "mse" if reduction == "mean" else "bce"
    return models.build("mlp-ae", sizes=[196, 32, 8], activation="tanh", loss=loss, reduction=reduction,
                        seed=3).double()


def train_fit(mnist, reduction, epochs, dist, checkpoint=None, resume=False, log=None):
    x_train, x_test = load(mnist)
    model = ae(reduction)
    opt = Adam(model.parameters(), lr=3e-3)
    history = fit(model, opt, x_train, x_test, epochs=epochs, batch_size=BATCH, seed=5, progress=False,
                  log=log, checkpoint=checkpoint, resume=resume, distributed=dist)
    return model.state_dict(), history.records


def train_loop(mnist, world):
    """A hand-written loop (the shape of examples/vae_mnist.py): a VAE with a summed loss, its
    ε drawn for the whole global batch from a shared stream so that one process and N ranks
    use the same noise for the same sample."""
    x_train, _ = load(mnist)
    model = models.build("mlp-vae", sizes=[196, 24, 4], seed=1).double()
    opt = distributed.DistributedOptimizer(Adam(model.parameters(), lr=2e-3), reduction=model.reduction,
                                           world=world)
    distributed.broadcast_parameters(model, world=world)
    distributed.broadcast_optimizer_state(opt, world=world)
    loader = distributed.ShardedLoader(x_train, batch_size=BATCH, seed=7, world=world)
    losses = []
    for epoch in range(2):
        loader.set_epoch(epoch)
        total_loss = 0.0
        for step, (xb, _) in enumerate(loader):
            m, r, n = loader.global_count, world.rank, world.size
            eps = np.random.default_rng([epoch, step]).standard_normal((m, 4))[m * r // n: m * (r + 1) // n]
            total, parts = model.loss(xb.astype(np.float64), eps=eps)   # (batches come in float32)
            opt.zero_grad()
            model.backward_loss()
            opt.step(count=len(xb), total=loader.global_count)
            total_loss += float(total)
        losses.append(world.sum([total_loss])[0] / len(x_train))
    return model.state_dict(), losses


class StandInNccl:
    """What ``cupy.cuda.nccl`` offers NcclReducer, summing host memory with MPI instead of GPUs.

    Checks what the real communicator needs: one unique id shared by all ranks, the right
    (size, rank), in-place pointers to a float buffer, the count, the sum operation.
    """
    NCCL_FLOAT32, NCCL_FLOAT64, NCCL_SUM = 7, 8, 0
    calls = []

    @staticmethod
    def get_unique_id():
        return tuple(int(v) for v in np.random.default_rng().integers(-128, 128, 128))

    class NcclCommunicator:
        def __init__(self, ndev, uid, rank):
            from mpi4py import MPI
            comm = MPI.COMM_WORLD
            assert (ndev, rank) == (comm.Get_size(), comm.Get_rank())
            assert len(set(map(tuple, comm.allgather(uid)))) == 1, "ranks got different unique ids"
            self.comm = comm
            StandInNccl.calls.append(("init", ndev, rank))

        def allReduce(self, sendbuf, recvbuf, count, datatype, op, stream):
            import ctypes
            from mpi4py import MPI
            assert sendbuf == recvbuf and op == StandInNccl.NCCL_SUM and stream == 0
            ctype = {StandInNccl.NCCL_FLOAT64: ctypes.c_double, StandInNccl.NCCL_FLOAT32: ctypes.c_float}[datatype]
            buf = np.ctypeslib.as_array((ctype * count).from_address(sendbuf))
            self.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
            StandInNccl.calls.append(("allReduce", count))


# ----------------------------------------------------------------------------------------
# Launching
# ----------------------------------------------------------------------------------------
def _mpiexec():
    """mpiexec beside this Python (the venv of pip install ".[mpi]") or on PATH, or None."""
    local = pathlib.Path(sys.executable).with_name("mpiexec")
    return str(local) if local.exists() else shutil.which("mpiexec")


def _skip_reason():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return 'mpi4py is not installed (pip install -e ".[mpi]")'
    if _mpiexec() is None:
        return 'no mpiexec found beside Python or on PATH (pip install -e ".[mpi]" brings MPICH\'s)'
    return None


needs_mpi = pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))


def mpirun(n, *args, timeout=60):
    """``mpiexec -n n python tests/test_distributed.py *args`` → (CompletedProcess, seconds)."""
    cmd = [_mpiexec()]
    version = subprocess.run([cmd[0], "--version"], capture_output=True, text=True).stdout
    if "Open MPI" in version or "OpenRTE" in version:     # Open MPI refuses root and > cores
        cmd += ["--oversubscribe"] + (["--allow-run-as-root"] if os.geteuid() == 0 else [])
    cmd += ["-n", str(n), sys.executable, str(HERE), *map(str, args)]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    return _run(cmd, timeout, env=env, cwd=ROOT)


def _run(cmd, timeout, **kwargs):
    """Run ``cmd`` in its own process group; past ``timeout`` kill the whole group (mpiexec and
    its ranks) and fail with what it printed, rather than leave ranks behind."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **kwargs)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{' '.join(cmd[:4])} ... still running after {timeout} s (a hang?)\nstdout:\n{out}\n"
                    f"stderr:\n{err}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err), time.perf_counter() - t0


def _ok(proc):
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"


@pytest.fixture(scope="module")
def runs(mnist_dir, tmp_path_factory):
    """One 2-process and one 3-process job, each running every training (rank 0 saves)."""
    if _skip_reason():
        pytest.skip(_skip_reason())
    out = tmp_path_factory.mktemp("mpi")
    results = {}
    for n in (2, 3):
        proc, seconds = mpirun(n, "all", mnist_dir, out / f"n{n}", out / "n2" / "half.npz", timeout=180)
        _ok(proc)
        results[n] = (out / f"n{n}", proc)
    return results


@pytest.fixture(scope="module")
def reference(mnist_dir):
    """The same trainings in this one process, not distributed."""
    return {red: train_fit(mnist_dir, red, EPOCHS, False) for red in ("mean", "sum")}


def _close(got, want, rtol=1e-12):
    assert list(got) == list(want)
    for k in want:
        g, w = np.asarray(got[k]), np.asarray(want[k])
        scale = float(np.max(np.abs(w)))
        assert float(np.max(np.abs(g - w))) <= rtol * scale, (k, float(np.max(np.abs(g - w))) / scale)


def _params(path):
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


# ----------------------------------------------------------------------------------------
# The tests
# ----------------------------------------------------------------------------------------
@needs_mpi
@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_fit_on_n_ranks_equals_one_process(runs, reference, n, reduction):
    folder, proc = runs[n]
    want_params, want_history = reference[reduction]
    _close(_params(folder / f"fit_{reduction}.npz"), want_params)
    # the rank-0 parameters are every rank's (checked by the worker), the logged losses global
    history = json.loads((folder / f"fit_{reduction}.json").read_text())
    for got, want in zip(history, want_history, strict=True):
        assert got["ranks"] == n
        for key in ("train_loss", "test_loss"):
            assert got[key] == pytest.approx(want[key], rel=1e-10), (key, got["epoch"])


@needs_mpi
@pytest.mark.parametrize("n", [2, 3])
def test_hand_written_loop_equals_one_process(runs, mnist_dir, n):
    folder, _ = runs[n]
    want, want_losses = train_loop(mnist_dir, distributed.World())
    _close(_params(folder / "loop.npz"), want)
    got_losses = json.loads((folder / "loop.json").read_text())
    assert got_losses == pytest.approx(want_losses, rel=1e-10)


@needs_mpi
def test_resume_under_mpi_continues_identically(runs, reference):
    folder, proc = runs[2]
    # stopped after epoch 1 and resumed to EPOCHS: bit for bit the uninterrupted 2-rank run
    resumed, straight = _params(folder / "resumed.npz"), _params(folder / "fit_mean.npz")
    assert all(np.array_equal(resumed[k], straight[k]) for k in straight)
    assert "resumed from" in proc.stdout


@needs_mpi
def test_resume_with_another_process_count_reshards(runs, reference):
    folder, proc = runs[3]           # the 3-rank job resumed the 2-rank job's epoch-1 checkpoint
    _close(_params(folder / "reshard.npz"), reference["mean"][0])
    assert "written by 2 process(es), this run has 3: re-sharded" in proc.stdout


@needs_mpi
@pytest.mark.parametrize("n", [2, 3])
def test_only_rank_0_writes_and_logs(runs, n):
    folder, proc = runs[n]       # every rank passed log=print: fit prints on rank 0 only
    fits = {2: 4, 3: 3}[n]       # mean, sum, (2 ranks: 1 epoch,) resumed
    assert proc.stdout.count(f"distributed: {n} processes, global batch {BATCH}") == fits
    assert proc.stdout.count("epoch 3/3  train") == 3
    assert sorted(p.name for p in (folder / "ckpt").iterdir()) == ["checkpoint.npz"]


@needs_mpi
@pytest.mark.parametrize("n", [2, 3])
def test_nccl_code_path_dry_run(runs, n):
    """NcclReducer on the stand-in: the same parameters as the MPI path, and the calls made."""
    folder, _ = runs[n]
    got, want = _params(folder / "nccl.npz"), _params(folder / "loop.npz")
    assert all(np.array_equal(got[k], want[k]) for k in want)
    calls = json.loads((folder / "nccl_calls.json").read_text())
    assert calls[0] == ["init", n, 0]
    n_params = sum(v.size for v in want.values())
    steps = 2 * len(distributed.ShardedLoader(np.zeros((N_TRAIN, 1)), batch_size=BATCH, size=n, rank=0))
    assert calls[1:] == [["allReduce", n_params]] * steps


@needs_mpi
def test_a_failing_rank_aborts_the_job(mnist_dir, tmp_path):
    """Rank 1 raises while rank 0 trains: MPI_Abort ends both, with rank 1's error and traceback."""
    proc, seconds = mpirun(2, "raise", mnist_dir, tmp_path, timeout=120)
    assert proc.returncode != 0
    assert seconds < 30, "the job hung instead of aborting"
    assert "rank 1 of 2 failed with RuntimeError: deliberate failure on rank 1" in proc.stderr
    assert "Traceback" in proc.stderr and "rank 1 aborts all 2 processes" in proc.stderr
    assert not (tmp_path / "checkpoint.npz").exists()


@needs_mpi
def test_example_runs_under_mpiexec(tmp_path):
    """examples/ae_mnist.py under mpiexec -n 2: distributed by itself, one log, rank 0's files."""
    cmd = [_mpiexec(), "-n", "2", sys.executable, str(ROOT / "examples" / "ae_mnist.py"), "--data", "embedded",
           "--limit", "240", "--epochs", "1", "--no-progress", "--out", str(tmp_path / "out")]
    if "Open MPI" in subprocess.run([cmd[0], "--version"], capture_output=True, text=True).stdout:
        cmd[1:1] = ["--oversubscribe"] + (["--allow-run-as-root"] if os.geteuid() == 0 else [])
    env = dict(os.environ, MPLBACKEND="Agg", TINYAE_OFFLINE="1", XDG_CACHE_HOME=str(tmp_path / "cache"))
    proc, _ = _run(cmd, 120, env=env, cwd=tmp_path)
    _ok(proc)
    assert proc.stdout.count("epoch 1/1  train") == 1
    assert "distributed: 2 processes, global batch 64 (~32 per rank), 4 steps per epoch" in proc.stdout
    from tinyae.checkpoint import load_checkpoint
    assert load_checkpoint(tmp_path / "out" / "checkpoint.npz").history[-1]["ranks"] == 2


def test_without_mpi4py_asking_for_distributed_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)          # import mpi4py now fails
    monkeypatch.setitem(distributed._WORLD, "world", None)
    with pytest.raises(distributed.DistributedError, match=r'pip install -e "\.\[mpi\]"'):
        distributed.init()
    x = np.zeros((8, 4))
    model = models.build("mlp-ae", sizes=[4, 2], seed=0).double()
    with pytest.raises(distributed.DistributedError, match="mpi4py"):
        fit(model, Adam(model.parameters()), x, epochs=1, batch_size=4, progress=False, log=None,
            distributed=True)


def test_example_without_mpi4py_gives_one_error_line(tmp_path):
    code = ("import runpy, sys; sys.modules['mpi4py'] = None; sys.path.insert(0, sys.argv[1]); "
            "sys.argv = [sys.argv[2], *sys.argv[3:]]; runpy.run_path(sys.argv[0], run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", code, str(ROOT / "examples"), str(ROOT / "examples" / "ae_mnist.py"),
                           "--distributed", "--data", "embedded", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=60, env=dict(os.environ, MPLBACKEND="Agg"))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: distributed training needs mpi4py")
    assert 'pip install -e ".[mpi]"' in lines[0]


@pytest.mark.parametrize("n", [1, 7, 24, 25, 250])
@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_shards_tile_the_single_process_batches(n, size):
    """Every step, the ranks' slices put together are the single-process DataLoader's batch, in
    order; every rank has the same number of steps; only a tail smaller than the ranks is dropped."""
    x = np.arange(n, dtype=np.float64)[:, None]
    if BATCH < size:
        return
    shards = [distributed.ShardedLoader(x, batch_size=BATCH, seed=2, world=None, rank=r, size=size)
              for r in range(size)]
    for s in shards:
        s.set_epoch(4)
    loader = data.DataLoader(x, batch_size=BATCH, seed=2)
    loader.set_epoch(4)
    single = [b[0][:, 0] for b in loader]
    per_rank = [[b[0][:, 0] for b in s] for s in shards]
    assert len({len(p) for p in per_rank}) == 1 and len(per_rank[0]) == len(shards[0])
    dropped = shards[0].dropped
    assert dropped == (n % BATCH if n % BATCH < size else 0)
    kept = single[:-1] if dropped else single
    assert len(kept) == len(per_rank[0])
    for i, batch in enumerate(kept):
        parts = [p[i] for p in per_rank]
        np.testing.assert_array_equal(np.concatenate(parts), batch)
        assert max(map(len, parts)) - min(map(len, parts)) <= 1 and min(map(len, parts)) >= 1


def test_distributed_optimizer_weights_and_errors():
    w = distributed.World()
    model = models.build("mlp-ae", sizes=[4, 2], seed=0)
    opt = distributed.DistributedOptimizer(Adam(model.parameters(), lr=1e-3), reduction="mean", world=w)
    assert opt.weight() == 1.0 and opt.weight(count=3, total=12) == 0.25
    assert distributed.DistributedOptimizer(Adam(model.parameters()), "sum", w).weight(3, 12) == 1.0
    opt.lr = 0.5                                       # reaches the wrapped optimizer
    assert opt.optimizer.lr == 0.5 and opt.lr == 0.5
    assert opt.params is opt.optimizer.params and opt.step_count == 0
    with pytest.raises(AttributeError):                # no silent forwarding of anything else
        opt.betas = (0.5, 0.5)
    with pytest.raises(ValueError, match="reduction must be 'mean' or 'sum'"):
        distributed.DistributedOptimizer(Adam(model.parameters()), reduction="avg")
    with pytest.raises(ValueError, match="at least the number of processes"):
        distributed.ShardedLoader(np.zeros((10, 2)), batch_size=2, rank=0, size=3)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_weighted_gradients_flat_and_packed_agree(reduction):
    """The gradient weighting w_r through the flat buffer and through the pack/unpack fallback
    (an optimizer without flat buffers), on the one-process world."""
    x = np.random.default_rng(0).random((6, 5))
    grads = []
    for flat in (True, False):
        model = models.build("mlp-ae", sizes=[5, 3], seed=0).double()
        opt = distributed.DistributedOptimizer(Adam(model.parameters(), flat=flat), reduction,
                                               distributed.World())
        assert (opt.optimizer.flat_grad() is not None) == flat
        model.loss(x)
        opt.zero_grad()
        model.backward_loss()
        before = [p.grad.copy() for p in model.parameters()]
        opt.allreduce_gradients(count=3, total=12)
        w = 0.25 if reduction == "mean" else 1.0
        for b, p in zip(before, model.parameters()):
            np.testing.assert_array_equal(p.grad, b * w)
        grads.append([p.grad.copy() for p in model.parameters()])
    for a, b in zip(*grads):
        np.testing.assert_array_equal(a, b)


@pytest.mark.gpu
@pytest.mark.cuda("NCCL, cupy.cuda.nccl")
def test_gpu_allreduce_over_nccl(tmp_path, mnist_dir):
    """On CuPy: the hand-written loop over NCCL (one rank per GPU) equals the NumPy run."""
    _device_jobs(tmp_path, mnist_dir, [(2, "gpu")] if backend.cupy_module().cuda.runtime.getDeviceCount() >= 2
                 else [], [(1, "gpu-nccl")])     # NCCL over 2 GPUs; NCCL on one GPU


@pytest.mark.gpu
def test_gpu_allreduce_through_the_host(tmp_path, mnist_dir):
    """Two ranks sharing one device, device gradients summed with MPI through host copies, equal
    the NumPy run (this one runs on the CPU stand-in too: no NCCL involved)."""
    _device_jobs(tmp_path, mnist_dir, [(2, "gpu-host")])


def _device_jobs(tmp_path, mnist_dir, *job_lists):
    if _skip_reason():
        pytest.skip(_skip_reason())
    want = train_loop(mnist_dir, distributed.World())[0]
    for n, job in [j for jobs in job_lists for j in jobs]:
        proc, _ = mpirun(n, job, mnist_dir, tmp_path, timeout=300)
        _ok(proc)
        _close(_params(tmp_path / f"{job}.npz"), want, rtol=1e-10)


# ----------------------------------------------------------------------------------------
# The worker: python tests/test_distributed.py JOB MNIST_DIR OUT [CHECKPOINT]  (under mpiexec)
# ----------------------------------------------------------------------------------------
def _save(world, folder, name, params, extra=None):
    """Rank 0 writes ``params`` (after checking every rank holds the same) and ``extra`` JSON."""
    flat = np.concatenate([v.ravel() for v in params.values()])
    gathered = world.comm.gather(flat, root=0)
    if world.is_root:
        assert all(np.array_equal(g, flat) for g in gathered), f"{name}: the ranks' parameters differ"
        np.savez(folder / f"{name}.npz", **params)
        if extra is not None:
            (folder / f"{name}.json").write_text(json.dumps(extra))


def main(job, mnist, out, half=None):
    if job.startswith("gpu"):
        backend.use("cupy")          # before init: init makes this rank's GPU current
    world = distributed.init()
    out = pathlib.Path(out)
    say = print                      # fit itself keeps the other ranks quiet
    if world.is_root:
        out.mkdir(parents=True, exist_ok=True)
    world.barrier()
    if job == "all":
        for red in ("mean", "sum"):
            params, history = train_fit(mnist, red, EPOCHS, True, log=say)
            _save(world, out, f"fit_{red}", params, history)
        ckpt = out / "ckpt" / "checkpoint.npz"
        if world.size == 2:           # stop after epoch 1, keep a copy, resume to EPOCHS
            train_fit(mnist, "mean", 1, True, checkpoint=ckpt, log=say)
            if world.is_root:
                shutil.copy(ckpt, half)
            params, _ = train_fit(mnist, "mean", EPOCHS, True, checkpoint=ckpt, resume=True, log=say)
            _save(world, out, "resumed", params)
        else:                         # resume the 2-process job's epoch-1 checkpoint on 3
            if world.is_root:
                ckpt.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(half, ckpt)
            world.barrier()
            params, _ = train_fit(mnist, "mean", EPOCHS, True, checkpoint=ckpt, resume=True, log=say)
            _save(world, out, "reshard", params)
        params, losses = train_loop(mnist, world)
        _save(world, out, "loop", params, losses)
        world.use_nccl(StandInNccl)
        params, _ = train_loop(mnist, world)
        _save(world, out, "nccl", params)
        if world.is_root:
            (out / "nccl_calls.json").write_text(json.dumps(StandInNccl.calls))
    elif job == "raise":             # rank 1 fails; rank 0 trains and waits in its first collective
        world.sum([1.0])
        if world.rank == 1:
            raise RuntimeError("deliberate failure on rank 1")
        train_fit(mnist, "mean", EPOCHS, True, checkpoint=out / "checkpoint.npz", log=say)
    elif job.startswith("gpu"):      # gpu-nccl: NCCL even on one rank; gpu-host: through the host
        if job == "gpu-nccl":
            world.use_nccl(distributed._nccl_module(backend.xp()))
        elif job == "gpu-host":
            world.use_nccl(False)
        params, _ = train_loop(mnist, world)
        _save(world, out, job, params)
    else:
        raise SystemExit(f"unknown job {job!r}")


if __name__ == "__main__":
    main(*sys.argv[1:])
