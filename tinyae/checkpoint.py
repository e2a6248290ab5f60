"""Checkpoints: one ``.npz`` file with everything needed to resume training bit for bit.

Contents (all plain arrays; strings are 0-d unicode arrays, so no pickle is involved):

    format            "tinyae-checkpoint/1"
    builder           the model's builder name ("" for a hand-assembled model)
    builder_kwargs    its keyword arguments, JSON
    param.<name>      every parameter, by its ``named_parameters`` name (host copies)
    optimizer         the optimizer's class name ("" if none was saved)
    optim.<key>       ``optimizer.state_dict()`` (step count, lr, hyperparameters, moments)
    epoch             the number of completed epochs
    history           the training history so far, JSON (a list of per-epoch dicts)
    rng               JSON {module name: numpy ``bit_generator.state``} of every module that
                      draws noise (the model's own rng is under "")
    meta              JSON: tinyae version, parameter dtype, backend

Writes are atomic: the file is written to a temporary file in the same folder and then
renamed over the target (``os.replace``), so a crash leaves either the old checkpoint or
the new one, never half of one.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field

import numpy

from . import backend

__all__ = ["CheckpointError", "Checkpoint", "save_checkpoint", "load_checkpoint", "read_checkpoint",
           "rng_states", "set_rng_states"]

FORMAT = "tinyae-checkpoint/1"


class CheckpointError(ValueError):
    """A checkpoint cannot be read, or does not fit the model/optimizer it is loaded into."""


@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` returns."""
    model: object
    epoch: int
    history: list
    builder: str | None
    builder_kwargs: dict
    optimizer_state: dict = field(default_factory=dict)
    optimizer_class: str = ""
    meta: dict = field(default_factory=dict)


def rng_states(model) -> dict:
    """{module name: bit_generator.state} of every module with a numpy Generator ``rng``."""
    out = {}
    for name, mod in model.named_modules():
        rng = mod.__dict__.get("rng")
        if isinstance(rng, numpy.random.Generator):
            out[name] = rng.bit_generator.state
    return out


def set_rng_states(model, states: dict):
    """Restore generator states saved by :func:`rng_states` (names must match)."""
    mods = dict(model.named_modules())
    for name, state in states.items():
        rng = mods[name].__dict__.get("rng") if name in mods else None
        if not isinstance(rng, numpy.random.Generator):
            raise CheckpointError(f"checkpoint holds an RNG state for module {name!r}, which this model "
                                  "does not have (different architecture?)")
        rng.bit_generator.state = state


def _json_str(obj) -> numpy.ndarray:
    return numpy.array(json.dumps(obj))


def save_checkpoint(path, model, optimizer=None, epoch: int = 0, history=None):
    """Write ``model`` (+ ``optimizer``) state, ``epoch`` and ``history`` to ``path`` atomically."""
    name, kwargs = model.builder if getattr(model, "builder", None) else ("", {})
    arrays = {
        "format": numpy.array(FORMAT),
        "builder": numpy.array(name),
        "builder_kwargs": _json_str(kwargs),
        "epoch": numpy.array(int(epoch)),
        "history": _json_str(list(history or [])),
        "rng": _json_str(rng_states(model)),
        "optimizer": numpy.array(type(optimizer).__name__ if optimizer is not None else ""),
    }
    params = model.state_dict()
    dtype = str(next(iter(params.values())).dtype) if params else ""
    arrays["meta"] = _json_str({"tinyae": _version(), "dtype": dtype, "backend": backend.current()})
    for k, v in params.items():
        arrays[f"param.{k}"] = v
    if optimizer is not None:
        for k, v in optimizer.state_dict().items():
            arrays[f"optim.{k}"] = numpy.asarray(v)
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-" + os.path.basename(path) + ".", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            numpy.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _version():
    from . import __version__
    return __version__


def read_checkpoint(path) -> dict:
    """The raw contents of a checkpoint as a dict of NumPy arrays (checks the format tag)."""
    try:
        with numpy.load(os.fspath(path), allow_pickle=False) as z:
            raw = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc})") from None
    if str(raw.get("format", "")) != FORMAT:
        raise CheckpointError(f"{path}: not a tinyae checkpoint (format tag {raw.get('format')!r}, "
                              f"expected {FORMAT!r})")
    return raw


def _describe(name, kwargs):
    return f"builder {name!r} with {kwargs}" if name else "a hand-assembled model (no builder)"


def load_checkpoint(path, model=None, optimizer=None) -> Checkpoint:
    """Load a checkpoint.

    model=None: rebuild the model from the stored builder name and arguments.
    model given: load into it, after checking that its parameters have exactly the
        checkpoint's names and shapes (a :class:`CheckpointError` names the first difference
        and both architectures otherwise).
    optimizer: if given, its state is restored too (it must be of the saved class).
    The model's RNG states are restored as well.  Returns a :class:`Checkpoint`.
    """
    raw = read_checkpoint(path)
    name = str(raw["builder"])
    kwargs = json.loads(str(raw["builder_kwargs"]))
    if model is None:
        if not name:
            raise CheckpointError(f"{path}: the model was not made by a builder; create the model "
                                  "yourself and pass it as load_checkpoint(path, model)")
        from .models import build
        model = build(name, **kwargs)
        xp_dtype = json.loads(str(raw["meta"])).get("dtype")
        if xp_dtype and xp_dtype != str(model.parameters()[0].dtype):
            model.to(dtype=numpy.dtype(xp_dtype))
    params = {k[len("param."):]: v for k, v in raw.items() if k.startswith("param.")}
    _check_fits(path, params, model, name, kwargs)
    model.load_state_dict(params)
    set_rng_states(model, json.loads(str(raw["rng"])))
    optim_state = {k[len("optim."):]: v for k, v in raw.items() if k.startswith("optim.")}
    optim_class = str(raw["optimizer"])
    if optimizer is not None:
        if not optim_class:
            raise CheckpointError(f"{path}: holds no optimizer state")
        if optim_class != type(optimizer).__name__:
            raise CheckpointError(f"{path}: optimizer state is for {optim_class}, not {type(optimizer).__name__}")
        try:
            optimizer.load_state_dict(optim_state)
        except ValueError as exc:
            raise CheckpointError(f"{path}: optimizer state does not fit: {exc}") from None
    return Checkpoint(model=model, epoch=int(raw["epoch"]), history=json.loads(str(raw["history"])),
                      builder=name or None, builder_kwargs=kwargs, optimizer_state=optim_state,
                      optimizer_class=optim_class, meta=json.loads(str(raw["meta"])))


def _check_fits(path, params, model, name, kwargs):
    own = {n: tuple(p.shape) for n, p in model.named_parameters()}
    mine = model.builder if getattr(model, "builder", None) else ("", {})
    problems = []
    for n, shape in own.items():
        if n not in params:
            problems.append(f"parameter {n!r} {shape} is missing from the checkpoint")
        elif tuple(params[n].shape) != shape:
            problems.append(f"parameter {n!r} has shape {tuple(params[n].shape)} in the checkpoint "
                            f"but {shape} in the model")
    problems += [f"the checkpoint has parameter {n!r} {tuple(params[n].shape)} that the model lacks"
                 for n in params if n not in own]
    if problems:
        more = f" (and {len(problems) - 3} more differences)" if len(problems) > 3 else ""
        raise CheckpointError(
            f"checkpoint {os.fspath(path)} does not fit this model: it was written for "
            f"{_describe(name, kwargs)}, the model is {_describe(*mine)}: " + "; ".join(problems[:3]) + more)
