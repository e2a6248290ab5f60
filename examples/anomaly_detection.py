"""Anomaly detection with an autoencoder: train on some digits, flag the others.

The autoencoder (784-32 ReLU / 32-784 sigmoid, per-pixel BCE, Adam 1e-3, batch 256) is
trained only on the training digits of --normal-classes.  Every test digit is then scored
by its reconstruction error (the mean squared error over its pixels): digits of the other
classes — never seen in training — should reconstruct worse.  The ROC AUC says how well the
score separates them (1 = perfectly, 0.5 = chance).

Default: normal = 1-9, anomaly = the digit 0 — the leave-one-class-out set-up: anomalies
are rare (10% of the test set) as they are in practice.  How well it works depends on the
digit left out: a reconstruction error also measures how much ink a digit has and how
unlike the others it is, so a held-out 0 is easy (AUC about 0.9 on the embedded digits
after 20 epochs) and a held-out 9 — close to 4 and 7 — is near chance (about 0.45-0.6).
--normal-classes 0 is the one-class set-up (Deep SVDD's benchmark; AUC about 0.97), 0-4
splits the digits in halves (about 0.7).

Figures in --out (default results/anomaly_detection/):
  every epoch   reconstruction_N.png (test digits of every class over their reconstructions)
  at the end    scores.png (histograms of the scores, normal vs anomalous test digits),
                roc.png (the ROC curve and its AUC), most_anomalous.png (the 8 test digits
                with the highest scores and their reconstructions), loss_curves.png, checkpoint.npz
"""
from common import (done, fit_options, load_images, make_parser, n_params, one_per_class, run,
                    run_cli, save_loss_curves, setup_backend, UsageError)
import argparse

import numpy as np

from tinyae import metrics, models, plot
from tinyae.optim import Adam
from tinyae.train import fit


def digit_set(text):
    """ "0-4" or "1,3,5" or "0-2,7" → a sorted list of digits."""
    out = set()
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    if not out or not out <= set(range(10)) or out == set(range(10)):
        raise argparse.ArgumentTypeError(f"need some but not all of the digits 0-9, got {text!r}")
    return sorted(out)


def span(digits):
    """[0, 1, 2, 3] → "0-3";  [1, 7] → "1,7"."""
    if len(digits) > 2 and digits == list(range(digits[0], digits[-1] + 1)):
        return f"{digits[0]}-{digits[-1]}"
    return ",".join(map(str, digits))


parser = make_parser("anomaly_detection", __doc__.splitlines()[0], epochs=20, batch_size=256, latent_dim=32)
parser.add_argument("--normal-classes", type=digit_set, default="1-9",
                    help="digits to train on, e.g. 0-4 or 1,7 (default 1-9: the digit 0 is the anomaly)")


def main(args):
    normal = args.normal_classes
    anomalous = [d for d in range(10) if d not in normal]
    setup_backend(args)

    x_train, y_train, x_test, y_test = load_images(args)
    keep = np.isin(y_train, normal)
    x_train = x_train[keep]
    is_anomaly = ~np.isin(y_test, normal)
    if not len(x_train) or is_anomaly.all():
        split = "training" if not len(x_train) else "test"
        raise UsageError(f"no {split} digits of the normal classes {span(normal)} among the "
                         f"{len(keep) if split == 'training' else len(is_anomaly):,} {split} images loaded"
                         f"{' (--limit ' + str(args.limit) + ')' if args.limit else ''}: raise --limit or "
                         "choose other --normal-classes")
    print(f"training on the {len(x_train):,} training digits {span(normal)}; scoring all {len(x_test):,} test "
          f"digits, {is_anomaly.sum():,} of them anomalous ({span(anomalous)})", flush=True)
    both = is_anomaly.any() and (~is_anomaly).any()     # (a tiny --limit may leave one group empty)
    x_normal_test = x_test[~is_anomaly]        # the test loss in the log: normal digits only

    model = models.build("ae-784-32", latent=args.latent_dim, seed=args.seed)
    optimizer = Adam(model.parameters(), lr=args.lr)
    print(f"model: ae-784-32 with a {args.latent_dim}-D code, {n_params(model)} parameters; loss = BCE per "
          "pixel (test: normal digits); score = reconstruction MSE per digit", flush=True)
    fixed = one_per_class(y_test, 10)

    def scores(model):
        model.eval()
        return np.mean((run(model.forward, x_test) - x_test) ** 2, axis=1)

    def each_epoch(epoch, model, history):
        if both:
            auc = metrics.roc_auc(scores(model), is_anomaly)
            print(f"  test ROC AUC after epoch {epoch}: {auc:.4f}", flush=True)
        plot.save_reconstructions(x_test[fixed], run(model.forward, x_test[fixed]),
                                  args.out / f"reconstruction_{epoch}.png", n=len(fixed),
                                  title=f"epoch {epoch}: trained on {span(normal)}, anomalies {span(anomalous)}")

    history = fit(model, optimizer, x_train, x_normal_test, callbacks=[each_epoch], **fit_options(args))

    score = scores(model)
    groups = {f"normal test digits ({span(normal)})": score[~is_anomaly],
              f"anomalous test digits ({span(anomalous)})": score[is_anomaly]}
    plot.save_histograms({k: v for k, v in groups.items() if v.size}, args.out / "scores.png", bins=40,
                         density=True, ylabel="density",
                         xlabel="anomaly score: reconstruction MSE of a test digit",
                         title="scores of normal and anomalous test digits")
    if both:
        _, auc = plot.save_roc(score, is_anomaly, args.out / "roc.png",
                               title=f"anomalies {span(anomalous)} among normal {span(normal)}")
    worst = np.argsort(score)[::-1][:8]
    plot.save_reconstructions(x_test[worst], run(model.forward, x_test[worst]), args.out / "most_anomalous.png",
                              title="the 8 highest scores, digits " + ", ".join(str(y_test[i]) for i in worst))
    if len(history):
        save_loss_curves(history.records, args.out / "loss_curves.png",
                         title=f"BCE per pixel, trained on {span(normal)}")
    per_digit = [f"{d}{'*' * (d in anomalous)} {score[y_test == d].mean():.4f}" for d in range(10)
                 if (y_test == d).any()]
    print("mean score per digit: " + "  ".join(per_digit) + "   (* anomalous)")
    if both:
        print(f"ROC AUC {auc:.4f} (normal {span(normal)} vs anomalous {span(anomalous)})", flush=True)
    done(args)


if __name__ == "__main__":
    run_cli(main, parser)
