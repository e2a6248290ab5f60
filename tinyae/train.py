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

What it refuses, before any work (``ValueError``/``TypeError`` naming the argument): epochs
that are not a whole number >= 0, a batch size that is not a whole number >= 1, a seed
that is not a whole number >= 0, an empty or non-array data set, integer pixels (the
:class:`~tinyae._checks.DTypeError` the model itself gives; scale them with
:func:`tinyae.data.to_float`), and an optimizer holding none of the model's parameters.

What it never does: write a checkpoint of a broken model (after every epoch the
parameters must be finite, and without a test set the loss of the last training batch
is computed again with the updated parameters), or ignore a changed setting on resume:

* the optimizer's hyperparameters (lr, betas, …) are those of the optimizer you pass, even
  when the checkpoint's differ; a change is logged and noted in the history
  (``record["changed"]``), and every record carries the ``lr`` it was trained with;
* a different ``batch_size`` (for array data) is used from the resumed epoch on, logged
  and noted the same way;
* a different ``seed`` is refused (the data order and noise of a resumed run follow the
  seed it was started with), and so is a model built differently, except for the
  loss weights and noise listed in :data:`tinyae.checkpoint.RESUMABLE_CHANGES` (β, λ,
  penalty, corruption, …), which are used from the resumed epoch on and logged.

Ctrl-C raises :class:`TrainingInterrupted` (a ``KeyboardInterrupt``) that says in which
epoch it came and which epoch the checkpoint holds.
"""
from __future__ import annotations

import json
import math
import numbers
import os
import time

import numpy

from . import backend
from ._checks import pixels_error
from .checkpoint import (CheckpointError, builder_changes, inspect_checkpoint, load_checkpoint,
                         remove_orphans, save_checkpoint)

__all__ = ["fit", "evaluate", "resume_from", "History", "TrainingError", "TrainingInterrupted",
           "StopTraining"]


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss or parameter, a checkpoint that cannot be written)."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`fit`: ``epoch`` is the epoch that was running, ``saved`` the epoch
    the checkpoint file ``checkpoint`` holds (None: no checkpoint written yet)."""

    def __init__(self, epoch, saved, checkpoint):
        self.epoch, self.saved, self.checkpoint = epoch, saved, checkpoint
        if checkpoint is None:
            where = "no checkpoint is kept (checkpoint=None)"
        elif saved:
            where = f"the checkpoint {os.fspath(checkpoint)} holds epoch {saved}; resume=True continues"
        else:
            where = f"no checkpoint written yet ({os.fspath(checkpoint)})"
        super().__init__(f"interrupted in epoch {epoch}; {where}")


class StopTraining(Exception):
    """Raise from a callback to end training after the current epoch (the checkpoint is written)."""


class History:
    """Per-epoch records: dicts like {"epoch": 3, "train_loss": …, "train_recon": …,
    "test_loss": …, "lr": …, "seconds": …}.  ``history["train_loss"]`` is the list over epochs."""

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

    def reduce(self, total):
        """Replace the count and totals by ``total([count, *totals])``: their sum over the MPI
        processes (``FitPlan.sum``), so that every rank reports the global per-sample mean."""
        keys = list(self.totals)
        summed = total([self.count] + [self.totals[k] for k in keys])
        self.count = int(round(summed[0]))
        self.totals = dict(zip(keys, summed[1:]))
        return self


def _is_array(data) -> bool:
    return hasattr(data, "shape") and hasattr(data, "dtype")


def _check_whole(name, value, minimum):
    """``value`` as an int if it is a whole number >= ``minimum`` (not a bool or float)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"fit: {name} must be a whole number >= {minimum}, got {value!r} "
                        f"({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"fit: {name} must be a whole number >= {minimum}, got {value}")
    return int(value)


def _check_data(name, data, dtype):
    """Refuse what cannot be a data set: non-arrays, empty sets, integer pixels."""
    if data is None:
        if name == "train":
            raise TypeError("fit: train is None; pass the training images as an array (N, ...) or an "
                            "iterable of batches")
        return
    if _is_array(data):
        if not getattr(data, "ndim", 0):
            raise ValueError(f"fit: {name} must be an array of samples (N, ...), got a 0-d array")
        if len(data) == 0:
            raise ValueError(f"fit: {name} is empty (shape {tuple(data.shape)}, 0 samples)"
                             + ("; pass test=None to train without a test set" if name == "test" else ""))
        _check_dtype(name, data.dtype, dtype)
        return
    if isinstance(data, (str, bytes, dict)) or not hasattr(data, "__iter__"):
        raise TypeError(f"fit: {name} must be an array (N, ...) or an iterable of batches xb or (xb, yb), "
                        f"got {type(data).__name__}")
    if hasattr(data, "__len__") and len(data) == 0:
        raise ValueError(f"fit: {name} is empty (an iterable with no batches)"
                         + ("; pass test=None to train without a test set" if name == "test" else ""))
    if isinstance(data, (list, tuple)):
        item = data[0]
        first = item[0] if isinstance(item, (tuple, list)) and item and _is_array(item[0]) else item
        if not _is_array(first):
            raise TypeError(f"fit: {name} is a {type(data).__name__} of {type(item).__name__}s, not of "
                            "batches (arrays); convert the data with numpy.asarray(...)")


def _check_dtype(name, got, dtype):
    if numpy.dtype(got).kind != "f":
        raise pixels_error("fit", name, got, f"x.astype('{numpy.dtype(dtype).name}')")


def _batches(data, batch_size, shuffle, seed):
    """A DataLoader for an array, or ``data`` itself if it already is an iterable of batches."""
    if data is None:
        return None
    if _is_array(data):
        from .data import DataLoader
        return DataLoader(data, batch_size=batch_size, shuffle=shuffle, seed=seed)
    return data


def _split(batch, dtype, name="train"):
    """(x,) or (x, y) → x, cast to the model's parameter dtype if needed."""
    x = batch[0] if isinstance(batch, (tuple, list)) else batch
    if not _is_array(x):
        raise TypeError(f"fit: a batch of {name} must be an array or (array, labels), got "
                        f"{type(x).__name__}")
    if x.dtype != dtype:
        _check_dtype(f"a batch of {name}", x.dtype, dtype)
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
            x = _split(batch, dtype, "the data")
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


def _hyperparameters(optimizer) -> dict:
    """{"lr": …, "betas": …, …}: the optimizer's scalar settings (no moments)."""
    out = {}
    for k, v in optimizer.state_dict().items():
        if k == "lr" or k.startswith("hyper."):
            v = numpy.asarray(v).tolist()
            out[k.removeprefix("hyper.")] = tuple(v) if isinstance(v, list) else v
    return out


def _first_bad_parameter(model):
    """The name of the first parameter holding a NaN or an infinity, or None."""
    for name, p in model.named_parameters():
        xp = backend.get_array_module(p.data)
        if not bool(xp.all(xp.isfinite(p.data))):
            return name
    return None


# -- the named pieces of a training run: fit calls them, and so does examples/vae_mnist.py -----

def unchanged_note(checkpoint, saved) -> str:
    """What a stopped run leaves on disk, as the tail of its error message."""
    if checkpoint is None:
        return ""
    return (f"; the checkpoint {checkpoint} (after epoch {saved}) is unchanged" if saved else
            f"; no checkpoint was written ({checkpoint})")


def check_step(values, names, epoch, step, n_steps, unchanged=""):
    """Raise :class:`TrainingError` unless the step's loss ``values`` (host floats, one per
    name: "loss" and its parts) are finite: before the update, so the parameters stay good."""
    if numpy.all(numpy.isfinite(values)):
        return
    bad = ", ".join(f"{k}={v}" for k, v in zip(names, values))
    raise TrainingError(f"non-finite loss at epoch {epoch}, step {step}{'/' + str(n_steps) if n_steps else ''} "
                        f"({bad}): training stopped before this step's update{unchanged}. Lower the "
                        "learning rate (resuming with a smaller one continues from the checkpoint) or check "
                        "the data for NaNs.")


def check_epoch(model, epoch, after: dict, what: str, unchanged=""):
    """Raise :class:`TrainingError` if a parameter or the loss ``after`` the epoch's updates
    (``what`` names it: the test loss, or the last batch's) holds a NaN or an infinity."""
    bad_param = _first_bad_parameter(model)
    if bad_param is not None:
        raise TrainingError(f"parameter {bad_param!r} holds NaN or infinite values after epoch {epoch}: the "
                            f"last updates blew up{unchanged}. Lower the learning rate.")
    if not all(math.isfinite(v) for v in after.values()):
        raise TrainingError(f"non-finite {what} after epoch {epoch} with the updated parameters "
                            f"({_fmt(after)}): the last updates blew up{unchanged}. Lower the "
                            "learning rate.")


def write_checkpoint(checkpoint, model, optimizer, epoch, history, settings, unchanged=""):
    """Save the checkpoint after ``epoch`` (atomically); a failed write becomes one
    :class:`TrainingError` that says what failed and what is left on disk."""
    try:
        save_checkpoint(checkpoint, model, optimizer, epoch=epoch, history=history, settings=settings)
    except OSError as exc:
        raise TrainingError(f"could not write the checkpoint {checkpoint} after epoch {epoch} "
                            f"({exc.strerror or exc}){unchanged}. {_write_advice(exc)}") from exc


def _write_advice(exc: OSError) -> str:
    """What to do about a failed write, from what actually failed (not always a full disk)."""
    import errno
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return "Free some disk space or choose another folder, then resume."
    if exc.errno == errno.EROFS:
        return "The folder is on a read-only file system: choose another folder, then resume."
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "This folder cannot be written: choose one you can write to, then resume."
    if exc.errno == errno.ENOENT:
        return ("The folder or the file being written was removed meanwhile (by another program or "
                "run?): choose another folder, then resume.")
    return "Choose another folder, then resume."


def begin_run(checkpoint, model, optimizer, *, resume, seed, epochs, batch_size=None, say=print):
    """Start a run that keeps ``checkpoint``: remove the leftovers of an interrupted write,
    then, with ``resume``, carry on from the checkpoint if there is one (:func:`resume_from`'s
    checks).  Returns (history, start, note): the history so far, the epochs done, and the
    settings that changed ("" if none).  Under MPI only rank 0 calls it, then shares."""
    history, start, note = History(), 0, ""
    if checkpoint is None:
        return history, start, note
    removed = remove_orphans(checkpoint)
    if removed:
        say(f"removed {', '.join(removed)}: the unfinished write of an interrupted run "
            f"(the checkpoint {os.path.basename(os.fspath(checkpoint))} itself is intact)")
    if resume and os.path.exists(checkpoint):
        history, start, note = resume_from(checkpoint, model, optimizer, seed=seed, batch_size=batch_size, log=say)
        if start >= epochs:
            say(f"the checkpoint already holds {start} epochs (asked for {epochs}): nothing to do")
    elif resume:
        say(f"no checkpoint at {checkpoint} yet: starting from epoch 1")
    return history, start, note


def _resume(checkpoint, model, optimizer, seed, batch_size, say):
    """Load ``checkpoint`` into model and optimizer after checking it may be resumed; return
    (history, epoch, note) with note the settings that change from here on ("" if none)."""
    info = inspect_checkpoint(checkpoint)
    changes = {k: v for k, v in builder_changes(checkpoint, model, info.builder or "",
                                                   info.builder_kwargs).items()}
    saved_seed = info.settings.get("seed")
    if saved_seed is not None and saved_seed != seed:
        raise CheckpointError(f"checkpoint {os.fspath(checkpoint)} was trained with seed {saved_seed}, "
                              f"this run asks for seed {seed}: a resumed run keeps its seed (the data "
                              f"order and noise of every epoch follow it); use seed {saved_seed}, or "
                              "train afresh with another checkpoint")
    wanted = _hyperparameters(optimizer)
    state = load_checkpoint(checkpoint, model=model, optimizer=optimizer)
    for key, value in wanted.items():              # the optimizer the user passed wins
        old = _hyperparameters(optimizer).get(key)
        if old != value:
            changes[key] = (old, value)
            setattr(optimizer, key, value)
    saved_batch = info.settings.get("batch_size")
    if batch_size is not None and saved_batch is not None and saved_batch != batch_size:
        changes["batch_size"] = (saved_batch, batch_size)
    history = History(state.history)
    note = "; ".join(f"{k} {_short(a)} -> {_short(b)}" for k, (a, b) in changes.items())
    say(f"resumed from {checkpoint} after epoch {state.epoch}"
        + (f"; changed from epoch {state.epoch + 1} on: {note}" if note else ""))
    return history, state.epoch, note


def _short(v):
    return f"{v:g}" if isinstance(v, float) else json.dumps(v) if isinstance(v, (list, tuple)) else str(v)


def resume_from(checkpoint, model, optimizer, *, seed, batch_size=None, log=print):
    """``fit(..., resume=True)``'s resume of ``checkpoint``, for a hand-written training loop
    (:func:`begin_run` calls it; docs/distributed.md uses it under MPI).

    Loads ``checkpoint`` into ``model`` and ``optimizer`` (parameters, optimizer state, noise
    generators) after fit's checks: another ``seed`` or architecture is refused
    (:class:`~tinyae.checkpoint.CheckpointError`), the hyperparameters of the ``optimizer``
    passed win over the saved ones, and a changed loss weight (β, λ, …) or ``batch_size``
    (the loop's, None: not compared) is logged.  Returns (history, epoch, note): the
    :class:`History` so far, the epochs the checkpoint holds, and the changed settings as
    text ("" if none; fit notes it in the first resumed record as ``record["changed"]``).
    """
    return _resume(checkpoint, model, optimizer, seed, batch_size, log if log is not None else (lambda *_: None))


def fit(model, optimizer, train, test=None, *, epochs: int = 10, batch_size: int = 64, seed: int = 0,
        callbacks=(), checkpoint=None, resume: bool = False, progress: bool = True, log=print,
        distributed=False):
    """Train ``model`` with ``optimizer`` for ``epochs`` epochs; return a :class:`History`.

    train, test: arrays (cut into minibatches by :class:`tinyae.data.DataLoader` with
        ``batch_size``; the training set reshuffled each epoch from ``seed``) or any
        iterable of batches ``xb`` / ``(xb, yb)`` — a DataLoader with ``set_epoch`` keeps
        the resume exact.  Float arrays only (scale pixels with ``tinyae.data.to_float``).
    epochs: the total number of epochs (counting those a resumed checkpoint holds); 0
        trains nothing and returns an empty history.
    callbacks: callables ``cb(epoch, model, history)`` run after each epoch's test pass
        (epoch counts from 1); raising :class:`StopTraining` ends training.
    checkpoint: a path; written atomically after every epoch (and after the callbacks),
        once the parameters are checked finite.  Leftovers of a killed write are removed
        at the start (and logged).
    resume: if ``checkpoint`` exists, load parameters, optimizer state, RNG states and
        history from it and continue with the epoch after the saved one (see the module
        docstring for what may change on resume and what is refused).
    progress: show a tqdm bar per epoch.  log: where the one-line epoch summaries go
        (None to stay quiet).
    distributed: True (or a :class:`tinyae.distributed.World`) to train as one of N MPI
        processes (``mpiexec -n N``): ``batch_size`` is then the global batch, each rank
        trains on its share and the gradients are summed over the ranks; only rank 0 logs
        and writes (docs/distributed.md).  train and test must be arrays.
    Raises :class:`TrainingError` on a non-finite loss or parameter (naming epoch and step)
    or a checkpoint that cannot be written, :class:`TrainingInterrupted` on Ctrl-C.
    """
    say = log if log is not None else (lambda *_: None)
    epochs, batch_size, seed = _check_fit(model, optimizer, train, test, epochs, batch_size, seed)
    run = _Run(model, optimizer, train, test, batch_size, seed, checkpoint, distributed, say, progress)
    history, start, note = run.begin(resume, epochs)
    epoch = start
    try:
        for epoch in range(start + 1, epochs + 1):
            t0 = time.perf_counter()
            trained, last = run.train_epoch(epoch, epochs)           # the batches: loss, backward, step
            tested, after = run.test_epoch(last)                     # the test set (or the last batch again)
            record = run.record(epoch, trained, tested, t0, note if epoch == start + 1 else "")
            history.append(record)
            run.say(f"epoch {epoch}/{epochs}  train {_fmt(trained)}"
                    f"{'  test ' + _fmt(tested) if tested else ''}  ({record['seconds']:.1f} s)")
            check_epoch(model, epoch, after, run.after_what, run.unchanged())
            stop = run.callbacks(callbacks, epoch, history)
            run.save(epoch, history)
            if stop:
                run.say(f"stopped by a callback after epoch {epoch}")
                break
    except KeyboardInterrupt as exc:
        if isinstance(exc, TrainingInterrupted):
            raise
        raise TrainingInterrupted(epoch, run.saved, checkpoint) from None
    run.finish()
    return history


def _check_fit(model, optimizer, train, test, epochs, batch_size, seed):
    """fit's arguments checked before any work: (epochs, batch_size, seed) as ints."""
    epochs = _check_whole("epochs", epochs, 0)
    batch_size = _check_whole("batch_size", batch_size, 1)
    seed = _check_whole("seed", seed, 0)
    params = model.parameters()
    if not params:
        raise ValueError(f"fit: {type(model).__name__} has no parameters to train")
    if optimizer is None or not hasattr(optimizer, "step"):
        raise TypeError(f"fit: expected an optimizer such as Adam(model.parameters()), got "
                        f"{type(optimizer).__name__}")
    own = {id(p) for p in params}
    if not any(id(p) in own for p in getattr(optimizer, "params", ())):
        raise ValueError(f"fit: the optimizer ({type(optimizer).__name__}) holds none of this model's "
                         f"{len(params)} parameters, so training would never change the model (was it "
                         "made for another model?); create it as Adam(model.parameters(), ...)")
    _check_data("train", train, params[0].dtype)
    _check_data("test", test, params[0].dtype)
    return epochs, batch_size, seed


class _Run:
    """What :func:`fit` needs besides the loop: the loaders, the checkpoint, and the MPI plan
    (tinyae/distributed.py's FitPlan) that changes a few steps when N processes train."""

    def __init__(self, model, optimizer, train, test, batch_size, seed, checkpoint, distributed, say, progress):
        self.model, self.optimizer, self.checkpoint = model, optimizer, checkpoint
        self.dtype = model.parameters()[0].dtype
        self.dist = None
        if distributed:
            from .distributed import FitPlan
            self.dist = FitPlan(distributed, model, optimizer, train, test, batch_size, seed)
            self.optimizer, progress = self.dist.inner, progress and self.dist.world.is_root
            say = self.dist.root_only(say)
        self.say, self.progress = say, progress
        self.root = self.dist is None or self.dist.world.is_root
        self.train_loader = self.dist.train_loader if self.dist else _batches(train, batch_size, True, seed)
        self.test_loader = _batches(test, max(batch_size, 256), False, seed)
        if hasattr(self.train_loader, "__len__") and len(self.train_loader) == 0:
            raise ValueError(f"fit: train gives no batches ({len(train)} samples with batch_size={batch_size} "
                             "and drop_last?)" if _is_array(train) else "fit: train gives no batches")
        self.n_steps = len(self.train_loader) if hasattr(self.train_loader, "__len__") else None
        self.batch_size, self.seed = batch_size, seed
        self.settings = {"seed": seed, **({"batch_size": batch_size} if _is_array(train) else {})}
        self.after_what = "test loss" if test is not None else "loss of the last training batch"
        self.saved = None   # the epoch the checkpoint on disk holds

    def begin(self, resume, epochs):
        """(history, start, note): a fresh start or the checkpoint's (rank 0 reads it, then shares)."""
        history, start, note = History(), 0, ""
        if self.root:
            history, start, note = begin_run(
                self.checkpoint, self.model, self.optimizer, resume=resume, seed=self.seed, epochs=epochs,
                batch_size=self.batch_size if "batch_size" in self.settings else None, say=self.say)
        if self.dist:
            history, start, note = self.dist.share_resume(history, start, note, self.say)
        self.saved = start if start else None
        return history, start, note

    def unchanged(self):
        return unchanged_note(self.checkpoint, self.saved)

    def train_epoch(self, epoch, epochs):
        """One pass over the training batches (PyTorch's train()): the running means of the
        loss and its parts, and the last batch."""
        from tqdm.auto import tqdm
        model, optimizer, dist = self.model, self.optimizer, self.dist
        if hasattr(self.train_loader, "set_epoch"):
            self.train_loader.set_epoch(epoch - 1)
        if dist:
            dist.start_epoch(epoch)
        model.train()
        acc = _Mean(model.reduction == "sum")
        bar = tqdm(self.train_loader, total=self.n_steps, desc=f"epoch {epoch}/{epochs}",
                   disable=not self.progress, leave=False, dynamic_ncols=True)
        x = None
        try:
            for step, batch in enumerate(bar, start=1):
                x = _split(batch, self.dtype)
                with numpy.errstate(over="ignore", invalid="ignore", divide="ignore"):
                    total, parts = model.loss(x)
                    values = _step_values(total, parts)
                    check_step(values, ["loss", *parts], epoch, step, self.n_steps, self.unchanged())
                    optimizer.zero_grad()
                    model.backward_loss(need_dx=False)   # x is data: no dL/dx
                    dist.step() if dist else optimizer.step()   # (dist: one Allreduce first)
                acc.add(["loss", *parts], values, x.shape[0])
                if self.progress:   # shown at tqdm's next redraw; forced on the last step
                    bar.set_postfix({k: f"{v:.4g}" for k, v in acc.means().items()}, refresh=step == self.n_steps)
        finally:
            bar.close()      # also on an error or Ctrl-C: no half-drawn bar under the message
        if x is None:
            raise ValueError(f"fit: train gave no batches in epoch {epoch}")
        if dist:
            acc.reduce(dist.sum)      # the losses of all ranks' samples
        return acc.means(), x

    def test_epoch(self, last):
        """(the test losses or {}, the losses the finite check reads): the test set in eval
        mode, or without one the last training batch again, with the updated parameters."""
        with numpy.errstate(over="ignore", invalid="ignore", divide="ignore"):
            if self.test_loader is None:
                return {}, evaluate(self.model, [last])
            dist = self.dist
            tested = dist.evaluate(self.model, evaluate) if dist else evaluate(self.model, self.test_loader)
            return tested, tested

    def record(self, epoch, trained, tested, t0, note):
        """The epoch's History record."""
        record = {"epoch": epoch, **{f"train_{k}": v for k, v in trained.items()},
                  **{f"test_{k}": v for k, v in tested.items()}}
        if hasattr(self.optimizer, "lr"):
            record["lr"] = float(self.optimizer.lr)
        if "batch_size" in self.settings:
            record["batch_size"] = self.batch_size
        if self.dist:
            record["ranks"] = self.dist.world.size
        if note:
            record["changed"] = note
        record["seconds"] = time.perf_counter() - t0
        return record

    def callbacks(self, callbacks, epoch, history) -> bool:
        """Run the callbacks (rank 0's only, under MPI); whether one asked to stop."""
        stop = False
        for cb in callbacks:
            if self.dist and not self.dist.runs(cb):   # figures and the like: rank 0 only
                continue
            try:
                cb(epoch, self.model, history)
            except StopTraining:
                stop = True
        return self.dist.agree(stop) if self.dist else stop

    def save(self, epoch, history):
        if self.checkpoint is not None:
            if self.root:
                write_checkpoint(self.checkpoint, self.model, self.optimizer, epoch, history.records,
                                 self.settings, self.unchanged())
            self.saved = epoch

    def finish(self):
        if self.dist:
            self.dist.world.barrier()     # the last checkpoint is on disk when fit returns anywhere
