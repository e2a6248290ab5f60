"""What every example shares: the command-line flags, the backend set-up, and the data.

Kept deliberately small: each example script reads top to bottom on its own and
only borrows these few helpers so the flags mean the same thing everywhere.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import sys

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing, too

from tinyae import backend, data  # noqa: E402


def make_parser(name: str, description: str, *, epochs: int, batch_size: int, lr: float = 1e-3,
                latent_dim: int | None = None) -> argparse.ArgumentParser:
    """The flags every example takes (defaults are the tutorial's settings)."""
    p = argparse.ArgumentParser(prog=f"{name}.py", description=description)
    p.add_argument("--backend", choices=["numpy", "cupy"], default="numpy",
                   help="numpy (CPU) or cupy (NVIDIA GPU; pip install 'tinyae[cuda12]')")
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--batch-size", type=int, default=batch_size)
    p.add_argument("--lr", type=float, default=lr, help="Adam learning rate")
    if latent_dim is not None:
        p.add_argument("--latent-dim", type=int, default=latent_dim)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", choices=["auto", "full", "embedded"], default="auto",
                   help="full MNIST, the 5,000 embedded digits, or auto: full if available")
    p.add_argument("--limit", type=int, default=None,
                   help="use only the first N train and N//5 test images (quick runs)")
    p.add_argument("--out", type=pathlib.Path, default=pathlib.Path("results") / name,
                   help="where figures and the checkpoint go (default: results/%(prog)s)")
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


def quiet_env() -> None:
    """Figures without a display."""
    os.environ.setdefault("MPLBACKEND", "Agg")
