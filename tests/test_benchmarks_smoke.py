"""Keep benchmarks/train_speed.py from rotting: a quick run end to end, and the check that
its three implementations (tinyae, raw kernels, PyTorch) compute the same training steps."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "train_speed.py"


@pytest.fixture(scope="module")
def train_speed():
    """benchmarks/train_speed.py imported as a module (it is a script, not a package)."""
    if str(SCRIPT.parent) not in sys.path:   # it imports its neighbour torch_models.py
        sys.path.insert(0, str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("train_speed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module          # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_quick_run_writes_table_and_json(tmp_path):
    out = tmp_path / "speed.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--threads", "1", "--models", "dense-ae-64",
                           "--json", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "| 196-64-16-3 AE | 64 |" in proc.stdout
    data = json.loads(out.read_text())
    assert data["machine"]["threads"] == 1 and data["gemm_peak_gflops"]["peak"] > 0
    (res,) = data["results"]
    assert res["model"] == "dense-ae-64" and res["batch"] == 64
    for impl in ("tinyae", "raw", "torch"):
        assert res[impl]["samples_per_s"] > 0 and len(res[impl]["rounds_ms"]) == res["rounds"]
    assert res["flops_per_sample"] == pytest.approx(3 * 2 * (196 * 64 + 64 * 16 + 16 * 3) * 2)
    assert res["tinyae"]["peak_bytes"] > 0


@pytest.mark.parametrize("key,batch", [("dense-ae-64", None), ("dense-vae-64", None),
                                       ("ae-784-200", 32), ("vae-784-128", 32), ("conv-ae-200", 4)])
def test_implementations_compute_the_same_steps(train_speed, key, batch):
    losses = train_speed.agreement(key, batch=batch)
    np.testing.assert_allclose(losses["raw"], losses["tinyae"], rtol=1e-5)
    np.testing.assert_allclose(losses["torch"], losses["tinyae"], rtol=1e-4)


def test_cupy_backend_fails_clearly_without_a_gpu():
    from tinyae.backend import cupy_available
    if cupy_available():
        pytest.skip("a CUDA device is present")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--backend", "cupy", "--quick"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "cupy" in proc.stderr.lower() and "Traceback" not in proc.stderr
