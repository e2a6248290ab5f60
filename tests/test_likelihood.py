"""tinyae.metrics.iwae_bound against a model whose log-likelihood is known exactly.

A linear-Gaussian VAE: z ~ N(0, I) (K), x | z ~ N(W z + b, ½ I) (D) — the decoder of a VAE
trained with summed squared error — has p(x) = N(b, W Wᵀ + ½ I) in closed form.  With W's
columns orthogonal the exact posterior p(z | x) is a diagonal Gaussian, which an encoder can
represent: with q = p(z | x) every importance weight equals p(x), so every bound is exact.
With a worse q the bound is below log p(x) in expectation and rises towards it with k.
"""
import numpy as np
import pytest

from tinyae import nn
from tinyae.losses import BCEWithLogitsLoss, MSELoss
from tinyae.metrics import iwae_bound
from tinyae.models import VAE, build

D, K = 6, 3


def linear_gaussian(seed=0):
    """(W, b, exact log p(x) function): W (D, K) with orthogonal columns of norms 0.5, 1, 2."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((D, K)))
    w = q * np.array([0.5, 1.0, 2.0])
    b = rng.standard_normal(D) * 0.3
    cov = w @ w.T + 0.5 * np.eye(D)
    inv, (_, logdet) = np.linalg.inv(cov), np.linalg.slogdet(cov)

    def log_px(x):
        r = x - b
        return -0.5 * (np.einsum("nd,de,ne->n", r, inv, r) + logdet + D * np.log(2 * np.pi))
    return w, b, log_px


def vae_with_encoder(w, b, exact=True, seed=1):
    """The linear-Gaussian decoder; the encoder gives the exact posterior (exact=True) or a
    perturbed one.  Posterior: S = (I + 2 WᵀW)⁻¹ (diagonal), mean 2 S Wᵀ (x − b)."""
    s = 1.0 / (1.0 + 2.0 * np.sum(w * w, axis=0))                 # (K,)
    mean_w = 2.0 * s[:, None] * w.T                               # (K, D)
    logvar = np.log(s)
    if not exact:
        rng = np.random.default_rng(seed)
        mean_w = mean_w + 0.3 * rng.standard_normal(mean_w.shape)
        logvar = logvar + 0.7
    mean_head, logvar_head, decoder = nn.Linear(D, K), nn.Linear(D, K), nn.Linear(K, D)
    vae = VAE(nn.Identity(), mean_head, logvar_head, decoder, loss=MSELoss("sum")).double()
    mean_head.weight.data[...] = mean_w
    mean_head.bias.data[...] = -mean_w @ b
    logvar_head.weight.data[...] = 0.0
    logvar_head.bias.data[...] = logvar
    decoder.weight.data[...] = w
    decoder.bias.data[...] = b
    return vae


@pytest.mark.parametrize("k", [1, 7, 300])
def test_the_exact_posterior_gives_the_exact_log_likelihood_for_every_k(k):
    w, b, log_px = linear_gaussian()
    x = np.random.default_rng(2).standard_normal((5, D))
    got = iwae_bound(vae_with_encoder(w, b), x, k, max_rows=64)       # several blocks of draws
    assert got.shape == (5,) and got.dtype == np.float64
    np.testing.assert_allclose(got, log_px(x), rtol=0, atol=1e-9)


def test_a_worse_posterior_gives_a_bound_that_rises_with_k_towards_the_exact_value():
    w, b, log_px = linear_gaussian()
    x = np.random.default_rng(3).standard_normal((40, D))
    vae = vae_with_encoder(w, b, exact=False)
    exact = log_px(x).mean()
    bounds = [iwae_bound(vae, x, k, seed=4).mean() for k in (1, 10, 100, 2000)]
    assert all(a < c for a, c in zip(bounds, bounds[1:])), bounds
    assert all(v < exact for v in bounds), (bounds, exact)             # a lower bound (on average)
    assert exact - bounds[0] > 0.2 and exact - bounds[-1] < 0.2 * (exact - bounds[0])


def test_the_one_sample_bound_is_the_elbo_of_the_model_loss():
    """k = 1 is the ELBO: on average over the draws, minus the model's loss (recon + KL, summed
    per sample) minus the Gaussian's constant (D/2) log π.  With the same ε the reconstruction
    terms are equal draw by draw; the bound's sampled log q − log p averages to the KL."""
    vae = build("vae-196-64-16", seed=0).double()
    x = np.repeat(np.random.default_rng(5).uniform(-1, 1, (1, 196)), 4000, axis=0)
    elbo = iwae_bound(vae, x, 1, seed=0)
    vae.eval()
    eps = np.random.default_rng(0).standard_normal((1, 4000, 3))[0]   # the draws the bound made
    total, _ = vae.loss(x, eps=eps)
    assert abs(elbo.mean() - (-float(total) / 4000 - 196 / 2 * np.log(np.pi))) < 0.15


def test_bernoulli_decoder_and_refusals():
    vae = build("vae-784-400-20", seed=0).double()
    assert isinstance(vae.recon_loss, BCEWithLogitsLoss)
    x = (np.random.default_rng(6).random((3, 784)) > 0.5).astype(np.float64)   # binary pixels
    got = iwae_bound(vae, x, 5)
    assert got.shape == (3,) and np.all(got < 0)            # a probability of binary data: log p < 0
    with pytest.raises(ValueError, match="k .* must be a positive int, got 0"):
        iwae_bound(vae, x, 0)
    with pytest.raises(TypeError, match="expected a VAE with encode"):
        iwae_bound(build("ae-784-32", seed=0), x, 5)


def test_the_likelihood_script_scores_a_main_job_checkpoint(tmp_path):
    """benchmarks/vae_likelihood.py on a one-epoch main-job checkpoint (embedded digits): a row
    per bound, L_k rising with k, the ELBO row = -(loss + (D/2) log pi)."""
    import os
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, MPLBACKEND="Agg", TINYAE_OFFLINE="1")
    env.pop("TINYAE_DATA", None)
    subprocess.run([sys.executable, str(root / "examples" / "vae_mnist.py"), "--epochs", "1", "--data", "embedded",
                    "--limit", "300", "--no-progress", "--out", str(tmp_path)], check=True, env=env,
                   capture_output=True, timeout=300)
    proc = subprocess.run([sys.executable, str(root / "benchmarks" / "vae_likelihood.py"), str(tmp_path / "checkpoint.npz"),
                           "--k", "1", "10", "100", "--limit", "50", "--data", "embedded"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = {line.split("|")[1].strip(): line.split("|")[2].strip() for line in proc.stdout.splitlines()
            if line.startswith("| ") and "---" not in line and "bound" not in line}
    loss = float(rows["loss per digit (recon + KL, as the main job prints it)"])
    elbo = float(rows["ELBO (analytic KL, with −(D/2) log π)"])
    assert elbo == pytest.approx(-loss - 98 * np.log(np.pi), abs=0.02)
    l10, l100 = float(rows["L_10"]), float(rows["L_100"])
    assert l10 < l100 and abs(float(rows["L_1"]) - elbo) < 5
