"""A variational autoencoder on MNIST — the main job, with its backward pass written out.

Default (``--arch tutorial``): the first tutorial's VAE on 14×14 digits scaled to [-1, 1]:
196-64-16 trunk, heads 16→3 for μ and log σ², decoder 3-16-64-196, LeakyReLU(0.2), Tanh
output, loss MSE (summed over pixels) + KL, Adam 1e-3, batch 64, 20 epochs.
``--arch pytorch-example``: PyTorch examples/vae's 784-400-20 VAE with BCE(sum) + KL on
28×28 digits in [0, 1], batch 128, 10 epochs (test loss ≈ 105.6 per sample after 10).

It reads like PyTorch's examples/vae — the model, the loss, ``train()``, ``test()`` — with
one difference: where PyTorch writes ``loss.backward()`` this script writes the chain out,
layer block by layer block (decoder, reparameterisation, the two heads, encoder).  The
same model is ``tinyae.models.build("vae-196-64-16")`` (or "vae-784-400-20") trained by
``tinyae.train.fit``: same initial weights for the same --seed, same ε, same numbers.

``--augment``: train as the chapter does, with torchvision's ``RandomHorizontalFlip(0.5)``
and ``RandomRotation(10)``: every training batch, as it is drawn, is rotated by an angle from
U(−10°, 10°) about the image centre and mirrored left-right with probability ½, per image
(``tinyae.data.random_rotate_flip`` through ``DataLoader(transform=)``, on the host, so the
same batches on NumPy and CuPy; drawn from the loader's (seed, epoch) stream, so a resumed
run sees the batches an uninterrupted one would; ``--resume`` keeps the checkpoint's choice).
Bilinear, background −1 outside the image (torchvision's default is nearest-pixel; the test
digits are never augmented).  Without it the script is unchanged.

Losses are printed summed per sample (batch sum / batch size), with the reconstruction
and the KL shown separately.  Figures in --out (default results/vae_mnist/):
  every epoch   reconstruction_N.png (8 test digits over their reconstructions),
                sample_N.png (64 decoded draws from N(0, I), the same draws every epoch)
  at the end    latent_scatter.png (test codes μ by label), manifold.png (k = 2),
                interpolation.png, loss_curves.png, and checkpoint.npz (after every epoch)

    python examples/vae_mnist.py                       # ~minutes on 2 CPU cores
    python examples/vae_mnist.py --arch pytorch-example --latent-dim 2
    python examples/vae_mnist.py --augment --out results/vae_mnist_augment   # the chapter's training
    python examples/vae_mnist.py --backend cupy --epochs 40 --resume
    python examples/vae_mnist.py --layers DIR --epochs 2    # your exercise layers vs tinyae's (docs/exercises.md)
"""
from common import (AUGMENT_HELP, AUGMENT_NOTE, UsageError, arch_defaults, decoder_fn, done, flip_rotate,
                    load_images, make_parser, n_params, nonneg_float, one_per_class, run, run_cli,
                    save_loss_curves, setup_backend)
import time
from types import SimpleNamespace

import numpy as np
from tqdm.auto import tqdm

import tinyae.nn as nn
from tinyae import backend, distributed, exercises, plot
from tinyae.checkpoint import inspect_checkpoint
from tinyae.data import DataLoader
from tinyae.losses import BCEWithLogitsLoss, GaussianKL, MSELoss
from tinyae.optim import Adam
from tinyae.train import History, begin_run, check_epoch, check_step, unchanged_note, write_checkpoint

ARCHS = {   # the equivalent builder, image side, pixel range, and the flags' defaults
    "tutorial": dict(builder="vae-196-64-16", size=14, range="symmetric",
                     epochs=20, batch_size=64, latent_dim=3),
    "pytorch-example": dict(builder="vae-784-400-20", size=28, range="unit",
                            epochs=10, batch_size=128, latent_dim=20),
}
# the tutorial VAE's pieces; --layers DIR takes yours from the exercises (tinyae.exercises.load_layers)
TINYAE_LAYERS = SimpleNamespace(Linear=nn.Linear, LeakyReLU=nn.LeakyReLU, Tanh=nn.Tanh, MSELoss=MSELoss,
                                GaussianKL=GaussianKL)


# -- the model ------------------------------------------------------------------------------
class VAE(nn.Module):
    r"""q(z|x) = N(μ(x), diag e^{ℓ(x)}) with ℓ = log σ², and a decoder p(x|z).

    Shapes: N batch, D pixels (196 or 784), F trunk features (16 or 400), K latent (--latent-dim).
        h = encoder(x) (N, F);  μ = mean_head(h), ℓ = logvar_head(h) (N, K)
        z = μ + σ ⊙ ε,  σ = exp(½ℓ),  ε ~ N(0, I) (N, K);  decoder(z) (N, D)
    For "pytorch-example" the decoder ends in logits (its sigmoid is the image): the BCE is
    computed from the logits, exact for grey pixels and never log 0.

    The layers are drawn from one generator in the order they are created, and ε from a
    second one: the streams ``tinyae.models.build(builder, latent=K, seed=seed)`` uses, so
    this model starts where the builder's does (the checkpoint names that builder too:
    ``tinyae.checkpoint.load_checkpoint(path)`` gives it back as a ``tinyae.models.VAE``).
    """

    def __init__(self, arch="tutorial", latent_dim=3, seed=0, beta=1.0, layers=TINYAE_LAYERS):
        super().__init__()
        init, noise = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
        k, L = latent_dim, layers
        if arch == "tutorial":
            self.encoder = nn.Sequential(L.Linear(196, 64, rng=init), L.LeakyReLU(0.2),
                                         L.Linear(64, 16, rng=init), L.LeakyReLU(0.2))
            self.mean_head, self.logvar_head = L.Linear(16, k, rng=init), L.Linear(16, k, rng=init)
            self.decoder = nn.Sequential(L.Linear(k, 16, rng=init), L.LeakyReLU(0.2),
                                         L.Linear(16, 64, rng=init), L.LeakyReLU(0.2),
                                         L.Linear(64, 196, rng=init), L.Tanh())
            self.recon_loss, self.output = L.MSELoss("sum"), nn.Identity()
        else:   # PyTorch's fc1 | fc21, fc22 | fc3, fc4
            self.encoder = nn.Sequential(nn.Linear(784, 400, rng=init), nn.ReLU())
            self.mean_head, self.logvar_head = nn.Linear(400, k, rng=init), nn.Linear(400, k, rng=init)
            self.decoder = nn.Sequential(nn.Linear(k, 400, rng=init), nn.ReLU(),
                                         nn.Linear(400, 784, rng=init))
            self.recon_loss, self.output = BCEWithLogitsLoss("sum"), nn.Sigmoid()
        self.kl = L.GaussianKL()                  # KL(q(z|x) ‖ N(0, I)), summed over the batch
        self.rng = noise                          # ε's generator (saved in the checkpoints)
        self.builder = (ARCHS[arch]["builder"], {"latent": k, "beta": float(beta), "seed": seed})

    def generator(self):
        return self.rng                           # saved in the checkpoints, reseeded per MPI rank

    def encode(self, x):
        h = self.encoder(x)
        return self.mean_head(h), self.logvar_head(h)

    def decode(self, z):
        return self.output(self.decoder(z))

    def reconstruct(self, x):
        return self.decode(self.encode(x)[0])     # z = μ: the figures show the mean code

    def reparameterize(self, mu, logvar, eps=None):
        """(z, ε, σ): z = μ + σ ⊙ ε with σ = exp(½ℓ), ε ~ N(0, I) unless given (N, K)."""
        xp = backend.get_array_module(mu)
        if eps is None:   # drawn on the host, so CPU and GPU runs see the same ε
            eps = xp.asarray(self.rng.standard_normal(mu.shape), dtype=mu.dtype)
        std = xp.exp(logvar * logvar.dtype.type(0.5))
        return mu + std * eps, eps, std

    def forward(self, x, eps=None):
        """(decoder output, μ, ℓ, ε, σ): the encoder, the two heads, z = μ + σ ⊙ ε, the decoder."""
        mu, logvar = self.encode(x)
        z, eps, std = self.reparameterize(mu, logvar, eps)
        return self.decoder(z), mu, logvar, eps, std


def loss_function(model, out, x, mu, logvar, beta):
    """(total, recon, kl), batch sums: recon = Σ (x̂ − x)² or BCE, and
    KL(N(μ, σ²) ‖ N(0, I)) = −½ Σ (1 + ℓ − μ² − e^ℓ);  total = recon + β KL."""
    recon = model.recon_loss(out, x)
    kl = model.kl(mu, logvar)
    return recon + kl * kl.dtype.type(beta), recon, kl


# -- one training step, forward and backward -------------------------------------------------
def train_step(model, opt, x, beta, eps=None):
    """Forward, loss, the backward chain by hand, ``opt.step()``.

    Returns the host values [total, recon, kl] of the batch (one device→host copy).  If one
    is not finite it returns before touching any gradient or parameter (train() stops there).
    """
    xp = backend.get_array_module(x)
    # NumPy scalars of the batch's dtype (on NumPy 1.x a Python float would promote float32 to float64)
    half, beta = x.dtype.type(0.5), x.dtype.type(beta)

    # Forward: h = encoder(x), μ = mean_head(h), ℓ = logvar_head(h), z = μ + σ ⊙ ε, out = decoder(z)
    out, mu, logvar, eps, std = model(x, eps)
    loss, recon, kl = loss_function(model, out, x, mu, logvar, beta)         # recon + β KL
    values = backend.to_numpy(xp.stack([loss, recon, kl]))    # the step's one GPU sync
    if not np.all(np.isfinite(values)):
        return values

    opt.zero_grad()
    # Backward.  Shapes: N batch, D pixels, F trunk features, K latent.
    #   dz = decoder.backward(∂recon/∂out)                      (N, D) → (N, K)
    #   z = μ + σ ⊙ ε, σ = exp(½ℓ):  ∂z/∂μ = 1,  ∂z/∂ℓ = ½ ε σ
    #   ∂KL/∂μ = μ,  ∂KL/∂ℓ = ½ (e^ℓ − 1)
    #   dμ = dz + β μ                                           (N, K)
    #   dℓ = dz ⊙ ½ ε σ + β ½ (e^ℓ − 1)                         (N, K)
    #   dh = mean_head.backward(dμ) + logvar_head.backward(dℓ)  (N, K) → (N, F)
    #   encoder.backward(dh)                                    (N, F) → (N, D): None, x is data
    dz = model.decoder.backward(model.recon_loss.backward())
    dkl_mu, dkl_logvar = model.kl.backward()                  # μ and ½ (e^ℓ − 1)
    dmu = dz + beta * dkl_mu
    dlogvar = dz * eps * std * half + beta * dkl_logvar
    dh = model.mean_head.backward(dmu) + model.logvar_head.backward(dlogvar)
    model.encoder.backward(dh, need_dx=False)                 # x is data: no dL/dx
    opt.step()
    return values



def line(means):
    """The per-sample means of an epoch as "31.2869 (recon 27.8156, kl 3.4713)"."""
    return f"{means['loss']:.4f} (recon {means['recon']:.4f}, kl {means['kl']:.4f})"


def main(args, layers=None):
    if layers is None and args.layers:        # --layers DIR: yours, then tinyae's, compared
        return train_your_layers(args)
    arch = arch_defaults(args, ARCHS)
    setup_backend(args, resume_flags={"beta": "beta", "latent_dim": "latent"})  # --resume: flags left out
    world = getattr(args, "world", None)      # --distributed / mpiexec -n N: the MPI processes, else None
    root = world is None or world.is_root     # the process that prints and writes files
    checkpoint = args.out / "checkpoint.npz"
    if args.resume and not args.augment and checkpoint.exists():     # a resumed run keeps --augment
        args.augment = bool(inspect_checkpoint(checkpoint).settings.get("augment", False))
    if world and args.resume:   # rank 0 read the checkpoint (the others write to a scratch folder)
        args.augment = world.bcast(args.augment if root else None)
    say = (lambda *a, **k: print(*a, **{"flush": True, **k})) if root else (lambda *_, **__: None)
    x_train, y_train, x_test, y_test = load_images(args, size=arch["size"], value_range=arch["range"])
    side = arch["size"]
    shown = dict(value_range=(-1, 1) if arch["range"] == "symmetric" else (0, 1))
    scale = 4 if side == 14 else 2          # magnify the small digits on screen

    model = VAE(args.arch, args.latent_dim, args.seed, args.beta, layers or TINYAE_LAYERS)
    opt = Adam(model.parameters(), lr=args.lr)
    say(f"model: {arch['builder']} with a {args.latent_dim}-D latent space, "
        f"{n_params(model)} parameters; loss per sample = "
        f"{'MSE' if arch['range'] == 'symmetric' else 'BCE'} summed over pixels (recon) + "
        f"{'' if args.beta == 1 else f'{args.beta} x '}KL", flush=True)

    # Epoch e visits the training set in the order drawn from (seed, e): a resumed run sees
    # the batches an uninterrupted one would.
    # --augment: every batch flipped/rotated as drawn, from the loader's (seed, epoch) stream
    augment = flip_rotate(side, fill=-1.0 if arch["range"] == "symmetric" else 0.0) if args.augment else None
    if augment:
        say(AUGMENT_NOTE, flush=True)
    train_loader = DataLoader(x_train, batch_size=args.batch_size, shuffle=True, seed=args.seed,
                              transform=augment)
    test_set = x_test
    if world:   # data parallel (tinyae.distributed): each rank takes its slice of every batch,
        #         opt.step() first sums the ranks' gradients (one Allreduce; "sum": the loss is a batch sum)
        opt = distributed.DistributedOptimizer(opt, reduction="sum", world=world)
        train_loader = distributed.ShardedLoader(x_train, batch_size=args.batch_size, seed=args.seed,
                                                 transform=augment, world=world, min_steps=1)
        test_set = x_test[world.shard(len(x_test))]
    test_loader = DataLoader(test_set, batch_size=max(args.batch_size, 256), shuffle=False)
    fixed = one_per_class(y_test, 8)                         # 8 test digits, one per class
    prior = np.random.default_rng(args.seed).standard_normal((64, args.latent_dim)).astype(np.float32)

    def total(sums, count):
        """Per-sample means {"loss", "recon", "kl"} of summed values (over all ranks)."""
        if world:
            *sums, count = world.sum([*sums, count])
        return dict(zip(("loss", "recon", "kl"), (s / max(count, 1) for s in sums)))

    def train(epoch):
        """One pass over the training set; the per-sample means of loss, recon, kl."""
        model.train()
        train_loader.set_epoch(epoch - 1)
        if world:   # ranks > 0 draw their own ε (rank 0 keeps the stream the checkpoint saves)
            distributed.seed_noise(model, args.seed, epoch, world=world)
        sums, count = np.zeros(3), 0
        bar = tqdm(train_loader, desc=f"epoch {epoch}/{args.epochs}", disable=args.no_progress or not root,
                   leave=False, dynamic_ncols=True)
        try:
            for step, (x, _) in enumerate(bar, start=1):
                values = train_step(model, opt, x, args.beta)
                check_step(values, ("loss", "recon", "kl"), epoch, step, len(train_loader),
                           unchanged_note(checkpoint, epoch - 1))   # a NaN stops before the update
                sums += values
                count += x.shape[0]
                if not bar.disable:   # shown at tqdm's next redraw; forced on the last step
                    bar.set_postfix({k: f"{v / count:.4g}" for k, v in zip(("loss", "recon", "kl"), sums)},
                                    refresh=step == len(train_loader))
        finally:
            bar.close()
        return total(sums, count)

    def test(epoch):
        """The per-sample means of loss, recon, kl on the test set (ε drawn as in training)."""
        model.eval()
        sums, count = np.zeros(3), 0
        for x, _ in test_loader:
            out, mu, logvar, _, _ = model(x)
            loss, recon, kl = loss_function(model, out, x, mu, logvar, args.beta)
            sums += backend.to_numpy(backend.get_array_module(x).stack([loss, recon, kl]))
            count += x.shape[0]
        return total(sums, count)

    def figures(epoch):
        """8 test digits over their reconstructions (z = μ), and 64 decoded prior draws."""
        recon = run(model.reconstruct, x_test[fixed])
        plot.save_reconstructions(x_test[fixed].reshape(-1, side, side), recon.reshape(-1, side, side),
                                  args.out / f"reconstruction_{epoch}.png", scale=scale,
                                  title=f"epoch {epoch}: test digits and reconstructions", **shown)
        plot.save_samples(run(model.decode, prior).reshape(-1, side, side), args.out / f"sample_{epoch}.png",
                          scale=scale, title=f"epoch {epoch}: decoded z ~ N(0, I)", **shown)

    # Start afresh, or (--resume) carry on from the checkpoint: weights, Adam's state, ε's generator.
    inner = getattr(opt, "optimizer", opt)    # what the checkpoint saves (not the MPI wrapper)
    history, start, note = History(), 0, ""
    if root:    # leftovers of a killed write removed; --resume: the checkpoint's checks, then its state
        history, start, note = begin_run(checkpoint, model, inner, resume=args.resume, seed=args.seed,
                                         epochs=args.epochs, batch_size=args.batch_size, say=say)
    if world:   # every rank starts from rank 0's weights, optimizer state and place in the history
        records, start, note = world.bcast((history.records, start, note) if root else None)
        history = History(records)
        distributed.broadcast_parameters(model, world=world)
        distributed.broadcast_optimizer_state(inner, world=world)
        dropped = f"; {train_loader.dropped} samples per epoch dropped" if train_loader.dropped else ""
        say(f"distributed: {world.size} processes, global batch {args.batch_size} "
            f"(~{args.batch_size // world.size} per rank), {len(train_loader)} steps per epoch{dropped}",
            flush=True)

    for epoch in range(start + 1, args.epochs + 1):
        t0 = time.perf_counter()
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            trained, tested = train(epoch), test(epoch)
        record = {"epoch": epoch, **{f"train_{k}": v for k, v in trained.items()},
                  **{f"test_{k}": v for k, v in tested.items()},
                  "lr": float(opt.lr), "batch_size": args.batch_size}
        if world:
            record["ranks"] = world.size
        if note and epoch == start + 1:
            record["changed"] = note
        record["seconds"] = time.perf_counter() - t0
        history.append(record)
        say(f"epoch {epoch}/{args.epochs}  train {line(trained)}  test {line(tested)}  "
            f"({record['seconds']:.1f} s)", flush=True)
        unchanged = unchanged_note(checkpoint, epoch - 1)
        check_epoch(model, epoch, tested, "test loss", unchanged)   # no NaN in the weights or the test loss
        if root:
            figures(epoch)
            write_checkpoint(checkpoint, model, inner, epoch, history.records, unchanged=unchanged,   # atomic
                             settings={"seed": args.seed, "batch_size": args.batch_size,
                                       **({"augment": True} if augment else {})})
    if world:
        world.barrier()             # the last checkpoint is on disk before any rank goes on
    if not root:
        return

    # The latent space of the test set (the means μ), the decoder along a line, the curves.
    model.eval()
    codes = run(lambda x: model.encode(x)[0], x_test)
    if args.latent_dim >= 2:
        plot.save_latent_scatter(codes, y_test, args.out / "latent_scatter.png",
                                 title=f"test digits in the {args.latent_dim}-D latent space (μ)")
    if args.latent_dim == 2:
        plot.save_manifold(decoder_fn(model), args.out / "manifold.png", n=15, image_shape=(side, side),
                           title="decoded grid of z at N(0, 1) quantiles", **shown)
    a, b = fixed[0], fixed[1 % len(fixed)]
    plot.save_interpolation(decoder_fn(model), codes[a], codes[b], args.out / "interpolation.png",
                            steps=10, image_shape=(side, side), scale=scale, **shown,
                            title=f"from a test {y_test[a]} to a test {y_test[b]} in latent space")
    if len(history):
        save_loss_curves(history.records, args.out / "loss_curves.png",
                         title="VAE loss per sample (recon + KL)")
        last = history.last()
        print(f"final test loss per sample {last['test_loss']:.2f} "
              f"(recon {last['test_recon']:.2f}, KL {last['test_kl']:.2f})", flush=True)
    done(args)
    return history.records


def train_your_layers(args):
    """--layers DIR: the VAE built from your exercise files' Linear, LeakyReLU, Tanh, MSELoss and
    GaussianKL (once the checker passes them), trained; then tinyae's own from the same seed on
    the same batches (its figures in --out/tinyae_layers).  Are the printed losses equal?"""
    if args.arch != "tutorial" or args.resume or args.backend != "numpy" or args.distributed \
            or distributed.launched_size() > 1:
        raise UsageError("--layers trains the tutorial VAE from scratch on NumPy in one process: leave out "
                         "--arch pytorch-example, --resume, --backend cupy and --distributed / mpiexec")
    try:
        layers = exercises.load_layers(args.layers)
    except exercises.ExerciseError as exc:
        raise UsageError(f"--layers: {exc}") from None
    print(f"your layers ({args.layers}): Linear, LeakyReLU, Tanh, MSELoss, GaussianKL", flush=True)
    yours = main(args, layers)
    print("tinyae's own layers, the same seed and batches:", flush=True)
    args.out = args.out / "tinyae_layers"
    theirs = main(args, TINYAE_LAYERS)
    printed = [(f"epoch {a['epoch']} {split}", line({k: a[f"{split}_{k}"] for k in ("loss", "recon", "kl")}),
                line({k: b[f"{split}_{k}"] for k in ("loss", "recon", "kl")}))
               for a, b in zip(yours, theirs) for split in ("train", "test")]
    differ = [row for row in printed if row[1] != row[2]]
    if not differ:
        print(f"your layers: every printed loss equals tinyae's ({len(yours)} epochs, train and test)")
        return
    rel = max(abs(a[k] - b[k]) / abs(b[k]) for a, b in zip(yours, theirs) for k in a
              if k.startswith(("train_", "test_")) and b[k])
    why = ("float32 rounding: some operations run in another order" if rel < 1e-4 else
           "more than rounding: please report it, the checker should have caught this")
    print(f"your layers: {differ[0][0]} prints {differ[0][1]} where tinyae's prints {differ[0][2]} "
          f"(largest relative difference {rel:.1e}: {why})")


parser = make_parser("vae_mnist", __doc__.splitlines()[0], epochs=None, batch_size=None, latent_dim=True)
parser.add_argument("--arch", choices=list(ARCHS), default="tutorial",
                    help="; ".join(f"{k}: {v['builder']}, {v['epochs']} epochs, batch {v['batch_size']}, "
                                   f"latent dim {v['latent_dim']}" for k, v in ARCHS.items()))
parser.add_argument("--beta", type=nonneg_float, default=1.0, help="weight of the KL term (β-VAE)")
parser.add_argument("--augment", action="store_true",
                    help=AUGMENT_HELP)
parser.add_argument("--layers", metavar="DIR",
                    help="train with your own layers from the backprop exercises (python -m tinyae.exercises "
                         "start DIR), then with tinyae's, and compare the printed losses")

if __name__ == "__main__":
    run_cli(main, parser)
