"""The checkerboard comparison's conv autoencoders (conv-ae-transposed, conv-ae-upsample,
conv-ae-unpool) against their PyTorch twins from benchmarks/torch_models.py, in float64: the
same loss and every parameter gradient to 1e-10, and 3 Adam steps with the same losses to
1e-9 (the twins benchmarks/reproduce.py trains, setups survey-conv-*)."""
import pathlib
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tinyae.models import build  # noqa: E402
from tinyae.nn.pooling import MaxPool2d  # noqa: E402
from tinyae.optim import Adam  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))
import torch_models  # noqa: E402  (the benchmarks' twins)

VARIANTS = ["conv-ae-transposed", "conv-ae-upsample", "conv-ae-unpool"]


def batch(n=4, seed=0):
    return np.random.default_rng(seed).uniform(0.0, 1.0, size=(n, 1, 28, 28))


def rel_err(ours, theirs):
    """max |ours − theirs| / max |theirs|: relative to the tensor's largest entry."""
    ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    return float(np.max(np.abs(ours - theirs)) / max(np.max(np.abs(theirs)), 1e-300))


def pair(name, seed=1, dtype="float64"):
    ours = build(name, seed=seed).double()
    ours.train()
    return ours, torch_models.twin(ours, dtype=dtype)


def test_twins_have_the_same_layers_and_weight_layouts():
    ours, theirs = pair("conv-ae-transposed")
    convt = [m for m in theirs.decoder if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [(m.in_channels, m.out_channels, m.stride, m.padding, m.output_padding) for m in convt] == \
        [(8, 16, (2, 2), (1, 1), (1, 1)), (16, 1, (2, 2), (1, 1), (1, 1))]
    assert tuple(theirs.decoder[0].weight.shape) == (8, 16, 3, 3) == ours.decoder[0].weight.shape
    for name, arr in ours.state_dict().items():
        t = theirs.state_dict()[name]
        assert t.dtype == torch.float64 and np.array_equal(t.numpy(), arr), name
    ours, theirs = pair("conv-ae-unpool")
    unpools = [m for m in theirs.decoder if isinstance(m, torch_models.UnpoolFrom)]
    pools = [m for m in theirs.encoder if isinstance(m, torch_models.PoolKeepingIndices)]
    assert len(unpools) == len(pools) == 2
    assert unpools[0]._keep[0] is pools[1] and unpools[1]._keep[0] is pools[0]   # SegNet's pairing
    assert [n for n, _ in theirs.named_parameters()] == [n for n, _ in ours.named_parameters()]


@pytest.mark.parametrize("name", VARIANTS)
def test_loss_and_gradients_match_torch_float64(name):
    ours, theirs = pair(name)
    x = batch()
    ours.zero_grad()
    total, _ = ours.loss(x)
    ours.backward_loss()
    t_total = theirs.loss(torch.from_numpy(x))
    t_total.backward()
    assert 1e-4 < t_total.item() < 1.0              # a real MSE per pixel, not a degenerate 0
    assert abs(float(total) - t_total.item()) <= 1e-10 * abs(t_total.item())
    tgrads = dict(theirs.named_parameters())
    names = [n for n, _ in ours.named_parameters()]
    assert sorted(names) == sorted(tgrads)
    for pname, p in ours.named_parameters():
        g = tgrads[pname].grad.numpy()
        assert np.max(np.abs(g)) > 0, pname           # every parameter gets a gradient
        assert rel_err(p.grad, g) < 1e-10, (name, pname, rel_err(p.grad, g))
    if name == "conv-ae-unpool":                     # the same maxima chosen by both pools
        for ours_pool, keep in zip([m for m in ours.encoder if isinstance(m, MaxPool2d)],
                                   [m for m in theirs.encoder if isinstance(m, torch_models.PoolKeepingIndices)]):
            assert np.array_equal(ours_pool.indices(), keep.indices.numpy())


@pytest.mark.parametrize("name", VARIANTS)
def test_three_adam_steps_track_torch(name):
    ours, theirs = pair(name, seed=2)
    opt = Adam(ours.parameters(), lr=1e-3)
    topt = torch.optim.Adam(theirs.parameters(), lr=1e-3)
    losses, tlosses = [], []
    for step in range(3):
        x = batch(seed=10 + step)
        opt.zero_grad()
        total, _ = ours.loss(x)
        ours.backward_loss()
        opt.step()
        losses.append(float(total))
        topt.zero_grad()
        t_total = theirs.loss(torch.from_numpy(x))
        t_total.backward()
        topt.step()
        tlosses.append(t_total.item())
    ours.eval()
    theirs.eval()
    x = batch(seed=20)
    losses.append(float(ours.loss(x)[0]))              # after the third step
    with torch.no_grad():
        tlosses.append(theirs.loss(torch.from_numpy(x)).item())
    np.testing.assert_allclose(losses, tlosses, rtol=1e-9, atol=0)
    assert losses[0] != losses[-1]                     # the steps moved the weights
    tstate = theirs.state_dict()
    for pname, arr in ours.state_dict().items():
        assert rel_err(arr, tstate[pname].numpy()) < 1e-9, (name, pname)


@pytest.mark.parametrize("name", ["conv-ae-transposed", "conv-ae-upsample"])
def test_float32_twin_is_what_reproduce_trains(name):
    """The default twin (float32, as benchmarks/reproduce.py trains it) gives the float64 loss to float32 rounding."""
    ours, theirs = pair(name, dtype="float32")
    assert all(p.dtype == torch.float32 for p in theirs.parameters())
    x = batch()
    t_total = theirs.loss(torch.from_numpy(x.astype(np.float32))).item()
    assert t_total == pytest.approx(float(ours.loss(x)[0]), rel=1e-5)
