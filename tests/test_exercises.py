"""The backprop exercises (tinyae/exercises): the checker passes correct solutions, names planted
mistakes, shows a learner's exception as their file and line, never overwrites, and the learner's
layers train the main job's VAE to tinyae's printed losses.

The solutions are the templates with the answers of tests/exercise_answers.py filled in (test
data, not shipped with the exercises); each planted mistake is one or two line edits of one.
"""
import os
import pathlib
import re
import subprocess
import sys

import pytest

from exercise_answers import write_solutions
from tinyae import exercises

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def solutions(tmp_path_factory):
    """A folder with every exercise solved."""
    return write_solutions(tmp_path_factory.mktemp("solutions"))


def run(*args, **kw):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, timeout=300, **kw)


def planted(tmp_path, solutions, name, edits):
    """A folder holding exercise ``name``'s solution with ``edits`` ((old, new) pairs) made."""
    exercise = exercises.find(name)
    text = (solutions / exercise.file).read_text(encoding="utf-8")
    for old, new in edits:
        assert text.count(old) == 1, f"the solution changed: {old!r}"
        text = text.replace(old, new)
    (tmp_path / exercise.file).write_text(text, encoding="utf-8")
    return exercise


@pytest.mark.parametrize("exercise", exercises.EXERCISES, ids=lambda e: e.name)
def test_the_solutions_pass(exercise, solutions):
    assert exercises.check(solutions, exercise) == (exercises.PASSED, "")


FWD_X = "            self.y = 1 / (1 + np.exp(-x))"            # Sigmoid's forward, made to keep x too
MISTAKES = [   # (exercise, edits, what the checker must say)
    ("linear", [("dy.T @ self.x", "self.x.T @ dy")], "transposed"),
    ("linear", [("self.weight.grad += dy.T @ self.x", "self.weight.grad = dy.T @ self.x")],
     "overwrites .grad (=) instead of adding into it (+=)"),
    ("linear", [("self.bias.grad += dy.sum(axis=0)", "self.bias.grad += dy")], "sum over the batch (axis 0)"),
    ("linear", [("self.bias.grad += dy.sum(axis=0)", "self.bias.grad = dy")], "sum over the batch (axis 0)"),
    ("linear", [("self.bias.grad += dy.sum(axis=0)", "self.bias.grad += dy[0]")], "only the first sample's dy"),
    ("linear", [("self.bias.grad += dy.sum(axis=0)", "self.bias.grad += dy.mean(axis=0)")],
     "divided by N = 5, the batch size"),
    ("linear", [("return dy @ self.weight.data", "return -dy @ self.weight.data")], "dx: the sign is flipped"),
    ("linear", [("return dy @ self.weight.data if need_dx else None", "return dy @ self.weight.data")],
     "need_dx=False) returned an array"),
    ("activations", [(FWD_X, FWD_X.replace("self.y =", "self.x, self.y = x,")),
                     ("dy * self.y * (1 - self.y)", "dy * self.x * (1 - self.x)")],
     "computed with the input x where the formula needs the output y = σ(x)"),
    ("activations", [("dy * self.y * (1 - self.y) if", "dy * self.y if")], "the factor (1 − y) is missing"),
    ("activations", [("dy * self.y * (1 - self.y) if", "-dy * self.y * (1 - self.y) if")], "the sign is flipped"),
    ("activations", [("dy * (1 - self.y * self.y)", "dy * (1 - self.y)")], "the square is missing"),
    ("activations", [("dy * (1 - self.y * self.y)", "dy * (1 - np.tanh(self.y) ** 2)")], "tanh applied twice"),
    ("activations", [("np.where(self.mask, dy, dy * a)", "np.where(self.mask, dy, 0 * dy)")], "ReLU's derivative"),
    ("activations", [("np.where(self.mask, dy, dy * a)", "np.where(self.mask, dy * a, dy)")], "slopes swapped"),
    ("activations", [("np.where(self.mask, dy, dy * a)", "dy * np.where(self.mask, 1, self.negative_slope)")],
     "is float64 for float32 inputs"),
    ("losses", [("self.diff.dtype.type(2 * scale)", "self.diff.dtype.type(scale)")], "the 2 of d(p − t)²/dp"),
    ("losses", [("scale = 1 / self.diff.size if", "scale = 1 / len(self.diff) if")], "by the batch size N only"),
    ("losses", [('scale = 1 / self.diff.size if self.reduction == "mean" else 1', "scale = 1 / self.diff.size")],
     "reduction 'sum' has no 1/n"),
    ("losses", [("(sigma - self.target) *", "(self.target - sigma) *")], "the sign is flipped"),
    ("losses", [("(sigma - self.target) *", "(self.logits - self.target) *")], "the sigmoid is missing"),
    ("losses", [("return (sigma - self.target) * self.logits.dtype.type(scale)", "return sigma - self.target")],
     "the division by n = N·D = 35"),
    ("chain", [("    db = out.backward(dx_hat)\n", "    db = dx_hat\n")], "the Sigmoid's backward is missing"),
    ("chain", [("    da = act.backward(dh)\n", "    da = dh\n")], "the ReLU's backward is missing"),
    ("chain", [("    dh = dec.backward(db)\n", "    dec.backward(db)\n    dh = dec.backward(db)\n")],
     "an extra factor 2"),
    ("chain", [("    dx_hat = loss_fn.backward()\n", "    dx_hat = -loss_fn.backward()\n")], "the sign is flipped"),
    ("vae", [("half * (np.exp(self.logvar) - 1)", "np.exp(self.logvar) - 1")], "an extra factor 2"),
    ("vae", [("return self.mu, half", "return -self.mu, half")], "dμ: the sign is flipped"),
    ("vae", [("return self.mu, half", "return self.mu / len(self.mu), half")], "divided by N = 5, the batch size"),
    ("vae", [("std = np.exp(half * logvar)", "std = np.exp(logvar)")], "exp(ℓ) where exp(½ℓ) belongs"),
    ("vae", [("dz * eps * std * half +", "dz * eps * std +")], "the ½ of ∂z/∂ℓ = ½ ε σ is missing"),
    ("vae", [("return dz + beta * mu,", "return dz,")], "the KL's gradient β μ is missing"),
    ("vae", [(" + beta * half * (np.exp(logvar) - 1)", "")], "the KL's gradient β·½(e^ℓ − 1) is missing"),
    ("conv2d", [("return dxpad[:, :, pt:pt + h, pl:pl + wd], dw, db", "return dxpad, dw, db")],
     "the padding border is still there"),
    ("conv2d", [("(dy_mat @ cols.T).reshape", "(cols @ dy_mat.T).reshape")], "the product is transposed"),
    ("conv2d", [("db = dy_mat.sum(axis=1)", "db = dy.sum(axis=0)")], "sum over every axis but the channel's"),
    ("conv2d", [("reshape(w.shape)\n", "reshape(w.shape)[:, :, ::-1, ::-1]\n")], "the kernel turned by 180°"),
    ("conv2d", [("db = dy_mat.sum(axis=1)", "db = -dy_mat.sum(axis=1)")], "db: the sign is flipped"),
    ("maxpool", [("hit = np.arange(k * k) == first[:, :, None]", "hit = window == window.max(axis=2, keepdims=True)")],
     "every tied maximum got the gradient"),
    ("maxpool", [("first = window.argmax(axis=2)", "first = k * k - 1 - window[:, :, ::-1].argmax(axis=2)")],
     "the last maximum got the gradient"),
    ("maxpool", [("dx[:, :, s * i:s * i + k, s * j:s * j + k] += (hit * dy[:, :, i:i + 1, j]).reshape(n, c, k, k)",
                  "block = hit.reshape(n, c, k, k)\n                dx[:, :, s * i:s * i + k, s * j:s * j + k][block] = "
                  "np.broadcast_to(dy[:, :, i:i + 1, j:j + 1], block.shape)[block]")],
     "don't assign (=)"),
    ("maxpool", [("hit = np.arange(k * k) == first[:, :, None]", "hit = np.full((n, c, k * k), 1 / (k * k))")],
     "average pooling's backward"),
    ("adam", [("    denom = np.sqrt(v) / np.sqrt(1 - b2 ** t) + eps\n    param -= lr / (1 - b1 ** t) * (m / denom)",
               "    param -= lr * m / (np.sqrt(v) + eps)")], "no bias correction"),
    ("adam", [("    param -= lr / (1 - b1 ** t) * (m / denom)", "    param -= lr * (m / denom)")],
     "m is not bias-corrected"),
    ("adam", [("denom = np.sqrt(v) / np.sqrt(1 - b2 ** t) + eps", "denom = np.sqrt(v / (1 - b2 ** t) + eps)")],
     "ε inside the square root"),
    ("adam", [("v += (1 - b2) * (grad * grad)", "v += (1 - b2) * grad")], "the square g² is missing"),
    ("adam", [("    m *= b1\n    m += (1 - b1) * grad", "    m = b1 * m + (1 - b1) * grad")], "update them in place"),
    ("adam", [("param -= lr /", "param += lr /")], "the sign is flipped"),
    ("adam", [("b2 ** t)", "b2 ** (t + 1))"), ("b1 ** t)", "b1 ** (t + 1))")], "uses t + 1"),
    ("adam", [("    denom = np.sqrt(v) / np.sqrt(1 - b2 ** t) + eps\n    param -= lr / (1 - b1 ** t) * (m / denom)",
               "    param -= lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t) * m / (np.sqrt(v) + eps)")],
     "ε added to √v, not to √v̂"),
    ("conv2d", [("db = dy_mat.sum(axis=1)", "db = dy_mat.sum(axis=1) / n")], "divided by N = 3, the batch size"),
]


@pytest.mark.parametrize("name,edits,says", MISTAKES, ids=[f"{m[0]}-{m[2][:30]}" for m in MISTAKES])
def test_a_planted_mistake_is_named(tmp_path, solutions, name, edits, says):
    exercise = planted(tmp_path, solutions, name, edits)
    status, message = exercises.check(tmp_path, exercise)
    assert status == exercises.FAILED
    assert says in message
    assert message.endswith(f"→ {exercise.docs}") and "\n" not in message


def test_every_exercise_has_three_planted_mistakes():
    counts = {e.name: sum(m[0] == e.name for m in MISTAKES) for e in exercises.EXERCISES}
    assert min(counts.values()) >= 3, counts


def test_a_learners_exception_shows_their_file_and_line_only(tmp_path, solutions):
    planted(tmp_path, solutions, "activations", [("dy * self.y * (1 - self.y)", "dy * self.x * (1 - self.x)")])
    result = run("-m", "tinyae.exercises", "check", str(tmp_path), "activations")
    line_no = next(i for i, line in enumerate((tmp_path / "02_activations.py").read_text().splitlines(), 1)
                   if "self.x * (1 - self.x)" in line)
    assert result.returncode == 1
    assert f"02_activations.py:{line_no} in backward: AttributeError: 'Sigmoid' object has no attribute 'x'" \
        in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert "tinyae/exercises" not in result.stdout and result.stderr == ""
    assert len(result.stdout.splitlines()) == 1


def test_a_changed_skeleton_is_one_line_too(tmp_path, solutions):
    planted(tmp_path, solutions, "linear", [("class Linear(Module):", "class Linear:")])
    status, message = exercises.check(tmp_path, exercises.find("linear"))
    assert status == exercises.FAILED and message.startswith("the checker could not run this exercise")
    assert "\n" not in message


def test_start_then_check_then_partial_work(tmp_path, solutions):
    folder = tmp_path / "mine"
    result = run("-m", "tinyae.exercises", "start", str(folder))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in folder.iterdir()) == [e.file for e in exercises.EXERCISES]
    for e in exercises.EXERCISES:                  # a docstring with the math, and the gap to fill
        text = (folder / e.file).read_text()
        assert text.startswith('"""Exercise') and "raise NotImplementedError" in text and "Check:" in text
    result = run("-m", "tinyae.exercises", "check", str(folder))
    assert result.returncode == 0                  # nothing started: nothing failed
    assert result.stdout.count("not started") == len(exercises.EXERCISES) + 1   # the lines and the summary
    solved = (solutions / "02_activations.py").read_text()
    template = (folder / "02_activations.py").read_text()
    sigmoid_only = template.replace("        # your code\n        raise NotImplementedError",
                                    "        return dy * self.y * (1 - self.y) if need_dx else None", 1)
    assert solved != sigmoid_only
    (folder / "02_activations.py").write_text(sigmoid_only)
    status, message = exercises.check(folder, exercises.find("2"))
    assert status == exercises.FAILED
    assert message.startswith("Tanh.backward, LeakyReLU.backward still raise NotImplementedError")
    result = run("-m", "tinyae.exercises", "check", str(folder), "02_activations.py")
    assert result.returncode == 1


def test_start_refuses_to_overwrite(tmp_path):
    exercises.start(tmp_path)
    mine = tmp_path / "01_linear.py"
    mine.write_text("# my work\n")
    result = run("-m", "tinyae.exercises", "start", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "already exists" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert mine.read_text() == "# my work\n"


@pytest.mark.parametrize("argv,says", [(["check", "{tmp}/nowhere"], "is not a folder"),
                                       (["check", "{tmp}", "softmax"], "no exercise 'softmax'")])
def test_command_line_mistakes_are_one_line(tmp_path, argv, says):
    result = run("-m", "tinyae.exercises", *[a.format(tmp=tmp_path) for a in argv])
    assert result.returncode == 2 and says in result.stderr and len(result.stderr.splitlines()) == 1


def test_the_docs_pointers_name_real_sections():
    markdown = pytest.importorskip("markdown")
    for e in exercises.EXERCISES:
        page, anchor = e.docs.split("#")
        html = markdown.markdown((ROOT / page).read_text(encoding="utf-8"), extensions=["toc"])
        assert f'id="{anchor}"' in html, e.docs


def test_your_layers_train_the_main_job_to_tinyaes_losses(tmp_path, solutions):
    env = {**os.environ, "TINYAE_DATA": str(tmp_path / "none")}
    flags = ["--data", "embedded", "--limit", "200", "--epochs", "2", "--no-progress", "--out", str(tmp_path / "run")]
    result = run("examples/vae_mnist.py", "--layers", str(solutions), *flags, env=env)
    assert result.returncode == 0, result.stderr
    epochs = re.findall(r"^epoch \d/2 .*(?=  \()", result.stdout, flags=re.M)
    assert len(epochs) == 4 and epochs[:2] == epochs[2:]          # yours, then tinyae's: the same lines
    assert result.stdout.splitlines()[-1] == "your layers: every printed loss equals tinyae's (2 epochs, train and test)"
    exercises.start(tmp_path / "fresh")                            # not done yet: refused in one line
    result = run("examples/vae_mnist.py", "--layers", str(tmp_path / "fresh"), *flags, env=env)
    assert result.returncode == 2
    assert result.stderr.startswith("error: --layers: 01_linear.py has not passed yet (not started)")
