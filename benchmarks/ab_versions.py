"""Is tinyae as fast as it was?  An interleaved A/B of two checkouts in ONE process.

    git worktree add /tmp/tinyae_before <commit>
    python benchmarks/ab_versions.py /tmp/tinyae_before . [--rounds 30] [--steps 2] [--threads 1] [--layers]
    git worktree remove /tmp/tinyae_before

Both trees' ``tinyae`` packages are imported side by side (``sys.modules`` is emptied of
``tinyae`` between the two imports, so each model keeps the modules it was built from).
Default: a training step of the conv AE (``models.build("conv-ae")``, batch 200 of MNIST,
Adam), rounds alternating A,B / B,A with a 0.3 s pause before each (BLAS threads settle);
prints every round and the median and quartiles of the per-round ratio B/A, for the fresh
models and again after ``--train-steps`` untimed steps (the trained regime: subnormal Adam
moments appear after a few hundred steps), and first the machine, read from the system.
``--model NAME``: another of train_speed.py's models (``--model list`` names them);
``--model main-job``: the main job's own step (examples/vae_mnist.py's ``train_step`` with
its hand-written chain, the tutorial's 196-64-16-3 VAE, batch 64), each tree's script.
``--layers``: forward+backward of each conv/pool layer of that model instead, paired step
by step.  On a shared machine report the ratio, not the times (docs/performance.md).
"""
from __future__ import annotations

import argparse
import gzip
import os
import pathlib
import sys
import time

MNIST = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("tree_a", help="checkout A (e.g. a git worktree of the old commit)")
    p.add_argument("tree_b", help="checkout B (e.g. '.')")
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--steps", type=int, default=2, help="steps per implementation and round")
    p.add_argument("--threads", type=int, default=1, help="BLAS threads (set before NumPy loads)")
    p.add_argument("--layers", action="store_true", help="time the conv/pool layers one by one")
    p.add_argument("--model", default="conv-ae-200", help="which training step (--model list: the choices)")
    p.add_argument("--train-steps", type=int, default=300,
                   help="untimed steps before the trained regime's rounds (0: fresh models only)")
    return p.parse_args(argv)


# name: (builder, its kwargs, batch, side of the input images, flat input)
MODELS = {"conv-ae-200": ("conv-ae", {}, 200, 28, False),
          "ae-784-200": ("ae-784-250-16", {}, 200, 28, True),
          "ae-784-1024": ("ae-784-250-16", {}, 1024, 28, True),
          "vae-784-128": ("vae-784-400-20", {}, 128, 28, True),
          "dense-ae-64": ("dense-196-64-16", {}, 64, 14, True),
          "dense-vae-64": ("vae-196-64-16", {}, 64, 14, True),
          "main-job": (None, {}, 64, 14, True)}


def load(tree, build):
    """Import the ``tinyae`` of checkout ``tree`` (a fresh copy of every module) and return
    ``build(tinyae)``, called while those modules are the ones imported (a builder that
    imports lazily must not pick up the other tree's)."""
    tree = str(pathlib.Path(tree).resolve())
    for name in [k for k in sys.modules if k == "tinyae" or k.startswith("tinyae.")]:
        del sys.modules[name]
    sys.path.insert(0, tree)
    try:
        import tinyae  # noqa: PLC0415
        import tinyae.models  # noqa: F401,PLC0415
        import tinyae.optim  # noqa: F401,PLC0415
        if not tinyae.__file__.startswith(tree):
            raise SystemExit(f"error: {tree} has no tinyae package (imported {tinyae.__file__})")
        return build(tinyae)
    finally:
        sys.path.remove(tree)


def mnist_batches(np, count=10, n=200, side=28, flat=False):
    path = MNIST / "train-images-idx3-ubyte.gz"
    if not path.exists():
        rng = np.random.default_rng(0)
        img = rng.random((count * n, 1, 28, 28), dtype=np.float32)
    else:
        with gzip.open(path, "rb") as f:
            raw = f.read(16 + count * n * 784)
        img = np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 1, 28, 28).astype(np.float32) / 255
    if side == 14:                   # the 14x14 tutorials: 2x2 means, pixels in [-1, 1]
        img = img.reshape(-1, 1, 14, 2, 14, 2).mean(axis=(3, 5)) * 2 - 1
    if flat:
        img = img.reshape(len(img), -1)
    return [np.ascontiguousarray(img[k * n:(k + 1) * n]) for k in range(count)]


def train_step(name):
    builder, kwargs = MODELS[name][:2]

    def make(tinyae):
        if builder is None:
            return main_job_step(tinyae)
        model = tinyae.models.build(builder, seed=0, **kwargs)
        opt = tinyae.optim.Adam(model.parameters(), lr=1e-3)

        def step(x):
            opt.zero_grad()
            model.loss(x)
            model.backward_loss()
            opt.step()
        return step
    return make


def main_job_step(tinyae):
    """examples/vae_mnist.py of the tree being loaded: its VAE and its train_step."""
    import importlib.util  # noqa: PLC0415
    examples = pathlib.Path(tinyae.__file__).resolve().parents[1] / "examples"
    sys.modules.pop("common", None)
    sys.path.insert(0, str(examples))
    try:
        spec = importlib.util.spec_from_file_location("vae_mnist_under_test", examples / "vae_mnist.py")
        job = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(job)
    finally:
        sys.path.remove(str(examples))
    model = job.VAE("tutorial", 3, 0)
    opt = tinyae.optim.Adam(model.parameters(), lr=1e-3)
    return lambda x: job.train_step(model, opt, x, 1.0)


def quartiles(np, values):
    q = np.percentile(values, [25, 50, 75])
    return f"median {q[1]:.3f} (quartiles {q[0]:.3f}-{q[2]:.3f}, min {min(values):.3f}, max {max(values):.3f})"


def compare_steps(np, args):
    _, _, batch, side, flat = MODELS[args.model]
    batches = mnist_batches(np, n=batch, side=side, flat=flat)
    steps = {"A": load(args.tree_a, train_step(args.model)), "B": load(args.tree_b, train_step(args.model))}
    for name in "AB":
        for k in range(5):
            steps[name](batches[k])
    timed_rounds(np, args, steps, batches, batch, "fresh")
    if args.train_steps:
        for name in "AB":
            for k in range(args.train_steps):
                steps[name](batches[k % len(batches)])
        timed_rounds(np, args, steps, batches, batch, f"trained ({args.train_steps} more steps)")


def timed_rounds(np, args, steps, batches, batch, regime):
    """Interleaved rounds (A,B then B,A), each after a 0.3 s pause; the per-round ratios."""
    ratios, times = [], {"A": [], "B": []}
    for r in range(args.rounds):
        order, med = ("AB" if r % 2 == 0 else "BA"), {}
        for name in order:
            time.sleep(0.3)
            ts = []
            for k in range(args.steps):
                t0 = time.perf_counter()
                steps[name](batches[(r * args.steps + k) % len(batches)])
                ts.append(time.perf_counter() - t0)
            med[name] = float(np.median(ts))
            times[name] += ts
        ratios.append(med["B"] / med["A"])
        print(f"round {r:2d} {order}: A {1e3 * med['A']:7.1f} ms  B {1e3 * med['B']:7.1f} ms  B/A {ratios[-1]:.3f}",
              flush=True)
    for name, tree in (("A", args.tree_a), ("B", args.tree_b)):
        print(f"{name} = {tree}: median step {1e3 * float(np.median(times[name])):.1f} ms over {len(times[name])} steps")
    print(f"{args.model}, batch {batch}, {regime}: B/A per round: {quartiles(np, ratios)}")


def compare_layers(np, args):
    n = 200
    specs = [("Conv2d(1, 4, 5, padding=2)", lambda nn: nn.Conv2d(1, 4, 5, 1, 2, rng=0), (n, 1, 28, 28)),
             ("Conv2d(4, 8, 5, padding=2)", lambda nn: nn.Conv2d(4, 8, 5, 1, 2, rng=0), (n, 4, 14, 14)),
             ("Conv2d(1, 4, 5, stride=2, padding=2)", lambda nn: nn.Conv2d(1, 4, 5, 2, 2, rng=0), (n, 1, 28, 28)),
             ("Conv2d(8, 4, 5, padding=2) (flipped)", lambda nn: nn.Conv2d(8, 4, 5, 1, 2, rng=0), (n, 8, 14, 14)),
             ("Conv2d(4, 1, 5, padding=2) (flipped)", lambda nn: nn.Conv2d(4, 1, 5, 1, 2, rng=0), (n, 4, 28, 28)),
             ("ConvTranspose2d(8, 4, 5, 2, 2, 1)", lambda nn: nn.ConvTranspose2d(8, 4, 5, 2, 2, 1, rng=0), (n, 8, 7, 7)),
             ("ConvTranspose2d(4, 1, 5, 2, 2, 1)", lambda nn: nn.ConvTranspose2d(4, 1, 5, 2, 2, 1, rng=0),
              (n, 4, 14, 14)),
             ("MaxPool2d(2)", lambda nn: nn.MaxPool2d(2), (n, 4, 28, 28))]
    layers_a = load(args.tree_a, lambda tinyae: [make(tinyae.nn) for _, make, _ in specs])
    layers_b = load(args.tree_b, lambda tinyae: [make(tinyae.nn) for _, make, _ in specs])
    rng = np.random.default_rng(0)
    print("| layer | input | A ms | B ms | B/A of paired steps |")
    print("| --- | --- | ---: | ---: | --- |")
    for (name, _, shape), layer_a, layer_b in zip(specs, layers_a, layers_b):
        x = rng.standard_normal(shape).astype(np.float32)
        dy = rng.standard_normal(layer_a(x).shape).astype(np.float32)

        def timed(layer):
            t0 = time.perf_counter()
            layer(x)
            layer.backward(dy)
            return time.perf_counter() - t0

        for _ in range(3):
            timed(layer_a)
            timed(layer_b)
        ta, tb = [], []
        for r in range(args.rounds):
            if r % 2 == 0:
                ta.append(timed(layer_a))
                tb.append(timed(layer_b))
            else:
                tb.append(timed(layer_b))
                ta.append(timed(layer_a))
        ratios = [y / x for x, y in zip(ta, tb)]
        print(f"| {name} | {'×'.join(map(str, shape))} | {1e3 * float(np.median(ta)):.2f} | "
              f"{1e3 * float(np.median(tb)):.2f} | {quartiles(np, ratios)} |", flush=True)


def main(argv=None):
    args = parse_args(argv)
    if args.model not in MODELS:
        raise SystemExit(f"--model: choose one of {', '.join(MODELS)}" + ("" if args.model == "list" else
                                                                           f" (got {args.model!r})"))
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import numpy as np  # noqa: PLC0415 (after the thread variables)
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
    from train_speed import cpu_description  # noqa: PLC0415  (the machine, read from the system)
    sys.path.pop(0)
    cpu = cpu_description()
    print(f"# CPU: {cpu.get('model', '?')} ({cpu.get('vendor', '?')}"
          f"{', ' + cpu['hypervisor'] + ' guest' if 'hypervisor' in cpu else ''}), "
          f"{cpu.get('logical_cpus', '?')} logical CPUs")
    print(f"# A = {args.tree_a}, B = {args.tree_b}; numpy {np.__version__}, {args.threads} BLAS thread(s), "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    (compare_layers if args.layers else compare_steps)(np, args)


if __name__ == "__main__":
    main()
