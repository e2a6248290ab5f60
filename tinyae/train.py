"""The training loop: ``history = fit(model, optimizer, train, test, epochs=10)``.

Works for every model with the shared interface (:mod:`tinyae.models`)::

    total, parts = model.loss(xb)      # forward + objective
    model.backward_loss()              # gradients into param.grad
    optimizer.step()

What it adds:

* a tqdm bar per epoch with the running loss and its parts (reconstruction, KL, …);
* a :class:`History` of per-epoch train and test losses.  Losses are reported **per
  sample** for models whose loss is a batch sum (``model.reduction == "sum"``, the VAEs:
  the batch sum divided by the batch size — the number PyTorch's examples/vae prints) and
  as the batch average otherwise (per element for MSE/BCE "mean");
* callbacks ``cb(epoch, model, history)`` after each epoch (figures, early stopping by
  raising :class:`StopTraining`);
* a check of every loss: a NaN or infinity stops training with a :class:`TrainingError`
  naming the epoch and step, before the bad gradients touch the parameters; the
  checkpoint of the last completed epoch is left as it was;
* a checkpoint after every epoch (:mod:`tinyae.checkpoint`), and ``resume=True`` to carry
  on from it: a run stopped after epoch k and resumed ends with the same parameters, bit
  for bit on NumPy, as one that was never stopped (the data order of epoch e depends only
  on (seed, e), and the model's noise generators are saved with the parameters).
"""
from __future__ import annotations

import json
import math
import os
import time

import numpy

from . import backend
from .checkpoint import load_checkpoint, save_checkpoint

__all__ = ["fit", "evaluate", "History", "TrainingError", "StopTraining"]


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss)."""


class StopTraining(Exception):
    """Raise from a callback to end training after the current epoch (the checkpoint is written)."""


class History:
    """Per-epoch records: dicts like {"epoch": 3, "train_loss": …, "train_recon": …,
    "test_loss": …, "seconds": …}.  ``history["train_loss"]`` is the list over epochs."""

    def __init__(self, records=None):
        self.records = [dict(r) for r in (records or [])]

    def append(self, record: dict):
        self.records.append(dict(record))

    def __len__(self):
        return len(self.records)

    def __getitem__(self, key):
        if isinstance(key, int):
            return self.records[key]
        return [r.get(key) for r in self.records]

    def keys(self):
        seen = {}
        for r in self.records:
            seen.update(dict.fromkeys(r))
        return list(seen)

    def last(self) -> dict:
        return self.records[-1] if self.records else {}

    def to_json(self) -> str:
        return json.dumps(self.records)

    def __repr__(self):
        return f"History({len(self)} epochs, keys={self.keys()})"


class _Mean:
    """Running per-sample (or per-batch-average) means of the loss and its parts."""

    def __init__(self, summed: bool):
        self.summed, self.totals, self.count = summed, {}, 0

    def add(self, names, values, n):
        w = 1.0 if self.summed else float(n)   # a batch sum already carries n samples
        for k, v in zip(names, values):
            self.totals[k] = self.totals.get(k, 0.0) + w * float(v)
        self.count += n

    def means(self) -> dict:
        return {k: v / max(self.count, 1) for k, v in self.totals.items()}


def _batches(data, batch_size, shuffle, seed):
    """A DataLoader for an array, or ``data`` itself if it already is an iterable of batches."""
    if data is None:
        return None
    if hasattr(data, "shape") and hasattr(data, "dtype"):
        from .data import DataLoader
        return DataLoader(data, batch_size=batch_size, shuffle=shuffle, seed=seed)
    return data


def _split(batch, dtype):
    """(x,) or (x, y) → x, cast to the model's parameter dtype if needed."""
    x = batch[0] if isinstance(batch, (tuple, list)) else batch
    if x.dtype != dtype:
        x = x.astype(dtype)
    return x


def _step_values(total, parts):
    """Host floats of [total, *parts] with one device→host copy (one GPU sync)."""
    xp = backend.get_array_module(total)
    return backend.to_numpy(xp.stack([total] + [p.astype(total.dtype) for p in parts.values()]))


def evaluate(model, data, batch_size=256) -> dict:
    """{"loss": …, <part>: …} averaged like the training log, in eval mode (no gradients)."""
    loader = _batches(data, batch_size, False, 0)
    was_training = model.training
    model.eval()
    dtype = model.parameters()[0].dtype
    acc = _Mean(model.reduction == "sum")
    try:
        for batch in loader:
            x = _split(batch, dtype)
            total, parts = model.loss(x)
            acc.add(["loss", *parts], _step_values(total, parts), x.shape[0])
    finally:
        model.train(was_training)
    return acc.means()


def _fmt(d: dict) -> str:
    if not d:
        return ""
    main = f"{d['loss']:.4f}"
    rest = ", ".join(f"{k} {v:.4f}" for k, v in d.items() if k != "loss")
    return f"{main} ({rest})" if rest else main


def fit(model, optimizer, train, test=None, *, epochs: int = 10, batch_size: int = 64, seed: int = 0,
        callbacks=(), checkpoint=None, resume: bool = False, progress: bool = True, log=print):
    """Train ``model`` with ``optimizer`` for ``epochs`` epochs; return a :class:`History`.

    train, test: arrays (cut into minibatches by :class:`tinyae.data.DataLoader` with
        ``batch_size``; the training set reshuffled each epoch from ``seed``) or any
        iterable of batches ``xb`` / ``(xb, yb)`` — a DataLoader with ``set_epoch`` keeps
        the resume exact.
    callbacks: callables ``cb(epoch, model, history)`` run after each epoch's test pass
        (epoch counts from 1); raising :class:`StopTraining` ends training.
    checkpoint: a path; written atomically after every epoch (and after the callbacks).
    resume: if ``checkpoint`` exists, load parameters, optimizer state, RNG states and
        history from it and continue with the epoch after the saved one.
    progress: show a tqdm bar per epoch.  log: where the one-line epoch summaries go
        (None to stay quiet).
    Raises :class:`TrainingError` on a non-finite loss (naming epoch and step).
    """
    from tqdm.auto import tqdm

    say = log if log is not None else (lambda *_: None)
    train_loader = _batches(train, batch_size, True, seed)
    test_loader = _batches(test, max(batch_size, 256), False, seed)
    history, start = History(), 0
    if resume and checkpoint is not None and os.path.exists(checkpoint):
        state = load_checkpoint(checkpoint, model=model, optimizer=optimizer)
        history, start = History(state.history), state.epoch
        say(f"resumed from {checkpoint} after epoch {start}")
        if start >= epochs:
            say(f"the checkpoint already holds {start} epochs (asked for {epochs}): nothing to do")
    elif resume and checkpoint is not None:
        say(f"no checkpoint at {checkpoint} yet: starting from epoch 1")
    dtype = model.parameters()[0].dtype
    summed = model.reduction == "sum"
    n_steps = len(train_loader) if hasattr(train_loader, "__len__") else None
    saved = start if start else None   # the epoch the checkpoint on disk holds

    for epoch in range(start + 1, epochs + 1):
        t0 = time.perf_counter()
        if hasattr(train_loader, "set_epoch"):
            train_loader.set_epoch(epoch - 1)
        model.train()
        acc = _Mean(summed)
        bar = tqdm(train_loader, total=n_steps, desc=f"epoch {epoch}/{epochs}", disable=not progress,
                   leave=False, dynamic_ncols=True)
        for step, batch in enumerate(bar, start=1):
            x = _split(batch, dtype)
            with numpy.errstate(over="ignore", invalid="ignore", divide="ignore"):
                total, parts = model.loss(x)
                values = _step_values(total, parts)
                if not numpy.all(numpy.isfinite(values)):
                    bar.close()
                    bad = ", ".join(f"{k}={v}" for k, v in zip(["loss", *parts], values))
                    where = (f"; the checkpoint {checkpoint} (after epoch {saved}) is unchanged"
                             if saved else "")
                    raise TrainingError(f"non-finite loss at epoch {epoch}, step {step}"
                                        f"{'/' + str(n_steps) if n_steps else ''} ({bad}): training "
                                        f"stopped before this step's update{where}. Lower the learning "
                                        "rate or check the data for NaNs.")
                optimizer.zero_grad()
                model.backward_loss()
                optimizer.step()
            acc.add(["loss", *parts], values, x.shape[0])
            if progress:   # shown at tqdm's next redraw; forced on the last step
                bar.set_postfix({k: f"{v:.4g}" for k, v in acc.means().items()}, refresh=step == n_steps)
        bar.close()
        record = {"epoch": epoch}
        record.update({f"train_{k}": v for k, v in acc.means().items()})
        if test_loader is not None:
            with numpy.errstate(over="ignore", invalid="ignore", divide="ignore"):
                record.update({f"test_{k}": v for k, v in evaluate(model, test_loader).items()})
        record["seconds"] = time.perf_counter() - t0
        history.append(record)
        test_part = ""
        if test_loader is not None:
            test_part = "  test " + _fmt({k[5:]: v for k, v in record.items() if k.startswith("test_")})
        say(f"epoch {epoch}/{epochs}  train {_fmt(acc.means())}{test_part}  ({record['seconds']:.1f} s)")
        if not all(math.isfinite(v) for k, v in record.items() if k.startswith("test_")):
            raise TrainingError(f"non-finite test loss after epoch {epoch} ({record}); the checkpoint "
                                f"{'after epoch ' + str(saved) if saved else '(none)'} is unchanged")
        stop = False
        for cb in callbacks:
            try:
                cb(epoch, model, history)
            except StopTraining:
                stop = True
        if checkpoint is not None:
            save_checkpoint(checkpoint, model, optimizer, epoch=epoch, history=history.records)
            saved = epoch
        if stop:
            say(f"stopped by a callback after epoch {epoch}")
            break
    return history
