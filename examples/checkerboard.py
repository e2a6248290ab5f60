"""Does upsample + conv avoid the checkerboard of transposed convolution?  (the OpenGenus survey's claim)

Trains two conv autoencoders on the same digits, batches and budget — one after the other,
same seed, so the same shuffles and the same initial encoder weights:
  (a) conv-ae-transposed  strided Conv2d down, ConvTranspose2d 3×3 stride 2 up
  (c) conv-ae-upsample    the same encoder, nearest Upsample(2) + Conv2d 3×3 up
(both 1×28×28 → 16×14×14 → 8×7×7 code → 16×14×14 → 1×28×28 by default (--channels 16 8),
ReLU, sigmoid output, MSE per pixel, Adam 1e-3, 2,633 parameters each), then measures the artifact in the reconstructions'
2-D power spectra.

The measure.  A checkerboard printed by the last stride-2 layer has period 2 on the 28×28
output: power at the frequencies S₂ = {(14, 0), (0, 14), (14, 14)} (cycles per image).  The
first stride-2 layer's pattern has period 4: S₄ = {(u, v): u, v ∈ {0, 7, 14, 21}} minus S₂
and the mean.  For each set S, over the test digits x and their reconstructions x̂ (each with
its mean removed, P = |FFT2|²):
    ratio(S)       = Σ P_x̂(S) / Σ P_x(S)       power at S relative to the inputs'
    ratio(near S)  = the same over the frequencies next to S (one step away, not in S)
    excess(S)      = ratio(S) / ratio(near S)   > 1: more power exactly at the stride's
                                                  frequency than the reconstructions' general
                                                  high-frequency level explains (an artifact)
Blurry reconstructions have ratio < 1 everywhere; excess compares the stride's frequency with
its neighbours, so blur alone leaves it near 1.

Written to --out (default results/checkerboard/): checkerboard.png (test digits, (a)'s and
(c)'s reconstructions), spectra.png (mean log power spectra of the inputs, (a), (c), centred),
checkerboard.json (the numbers, the settings, the seconds each training took),
checkpoint_transposed.npz, checkpoint_upsample.npz.

    python examples/checkerboard.py --epochs 3            # full MNIST; the numbers in docs/results.md
    python examples/checkerboard.py --epochs 3 --channels 16 2 --out results/checkerboard_16_2
    python examples/checkerboard.py --epochs 1 --limit 600 --data embedded   # a quick look
"""
from common import (done, fit_options, load_images, make_parser, n_params, one_per_class, positive_int,
                    run, run_cli, setup_backend)
import json
import time

import numpy as np

from tinyae import models, plot
from tinyae.optim import Adam
from tinyae.train import fit

VARIANTS = {"transposed": "conv-ae-transposed", "upsample": "conv-ae-upsample"}
LABELS = {"transposed": "(a) transposed conv", "upsample": "(c) upsample + conv"}

parser = make_parser("checkerboard", __doc__.splitlines()[0], epochs=3, batch_size=64, latent_dim=None)
parser.add_argument("--channels", type=positive_int, nargs=2, default=[16, 8], metavar=("C1", "C2"),
                    help="channels after the first and second stride-2 layer; the code is C2×7×7 "
                         "(default: 16 8, a 392-number code; 16 2 squeezes it to 98)")


def power_spectra(images):
    """|FFT2(x − mean x)|² of each image: (N, H, W) → (N, H, W), frequencies in FFT order."""
    x = np.asarray(images, dtype=np.float64)
    x = x.reshape(len(x), *x.shape[-2:])
    x = x - x.mean(axis=(1, 2), keepdims=True)
    return np.abs(np.fft.fft2(x)) ** 2


def stride_sets(size=28, stride=2, layers=2):
    """{period: boolean (size, size) mask of that period's frequencies} for the periods
    stride, stride², … of ``layers`` stacked stride-``stride`` layers (each mask without the
    frequencies of the shorter periods and without the mean)."""
    sets, taken = {}, np.zeros((size, size), dtype=bool)
    taken[0, 0] = True
    for k in range(1, layers + 1):
        period = stride ** k
        if size % period:
            raise ValueError(f"stride_sets: image size {size} is not a multiple of the period {period}")
        on = np.zeros(size, dtype=bool)
        on[::size // period] = True
        mask = np.outer(on, on) & ~taken
        sets[period] = mask
        taken |= mask
    return sets


def neighbours(mask):
    """The frequencies one step (8-neighbourhood, wrapping round) from ``mask``, not in it, no mean."""
    near = np.zeros_like(mask)
    for du in (-1, 0, 1):
        for dv in (-1, 0, 1):
            near |= np.roll(np.roll(mask, du, axis=0), dv, axis=1)
    near &= ~mask
    near[0, 0] = False
    return near


def checkerboard_measure(inputs, reconstructions, stride=2, layers=2):
    """{period: {"ratio", "ratio_near", "excess"}} as in the module docstring."""
    p_in, p_out = power_spectra(inputs), power_spectra(reconstructions)
    out = {}
    for period, mask in stride_sets(p_in.shape[-1], stride, layers).items():
        near = neighbours(mask)
        ratio = float(p_out[:, mask].sum() / p_in[:, mask].sum())
        ratio_near = float(p_out[:, near].sum() / p_in[:, near].sum())
        out[period] = {"ratio": ratio, "ratio_near": ratio_near, "excess": ratio / ratio_near}
    return out


def main(args):
    setup_backend(args)
    x_train, _, x_test, y_test = load_images(args)
    x_train, x_test = x_train.reshape(-1, 1, 28, 28), x_test.reshape(-1, 1, 28, 28)
    recon, numbers = {}, {}
    for key, builder in VARIANTS.items():
        model = models.build(builder, channels=list(args.channels), seed=args.seed)
        optimizer = Adam(model.parameters(), lr=args.lr)
        print(f"model {LABELS[key]}: {builder}, {n_params(model)} parameters; loss = MSE per pixel", flush=True)
        start = time.perf_counter()
        history = fit(model, optimizer, x_train, x_test, **fit_options(args, f"checkpoint_{key}.npz"))
        seconds = time.perf_counter() - start
        model.eval()
        recon[key] = run(model.forward, x_test, 200)
        numbers[key] = {"builder": builder, "seconds": round(seconds, 1),
                        "test_mse": float(np.mean((recon[key] - x_test) ** 2)),
                        "spectrum": checkerboard_measure(x_test, recon[key])}
        if len(history):
            print(f"{LABELS[key]}: final test loss {history.last()['test_loss']:.5f} (MSE per pixel), "
                  f"{seconds:.0f} s", flush=True)

    print("power at the strides' frequencies, reconstructions relative to the inputs "
          f"({len(x_test):,} test digits):", flush=True)
    for key in VARIANTS:
        for period, m in numbers[key]["spectrum"].items():
            print(f"  {LABELS[key]:22s} period {period}: ratio {m['ratio']:.3f}, next to it "
                  f"{m['ratio_near']:.3f}, excess {m['excess']:.2f}", flush=True)

    fixed = one_per_class(y_test, 10)
    plot.save_reconstructions(recon["transposed"][fixed], recon["upsample"][fixed], args.out / "checkerboard.png",
                              n=10, noisy=x_test[fixed], scale=3,
                              row_labels=["input", LABELS["transposed"], LABELS["upsample"]],
                              title=f"test digits and reconstructions, code {args.channels[1]}×7×7, same data and budget "
                                    f"({args.epochs} epochs)")
    spectra = []
    for a in (x_test, recon["transposed"], recon["upsample"]):
        p = power_spectra(a).mean(axis=0)
        p[0, 0] = np.nan                      # the mean was removed: no power there
        p[0, 0] = np.nanmin(p)                # shown as the lowest level, not as a hole of −∞
        spectra.append(np.fft.fftshift(np.log10(p)))
    lo, hi = float(min(s.min() for s in spectra)), float(max(s.max() for s in spectra))
    plot.save_image_grid(np.stack(spectra), args.out / "spectra.png", nrow=3, cmap="viridis",
                         value_range=(lo, hi), scale=8,
                         title="mean log power, centred: inputs | (a) transposed | (c) upsample")
    report = {"settings": {"channels": list(args.channels), "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
                           "train_images": len(x_train), "test_images": len(x_test), "data": args.data},
              "variants": numbers}
    (args.out / "checkerboard.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"numbers in {args.out / 'checkerboard.json'}", flush=True)
    done(args)


if __name__ == "__main__":
    run_cli(main, parser)
