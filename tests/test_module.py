"""Parameter, Module and Sequential: registration, PyTorch-style names, state dicts, modes, dtype moves."""
from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinyae import nn
from tinyae.gradcheck import check_module
from tinyae.nn import Module, Parameter


def mlp(seed=0):
    return nn.Sequential(nn.Linear(6, 5, rng=seed), nn.ReLU(), nn.Linear(5, 3, rng=seed + 1), nn.Sigmoid())


class TwoHeads(Module):
    """A custom module: a shared trunk and two heads, registered as attributes."""

    def __init__(self):
        super().__init__()
        self.trunk = nn.Linear(4, 3, rng=0)
        self.act = nn.Tanh()
        self.head = nn.Sequential(nn.Linear(3, 2, rng=1), nn.Linear(2, 2, rng=2))
        self.scale = Parameter(np.ones(2, dtype=np.float32))


def test_parameter_basics():
    p = Parameter(np.arange(6, dtype=np.float32).reshape(2, 3))
    assert p.shape == (2, 3) and p.dtype == np.float32
    assert p.grad.shape == (2, 3) and p.grad.dtype == np.float32 and not p.grad.any()
    assert "(2, 3)" in repr(p)


def test_named_parameters_follow_pytorch():
    model = mlp()
    names = [n for n, _ in model.named_parameters()]
    assert names == ["0.weight", "0.bias", "2.weight", "2.bias"]
    shapes = [p.shape for p in model.parameters()]
    assert shapes == [(5, 6), (5,), (3, 5), (3,)]
    assert model.num_parameters() == 5 * 6 + 5 + 3 * 5 + 3
    assert model.parameters()[2] is model[2].weight


def test_nested_and_custom_module_names():
    m = TwoHeads()
    assert [n for n, _ in m.named_parameters()] == [
        "scale", "trunk.weight", "trunk.bias", "head.0.weight", "head.0.bias", "head.1.weight", "head.1.bias"]
    assert [n for n, _ in m.named_modules()] == ["", "trunk", "act", "head", "head.0", "head.1"]
    assert list(m.children()) == [m.trunk, m.act, m.head]
    outer = nn.Sequential(nn.Sequential(nn.Identity(), nn.Linear(2, 2)), nn.Linear(2, 1))
    assert [n for n, _ in outer.named_parameters()] == ["0.1.weight", "0.1.bias", "1.weight", "1.bias"]


def test_shared_parameter_appears_once():
    shared, other = nn.Linear(3, 3, rng=0), nn.Linear(3, 3, rng=1)
    other.weight, other.bias = shared.weight, shared.bias   # two layers, one pair of Parameters
    model = nn.Sequential(shared, nn.Tanh(), other)
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias"]
    assert model.num_parameters() == 12

    class Tied(Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.Linear(4, 2, rng=0)
            self.dec = nn.Linear(2, 4, rng=1)
            self.also = self.enc.weight  # the same Parameter under a second name

    # root parameters come first, then each submodule's; a Parameter already seen is skipped
    assert [n for n, _ in Tied().named_parameters()] == ["also", "enc.bias", "dec.weight", "dec.bias"]
    assert len(Tied().parameters()) == 4


def test_tied_weights_accumulate_both_uses():
    """Two Linear layers sharing one weight Parameter: its grad is the sum of both uses,
    which the float64 gradient check (perturbing the one shared array) confirms."""
    enc, dec = nn.Linear(4, 4, rng=0), nn.Linear(4, 4, rng=1)
    dec.weight = enc.weight
    model = nn.Sequential(enc, nn.Tanh(), dec)
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias", "2.bias"]
    x = np.random.default_rng(0).standard_normal((3, 4))
    assert check_module(model, x, mode="full") < 1e-6
    # and the accumulated grad differs from either use alone
    model.zero_grad()
    model.backward(np.ones((3, 4)))
    total = enc.weight.grad.copy()
    dec.zero_grad()
    dec.backward(np.ones((3, 4)))
    assert not np.allclose(total, enc.weight.grad)


def test_reassigning_and_deleting_attributes():
    layer = nn.Linear(3, 2)
    layer.bias = None
    assert [n for n, _ in layer.named_parameters()] == ["weight"]
    layer.extra = Parameter(np.zeros(2, np.float32))
    assert [n for n, _ in layer.named_parameters()] == ["weight", "extra"]
    del layer.extra
    assert [n for n, _ in layer.named_parameters()] == ["weight"]
    seq = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    setattr(seq, "0", nn.Identity())
    assert seq.parameters() == []


def test_subclass_must_call_super_init():
    class Broken(Module):
        def __init__(self):
            self.w = Parameter(np.zeros(2))

    with pytest.raises(RuntimeError, match=re.escape("must call super().__init__() first")):
        Broken()


def test_base_module_forward_backward_not_implemented():
    with pytest.raises(NotImplementedError, match="Module"):
        Module()(np.zeros(2))
    with pytest.raises(NotImplementedError):
        Module().backward(np.zeros(2))


def test_sequential_container():
    model = mlp()
    assert len(model) == 4
    assert isinstance(model[1], nn.ReLU) and isinstance(model[-1], nn.Sigmoid)
    assert [type(m) for m in model] == [nn.Linear, nn.ReLU, nn.Linear, nn.Sigmoid]
    head = model[:2]
    assert isinstance(head, nn.Sequential) and len(head) == 2 and head[0] is model[0]
    # a slice keeps the children's names, as in PyTorch: model[2:] holds "2.weight", "2.bias"
    tail = model[2:]
    assert [n for n, _ in tail.named_parameters()] == ["2.weight", "2.bias"]
    assert tail[0] is model[2] and len(tail) == 2
    x = np.random.default_rng(0).standard_normal((3, 6)).astype(np.float32)
    np.testing.assert_array_equal(tail(head(x)), model(x))
    tail.load_state_dict({k: v for k, v in model.state_dict().items() if k.startswith("2.")})
    with pytest.raises(TypeError, match="item 1 is int"):
        nn.Sequential(nn.ReLU(), 3)
    layer = nn.Linear(3, 3)   # one object twice: its cached input would be overwritten
    with pytest.raises(ValueError, match="item 2 .* same object as an earlier item"):
        nn.Sequential(layer, nn.Tanh(), layer)
    text = repr(model)
    assert text.startswith("Sequential(") and "(0): Linear(6, 5, bias=True)" in text and "(3): Sigmoid()" in text


def test_zero_grad_clears_everything():
    model = mlp()
    x = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)
    model.backward(np.ones_like(model(x)))
    assert any(p.grad.any() for p in model.parameters())
    model.zero_grad()
    assert all(not p.grad.any() for p in model.parameters())


def test_train_eval_propagate():
    m = nn.Sequential(nn.Linear(3, 3), nn.Sequential(nn.Dropout(0.5), nn.ReLU()))
    assert all(sub.training for sub in m.modules())
    assert m.eval() is m
    assert not any(sub.training for sub in m.modules())
    assert m.train() is m
    assert all(sub.training for sub in m.modules())
    m.train(False)
    assert not m[1][0].training
    # eval mode really switches Dropout off
    x = np.ones((4, 50), np.float32)
    drop = nn.Sequential(nn.Dropout(0.5, rng=0))
    assert np.any(drop(x) == 0)
    drop.eval()
    np.testing.assert_array_equal(drop(x), x)


# ---------------------------------------------------------------------------------------
# state_dict / load_state_dict
# ---------------------------------------------------------------------------------------
def test_state_dict_is_ordered_copies():
    model = mlp()
    state = model.state_dict()
    assert list(state) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    state["0.weight"][...] = 123.0
    assert not np.any(model[0].weight.data == 123.0)


def test_load_state_dict_round_trip_and_copies():
    src, dst = mlp(0), mlp(10)
    x = np.random.default_rng(0).standard_normal((3, 6)).astype(np.float32)
    assert not np.allclose(src(x), dst(x))
    state = src.state_dict()
    assert dst.load_state_dict(state) is dst
    np.testing.assert_array_equal(dst(x), src(x))
    state["2.bias"][...] = 7.0  # loading copied the values, it did not alias them
    assert not np.any(dst[2].bias.data == 7.0)


def test_load_state_dict_casts_to_parameter_dtype():
    model = mlp()
    state = {k: v.astype(np.float64) + 0.25 for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    for (name, p) in model.named_parameters():
        assert p.dtype == np.float32
        np.testing.assert_allclose(p.data, state[name], rtol=1e-6)


def test_load_state_dict_missing_key():
    state = mlp().state_dict()
    del state["2.bias"]
    with pytest.raises(KeyError, match=r"missing keys \['2.bias'\]"):
        mlp().load_state_dict(state)


def test_load_state_dict_unexpected_key():
    state = mlp().state_dict()
    state["4.weight"] = np.zeros((2, 3), np.float32)
    with pytest.raises(KeyError, match=r"unexpected keys \['4.weight'\]"):
        mlp().load_state_dict(state)


def test_load_state_dict_non_strict_loads_what_matches():
    src, dst = mlp(0), mlp(5)
    state = src.state_dict()
    del state["0.weight"]
    state["extra"] = np.zeros(1)
    before = dst[0].weight.data.copy()
    dst.load_state_dict(state, strict=False)
    np.testing.assert_array_equal(dst[0].weight.data, before)
    np.testing.assert_array_equal(dst[2].weight.data, src[2].weight.data)


@given(extra=st.integers(1, 3), axis=st.integers(0, 1))
def test_load_state_dict_wrong_shape_names_the_parameter(extra, axis):
    state = mlp().state_dict()
    shape = list(state["2.weight"].shape)
    shape[axis] += extra
    state["2.weight"] = np.zeros(shape, np.float32)
    with pytest.raises(ValueError, match=r"'2\.weight'.*\(3, 5\).*" + str(tuple(shape)).replace("(", r"\(")
                       .replace(")", r"\)")):
        mlp().load_state_dict(state)


def test_real_pytorch_state_dict_loads_directly():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    ref = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3),
                              torch.nn.Sigmoid()).double()
    model = mlp().double()
    model.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((7, 6))
    with torch.no_grad():
        expected = ref(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model(x), expected, rtol=1e-12, atol=1e-15)
    # slices keep PyTorch's names on both sides, so a slice's state loads directly too
    assert list(model[2:].state_dict()) == list(ref[2:].state_dict())
    # and back: our state_dict loads into torch
    ref2 = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3),
                               torch.nn.Sigmoid()).double()
    ref2.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    with torch.no_grad():
        np.testing.assert_allclose(ref2(torch.from_numpy(x)).numpy(), expected, rtol=1e-15, atol=0)


# ---------------------------------------------------------------------------------------
# to() / double() / float()
# ---------------------------------------------------------------------------------------
def test_to_float64_and_back():
    model = mlp()
    x32 = np.random.default_rng(0).standard_normal((2, 6)).astype(np.float32)
    y32 = model(x32)
    model.backward(np.ones_like(y32))
    assert model.to(dtype=np.float64) is model
    for p in model.parameters():
        assert p.dtype == np.float64 and p.grad.dtype == np.float64
        assert not p.grad.any()  # grads reset by the move
    y64 = model(x32.astype(np.float64))
    assert y64.dtype == np.float64
    np.testing.assert_allclose(y64, y32, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="float64"):
        model(x32)
    model.float()
    assert all(p.dtype == np.float32 for p in model.parameters())
    np.testing.assert_array_equal(model(x32), y32)  # float32 → float64 → float32 is exact
    model.double()
    assert all(p.dtype == np.float64 for p in model.parameters())
    model.to("numpy")
    assert all(isinstance(p.data, np.ndarray) and p.dtype == np.float64 for p in model.parameters())


# -- dL/dx is asked for per call: backward(dy, need_dx=False) -----------------------------------

def _grads(seq):
    return [p.grad.copy() for p in seq.parameters()]


@given(n=st.integers(1, 7), seed=st.integers(0, 2**16))
def test_sequential_without_dx_returns_none_with_the_same_parameter_grads(n, seed):
    """need_dx=False: backward returns None and adds exactly what it adds when asked for dx."""
    x = np.random.default_rng(seed).standard_normal((n, 6))
    dy = np.random.default_rng(seed + 1).standard_normal((n, 3))
    asked = mlp(seed).double()
    asked(x)
    dx = asked.backward(dy)
    assert dx.shape == (n, 6) and np.abs(dx).sum() > 0
    skipped = mlp(seed).double()
    skipped(x)
    assert skipped.backward(dy, need_dx=False) is None
    for a, b in zip(_grads(skipped), _grads(asked)):
        np.testing.assert_array_equal(a, b)
    skipped(x)                              # the same layers, asked this time: dx comes back
    np.testing.assert_array_equal(skipped.backward(dy), dx)


@pytest.mark.parametrize("shuffle", [False, True])
def test_dataloader_batches_reshaped_give_the_same_answer_either_way(shuffle):
    """The case that broke the old rule (a reshape of a shuffled batch lost its 'data' mark):
    now the caller decides, and the answer does not depend on where the batch came from."""
    from tinyae.data import DataLoader
    x = np.random.default_rng(0).random((8, 2, 2), dtype=np.float32)
    enc = nn.Sequential(nn.Linear(4, 3, rng=0), nn.ReLU())
    for xb, _ in DataLoader(x, batch_size=4, shuffle=shuffle):
        y = enc(xb.reshape(len(xb), -1))
        dx = enc.backward(np.ones_like(y))
        assert dx.shape == (4, 4)
        np.testing.assert_array_equal(dx, np.ones_like(y) * (y > 0) @ enc[0].weight.data)
        enc(xb.reshape(len(xb), -1))
        assert enc.backward(np.ones_like(y), need_dx=False) is None


def test_nested_sequential_passes_need_dx_on():
    inner = nn.Sequential(nn.Linear(6, 4, rng=0), nn.ReLU())
    outer = nn.Sequential(inner, nn.Linear(4, 2, rng=1))
    x = np.random.default_rng(2).standard_normal((3, 6)).astype(np.float32)
    outer(x)
    assert outer.backward(np.ones((3, 2), np.float32), need_dx=False) is None
    outer(x)
    assert outer.backward(np.ones((3, 2), np.float32)).shape == (3, 6)
    inner(x)                                 # the inner part on its own
    assert inner.backward(np.ones((3, 4), np.float32)).shape == (3, 6)


def test_a_parameter_free_sequential_without_dx_returns_none():
    seq = nn.Sequential(nn.Flatten(), nn.ReLU())
    x = np.random.default_rng(4).standard_normal((2, 3, 2))
    y = seq(x)
    assert seq.backward(np.ones_like(y), need_dx=False) is None
    seq(x)
    assert seq.backward(np.ones_like(y)).shape == x.shape


def test_gradcheck_of_a_sequential_checks_dx():
    x = np.random.default_rng(3).standard_normal((4, 6))
    seq = mlp(3)
    check_module(seq, x)
    seq(x)
    assert seq.backward(np.ones((4, 3))) is not None




def test_modules_list_their_noise_generators_through_a_method():
    """Checkpoints and MPI find generators by asking each module (Module.generator), not by
    looking for an attribute called rng."""
    from tinyae import models
    seq = nn.Sequential(nn.Linear(3, 3, rng=0), nn.Dropout(0.5, rng=1), nn.GaussianNoise(0.1, rng=2))
    assert [name for name, _ in seq.named_generators()] == ["1", "2"]
    assert dict(seq.named_generators())["1"] is seq[1].rng
    vae = models.build("vae-196-64-16", seed=0)
    assert [name for name, _ in vae.named_generators()] == [""]

    class HoldsAnRng(nn.Module):           # an attribute of that name is not an interface
        def __init__(self):
            super().__init__()
            self.rng = np.random.default_rng(0)

    assert list(HoldsAnRng().named_generators()) == []
