"""Answers to the backprop exercises: test data for tests/test_exercises.py, not shipped.

Only the bodies a learner writes are kept here; :func:`write_solutions` runs
``tinyae.exercises.start`` and puts each body where its template says ``raise
NotImplementedError`` (in order, at that line's indentation), so the solved files are the
templates themselves plus the answers.
"""
import re

from tinyae import exercises

ANSWERS = {   # file: the bodies, in the order of the NotImplementedError gaps
    "01_linear.py": [
        """\
self.weight.grad += dy.T @ self.x
self.bias.grad += dy.sum(axis=0)
return dy @ self.weight.data if need_dx else None
""",
    ],
    "02_activations.py": [
        """\
return dy * self.y * (1 - self.y) if need_dx else None
""",
        """\
return dy * (1 - self.y * self.y) if need_dx else None
""",
        """\
if not need_dx:
    return None
a = dy.dtype.type(self.negative_slope)
return np.where(self.mask, dy, dy * a)
""",
    ],
    "03_losses.py": [
        """\
scale = 1 / self.diff.size if self.reduction == "mean" else 1
return self.diff * self.diff.dtype.type(2 * scale)
""",
        """\
scale = 1 / self.logits.size if self.reduction == "mean" else 1
sigma = 1 / (1 + np.exp(-self.logits))
return (sigma - self.target) * self.logits.dtype.type(scale)
""",
    ],
    "04_autoencoder_chain.py": [
        """\
dx_hat = loss_fn.backward()
db = out.backward(dx_hat)
dh = dec.backward(db)
da = act.backward(dh)
enc.backward(da, need_dx=False)
""",
    ],
    "05_vae_latent.py": [
        """\
half = self.mu.dtype.type(0.5)
return self.mu, half * (np.exp(self.logvar) - 1)
""",
        """\
half, beta = mu.dtype.type(0.5), mu.dtype.type(beta)
std = np.exp(half * logvar)
return dz + beta * mu, dz * eps * std * half + beta * half * (np.exp(logvar) - 1)
""",
    ],
    "06_conv2d.py": [
        """\
(n, c, h, wd), (f, _, kh, kw), (pt, pb, pl, pr) = x_shape, w.shape, pads
dy_mat = as_matrix(dy)                                          # (F, N·OH·OW)
db = dy_mat.sum(axis=1)
dw = (dy_mat @ cols.T).reshape(w.shape)
dxpad = col2im(w.reshape(f, -1).T @ dy_mat, (n, c, pt + h + pb, pl + wd + pr), (kh, kw), stride, dy.shape[2:])
return dxpad[:, :, pt:pt + h, pl:pl + wd], dw, db
""",
    ],
    "07_maxpool2d.py": [
        """\
x, k, s = self.x, self.k, self.s
n, c = x.shape[:2]
dx = np.zeros_like(x)
for i in range(dy.shape[2]):
    for j in range(dy.shape[3]):
        window = x[:, :, s * i:s * i + k, s * j:s * j + k].reshape(n, c, k * k)
        first = window.argmax(axis=2)                       # the first maximum, row-major
        hit = np.arange(k * k) == first[:, :, None]         # (N, C, k·k)
        dx[:, :, s * i:s * i + k, s * j:s * j + k] += (hit * dy[:, :, i:i + 1, j]).reshape(n, c, k, k)
return dx if need_dx else None
""",
    ],
    "08_adam.py": [
        """\
b1, b2 = betas
m *= b1
m += (1 - b1) * grad
v *= b2
v += (1 - b2) * (grad * grad)
denom = np.sqrt(v) / np.sqrt(1 - b2 ** t) + eps
param -= lr / (1 - b1 ** t) * (m / denom)
""",
    ],
}

_GAP = re.compile(r"^( *)# your code[^\n]*\n\1raise NotImplementedError$", re.M)


def write_solutions(folder):
    """``folder`` with every exercise solved: the templates, each gap filled with its answer."""
    exercises.start(folder)
    for name, bodies in ANSWERS.items():
        path = folder / name
        text = path.read_text(encoding="utf-8")
        gaps = list(_GAP.finditer(text))
        assert len(gaps) == len(bodies), f"{name}: {len(gaps)} gaps in the template, {len(bodies)} answers"
        for gap, body in zip(reversed(gaps), reversed(bodies)):
            indent = gap.group(1)
            filled = "\n".join(indent + line if line else "" for line in body.splitlines())
            text = text[:gap.start()] + filled + text[gap.end():]
        path.write_text(text, encoding="utf-8")
    return folder
