"""A catalogue of bad inputs to the library (layers, losses, penalties, optimizers, models,
builders, state loading): each must be refused with the right exception class and a
message that names the thing and says what was expected.

Every case is one line of the table below: (id, a function that should raise, the
exception class, a regular expression the message must match).  The ``match`` patterns
are deliberately specific: they name the layer/argument *and* the expected value, so a
bare NumPy error or a vague message fails them.
"""
from __future__ import annotations

import math
import re

import numpy as np
import pytest

from tinyae import nn
from tinyae.losses import (BCELoss, BCEWithLogitsLoss, ContractivePenalty, GaussianKL, KLSparsityPenalty,
                           L1ActivityPenalty, MSELoss, StochasticContractivePenalty)
from tinyae.models import VAE, AutoEncoder, ContractiveAutoEncoder, TiedLinear, build
from tinyae.optim import SGD, Adam

F32 = np.float32
NAN, INF = float("nan"), float("inf")


# -- small builders for the cases ---------------------------------------------------------------
def x23(dtype=F32):
    return np.random.default_rng(0).standard_normal((2, 3)).astype(dtype)


def after_forward(layer, x, **kw):
    """The layer after one forward on x (so that its backward has a cache)."""
    layer(x, **kw)
    return layer


def backward_with(layer, x, dy, **kw):
    return lambda: after_forward(layer, x, **kw).backward(dy)


def mlp():
    return nn.Sequential(nn.Linear(3, 2, rng=0), nn.Tanh(), nn.Linear(2, 1, rng=1))


def stepped_adam(model=None):
    """(model, Adam after one step on it, its state_dict)."""
    model = mlp() if model is None else model
    opt = Adam(model.parameters())
    y = model(np.ones((4, model[0].in_features), F32))
    model.backward(np.ones_like(y))
    opt.step()
    return model, opt, opt.state_dict()


def edited(state, **changes):
    """A copy of a state dict with keys replaced (value given) or removed (value None)."""
    out = dict(state)
    for k, v in changes.items():
        k = k.replace("__", ".")
        if v is None:
            del out[k]
        else:
            out[k] = v
    return out


def load_opt(state, model=None):
    model = mlp() if model is None else model
    return lambda: Adam(model.parameters()).load_state_dict(state)


def load_model(name, value):
    def run():
        m = mlp()
        state = m.state_dict()
        state[name] = value
        m.load_state_dict(state)
    return run


def small_ae(**kw):
    return build("mlp-ae", sizes=[6, 3], **kw)


def small_vae(**kw):
    return build("mlp-vae", sizes=[6, 4, 2], loss="mse", **kw)


def tied_after_forward():
    lin = nn.Linear(4, 3, rng=0)
    tied = TiedLinear(lin, rng=1)
    tied(np.zeros((2, 3), F32))
    return tied


def vae_backward_bad_dmean():
    vae = small_vae()
    x = np.random.default_rng(0).random((5, 6)).astype(F32)
    x_hat, mean, logvar = vae(x)
    return vae.backward(np.ones_like(x_hat), dmean=np.ones((1, 2), F32))


E = re.escape
DY = r"\.backward expected dy = dL/d\(output\) with its forward output's shape "

CASES = [
    # ---- every layer's backward checks dy (shape and dtype of its forward output) -------------------
    ("relu-dy-broadcast", backward_with(nn.ReLU(), x23(), np.ones((1, 3), F32)),
     ValueError, E("ReLU()") + DY + r"\(2, 3\).*got shape \(1, 3\)"),
    ("leaky-dy-shape", backward_with(nn.LeakyReLU(0.2), x23(), np.ones((2, 1), F32)),
     ValueError, r"LeakyReLU\(negative_slope=0\.2\)" + DY + r"\(2, 3\).*got shape \(2, 1\)"),
    ("tanh-dy-shape", backward_with(nn.Tanh(), x23(), np.ones(3, F32)),
     ValueError, E("Tanh()") + DY + r"\(2, 3\).*got shape \(3,\)"),
    ("sigmoid-dy-int", backward_with(nn.Sigmoid(), x23(), np.ones((2, 3), np.int64)),
     TypeError, E("Sigmoid()") + DY + r"\(2, 3\) and dtype float32; got .*dtype int64"),
    ("identity-dy-shape", backward_with(nn.Identity(), x23(), np.ones((3, 2), F32)),
     ValueError, E("Identity()") + DY + r"\(2, 3\).*got shape \(3, 2\)"),
    ("linear-dy-shape", backward_with(nn.Linear(3, 4), x23(), np.ones((2, 3), F32)),
     ValueError, r"Linear\(3, 4, bias=True\)" + DY + r"\(2, 4\).*got shape \(2, 3\)"),
    ("linear-dy-float64", backward_with(nn.Linear(3, 4), x23(), np.ones((2, 4))),
     TypeError, r"Linear\(3, 4.*dtype float32; got shape \(2, 4\) and dtype float64; cast"),
    ("linear-dy-list", backward_with(nn.Linear(3, 4), x23(), [[0.0] * 4] * 2),
     TypeError, r"Linear\(3, 4.*expected dy .*\(2, 4\).*got list"),
    ("flatten-dy-shape", backward_with(nn.Flatten(), np.zeros((2, 3, 4), F32), np.ones((2, 3, 4), F32)),
     ValueError, E("Flatten()") + DY + r"\(2, 12\).*got shape \(2, 3, 4\)"),
    ("reshape-dy-shape", backward_with(nn.Reshape(3, 4), np.zeros((2, 12), F32), np.ones((2, 12), F32)),
     ValueError, E("Reshape(3, 4)") + DY + r"\(2, 3, 4\).*got shape \(2, 12\)"),
    ("dropout-dy-shape", backward_with(nn.Dropout(0.5, rng=0), x23(), np.ones((1, 3), F32)),
     ValueError, r"Dropout\(p=0\.5\)" + DY + r"\(2, 3\)"),
    ("dropout-eval-dy-shape", backward_with(nn.Dropout(0.5).eval(), x23(), np.ones((1, 3), F32)),
     ValueError, r"Dropout\(p=0\.5\)" + DY + r"\(2, 3\)"),
    ("noise-dy-shape", backward_with(nn.GaussianNoise(0.1, rng=0), x23(), np.ones((2, 1), F32)),
     ValueError, r"GaussianNoise\(std=0\.1\)" + DY + r"\(2, 3\)"),
    ("tiedlinear-dy-shape", lambda: tied_after_forward().backward(np.ones((2, 3), F32)),
     ValueError, r"TiedLinear.*" + DY + r"\(2, 4\).*got shape \(2, 3\)"),
    ("vae-backward-dmean-shape", vae_backward_bad_dmean,
     ValueError, r"VAE\.backward: dmean must have the shape \(5, 2\).*got \(1, 2\)"),

    # ---- sizes are positive ints (not 2.5, '4', True) ----------------------------------------------
    ("linear-in-float", lambda: nn.Linear(2.5, 3), TypeError, r"Linear: in_features must be a positive int, got 2\.5 \(float\)"),
    ("linear-in-str", lambda: nn.Linear("4", 3), TypeError, r"Linear: in_features must be a positive int, got '4' \(str\)"),
    ("linear-in-bool", lambda: nn.Linear(True, 3), TypeError, r"Linear: in_features must be a positive int, got True \(bool\)"),
    ("linear-out-zero", lambda: nn.Linear(3, 0), ValueError, r"Linear: out_features must be a positive int, got 0"),
    ("linear-bias-str", lambda: nn.Linear(3, 2, bias="no"), TypeError, r"Linear: bias must be True or False, got 'no'"),
    ("linear-rng-negative", lambda: nn.Linear(3, 2, rng=-1), ValueError, r"rng must be an int seed >= 0.*got -1"),
    ("linear-rng-float", lambda: nn.Linear(3, 2, rng=0.5), TypeError, r"rng must be None, an int seed >= 0 or a numpy\.random\.Generator, got 0\.5"),
    ("reshape-float", lambda: nn.Reshape(2.5, 4), TypeError, r"Reshape: target shape \(2\.5, 4\): size 0 must be a positive int, got 2\.5"),
    ("reshape-str", lambda: nn.Reshape(4, "4"), TypeError, r"Reshape: .*size 1 must be a positive int, got '4'"),
    ("reshape-zero", lambda: nn.Reshape(0, 4), ValueError, r"Reshape: .*size 0 must be a positive int, got 0"),
    ("tied-bias-str", lambda: TiedLinear(nn.Linear(3, 2), bias="yes"), TypeError, r"TiedLinear: bias must be True or False"),

    # ---- noise levels and slopes: finite, in range -------------------------------------------------
    ("dropout-p-one", lambda: nn.Dropout(1.0), ValueError, r"Dropout: p \(the drop probability\) must be in \[0, 1\), got 1"),
    ("dropout-p-nan", lambda: nn.Dropout(NAN), ValueError, r"Dropout: p .*must be finite and in \[0, 1\), got nan"),
    ("dropout-p-str", lambda: nn.Dropout("0.5"), TypeError, r"Dropout: p .*must be a real number, got '0\.5' \(str\)"),
    ("noise-std-inf", lambda: nn.GaussianNoise(INF), ValueError, r"GaussianNoise: std must be finite and >= 0, got inf"),
    ("noise-std-negative", lambda: nn.GaussianNoise(-0.1), ValueError, r"GaussianNoise: std must be >= 0, got -0\.1"),
    ("dropout-mask-list", lambda: nn.Dropout(0.5)(x23(), mask=[[1, 0, 1], [0, 1, 1]]),
     ValueError, r"Dropout\(p=0\.5\): mask shape list != input shape \(2, 3\); pass a 0/1 array"),
    ("noise-wrong-shape", lambda: nn.GaussianNoise(0.1)(x23(), noise=np.zeros((3, 2))),
     ValueError, r"GaussianNoise\(std=0\.1\): noise shape \(3, 2\) != input shape \(2, 3\)"),
    ("leaky-slope-nan", lambda: nn.LeakyReLU(NAN), ValueError, r"LeakyReLU: negative_slope must be finite, got nan"),
    ("corruption-gaussian-inf", lambda: small_ae(corruption=["gaussian", INF]),
     ValueError, r"corruption \('gaussian', std\): std must be finite and >= 0, got inf"),
    ("corruption-mask-one", lambda: small_ae(corruption=["mask", 1.0]),
     ValueError, r"corruption \('mask', p\): p \(the masked fraction\) must be in \[0, 1\), got 1"),
    ("corruption-not-a-pair", lambda: small_ae(corruption=0.1),
     TypeError, r"corruption must be None, \('gaussian', std >= 0\), \('mask', p in \[0, 1\)\) or "
     r"\('dropout', p in \[0, 1\)\), got 0\.1"),
    ("corruption-extra-value", lambda: small_ae(corruption=["gaussian", 0.1, 0.2]),
     ValueError, r"corruption must be None, \('gaussian'.*got \['gaussian', 0\.1, 0\.2\]"),
    ("vae-beta-nan", lambda: small_vae(beta=NAN), ValueError, r"VAE: beta \(the KL weight\) must be finite and >= 0, got nan"),
    ("vae-beta-negative", lambda: small_vae(beta=-1.0), ValueError, r"VAE: beta \(the KL weight\) must be >= 0, got -1"),
    ("l1-lam-nan", lambda: L1ActivityPenalty(NAN), ValueError, r"L1ActivityPenalty: lam must be finite and >= 0, got nan"),
    ("kl-beta-inf", lambda: KLSparsityPenalty(0.05, INF), ValueError, r"KLSparsityPenalty: beta must be finite and >= 0, got inf"),
    ("kl-rho-str", lambda: KLSparsityPenalty("0.05"), TypeError, r"KLSparsityPenalty: rho \(the target activity\) must be a real number"),
    ("stochastic-sigma-zero", lambda: StochasticContractivePenalty(0.1, 0.0), ValueError, r"StochasticContractivePenalty: sigma must be > 0, got 0"),
    ("contractive-slope-inf", lambda: ContractivePenalty(0.1, "leaky_relu", negative_slope=INF),
     ValueError, r"ContractivePenalty: negative_slope must be finite, got inf"),

    # ---- optimizers get an iterable of distinct Parameters -----------------------------------------
    ("adam-gets-model", lambda: Adam(mlp()), TypeError, r"Adam: got the model Sequential itself.*pass model\.parameters\(\)"),
    ("sgd-gets-array", lambda: SGD(np.zeros(3)), TypeError, r"SGD: params must be an iterable of Parameters, got an array of shape \(3,\); pass model\.parameters\(\)"),
    ("adam-gets-parameter", lambda: Adam(mlp()[0].weight), TypeError, r"Adam: .*got a single Parameter; wrap it in a list, or pass model\.parameters\(\)"),
    ("adam-gets-state-dict", lambda: Adam(mlp().state_dict()), TypeError, r"Adam: params must be an iterable of Parameters, got OrderedDict; pass model\.parameters\(\)"),
    ("adam-gets-int", lambda: Adam(3), TypeError, r"Adam: params must be an iterable of Parameters, got int; pass model\.parameters\(\)"),
    ("adam-list-of-arrays", lambda: Adam([np.zeros(2)]), TypeError, r"Adam: params\[0\] is of type ndarray, not a Parameter; pass model\.parameters\(\)"),
    ("adam-empty", lambda: Adam([]), ValueError, r"Adam: got an empty parameter list; pass model\.parameters\(\)"),
    ("adam-duplicate", lambda: Adam(mlp().parameters() * 2), ValueError, r"Adam: params\[4\] is the same Parameter as params\[0\]"),

    # ---- optimizer hyperparameters (torch.optim's checks, plus finiteness) -------------------------
    ("adam-lr-zero", lambda: Adam(mlp().parameters(), lr=0.0), ValueError, r"Adam: lr must be > 0, got 0"),
    ("adam-lr-nan", lambda: Adam(mlp().parameters(), lr=NAN), ValueError, r"Adam: lr must be finite and > 0, got nan"),
    ("sgd-lr-str", lambda: SGD(mlp().parameters(), lr="0.1"), TypeError, r"SGD: lr must be a real number, got '0\.1' \(str\)"),
    ("adam-beta2-one", lambda: Adam(mlp().parameters(), betas=(0.9, 1.0)), ValueError, r"Adam: betas\[1\] \(beta2\) must be in \[0, 1\), got 1"),
    ("adam-beta1-negative", lambda: Adam(mlp().parameters(), betas=(-0.1, 0.9)), ValueError, r"Adam: betas\[0\] \(beta1\) must be in \[0, 1\), got -0\.1"),
    ("adam-betas-scalar", lambda: Adam(mlp().parameters(), betas=0.9), TypeError, r"Adam: betas must be a pair \(beta1, beta2\), got 0\.9"),
    ("adam-eps-zero", lambda: Adam(mlp().parameters(), eps=0.0), ValueError, r"Adam: eps must be > 0, got 0"),
    ("adam-eps-nan", lambda: Adam(mlp().parameters(), eps=NAN), ValueError, r"Adam: eps must be finite and > 0, got nan"),
    ("adam-weight-decay-negative", lambda: Adam(mlp().parameters(), weight_decay=-1e-4), ValueError, r"Adam: weight_decay must be >= 0, got -0\.0001"),
    ("sgd-momentum-negative", lambda: SGD(mlp().parameters(), momentum=-0.5), ValueError, r"SGD: momentum must be >= 0, got -0\.5"),
    ("sgd-dampening-above-one", lambda: SGD(mlp().parameters(), momentum=0.9, dampening=1.5), ValueError, r"SGD: dampening must be in \[0, 1\], got 1\.5"),
    ("sgd-weight-decay-inf", lambda: SGD(mlp().parameters(), weight_decay=INF), ValueError, r"SGD: weight_decay must be finite and >= 0, got inf"),
    ("sgd-nesterov-no-momentum", lambda: SGD(mlp().parameters(), nesterov=True), ValueError, r"SGD: nesterov momentum needs momentum > 0 and dampening = 0, got momentum=0, dampening=0"),
    ("sgd-nesterov-dampening", lambda: SGD(mlp().parameters(), momentum=0.9, dampening=0.1, nesterov=True), ValueError, r"SGD: nesterov .*got momentum=0\.9, dampening=0\.1"),
    ("sgd-nesterov-str", lambda: SGD(mlp().parameters(), momentum=0.9, nesterov="false"), TypeError, r"SGD: nesterov must be True or False, got 'false'"),

    # ---- optimizer load_state_dict names what is wrong --------------------------------------------
    ("optim-load-missing-bias-moment", lambda: load_opt(edited(stepped_adam()[2], state__1__exp_avg=None))(),
     ValueError, r"Adam\.load_state_dict: the state is after 1 step\(s\) but has no state\.1\.exp_avg; each of the 4 parameters needs exp_avg, exp_avg_sq"),
    ("optim-load-no-bias-model", lambda: load_opt(stepped_adam(nn.Sequential(nn.Linear(3, 2, bias=False)))[2],
                                                  nn.Sequential(nn.Linear(3, 2)))(),
     ValueError, r"Adam\.load_state_dict: .*has no state\.1\.exp_avg, state\.1\.exp_avg_sq; each of the 2 parameters"),
    ("optim-load-missing-lr", lambda: load_opt(edited(stepped_adam()[2], lr=None))(),
     ValueError, r"Adam\.load_state_dict: the state has no 'lr'"),
    ("optim-load-missing-step-count", lambda: load_opt(edited(stepped_adam()[2], step_count=None))(),
     ValueError, r"Adam\.load_state_dict: the state has no 'step_count'"),
    ("optim-load-bigger-model", lambda: load_opt(stepped_adam()[2], nn.Sequential(nn.Linear(3, 2)))(),
     ValueError, r"Adam\.load_state_dict: exp_avg state for parameter 2, but this optimizer has 2 parameters"),
    ("optim-load-unexpected-key", lambda: load_opt(edited(stepped_adam()[2], foo=1))(),
     ValueError, r"Adam\.load_state_dict: unexpected keys \['foo'\]; expected 'step_count', 'lr'"),
    ("optim-load-bad-beta", lambda: load_opt(edited(stepped_adam()[2], hyper__betas=(0.9, 1.5)))(),
     ValueError, r"Adam\.load_state_dict: invalid hyperparameter in the state: Adam: betas\[1\] \(beta2\) must be in \[0, 1\), got 1\.5"),
    ("optim-load-step-float", lambda: load_opt(edited(stepped_adam()[2], step_count=2.5))(),
     ValueError, r"Adam\.load_state_dict: 'step_count' must be an int >= 0, got 2\.5"),
    ("optim-load-lr-negative", lambda: load_opt(edited(stepped_adam()[2], lr=-1.0))(),
     ValueError, r"Adam\.load_state_dict: 'lr' must be finite and > 0, got -1"),
    ("optim-load-nan-moment", lambda: load_opt(edited(stepped_adam()[2], state__0__exp_avg=np.full((2, 3), NAN, F32)))(),
     ValueError, r"Adam\.load_state_dict: 'state\.0\.exp_avg' holds NaN or infinite values"),
    ("optim-load-moment-shape", lambda: load_opt(edited(stepped_adam()[2], state__0__exp_avg=np.zeros((3, 2), F32)))(),
     ValueError, r"Adam\.load_state_dict: exp_avg of parameter 0 has shape \(3, 2\), the parameter has shape \(2, 3\)"),
    ("optim-load-not-a-dict", lambda: Adam(mlp().parameters()).load_state_dict([1, 2]),
     TypeError, r"Adam\.load_state_dict: expected the dict that optimizer\.state_dict\(\) returns, got list"),

    # ---- model load_state_dict: values that cannot be right ---------------------------------------
    ("model-load-string", load_model("0.weight", np.array([["a"] * 3] * 2)),
     TypeError, r"Sequential\.load_state_dict: parameter '0\.weight' holds <U1 values, not numbers; expected a real array of shape \(2, 3\) convertible to float32"),
    ("model-load-complex", load_model("0.bias", np.array([1 + 2j, 0j])),
     TypeError, r"Sequential\.load_state_dict: parameter '0\.bias' holds complex values \(dtype complex128\); expected real numbers for a float32 parameter"),
    ("model-load-overflow", load_model("0.bias", np.array([1e300, 0.0])),
     ValueError, r"parameter '0\.bias' holds values up to 1e\+300 in magnitude, which overflow float32"),
    ("model-load-nan", load_model("2.bias", np.array([NAN], F32)),
     ValueError, r"parameter '2\.bias' holds NaN or infinite values; expected finite numbers"),
    ("model-load-ragged", load_model("0.weight", [[1.0, 2.0, 3.0], [1.0]]),
     TypeError, r"parameter '0\.weight'.*expected an array of shape \(2, 3\)"),
    ("model-load-object", load_model("0.bias", np.array([None, None])),
     TypeError, r"parameter '0\.bias' holds object values, not numbers"),
    ("model-load-not-a-mapping", lambda: mlp().load_state_dict([np.zeros(2)]),
     TypeError, r"Sequential\.load_state_dict: expected a mapping of parameter names to arrays"),
    ("model-to-int-dtype", lambda: mlp().to(dtype=np.int32), TypeError, r"Sequential\.to: dtype must be a float type .*got int32"),

    # ---- values that cannot be right: BCE ranges, integer arrays, empty batches -------------------
    ("bce-probability-above-one", lambda: BCELoss()(np.full((2, 2), 1.5, F32), np.zeros((2, 2), F32)),
     ValueError, r"BCELoss: pred \(probabilities\) must lie in \[0, 1\], got values in \[1\.5, 1\.5\]; .*BCEWithLogitsLoss"),
    ("bce-probability-negative", lambda: BCELoss()(np.array([[-0.1, 0.5]], F32), np.zeros((1, 2), F32)),
     ValueError, r"BCELoss: pred \(probabilities\) must lie in \[0, 1\], got values in \[-0\.1, 0\.5\]"),
    ("bce-target-255", lambda: BCELoss()(np.full((1, 2), 0.5, F32), np.array([[0.0, 255.0]], F32)),
     ValueError, r"BCELoss: target must lie in \[0, 1\], got values in \[0, 255\]; .*to_float"),
    ("bce-logits-target-2", lambda: BCEWithLogitsLoss()(np.zeros((1, 2), F32), np.array([[0.0, 2.0]], F32)),
     ValueError, r"BCEWithLogitsLoss: target must lie in \[0, 1\], got values in \[0, 2\]"),
    ("mse-empty", lambda: MSELoss()(np.zeros((0, 3), F32), np.zeros((0, 3), F32)),
     ValueError, r"MSELoss: expected a non-empty batch \(N >= 1 along axis 0\), got pred of shape \(0, 3\)"),
    ("bce-logits-empty", lambda: BCEWithLogitsLoss()(np.zeros((0, 3), F32), np.zeros((0, 3), F32)),
     ValueError, r"BCEWithLogitsLoss: expected a non-empty batch"),
    ("kl-empty", lambda: GaussianKL()(np.zeros((0, 2), F32), np.zeros((0, 2), F32)),
     ValueError, r"GaussianKL: expected a non-empty batch .*mean of shape \(0, 2\)"),
    ("l1-int-input", lambda: L1ActivityPenalty(0.1)(np.array([[1, -2]])),
     TypeError, r"L1ActivityPenalty: h \(the code\) must be a float array \(float32 or float64\), got dtype int64"),
    ("l1-empty", lambda: L1ActivityPenalty(0.1)(np.zeros((0, 4), F32)),
     ValueError, r"L1ActivityPenalty: h \(the code\) must be a non-empty batch .*got shape \(0, 4\)"),
    ("klsparsity-int-input", lambda: KLSparsityPenalty()(np.ones((2, 3), np.int32)),
     TypeError, r"KLSparsityPenalty: h \(the code\) must be a float array"),
    ("klsparsity-not-sigmoid", lambda: KLSparsityPenalty()(np.array([[-1.0, 0.5]], F32)),
     ValueError, r"KLSparsityPenalty: h \(the code activities\) must lie in \[0, 1\], got values in \[-1, 0\.5\]; .*Sigmoid"),
    ("contractive-int-input", lambda: ContractivePenalty()(np.ones((2, 3), np.int64), np.ones((3, 4))),
     TypeError, r"ContractivePenalty: a \(the pre-activations\) must be a float array"),
    ("stochastic-int-input", lambda: StochasticContractivePenalty()(np.ones((2, 3), np.int64), np.ones((1, 2, 3))),
     TypeError, r"StochasticContractivePenalty: h0 must be a float array"),
    ("stochastic-mixed-dtypes", lambda: StochasticContractivePenalty()(np.ones((2, 3), F32), np.ones((1, 2, 3))),
     TypeError, r"StochasticContractivePenalty: h0 is float32 but hk is float64"),
    ("linear-empty-batch", lambda: nn.Linear(3, 2)(np.zeros((0, 3), F32)),
     ValueError, r"Linear\(3, 2, bias=True\) expected a non-empty batch as input \(N >= 1 along axis 0\), got shape \(0, 3\)"),
    ("flatten-empty-batch", lambda: nn.Flatten()(np.zeros((0, 3, 4), F32)),
     ValueError, r"Flatten\(\) expected a non-empty batch as input.*\(0, 3, 4\)"),
    ("model-loss-empty", lambda: small_ae().loss(np.zeros((0, 6), F32)),
     ValueError, r"AutoEncoder\.loss: x must be a non-empty batch \(N >= 1 samples along axis 0\), got shape \(0, 6\)"),
    ("vae-loss-empty", lambda: small_vae().loss(np.zeros((0, 6), F32)),
     ValueError, r"VAE\.loss: x must be a non-empty batch"),
    ("model-loss-uint8", lambda: small_ae().loss(np.zeros((2, 6), np.uint8)),
     TypeError, r"AutoEncoder\.loss: x must be a float array \(float32 or float64\), got dtype uint8; .*to_float"),
    ("model-loss-list", lambda: small_ae().loss([[0.0] * 6]),
     TypeError, r"AutoEncoder\.loss: x must be an array \(a batch of samples\), got list"),
    ("vae-sample-zero", lambda: small_vae().sample(0), ValueError, r"VAE\.sample: n \(the number of samples\) must be a positive int, got 0"),
    ("vae-sample-float", lambda: small_vae().sample(2.5), TypeError, r"VAE\.sample: n \(the number of samples\) must be a positive int, got 2\.5"),

    # ---- models and builders check their parts and specs -----------------------------------------
    ("ae-loss-name", lambda: AutoEncoder(nn.Linear(4, 2), nn.Linear(2, 4), loss="mse"),
     TypeError, r"AutoEncoder: loss must be a loss object such as MSELoss\(\).*got 'mse'"),
    ("ae-penalty-spec", lambda: AutoEncoder(nn.Linear(4, 2), nn.Linear(2, 4), penalty=["l1", 1e-3]),
     TypeError, r"AutoEncoder: penalty must be None or a penalty object such as L1ActivityPenalty"),
    ("ae-encoder-not-module", lambda: AutoEncoder([nn.Linear(4, 2)], nn.Linear(2, 4)),
     TypeError, r"AutoEncoder: encoder must be a Module .*got list"),
    ("vae-head-not-module", lambda: VAE(nn.Identity(), None, nn.Linear(4, 2), nn.Linear(2, 4)),
     TypeError, r"VAE: mean_head must be a Module .*got NoneType"),
    ("cae-n-samples-float", lambda: ContractiveAutoEncoder(nn.Linear(4, 2), nn.Linear(2, 4), mode="stochastic", n_samples=1.5),
     TypeError, r"ContractiveAutoEncoder: n_samples must be a positive int, got 1\.5"),
    ("build-sizes-float", lambda: build("mlp-ae", sizes=[12, 2.5]), TypeError, r"build\('mlp-ae'\): sizes\[1\] must be a positive int, got 2\.5 \(float\)"),
    ("build-sizes-bool", lambda: build("mlp-ae", sizes=[12, True]), TypeError, r"build\('mlp-ae'\): sizes\[1\] must be a positive int, got True"),
    ("build-sizes-scalar", lambda: build("mlp-vae", sizes=12), TypeError, r"build\('mlp-vae'\): sizes must be a list of at least two layer sizes.*got 12"),
    ("build-sizes-one", lambda: build("contractive-ae", sizes=[12]), ValueError, r"build\('contractive-ae'\): sizes must be a list of at least two layer sizes.*got \[12\]"),
    ("build-latent-zero", lambda: build("ae-784-32", latent=0), ValueError, r"build\('ae-784-32'\): latent must be a positive int, got 0"),
    ("build-latent-str", lambda: build("vae-784-400-20", latent="20"), TypeError, r"build\('vae-784-400-20'\): latent must be a positive int, got '20'"),
    ("build-hidden-float", lambda: build("sparse-ae", in_features=8, hidden=2.5), TypeError, r"build\('sparse-ae'\): hidden must be a positive int, got 2\.5"),
    ("build-seed-negative", lambda: build("mlp-ae", sizes=[4, 2], seed=-1), ValueError, r"build\('mlp-ae'\): seed must be an int >= 0, got -1"),
    ("build-seed-float", lambda: build("mlp-ae", sizes=[4, 2], seed=1.5), TypeError, r"build\('mlp-ae'\): seed must be an int >= 0, got 1\.5"),
    ("build-penalty-str", lambda: build("mlp-ae", sizes=[4, 2], penalty="l1"),
     TypeError, r"penalty must be None, \['l1', lam\] or \['kl', rho, beta\], got 'l1'"),
    ("build-penalty-too-many", lambda: build("sparse-ae", in_features=8, hidden=4, penalty=["kl", 0.05, 3.0, 1.0]),
     ValueError, r"penalty must be None, \['l1', lam\] or \['kl', rho, beta\], got \['kl', 0\.05, 3\.0, 1\.0\] \(too many values for 'kl'\)"),
    ("build-penalty-unknown", lambda: build("mlp-ae", sizes=[4, 2], penalty=["l2", 0.1]),
     ValueError, r"penalty must be None, \['l1', lam\] or \['kl', rho, beta\], got \['l2', 0\.1\]"),
    ("build-penalty-negative", lambda: build("mlp-ae", sizes=[4, 2], penalty=["l1", -1.0]),
     ValueError, r"L1ActivityPenalty: lam must be >= 0, got -1"),
    ("build-unknown-keyword", lambda: build("vae-784-400-20", latent_dim=3),
     TypeError, r"build\('vae-784-400-20'\): unknown keyword argument\(s\) 'latent_dim'; it takes .*latent"),
]


@pytest.mark.parametrize("make, exc, pattern", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_refused_with_a_message(make, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make()


def test_catalogue_size_and_unique_ids():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 60


# -- what must still be accepted ----------------------------------------------------------------
def test_numpy_integers_and_scalars_are_accepted():
    layer = nn.Linear(np.int64(3), np.int32(2), rng=np.int64(0))
    assert (layer.in_features, layer.out_features) == (3, 2) and type(layer.in_features) is int
    assert nn.Reshape(np.int64(2), 3).shape == (2, 3)
    model = build("mlp-ae", sizes=[6, 3], seed=0)
    opt = Adam(model.parameters(), lr=np.float32(0.01), betas=[0.5, np.float64(0.9)])
    assert opt.lr == pytest.approx(0.01) and opt.betas == (0.5, 0.9)
    assert nn.Dropout(np.float64(0.25)).p == 0.25


def test_bce_accepts_the_closed_interval_and_lets_nan_through():
    """0 and 1 are valid probabilities and targets; a NaN prediction is not refused by the
    range check (NaN compares False) but gives a NaN loss, which fit reports with its step."""
    p = np.array([[0.0, 1.0, 0.5]], F32)
    t = np.array([[0.0, 1.0, 1.0]], F32)
    assert float(BCELoss()(p, t)) == pytest.approx(float(-np.log(0.5)) / 3, rel=1e-6)
    assert math.isnan(float(BCELoss()(np.array([[NAN]], F32), np.array([[1.0]], F32))))


def test_dropout_eval_backward_is_identity_after_a_matching_forward():
    layer = nn.Dropout(0.5).eval()
    x = x23()
    layer(x)
    dy = np.full((2, 3), 2.0, F32)
    assert layer.backward(dy) is dy


def test_model_load_state_dict_converts_integers_and_is_atomic():
    model = mlp()
    state = model.state_dict()
    state["0.bias"] = np.array([1, 2])           # ints convert exactly
    model.load_state_dict(state)
    np.testing.assert_array_equal(model[0].bias.data, np.array([1.0, 2.0], F32))
    before = {k: v.copy() for k, v in model.state_dict().items()}
    bad = {k: v + 1 for k, v in before.items()}
    bad["2.bias"] = np.array([1e300])            # the last parameter overflows
    with pytest.raises(ValueError, match=r"'2\.bias'.*overflow float32"):
        model.load_state_dict(bad)
    for k, v in model.state_dict().items():      # nothing was half-loaded
        np.testing.assert_array_equal(v, before[k])


def test_optimizer_load_state_dict_is_atomic_and_round_trips():
    model, opt, state = stepped_adam()
    fresh = Adam(model.parameters(), lr=0.5)
    broken = edited(state, state__3__exp_avg_sq=None, lr=0.25)
    with pytest.raises(ValueError, match=r"no state\.3\.exp_avg_sq"):
        fresh.load_state_dict(broken)
    assert fresh.step_count == 0 and fresh.lr == 0.5 and all(not st for st in fresh.state)
    fresh.load_state_dict(state)
    assert fresh.step_count == 1
    for i, st in enumerate(opt.state):
        for name, arr in st.items():
            np.testing.assert_array_equal(fresh.state[i][name], arr)


def test_sgd_state_from_a_momentum_run_switches_the_buffers_on():
    """Loading a state saved with momentum into an SGD built without it restores the
    momentum (the state's hyperparameters win, as for every other one) and its buffers."""
    model = mlp()
    sgd = SGD(model.parameters(), lr=0.1, momentum=0.9)
    y = model(np.ones((2, 3), F32))
    model.backward(np.ones_like(y))
    sgd.step()
    other = SGD(mlp().parameters(), lr=0.1)
    other.load_state_dict(sgd.state_dict())
    assert other.momentum == 0.9 and other.buffers == ("momentum_buffer",)
    np.testing.assert_array_equal(other.state[0]["momentum_buffer"], sgd.state[0]["momentum_buffer"])


def test_refusals_for_bad_arrays_are_also_value_errors():
    """An int array where floats are needed raises a TypeError that is also a ValueError (as
    tinyae raised before), so existing ``except ValueError`` handlers keep working."""
    for make in (lambda: nn.ReLU()(np.ones((2, 2), np.int64)), lambda: MSELoss()(np.ones(2, np.int64), np.ones(2)),
                 lambda: small_ae().loss(np.zeros((2, 6), np.uint8))):
        with pytest.raises(TypeError) as info:
            make()
        assert isinstance(info.value, ValueError)
