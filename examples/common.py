"""What every example shares: the command-line flags, the backend set-up, and the data.

Kept deliberately small: each example script reads top to bottom on its own and
only borrows these few helpers so the flags mean the same thing everywhere.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import sys

# One BLAS thread unless you say otherwise (OPENBLAS_NUM_THREADS / OMP_NUM_THREADS): these
# models multiply small matrices, where a second thread costs more in hand-offs than it
# saves, and far more when the cores are busy (measured on 2 shared cores, one thread vs
# two: the VAE's epoch on the 4,000 embedded digits 0.1 s vs 0.6-13 s, the conv AE's 6 s
# vs 34 s).
# Set before NumPy is imported, so import this module first.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing, too

from tinyae import backend, data  # noqa: E402


def make_parser(name: str, description: str, *, epochs: int | None, batch_size: int | None,
                lr: float = 1e-3, latent_dim: int | None | bool = None) -> argparse.ArgumentParser:
    """The flags every example takes (defaults are the tutorial's settings).

    ``epochs``/``batch_size`` None, or ``latent_dim=True``: the default depends on ``--arch``
    and is filled in by :func:`arch_defaults`.
    """
    p = argparse.ArgumentParser(prog=f"{name}.py", description=description)
    per_arch = "default: depends on --arch"
    p.add_argument("--backend", choices=["numpy", "cupy"], default="numpy",
                   help="numpy (CPU) or cupy (NVIDIA GPU; pip install 'tinyae[cuda12]')")
    p.add_argument("--epochs", type=int, default=epochs,
                   help=per_arch if epochs is None else "default: %(default)s")
    p.add_argument("--batch-size", type=int, default=batch_size,
                   help=per_arch if batch_size is None else "default: %(default)s")
    p.add_argument("--lr", type=float, default=lr, help="Adam learning rate (default: %(default)s)")
    if latent_dim is not None and latent_dim is not False:
        default = None if latent_dim is True else latent_dim
        p.add_argument("--latent-dim", type=int, default=default,
                       help=per_arch if default is None else "default: %(default)s")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", choices=["auto", "full", "embedded"], default="auto",
                   help="full MNIST, the 5,000 embedded digits, or auto: full if available")
    p.add_argument("--limit", type=int, default=None,
                   help="use only the first N train and N//5 test images (quick runs)")
    p.add_argument("--out", type=pathlib.Path, default=pathlib.Path("results") / name,
                   help=f"where figures and the checkpoint go (default: results/{name}/)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def setup_backend(args) -> None:
    """Switch to the requested backend and say where we run; exit cleanly if impossible."""
    try:
        backend.use(args.backend)
    except backend.BackendError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print(backend.describe_device(), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)


def load_images(args, *, size: int = 28, value_range: str = "unit", dataset: str = "mnist"):
    """(x_train, y_train, x_test, y_test): float32 images flattened to (N, size²), labels int."""
    def prepare(split):
        images, labels = data.load_dataset(dataset, split=split, subset=args.data)
        if args.limit:
            n = args.limit if split == "train" else max(args.limit // 5, 1)
            images, labels = images[:n], labels[:n]
        x = data.to_float(images, range=value_range)
        if size != 28:
            x = data.resize(x, size=size)
        return data.flatten(x), np.asarray(labels)

    x_train, y_train = prepare("train")
    x_test, y_test = prepare("test")
    print(f"data: {len(x_train):,} train / {len(x_test):,} test images, {size}x{size}, "
          f"pixels in {'[0, 1]' if value_range == 'unit' else '[-1, 1]'}", flush=True)
    return x_train, y_train, x_test, y_test


def arch_defaults(args, table: dict) -> dict:
    """Fill the flags left at None from ``table[args.arch]``; return that row (the arch's settings)."""
    row = table[args.arch]
    for key, value in row.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    return row


def fit_options(args, checkpoint: str = "checkpoint.npz") -> dict:
    """The keyword arguments of :func:`tinyae.train.fit` that come from the common flags."""
    return dict(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                checkpoint=args.out / checkpoint, resume=args.resume,
                progress=not args.no_progress, log=lambda line: print(line, flush=True))


def on_device(x):
    """A host array as a batch on the active backend, in the default dtype."""
    return backend.asarray(x, dtype=backend.default_dtype())


def run(fn, x, batch_size: int = 500):
    """``fn`` (a model method) applied to host array ``x`` in chunks; the result on the host.

    Chunks keep the device memory of large inputs bounded (call ``model.eval()`` first).
    """
    out = [backend.to_numpy(fn(on_device(x[i:i + batch_size]))) for i in range(0, len(x), batch_size)]
    return np.concatenate(out)


def decoder_fn(model):
    """codes (host, (n, k)) → decoded images (host) — the form tinyae.plot's decoders take."""
    return lambda z: backend.to_numpy(model.decode(on_device(z)))


def n_params(model) -> str:
    """The number of trainable values of a model, like "13,043"."""
    return f"{sum(int(p.data.size) for p in model.parameters()):,}"


def one_per_class(labels, n: int = 8) -> np.ndarray:
    """Indices of the first test digit of each class in turn (0, 1, 2, …), ``n`` of them."""
    labels = np.asarray(labels)
    picks, classes = [], np.unique(labels)
    for i in range(n):
        hits = np.flatnonzero(labels == classes[i % len(classes)])
        if len(hits):
            picks.append(hits[(i // len(classes)) % len(hits)])
    return np.asarray(picks)


def done(args) -> None:
    """The last line: what was written where (per-epoch series as name_{1..N}.png)."""
    import re
    series, single = {}, []
    for p in sorted(args.out.iterdir()):
        m = re.fullmatch(r"(.+)_(\d+)\.png", p.name)
        if m:
            series.setdefault(m.group(1), []).append(int(m.group(2)))
        elif p.suffix in (".png", ".npz"):
            single.append(p.name)
    names = [f"{k}_{{{min(v)}..{max(v)}}}.png" if len(v) > 1 else f"{k}_{v[0]}.png"
             for k, v in series.items()] + single
    print(f"wrote to {args.out}/: " + ", ".join(names), flush=True)


def quiet_env() -> None:
    """Figures without a display."""
    os.environ.setdefault("MPLBACKEND", "Agg")
