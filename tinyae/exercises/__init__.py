"""Backpropagation exercises, with a checker that names the mistake.

    python -m tinyae.exercises start DIR          write the exercise files into DIR
    python -m tinyae.exercises check DIR [NAME]   check them: one line per exercise

Each exercise is one plain .py file: the math and the shapes in its docstring, the forward
given, ``raise NotImplementedError`` where you write the backward (or the update).  The
checker runs your code on small float64 inputs, compares it with tinyae's own
implementation, gradient-checks your backward against your own forward, and says what is
wrong (a transpose, a factor, a sign, a gradient overwritten instead of added, …) with the
section of the docs that derives it.  Then ``python examples/vae_mnist.py --layers DIR``
trains the main job's VAE with your Linear, LeakyReLU, Tanh, MSE and KL.
"""
from __future__ import annotations

import pathlib
import warnings
from dataclasses import dataclass
from types import SimpleNamespace

import numpy

from . import checks
from .checker import Learner, Mistake, NotWritten

__all__ = ["EXERCISES", "ExerciseError", "start", "check", "find", "load_layers"]

TEMPLATES = pathlib.Path(__file__).parent / "templates"


class ExerciseError(Exception):
    """A mistake in how the exercises were called (a folder, a name); one line."""


@dataclass(frozen=True)
class Exercise:
    file: str          # the file start writes, e.g. "01_linear.py"
    name: str          # what `check DIR NAME` accepts besides the number and the file name
    docs: str          # the section that derives it
    parts: tuple       # the checks (tinyae/exercises/checks.py), in order


EXERCISES = (
    Exercise("01_linear.py", "linear", "docs/backprop.md#linear-y-x-wt-b", (checks.linear,)),
    Exercise("02_activations.py", "activations", "docs/backprop.md#element-wise-activations",
             (checks.sigmoid, checks.tanh, checks.leaky_relu)),
    Exercise("03_losses.py", "losses", "docs/backprop.md#losses", (checks.mse, checks.bce_with_logits)),
    Exercise("04_autoencoder_chain.py", "chain", "docs/models.md#autoencoder", (checks.chain,)),
    Exercise("05_vae_latent.py", "vae", "docs/models.md#variational-autoencoder", (checks.kl, checks.latent)),
    Exercise("06_conv2d.py", "conv2d", "docs/backprop.md#backward-of-the-convolution", (checks.conv2d,)),
    Exercise("07_maxpool2d.py", "maxpool", "docs/backprop.md#max-pooling-routing-the-gradient", (checks.maxpool,)),
    Exercise("08_adam.py", "adam", "docs/backprop.md#optimizers", (checks.adam,)),
)

PASSED, NOT_STARTED, FAILED = "passed", "not started", "to fix"


def start(folder) -> list:
    """Write every exercise file into ``folder`` (made if needed); never overwrites a file."""
    folder = pathlib.Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ExerciseError(f"{folder} is a file, not a folder")
    taken = [e.file for e in EXERCISES if (folder / e.file).exists()]
    if taken:
        raise ExerciseError(f"{folder / taken[0]} already exists: start never overwrites your work "
                            "(choose a new folder, or move the old files away)")
    folder.mkdir(parents=True, exist_ok=True)
    for e in EXERCISES:
        (folder / e.file).write_text((TEMPLATES / e.file).read_text(encoding="utf-8"), encoding="utf-8")
    return [folder / e.file for e in EXERCISES]


def find(name) -> Exercise:
    """The exercise called ``name``: its number ("1", "01"), its name ("linear") or its file."""
    key = str(name).lower().removesuffix(".py")
    for i, e in enumerate(EXERCISES, start=1):
        if key in (str(i), f"{i:02d}", e.name, e.file.removesuffix(".py")):
            return e
    raise ExerciseError(f"no exercise {name!r}: say one of " + ", ".join(e.name for e in EXERCISES)
                        + " (or its number)")


def check(folder, exercise: Exercise) -> tuple:
    """(status, message): PASSED, NOT_STARTED or FAILED, and what to tell the learner."""
    path = (pathlib.Path(folder) / exercise.file).resolve()
    if not path.exists():
        return NOT_STARTED, "no file (python -m tinyae.exercises start writes it)"
    todo = []
    try:
        with warnings.catch_warnings(), numpy.errstate(all="ignore"):   # what is wrong is said once, below
            warnings.simplefilter("ignore")
            learner = Learner(path)
            for part in exercise.parts:
                try:
                    part(learner)
                except NotWritten as exc:
                    todo.append(str(exc))
    except Mistake as exc:
        return FAILED, f"{exc}  → {exercise.docs}"
    except Exception as exc:   # noqa: BLE001 (something the checks did not foresee: still one line)
        return FAILED, (f"the checker could not run this exercise ({type(exc).__name__}: {' '.join(str(exc).split())}): "
                        "are the given names, signatures and base classes unchanged?")
    if len(todo) == len(exercise.parts):
        return NOT_STARTED, ""
    if todo:
        return FAILED, f"{', '.join(todo)} still raise NotImplementedError (the rest passed)"
    return PASSED, ""


def load_layers(folder) -> SimpleNamespace:
    """The learner's Linear, LeakyReLU, Tanh, MSELoss and GaussianKL, for the main job's VAE
    (``examples/vae_mnist.py --layers DIR``); an ExerciseError unless their exercises pass."""
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise ExerciseError(f"{folder} is not a folder (python -m tinyae.exercises start {folder} makes one)")
    modules = {}
    for e in EXERCISES[:3] + EXERCISES[4:5]:
        status, message = check(folder, e)
        if status != PASSED:
            raise ExerciseError(f"{e.file} has not passed yet ({status}{': ' + message if message else ''}); "
                                f"python -m tinyae.exercises check {folder} {e.name}")
        modules[e.name] = Learner((folder / e.file).resolve()).module
    return SimpleNamespace(Linear=modules["linear"].Linear, LeakyReLU=modules["activations"].LeakyReLU,
                           Tanh=modules["activations"].Tanh, MSELoss=modules["losses"].MSELoss,
                           GaussianKL=modules["vae"].GaussianKL)
