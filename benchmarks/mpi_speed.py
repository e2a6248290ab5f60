"""Data-parallel training speed: samples/s on 1 and N MPI ranks (tinyae.distributed).

    python benchmarks/mpi_speed.py                          # 1 and 2 ranks, both models (~1-2 min)
    python benchmarks/mpi_speed.py --ranks 1,2,3 --repeat 5 --json mpi.json
    python benchmarks/mpi_speed.py --quick                  # seconds: a smoke run, not a measurement

Models (the issue's two): the dense VAE 784-400-20 at global batch 128 (PyTorch's
examples/vae) and the conv AE at global batch 200, float32, Adam.  The global batch stays
the same at every rank count (strong scaling: N ranks take B/N samples each per step), so
the mathematics is one process's and samples/s can be compared directly.

Each measurement is its own ``mpiexec -n N`` job (one BLAS thread per rank); the rank counts
are interleaved round by round (1, 2, 1, 2, ...) so machine drift hits them alike, and the
median round is reported.  Per step, a rank's time splits into compute (forward, backward,
Adam) and the gradient sum (``allreduce_gradients``: the Allreduce itself plus any wait for a
slower rank); the slowest rank's wall time sets samples/s.  The load average is printed at the
start and the end: on a machine shared with other work the numbers say little.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import shutil
import statistics
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve()
ROOT = HERE.parents[1]
MNIST = ROOT.parent / "shared" / "data" / "mnist"

MODELS = {   # name: (builder, global batch, input shape of one sample)
    "vae-784-400-20": ("vae-784-400-20", 128, (784,)),
    "conv-ae": ("conv-ae", 200, (1, 28, 28)),
}


# ------------------------------------------------------------------------------------------
# One rank of one measurement (run under mpiexec)
# ------------------------------------------------------------------------------------------
def worker(model_name, warmup, steps):
    import numpy as np

    from tinyae import data, distributed, models
    from tinyae.optim import Adam

    world = distributed.init()
    builder, batch, shape = MODELS[model_name]
    n = batch * 4
    try:
        images, _ = data.load_mnist("train", root=MNIST, download=False, subset="full", verbose=False)
        source = "MNIST"
    except Exception:                      # no files beside the checkout: the embedded digits
        images, _ = data.load_mnist("train", subset="embedded", verbose=False)
        source = "embedded MNIST"
    x = data.to_float(images[:n]).reshape((n,) + shape).astype(np.float32)
    model = models.build(builder, seed=0)
    opt = distributed.DistributedOptimizer(Adam(model.parameters(), lr=1e-3), reduction=model.reduction)
    distributed.broadcast_parameters(model)
    loader = distributed.ShardedLoader(x, batch_size=batch, seed=0)

    def batches():
        epoch = 0
        while True:
            loader.set_epoch(epoch)
            yield from loader
            epoch += 1

    it = batches()
    compute = reduce = 0.0
    for i in range(warmup + steps):
        if i == warmup:
            world.barrier()
            compute = reduce = 0.0
            t_start = time.perf_counter()
        xb, _ = next(it)
        t0 = time.perf_counter()
        model.loss(xb)
        opt.zero_grad()
        model.backward_loss()
        t1 = time.perf_counter()
        opt.allreduce_gradients(count=loader.local_count, total=loader.global_count)
        t2 = time.perf_counter()
        opt.optimizer.step()
        t3 = time.perf_counter()
        compute += (t1 - t0) + (t3 - t2)
        reduce += t2 - t1
    wall = time.perf_counter() - t_start
    walls = world.comm.gather(wall, root=0)
    parts = world.comm.gather((compute, reduce), root=0)
    # the Allreduce alone, on a buffer of the gradient's size, with the ranks lined up
    buf = np.ones(sum(p.data.size for p in model.parameters()), dtype=np.float32)
    world.barrier()
    t0 = time.perf_counter()
    for _ in range(20):
        world.allreduce_(buf)
    alone = world.comm.gather((time.perf_counter() - t0) / 20, root=0)
    if world.is_root:
        grad_bytes = sum(p.data.size * p.data.dtype.itemsize for p in model.parameters())
        print(json.dumps({
            "model": model_name, "ranks": world.size, "batch": batch, "steps": steps, "data": source,
            "wall_s": max(walls), "samples_per_s": steps * batch / max(walls),
            "compute_ms_per_step": 1e3 * max(c for c, _ in parts) / steps,
            "reduce_ms_per_step": 1e3 * max(r for _, r in parts) / steps,
            "allreduce_alone_ms": 1e3 * max(alone),
            "grad_bytes": int(grad_bytes), "params": int(sum(p.data.size for p in model.parameters())),
        }), flush=True)


# ------------------------------------------------------------------------------------------
# The driver
# ------------------------------------------------------------------------------------------
def mpiexec():
    local = pathlib.Path(sys.executable).with_name("mpiexec")
    found = str(local) if local.exists() else shutil.which("mpiexec")
    if found is None:
        sys.exit('error: no mpiexec found: pip install -e ".[mpi]" (mpi4py and the MPICH wheel)')
    return found


def launch(exe, ranks, model, warmup, steps):
    cmd = [exe]
    if "Open MPI" in subprocess.run([exe, "--version"], capture_output=True, text=True).stdout:
        cmd += ["--oversubscribe"] + (["--allow-run-as-root"] if os.geteuid() == 0 else [])
    cmd += ["-n", str(ranks), sys.executable, str(HERE), "--worker", model, str(warmup), str(steps)]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    if proc.returncode != 0:
        sys.exit(f"error: mpiexec -n {ranks} ({model}) failed with exit {proc.returncode}:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def machine():
    cpu = platform.processor() or "unknown CPU"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        cpu = next((line.split(":", 1)[1].strip() for line in out.splitlines()
                    if line.startswith("Model name")), cpu)
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPUs"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ranks", default="1,2", help="comma-separated rank counts (default 1,2)")
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated: " + ", ".join(MODELS))
    p.add_argument("--repeat", type=int, default=3, help="rounds per rank count (median reported)")
    p.add_argument("--steps", type=int, default=None, help="timed steps per run (default: VAE 40, conv AE 8)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="1 round of 3 steps: a smoke run")
    p.add_argument("--json", type=pathlib.Path, help="also write every run as JSON here")
    args = p.parse_args(argv)
    ranks = [int(r) for r in args.ranks.split(",")]
    names = args.models.split(",")
    unknown = [m for m in names if m not in MODELS]
    if unknown:
        p.error(f"unknown model(s) {unknown}; choose from {list(MODELS)}")
    repeat, warmup = (1, 1) if args.quick else (args.repeat, args.warmup)
    exe = mpiexec()
    load_start = os.getloadavg()
    print(f"machine: {machine()}; load average at start {load_start[0]:.2f} {load_start[1]:.2f} "
          f"{load_start[2]:.2f}", flush=True)
    runs = []
    for name in names:
        steps = 3 if args.quick else args.steps or (40 if name.startswith("vae") else 8)
        for _ in range(repeat):
            for n in ranks:                      # interleaved: 1, 2, 1, 2, ...
                r = launch(exe, n, name, warmup, steps)
                runs.append(r)
                print(f"  {name:15s} {n} rank(s): {r['samples_per_s']:8.0f} samples/s  "
                      f"(compute {r['compute_ms_per_step']:.1f} ms, gradient sum "
                      f"{r['reduce_ms_per_step']:.2f} ms per step; Allreduce alone "
                      f"{r['allreduce_alone_ms']:.2f} ms)", flush=True)
    load_end = os.getloadavg()
    print(f"\nload average at the end {load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f}\n")
    print("| model | global batch | gradient | ranks | samples/s (median) | speed-up | efficiency | "
          "compute ms/step | gradient sum ms/step | Allreduce alone ms |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in names:
        mine = [r for r in runs if r["model"] == name]
        base = None
        for n in ranks:
            rs = [r for r in mine if r["ranks"] == n]
            sps = statistics.median(r["samples_per_s"] for r in rs)
            base = base or (sps if n == ranks[0] else None)
            comp = statistics.median(r["compute_ms_per_step"] for r in rs)
            red = statistics.median(r["reduce_ms_per_step"] for r in rs)
            alone = statistics.median(r["allreduce_alone_ms"] for r in rs)
            speedup = sps / base if base else float("nan")
            print(f"| {name} | {rs[0]['batch']} | {rs[0]['grad_bytes'] / 1e6:.2f} MB | {n} | {sps:.0f} | "
                  f"{speedup:.2f} | {speedup / (n / ranks[0]):.0%} | {comp:.1f} | {red:.2f} | {alone:.2f} |")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "load_start": load_start,
                                         "load_end": load_end, "runs": runs}, indent=1))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        sys.path.insert(0, str(ROOT))
        worker(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        main()
