"""The example scripts given a user's mistake: one line ``error: …`` on stderr that names the
flag or file and what was expected, exit status 2, never a traceback; Ctrl-C: one line and
exit status 130; --resume never ignores a flag; "wrote to" lists this run's files only.

Speed: starting Python and importing NumPy, Matplotlib and tinyae costs seconds on a busy
machine, so most cases run in processes forked from one warm interpreter (a driver process
that imports the examples' modules once, then forks a child per case; the child runs the
script file as ``__main__`` with its own argv, environment, stdout and stderr, and its exit
status is the script's).  The Ctrl-C case and one flag case run in fresh interpreters.
"""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tinyae.checkpoint import load_checkpoint

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
MINE = ["ae_mnist", "conv_ae_mnist", "denoising_ae_mnist", "sparse_ae_mnist", "contractive_ae_mnist",
        "anomaly_detection", "linear_ae_vs_pca"]

DRIVER = r"""
import json, os, resource, runpy, sys, traceback
sys.path.insert(0, sys.argv[1])
import common                                   # numpy, matplotlib, tinyae: imported once
import scipy.linalg, tinyae.models, tinyae.optim  # noqa: F401
phases = json.loads(sys.stdin.read())


def child(case):
    code = 1
    try:
        os.dup2(os.open(case["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 1)
        os.dup2(os.open(case["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 2)
        os.environ.update(case["env"])
        os.chdir(case["cwd"])
        if case.get("fsize"):   # no file may grow past this many bytes: writes fail (EFBIG)
            resource.setrlimit(resource.RLIMIT_FSIZE, (case["fsize"], case["fsize"]))
        sys.argv = [case["script"], *case["argv"]]
        try:
            runpy.run_path(case["script"], run_name="__main__")
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            traceback.print_exc()
    finally:
        sys.stdout.flush(); sys.stderr.flush()
        os._exit(code)


codes = {}
for phase in phases:            # phases one after the other, the cases of a phase side by side
    running = {}
    for case in phase:
        sys.stdout.flush(); sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            child(case)
        running[pid] = case["name"]
    for pid, name in running.items():
        codes[name] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
print(json.dumps(codes))
"""


class Result:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr

    def __repr__(self):
        return f"exit {self.returncode}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"


def base_env(tmp):
    return {"MPLBACKEND": "Agg", "TINYAE_OFFLINE": "1", "XDG_CACHE_HOME": str(tmp / "cache"),
            "TINYAE_DATA": "", "TINYAE_TRACEBACK": ""}


def run_phases(tmp, phases):
    """Run phases of {name: (script, argv, extra env, options)}, forked from one warm
    interpreter (a phase's cases at the same time, the phases in order); {name: Result}."""
    payload = []
    for phase in phases:
        payload.append([dict(name=name, script=str(EXAMPLES / f"{script}.py"), argv=[str(a) for a in argv],
                             env={**base_env(tmp), **env}, cwd=str(tmp), stdout=str(tmp / f"{name}.out"),
                             stderr=str(tmp / f"{name}.err"), **opts)
                        for name, (script, argv, env, opts) in phase.items()])
    proc = subprocess.run([sys.executable, "-c", DRIVER, str(EXAMPLES)], input=json.dumps(payload),
                          capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, **base_env(tmp), OPENBLAS_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr
    codes = json.loads(proc.stdout.strip().splitlines()[-1])
    return {name: Result(code, (tmp / f"{name}.out").read_text(), (tmp / f"{name}.err").read_text())
            for name, code in codes.items()}


def quick(*extra, out):
    return ["--data", "embedded", "--epochs", "1", "--limit", "100", "--no-progress", "--out", out, *extra]


def error_line(r):
    """The one error line: exit 2, no traceback, stderr = the data loader's notes + one error: line."""
    assert r.returncode == 2, r
    assert "Traceback" not in r.stderr + r.stdout, r
    lines = [line for line in r.stderr.splitlines() if not line.startswith("tinyae.data: ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), r
    return lines[0]


# --------------------------------------------------------------------------
# Flag values: argparse-level, before anything is loaded
# --------------------------------------------------------------------------

FLAG_CASES = [
    ("ae_mnist", ["--batch-size", "0"], ["--batch-size", "whole number >= 1", "got 0"]),
    ("ae_mnist", ["--batch-size", "2.5"], ["--batch-size", "expected a whole number", "'2.5'"]),
    ("conv_ae_mnist", ["--lr", "0"], ["--lr", "number > 0", "got 0"]),
    ("ae_mnist", ["--lr", "-0.001"], ["--lr", "number > 0", "-0.001"]),
    ("sparse_ae_mnist", ["--lr", "nan"], ["--lr", "finite number", "'nan'"]),
    ("ae_mnist", ["--lr", "inf"], ["--lr", "finite number", "'inf'"]),
    ("ae_mnist", ["--latent-dim", "0"], ["--latent-dim", "whole number >= 1"]),
    ("vae_mnist", ["--latent-dim", "-2"], ["--latent-dim", "whole number >= 1", "-2"]),
    ("denoising_ae_mnist", ["--seed", "-1"], ["--seed", "whole number >= 0", "-1"]),
    ("contractive_ae_mnist", ["--epochs", "-1"], ["--epochs", "whole number >= 1", "-1"]),
    ("anomaly_detection", ["--epochs", "0"], ["--epochs", "whole number >= 1", "got 0"]),
    ("linear_ae_vs_pca", ["--limit", "0"], ["--limit", "whole number >= 1", "got 0"]),
    ("ae_mnist", ["--limit", "-5"], ["--limit", "whole number >= 1", "-5"]),
    ("ae_mnist", ["--epochs", "ten"], ["--epochs", "expected a whole number", "'ten'"]),
    ("denoising_ae_mnist", ["--noise-level", "-0.1"], ["--noise-level", "number >= 0", "-0.1"]),
    ("denoising_ae_mnist", ["--noise-level", "nan"], ["--noise-level", "finite number"]),
    ("denoising_ae_mnist", ["--noise", "mask", "--noise-level", "1"], ["--noise-level", "in [0, 1)", "got 1"]),
    ("sparse_ae_mnist", ["--rho", "0"], ["--rho", "strictly between 0 and 1", "got 0"]),
    ("sparse_ae_mnist", ["--rho", "1.5"], ["--rho", "strictly between 0 and 1", "1.5"]),
    ("sparse_ae_mnist", ["--beta", "-3"], ["--beta", "number >= 0", "-3"]),
    ("sparse_ae_mnist", ["--penalty", "l1", "--l1=-1e-3"], ["--l1", "number >= 0", "-1e-3"]),
    ("contractive_ae_mnist", ["--lam", "-0.01"], ["--lam", "number >= 0", "-0.01"]),
    ("anomaly_detection", ["--normal-classes", "0-9"], ["--normal-classes", "some but not all"]),
    ("ae_mnist", ["--arch", "784-250-16", "--latent-dim", "8"], ["fixed 16-D code", "leave --latent-dim out"]),
    ("ae_mnist", ["--lrr", "0.1"], ["unrecognized arguments: --lrr 0.1"]),
    ("conv_ae_mnist", ["--lat", "4"], ["unrecognized arguments: --lat"]),   # no silent abbreviations
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, mnist_dir):
    """Every forked case of this file, in two phases (the second resumes from the first)."""
    tmp = tmp_path_factory.mktemp("cli")
    corrupt = tmp / "corrupt"                      # MNIST with the test labels file cut short
    corrupt.mkdir()
    for name in os.listdir(mnist_dir):
        if name.endswith(".gz"):
            os.symlink(mnist_dir / name, corrupt / name)
    whole = (mnist_dir / "t10k-labels-idx1-ubyte.gz").read_bytes()
    (corrupt / "t10k-labels-idx1-ubyte.gz").unlink()
    (corrupt / "t10k-labels-idx1-ubyte.gz").write_bytes(whole[: len(whole) // 2])
    (tmp / "results.png").write_bytes(b"")
    first = {f"flag{i}": (script, [*argv, "--out", tmp / "never"], {}, {})
             for i, (script, argv, _) in enumerate(FLAG_CASES)}
    first.update({
        "out_file_ae": ("ae_mnist", quick(out=tmp / "results.png"), {}, {}),
        "out_file_pca": ("linear_ae_vs_pca", quick(out=tmp / "results.png"), {}, {}),
        "out_under_file": ("conv_ae_mnist", quick(out=tmp / "results.png" / "sub"), {}, {}),
        "pca_785": ("linear_ae_vs_pca", quick("--latent-dim", "785", "--limit", "1000", out=tmp / "p1"), {}, {}),
        "pca_few": ("linear_ae_vs_pca", quick("--latent-dim", "16", "--limit", "10", out=tmp / "p2"), {}, {}),
        "no_normal": ("anomaly_detection", quick("--normal-classes", "5-9", "--limit", "5", out=tmp / "an"),
                      {}, {}),
        "corrupt": ("conv_ae_mnist", ["--data", "auto", "--epochs", "1", "--limit", "50", "--no-progress",
                                      "--out", tmp / "co"], {"TINYAE_DATA": str(corrupt)}, {}),
        "full_disk": ("ae_mnist", quick(out=tmp / "disk"), {}, {"fsize": 120_000}),   # checkpoint ~330 kB
    })
    for copy in ("a", "b"):     # the same 1-epoch run (--lr 0.005) twice, to resume from
        first[f"trained_{copy}"] = ("ae_mnist", quick("--lr", "0.005", out=tmp / f"trained_{copy}"), {}, {})
    second = {
        "other_model": ("contractive_ae_mnist", quick("--resume", "--epochs", "2", out=tmp / "trained_a"), {}, {}),
        "other_arch": ("ae_mnist", quick("--resume", "--arch", "784-32", "--epochs", "2", out=tmp / "trained_a"),
                       {}, {}),
        "other_seed": ("ae_mnist", quick("--resume", "--epochs", "2", "--seed", "3", out=tmp / "trained_a"), {}, {}),
        "left_out": ("ae_mnist", quick("--resume", "--epochs", "2", out=tmp / "trained_b"), {}, {}),
    }
    third = {   # after the refused resumes of trained_a, which must have left it as it was
        "new_lr": ("ae_mnist", quick("--resume", "--epochs", "2", "--lr", "0.001", "--batch-size", "32",
                                     out=tmp / "trained_a"), {}, {}),
    }
    results = run_phases(tmp, [first, second, third])
    return tmp, results


@pytest.mark.parametrize("index", range(len(FLAG_CASES)),
                         ids=[f"{s}:{' '.join(a)}" for s, a, _ in FLAG_CASES])
def test_bad_flag_value_is_one_error_line(runs, index):
    tmp, results = runs
    script, argv, words = FLAG_CASES[index]
    r = results[f"flag{index}"]
    line = error_line(r)
    assert all(w in line for w in words), line
    assert f"see {script}.py --help" in line or "leave --latent-dim out" in line
    assert r.stdout == ""                               # refused before the backend, data or model
    assert not (tmp / "never").exists()


def test_a_fresh_interpreter_gives_the_same_one_line(tmp_path):
    env = dict(os.environ, **base_env(tmp_path))
    proc = subprocess.run([sys.executable, str(EXAMPLES / "ae_mnist.py"), "--batch-size", "0"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == ("error: argument --batch-size: must be a whole number >= 1, got 0 "
                           "(see ae_mnist.py --help)\n")


# --------------------------------------------------------------------------
# --out, data files, checkpoints, a full disk
# --------------------------------------------------------------------------

def test_out_that_is_a_file_or_cannot_be_created_is_refused_before_training(runs):
    tmp, results = runs
    for name in ("out_file_ae", "out_file_pca"):
        r = results[name]
        line = error_line(r)
        assert f"--out {tmp / 'results.png'} is a file, not a folder" in line, line
        assert "data:" not in r.stdout and "epoch" not in r.stdout         # nothing was loaded or trained
    r = results["out_under_file"]
    line = error_line(r)
    assert "cannot be written (Not a directory)" in line and "pass a folder you can write to" in line
    assert "epoch" not in r.stdout


def test_latent_dim_larger_than_pca_allows(runs):
    _, results = runs
    line = error_line(results["pca_785"])
    assert "--latent-dim 785 is more than PCA can give here: at most 784 directions" in line
    assert "choose --latent-dim <= 784" in line
    line = error_line(results["pca_few"])
    assert "at most 10 directions from 10 training images" in line and "raise --limit" in line
    assert "epoch" not in results["pca_785"].stdout + results["pca_few"].stdout


def test_anomaly_detection_with_no_normal_training_digits(runs):
    line = error_line(runs[1]["no_normal"])
    assert "no training digits of the normal classes 5-9 among the 5 training images" in line
    assert "raise --limit" in line


def test_corrupt_data_file(runs):
    tmp, results = runs
    r = results["corrupt"]
    line = error_line(r)
    assert str(tmp / "corrupt" / "t10k-labels-idx1-ubyte.gz") in line and "truncated" in line
    assert "epoch" not in r.stdout


def test_checkpoint_for_another_model(runs):
    tmp, results = runs
    for name, mine in (("other_model", "contractive-ae"), ("other_arch", "ae-784-32")):
        r = results[name]
        line = error_line(r)
        assert "was written for builder 'dense-196-64-16'" in line and f"builder '{mine}'" in line, line
        assert "another --out" in line
    assert "== contractive AE" not in results["other_model"].stdout.split("== plain AE")[-1].split("epoch 2/2")[0]
    assert "epoch 2/2" not in results["other_arch"].stdout
    assert results["new_lr"].stdout.count("resumed from") == 1      # trained_a still held epoch 1 …
    assert "after epoch 1" in results["new_lr"].stdout             # … after the refused resumes


def test_resume_takes_left_out_flags_from_the_checkpoint_and_logs_given_ones(runs):
    tmp, results = runs
    line = error_line(results["other_seed"])
    assert "--seed 3 differs from the seed 0" in line and "leave --seed out" in line
    left_out, new_lr = results["left_out"], results["new_lr"]
    assert left_out.returncode == 0, left_out
    assert "changed" not in left_out.stdout                       # --lr 0.005 came from the checkpoint
    assert [r["lr"] for r in load_checkpoint(tmp / "trained_b" / "checkpoint.npz").history] == [0.005, 0.005]
    assert new_lr.returncode == 0, new_lr
    assert "changed from epoch 2 on: lr 0.005 -> 0.001; batch_size 64 -> 32" in new_lr.stdout
    history = load_checkpoint(tmp / "trained_a" / "checkpoint.npz").history
    assert history[1]["changed"] == "lr 0.005 -> 0.001; batch_size 64 -> 32"
    assert [(r["lr"], r["batch_size"]) for r in history] == [(0.005, 64), (0.001, 32)]


def test_wrote_to_lists_the_files_of_this_run_only(runs):
    tmp, results = runs
    first = results["trained_b"].stdout.strip().splitlines()[-1]
    assert first.startswith(f"wrote to {tmp / 'trained_b'}/: reconstruction_1.png, "), first
    wrote = results["left_out"].stdout.strip().splitlines()[-1]
    assert wrote.startswith(f"wrote to {tmp / 'trained_b'}/: reconstruction_2.png, "), wrote
    assert "reconstruction_1" not in wrote and "checkpoint.npz" in wrote and "loss_curves.png" in wrote


def test_full_disk_is_one_error_line_and_leaves_no_temp_file(runs):
    tmp, results = runs
    out = tmp / "disk"
    line = error_line(results["full_disk"])
    assert f"could not write the checkpoint {out / 'checkpoint.npz'} after epoch 1 (File too large)" in line
    assert "Free some disk space" in line
    assert sorted(os.listdir(out)) == ["reconstruction_1.png"]             # no half checkpoint, no temp


# --------------------------------------------------------------------------
# Ctrl-C, in a real interpreter
# --------------------------------------------------------------------------

def _default_sigint():
    """In the child, before Python starts: SIGINT back to its default.  A shell starts background
    jobs (``pytest &``, nohup, some CI runners) with SIGINT ignored, and Python then installs no
    KeyboardInterrupt handler: the Ctrl-C this test sends would be lost."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_is_one_line_with_the_checkpoints_epoch(tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, **base_env(tmp_path), OPENBLAS_NUM_THREADS="1")
    ignored = signal.signal(signal.SIGINT, signal.SIG_IGN)   # as if pytest itself ran in the background
    try:
        proc = subprocess.Popen([sys.executable, str(EXAMPLES / "ae_mnist.py"), "--data", "embedded", "--epochs",
                                 "200", "--no-progress", "--out", str(out)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path, preexec_fn=_default_sigint)
    finally:
        signal.signal(signal.SIGINT, ignored)
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoint.npz").exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert (out / "checkpoint.npz").exists(), "no checkpoint within 120 s"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, (stdout, stderr)
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if not line.startswith("tinyae.data: ")]
    assert len(lines) == 1, stderr
    m = re.fullmatch(rf"interrupted in epoch (\d+); the checkpoint {re.escape(str(out / 'checkpoint.npz'))} "
                     r"holds epoch (\d+); --resume continues", lines[0])
    assert m, lines[0]
    running, held = int(m.group(1)), int(m.group(2))
    assert running == held + 1 and load_checkpoint(out / "checkpoint.npz").epoch == held
    assert [p for p in os.listdir(out) if p.endswith(".tmp")] == []


# --------------------------------------------------------------------------
# Loss curves: no identical duplicate lines
# --------------------------------------------------------------------------

def test_loss_curves_leave_out_a_part_equal_to_the_total():
    sys.path.insert(0, str(EXAMPLES))
    try:
        import common
    finally:
        sys.path.remove(str(EXAMPLES))
    single = [{"epoch": e, "train_loss": v, "train_recon": v, "test_loss": v / 2, "test_recon": v / 2,
               "lr": 1e-3, "seconds": 0.1} for e, v in ((1, 0.3), (2, 0.2))]
    assert common.curve_keys(single) == ["train_loss", "test_loss"]
    vae = [{"epoch": 1, "train_loss": 3.0, "train_recon": 2.0, "train_kl": 1.0, "test_loss": 2.5,
            "test_recon": 1.5, "test_kl": 1.0}]
    assert common.curve_keys(vae) == ["train_loss", "train_recon", "train_kl", "test_loss", "test_recon",
                                      "test_kl"]
    assert np.isclose(vae[0]["train_kl"], vae[0]["test_kl"])       # equal across splits: both kept
