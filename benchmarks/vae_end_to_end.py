#!/usr/bin/env python
"""The comparison a user makes: PyTorch's examples/vae tutorial script against tinyae's
``examples/vae_mnist.py --arch pytorch-example``, seconds per epoch on full MNIST.

    python benchmarks/vae_end_to_end.py                      # 2 epochs each, 2 alternating runs
    python benchmarks/vae_end_to_end.py --epochs 1 --runs 1 --limit 6000   # quick

Both train the same 784-400-20 VAE (BCE summed + KL, Adam 1e-3, batch 128) and then
evaluate the 10,000 test images each epoch; an epoch's seconds are train + test, which is
what tinyae's example prints for each epoch (its figures and checkpoint are written after
the clock stops; the PyTorch script here writes no images, see below).

The PyTorch side is the tutorial as a user runs it: a ``torch.utils.data.DataLoader``
(batch 128, shuffled, no worker processes — the tutorial's CPU setting) over an MNIST
``Dataset`` whose ``__getitem__`` turns one 28×28 uint8 image into a PIL image and applies
a ToTensor-style transform (uint8 → float32 / 255, shape 1×28×28), exactly the work
torchvision's ``datasets.MNIST(transform=transforms.ToTensor())`` does per image.
torchvision itself is not used: in this environment it fails to import beside torch 2.13,
so the dataset and transform are written out below (``MNISTLikeTorchvision``, ``to_tensor``).
The tutorial's ``save_image`` calls (torchvision) are left out; tinyae's figures are also
outside its timed epoch.

Threads: each side runs with its own defaults (tinyae's examples use one BLAS thread unless
``OMP_NUM_THREADS`` says otherwise; PyTorch uses every core), which is what a user gets;
``--threads N`` gives both N.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy

ROOT = Path(__file__).resolve().parents[1]
MNIST_DIR = Path(os.environ.get("TINYAE_MNIST", ROOT.parent / "shared" / "data" / "mnist"))


def read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return numpy.frombuffer(raw, dtype=numpy.uint8, offset=4 + 4 * ndim).reshape(dims)


# ---------------------------------------------------------------------------
# the PyTorch tutorial (examples/vae/main.py), run in its own process
# ---------------------------------------------------------------------------
def torch_tutorial(epochs, limit, threads, seed=1):
    import torch  # noqa: PLC0415
    from PIL import Image  # noqa: PLC0415  (Pillow: a matplotlib dependency)
    from torch import nn, optim  # noqa: PLC0415
    from torch.nn import functional as F  # noqa: PLC0415
    from torch.utils.data import DataLoader, Dataset  # noqa: PLC0415

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)

    def to_tensor(pic):
        """What torchvision.transforms.ToTensor does to a mode-"L" PIL image: (1, H, W) float in [0, 1]."""
        arr = numpy.array(pic, dtype=numpy.uint8, copy=True)
        return torch.from_numpy(arr).view(pic.size[1], pic.size[0], 1).permute(2, 0, 1).contiguous().float().div(255)

    class MNISTLikeTorchvision(Dataset):
        """torchvision.datasets.MNIST's per-item work: uint8 row → PIL image → transform."""

        def __init__(self, images, labels, transform):
            self.data, self.targets, self.transform = torch.from_numpy(images.copy()), labels.tolist(), transform

        def __len__(self):
            return len(self.data)

        def __getitem__(self, i):
            img = Image.fromarray(self.data[i].numpy(), mode="L")
            return self.transform(img), self.targets[i]

    class VAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc21, self.fc22 = nn.Linear(784, 400), nn.Linear(400, 20), nn.Linear(400, 20)
            self.fc3, self.fc4 = nn.Linear(20, 400), nn.Linear(400, 784)

        def encode(self, x):
            h1 = F.relu(self.fc1(x))
            return self.fc21(h1), self.fc22(h1)

        def reparameterize(self, mu, logvar):
            std = torch.exp(0.5 * logvar)
            return mu + torch.randn_like(std) * std

        def decode(self, z):
            return torch.sigmoid(self.fc4(F.relu(self.fc3(z))))

        def forward(self, x):
            mu, logvar = self.encode(x.view(-1, 784))
            z = self.reparameterize(mu, logvar)
            return self.decode(z), mu, logvar

    def loss_function(recon_x, x, mu, logvar):
        bce = F.binary_cross_entropy(recon_x, x.view(-1, 784), reduction="sum")
        kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        return bce + kld

    train_x = read_idx(MNIST_DIR / "train-images-idx3-ubyte.gz")
    train_y = read_idx(MNIST_DIR / "train-labels-idx1-ubyte.gz")
    test_x = read_idx(MNIST_DIR / "t10k-images-idx3-ubyte.gz")
    test_y = read_idx(MNIST_DIR / "t10k-labels-idx1-ubyte.gz")
    if limit:
        train_x, train_y, test_x, test_y = train_x[:limit], train_y[:limit], test_x[:limit // 5], test_y[:limit // 5]
    train_loader = DataLoader(MNISTLikeTorchvision(train_x, train_y, to_tensor), batch_size=128, shuffle=True)
    test_loader = DataLoader(MNISTLikeTorchvision(test_x, test_y, to_tensor), batch_size=128, shuffle=False)
    model = VAE()
    optimizer = optim.Adam(model.parameters(), lr=1e-3)
    out = []
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        model.train()
        train_loss = 0.0
        for data, _ in train_loader:
            optimizer.zero_grad()
            recon, mu, logvar = model(data)
            loss = loss_function(recon, data, mu, logvar)
            loss.backward()
            train_loss += loss.item()
            optimizer.step()
        model.eval()
        test_loss = 0.0
        with torch.no_grad():
            for data, _ in test_loader:
                recon, mu, logvar = model(data)
                test_loss += loss_function(recon, data, mu, logvar).item()
        seconds = time.perf_counter() - t0
        out.append({"epoch": epoch, "seconds": seconds, "train_loss": train_loss / len(train_loader.dataset),
                    "test_loss": test_loss / len(test_loader.dataset)})
        print(f"torch epoch {epoch}: {seconds:.2f} s, test loss {out[-1]['test_loss']:.2f}", flush=True)
    return out


# ---------------------------------------------------------------------------
# tinyae's example, as a user runs it
# ---------------------------------------------------------------------------
def tinyae_example(epochs, limit, threads, timeout):
    env = dict(os.environ, TINYAE_DATA=str(MNIST_DIR), MPLBACKEND="Agg")
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, str(ROOT / "examples" / "vae_mnist.py"), "--arch", "pytorch-example",
               "--epochs", str(epochs), "--data", "full", "--no-progress", "--out", out]
        if limit:
            cmd += ["--limit", str(limit)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"examples/vae_mnist.py failed:\n{proc.stderr[-2000:]}")
    rows = []
    for m in re.finditer(r"epoch (\d+)/\d+ .*test ([\d.]+) .*\(([\d.]+) s\)", proc.stdout):
        rows.append({"epoch": int(m.group(1)), "test_loss": float(m.group(2)), "seconds": float(m.group(3))})
    if len(rows) != epochs:
        raise RuntimeError(f"could not read {epochs} epoch lines from examples/vae_mnist.py:\n{proc.stdout[-2000:]}")
    return rows


def torch_subprocess(epochs, limit, threads, timeout):
    cmd = [sys.executable, __file__, "--torch-worker", "--epochs", str(epochs), "--limit", str(limit or 0),
           "--threads", str(threads or 0)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"the PyTorch tutorial failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--runs", type=int, default=2, help="runs of each side, alternating (default 2)")
    ap.add_argument("--limit", type=int, default=0, help="first N train / N//5 test images (0: all)")
    ap.add_argument("--threads", type=int, default=0, help="0: each side's defaults")
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--json", metavar="PATH")
    ap.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.torch_worker:
        print(json.dumps(torch_tutorial(args.epochs, args.limit, args.threads)))
        return 0
    if not (MNIST_DIR / "train-images-idx3-ubyte.gz").exists():
        print(f"vae_end_to_end.py: error: no MNIST IDX files in {MNIST_DIR} (set TINYAE_MNIST)", file=sys.stderr)
        return 2
    try:
        import torch  # noqa: F401, PLC0415
    except ImportError:
        print("vae_end_to_end.py: error: PyTorch is not installed (pip install torch)", file=sys.stderr)
        return 2
    load0 = os.getloadavg()
    runs = {"tinyae": [], "torch": []}
    for r in range(args.runs):
        order = ("tinyae", "torch") if r % 2 == 0 else ("torch", "tinyae")
        for side in order:
            time.sleep(0.5)
            rows = (tinyae_example if side == "tinyae" else torch_subprocess)(args.epochs, args.limit, args.threads,
                                                                              args.timeout)
            runs[side].append(rows)
            print(f"# run {r + 1} {side}: " + ", ".join(f"{row['seconds']:.2f} s" for row in rows), flush=True)
    per_epoch = {k: [row["seconds"] for rows in v for row in rows] for k, v in runs.items()}
    med = {k: statistics.median(v) for k, v in per_epoch.items()}
    load1 = os.getloadavg()
    print()
    print("| script | seconds per epoch, median (min–max) | test loss after the last epoch |")
    print("|---|---|---|")
    names = {"tinyae": "tinyae examples/vae_mnist.py --arch pytorch-example",
             "torch": "PyTorch examples/vae (DataLoader + per-image ToTensor)"}
    for k in ("tinyae", "torch"):
        v = per_epoch[k]
        print(f"| {names[k]} | {med[k]:.2f} ({min(v):.2f}–{max(v):.2f}) | {runs[k][-1][-1]['test_loss']:.2f} |")
    print(f"\nPyTorch / tinyae time per epoch: {med['torch'] / med['tinyae']:.2f}; {args.epochs} epoch(s) × "
          f"{args.runs} run(s) each; threads: {args.threads or 'each side its default'}; "
          f"load average {load0[0]:.1f} → {load1[0]:.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "median_seconds": med, "load": [load0, load1],
                                               "settings": vars(args)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
