"""Whole models against the same models built in PyTorch (weights copied), in float64:
the loss and every parameter gradient within 1e-6 relative, and 20 Adam steps that track
PyTorch's parameters."""
import pathlib
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from tinyae.losses import BCEWithLogitsLoss, MSELoss  # noqa: E402
from tinyae.models import TiedLinear, build  # noqa: E402
from tinyae.optim import Adam  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))
from torch_models import ExamplesVAE, torch_layer as to_torch  # noqa: E402  (the benchmarks' twins)
from torch_models import EXAMPLES_NAMES as OURS_TO_EXAMPLES  # noqa: E402

RTOL = 1e-6
# PyTorch notes that an even kernel with padding="same" pads a copy of the input: expected here
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")


# -- the same architecture in PyTorch -------------------------------------------------------

class TorchTied(torch.nn.Module):
    """PyTorch twin of TiedLinear: y = x W + c with W the encoder Linear's weight."""

    def __init__(self, linear, out_features):
        super().__init__()
        self.linear = [linear]           # a list: not registered, the weight is the encoder's
        self.bias = torch.nn.Parameter(torch.zeros(out_features, dtype=torch.float64))

    def forward(self, x):
        return x @ self.linear[0].weight + self.bias


def recon_torch(loss, out, target):
    if isinstance(loss, BCEWithLogitsLoss):
        return F.binary_cross_entropy_with_logits(out, target, reduction=loss.reduction)
    assert isinstance(loss, MSELoss)
    return F.mse_loss(out, target, reduction=loss.reduction)


class TorchAE(torch.nn.Module):
    def __init__(self, ours):
        super().__init__()
        self.ours = [ours]
        self.encoder, self.decoder = to_torch(ours.encoder), to_torch(ours.decoder)

    def loss(self, x, noise=None):
        ours = self.ours[0]
        xin = x
        if ours.corruption is not None:
            kind, amount = ours.corruption
            xin = x + amount * noise if kind == "gaussian" else x * noise
        h = self.encoder(xin)
        total = recon_torch(ours.recon_loss, self.decoder(h), x)
        pen = ours.penalty
        if pen is not None:
            c = 1.0 / x.shape[0] if pen.reduction == "mean" else 1.0
            if pen.name == "sparsity" and hasattr(pen, "rho"):
                rh = h.mean(0)
                kl = pen.rho * torch.log(pen.rho / rh) + (1 - pen.rho) * torch.log((1 - pen.rho) / (1 - rh))
                total = total + pen.beta * kl.sum() * (1.0 if pen.reduction == "mean" else x.shape[0])
            else:
                total = total + pen.lam * c * h.abs().sum()
        return total


class TorchVAE(torch.nn.Module):
    def __init__(self, ours):
        super().__init__()
        self.ours = [ours]
        self.encoder, self.decoder = to_torch(ours.encoder), to_torch(ours.decoder)
        self.mean_head, self.logvar_head = to_torch(ours.mean_head), to_torch(ours.logvar_head)

    def loss(self, x, eps):
        ours = self.ours[0]
        h = self.encoder(x)
        mu, logvar = self.mean_head(h), self.logvar_head(h)
        z = mu + torch.exp(0.5 * logvar) * eps
        kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        if ours.kl.reduction == "mean":
            kld = kld / x.shape[0]
        return recon_torch(ours.recon_loss, self.decoder(z), x) + ours.beta * kld


# PyTorch examples/vae/main.py, as written there; its names ↔ ours
EXAMPLES_NAMES = {theirs: ours for ours, theirs in OURS_TO_EXAMPLES.items()}


def copy_into(torch_model, ours, rename=None):
    """Copy our parameters into ``torch_model`` by name; ``rename``: {our prefix: torch prefix}."""
    state = {name: torch.from_numpy(arr.copy()) for name, arr in ours.state_dict().items()}
    if rename:
        state = {rename[k.rsplit(".", 1)[0]] + "." + k.rsplit(".", 1)[1]: v for k, v in state.items()}
    torch_model.load_state_dict(state, strict=True)
    return torch_model.double()


def grads_of(torch_model, rename=None):
    out = {}
    for name, p in torch_model.named_parameters():
        if rename:
            prefix, rest = name.split(".", 1)
            name = rename[prefix] + "." + rest
        out[name] = p.grad.numpy()
    return out


def assert_close(ours, theirs, what, rtol=RTOL):
    """Relative to the tensor's largest entry, so near-zero entries don't dominate."""
    scale = max(np.max(np.abs(theirs)), 1e-300)
    err = np.max(np.abs(ours - theirs)) / scale
    assert err < rtol, f"{what}: max |ours - torch| / max |torch| = {err:.2e}"
    return err


def compare(ours, torch_model, x, rename=None, **noise):
    """Loss and every gradient of ``ours`` against ``torch_model`` on the batch x."""
    ours.double().train()
    ours.zero_grad()
    total, _ = ours.loss(x, **noise)
    ours.backward_loss()
    xt = torch.from_numpy(x)
    tnoise = {k: torch.from_numpy(np.asarray(v, dtype=np.float64)) for k, v in noise.items()}
    torch_model.zero_grad()
    t_total = torch_model.loss(xt, **tnoise)
    t_total.backward()
    errs = {"loss": abs(float(total) - t_total.item()) / abs(t_total.item())}
    assert errs["loss"] < RTOL
    tg = grads_of(torch_model, rename)
    for name, p in ours.named_parameters():
        errs[name] = assert_close(p.grad, tg[name], name)
    return max(errs.values())


def uniform(shape, lo=0.0, hi=1.0, seed=0):
    return np.random.default_rng(seed).uniform(lo, hi, size=shape)


# -- loss and gradients ---------------------------------------------------------------------
@pytest.mark.parametrize("name,shape,lo", [
    ("dense-196-64-16", (6, 196), -1.0),
    ("ae-784-32", (6, 784), 0.0),
    ("ae-784-250-16", (6, 784), 0.0),
    ("conv-ae", (3, 1, 28, 28), 0.0),
])
def test_autoencoders_match_torch(name, shape, lo):
    ours = build(name, seed=1).double()
    compare(ours, copy_into(TorchAE(ours), ours), uniform(shape, lo))


@pytest.mark.parametrize("corruption,noise", [
    (["mask", 0.25], lambda: (uniform((6, 196), seed=3) >= 0.25).astype(np.float64)),
    (["gaussian", 0.3], lambda: np.random.default_rng(3).standard_normal((6, 196))),
])
def test_denoising_matches_torch(corruption, noise):
    ours = build("dense-196-64-16", corruption=corruption, seed=2).double()
    compare(ours, copy_into(TorchAE(ours), ours), uniform((6, 196), -1.0), noise=noise())


@pytest.mark.parametrize("penalty", [["l1", 0.01], ["kl", 0.1, 3.0]])
def test_sparse_matches_torch(penalty):
    ours = build("sparse-ae", in_features=50, hidden=12, penalty=penalty, seed=3).double()
    compare(ours, copy_into(TorchAE(ours), ours), uniform((8, 50)))


def test_vae_196_matches_torch():
    ours = build("vae-196-64-16", latent=3, beta=2.0, seed=4).double()
    eps = np.random.default_rng(5).standard_normal((6, 3))
    compare(ours, copy_into(TorchVAE(ours), ours), uniform((6, 196), -1.0), eps=eps)


def test_vae_784_400_20_matches_pytorch_examples_vae():
    ours = build("vae-784-400-20", seed=5).double()
    theirs = ExamplesVAE()
    rename = {v: k for k, v in EXAMPLES_NAMES.items()}
    copy_into(theirs, ours, rename=rename)
    eps = np.random.default_rng(6).standard_normal((8, 20))
    compare(ours, theirs, uniform((8, 784)), rename=EXAMPLES_NAMES, eps=eps)


def test_tied_weights_match_torch():
    ours = build("mlp-ae", sizes=[30, 10, 4], activation="tanh", tied=True, seed=6).double()
    enc = to_torch(ours.encoder)
    tied = [TorchTied(enc[2], 10), torch.nn.Tanh(), TorchTied(enc[0], 30)]

    class Tied(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder, self.decoder = enc, torch.nn.Sequential(*tied)

        def loss(self, x):
            return F.mse_loss(self.decoder(self.encoder(x)), x)

    theirs = Tied()
    assert [n for n, _ in theirs.named_parameters()] == [n for n, _ in ours.named_parameters()]
    assert isinstance(ours.decoder[0], TiedLinear)
    compare(ours, copy_into(theirs, ours), uniform((5, 30)))


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "leaky_relu"])
def test_contractive_exact_matches_torch_double_backward(activation):
    """PyTorch computes ‖∂h/∂x‖²_F with autograd (create_graph) and differentiates that again,
    an independent route to the penalty's gradient (incl. the s'' term)."""
    ours = build("contractive-ae", sizes=[9, 5], activation=activation, lam=0.7, loss="mse",
                 negative_slope=0.2, seed=7).double()

    class Contractive(TorchAE):
        def loss(self, x):
            x = x.clone().requires_grad_(True)
            h = self.encoder(x)
            jac2 = 0.0
            for j in range(h.shape[1]):      # row j of every J_n: ∂h_nj/∂x_n (batch rows are independent)
                g, = torch.autograd.grad(h[:, j].sum(), x, create_graph=True)
                jac2 = jac2 + (g ** 2).sum()
            return F.mse_loss(self.decoder(h), x.detach()) + 0.7 * jac2 / x.shape[0]

    compare(ours, copy_into(Contractive(ours), ours), uniform((6, 9), -1.0))


def test_contractive_stochastic_matches_torch():
    ours = build("contractive-ae", sizes=[9, 6, 4], activation="tanh", lam=0.7, mode="stochastic",
                 sigma=0.05, n_samples=3, loss="mse", seed=8).double()
    eps = np.random.default_rng(9).standard_normal((3, 6, 9))

    class Stochastic(TorchAE):
        def loss(self, x, eps):
            h0 = self.encoder(x)
            pen = sum(((self.encoder(x + 0.05 * e) - h0) ** 2).sum() for e in eps)
            return F.mse_loss(self.decoder(h0), x) + 0.7 * pen / (3 * 0.05 ** 2 * x.shape[0])

    compare(ours, copy_into(Stochastic(ours), ours), uniform((6, 9), -1.0), eps=eps)


# -- 20 Adam steps ----------------------------------------------------------------------------
@pytest.mark.parametrize("name,shape,lo,vae", [
    ("dense-196-64-16", (16, 196), -1.0, False),
    ("vae-784-400-20", (16, 784), 0.0, True),
    ("conv-ae", (4, 1, 28, 28), 0.0, False),
])
def test_twenty_adam_steps_track_torch(name, shape, lo, vae):
    ours = build(name, seed=10).double()
    theirs = copy_into((TorchVAE if vae else TorchAE)(ours), ours)
    opt = Adam(ours.parameters(), lr=1e-3)
    topt = torch.optim.Adam(theirs.parameters(), lr=1e-3)
    rng = np.random.default_rng(11)
    for step in range(20):
        x = rng.uniform(lo, 1.0, size=shape)
        noise = {"eps": rng.standard_normal((shape[0], 20))} if vae else {}
        opt.zero_grad()
        ours.loss(x, **noise)
        ours.backward_loss()
        opt.step()
        topt.zero_grad()
        theirs.loss(torch.from_numpy(x), **{k: torch.from_numpy(v) for k, v in noise.items()}).backward()
        topt.step()
    tstate = theirs.state_dict()
    for pname, arr in ours.state_dict().items():
        assert_close(arr, tstate[pname].numpy(), f"{name} {pname} after 20 steps")
