"""Backprop by hand: a plain autoencoder on MNIST with every step written out.

784 → 32 (ReLU) → 784 (sigmoid), MSE, Adam: the README's first model, on real digits.  The
forward pass runs the four layers in turn; the backward pass walks them in reverse, each
``backward`` taking dL/d(its output), returning dL/d(its input) and adding dL/dθ into its
parameters' ``.grad``; then ``opt.step()``.  Prints the loss as it falls.
(examples/vae_mnist.py does the same for the VAE, reparameterisation included.)

    python examples/backprop_by_hand.py --epochs 2
"""
from common import done, load_images, make_parser, run_cli, setup_backend
import numpy as np

import tinyae.nn as nn
from tinyae.checkpoint import save_checkpoint
from tinyae.data import DataLoader
from tinyae.losses import MSELoss
from tinyae.optim import Adam


def main(args):
    if args.resume:
        parser.error("--resume: not supported by this minimal example (vae_mnist.py has it)")
    setup_backend(args)
    if getattr(args, "world", None):
        parser.error("--distributed / mpiexec: not supported by this minimal example (vae_mnist.py has it)")
    x_train, _, x_test, _ = load_images(args)                   # (N, 784), pixels in [0, 1]

    rng = np.random.default_rng(args.seed)
    enc, relu = nn.Linear(784, 32, rng=rng), nn.ReLU()          # the encoder: h = relu(x W₁ᵀ + b₁)
    dec, sigmoid = nn.Linear(32, 784, rng=rng), nn.Sigmoid()    # the decoder: x̂ = σ(h W₂ᵀ + b₂)
    loss_fn = MSELoss()                   # mean over the N·784 pixels
    opt = Adam(enc.parameters() + dec.parameters(), lr=args.lr)
    loader = DataLoader(x_train, batch_size=args.batch_size, seed=args.seed)   # reshuffled each epoch

    def test_loss():
        """The MSE on the test set (forward only)."""
        total = 0.0
        for x, _ in DataLoader(x_test, batch_size=1000, shuffle=False):
            total += float(loss_fn(sigmoid(dec(relu(enc(x)))), x)) * len(x)
        return total / len(x_test)

    print(f"before training: test loss {test_loss():.4f}")
    for epoch in range(1, args.epochs + 1):
        for step, (x, _) in enumerate(loader, start=1):
            # forward                              shapes: N batch
            a = enc(x)                             # (N, 784) → (N, 32)
            h = relu(a)                            # (N, 32)
            b = dec(h)                             # (N, 32) → (N, 784)
            x_hat = sigmoid(b)                     # (N, 784)
            loss = loss_fn(x_hat, x)               # a 0-d array: mean (x̂ − x)²

            # backward, by hand: each layer's backward is its derivative (see its docstring)
            opt.zero_grad()                        # .grad accumulates: clear it first
            dx_hat = loss_fn.backward()            # 2 (x̂ − x) / (N·784)           (N, 784)
            db = sigmoid.backward(dx_hat)          # dx̂ ⊙ x̂ (1 − x̂)                (N, 784)
            dh = dec.backward(db)                  # db W₂; W₂.grad += dbᵀ h, b₂.grad += Σ db (N, 32)
            da = relu.backward(dh)                 # dh ⊙ [a > 0]                   (N, 32)
            enc.backward(da, need_dx=False)        # W₁.grad += daᵀ x, b₁.grad += Σ da; x is data: no dx
            opt.step()                             # θ ← Adam(θ, θ.grad)

            if step % 50 == 0 or step == len(loader):
                print(f"epoch {epoch} step {step}/{len(loader)}: train loss {float(loss):.4f}", flush=True)
        print(f"epoch {epoch}: test loss {test_loss():.4f}", flush=True)

    model = nn.Sequential(enc, relu, dec, sigmoid)                       # to save the weights as one
    save_checkpoint(args.out / "checkpoint.npz", model, opt, epoch=args.epochs)
    done(args)


parser = make_parser("backprop_by_hand", __doc__.splitlines()[0], epochs=2, batch_size=256)

if __name__ == "__main__":
    run_cli(main, parser)
