"""Keep benchmarks/train_speed.py from rotting: quick runs end to end (one process, and one
process per implementation), the check that its implementations (tinyae, raw kernels,
PyTorch, and JAX/DeZero when installed) compute the same training steps, and the pieces the
fairness of the comparison rests on (subnormal counting, DeZero's dtypes, the machine read
from the system)."""
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
    if str(SCRIPT.parent) not in sys.path:   # it imports its neighbours (torch_models, peers, raw_kernels)
        sys.path.insert(0, str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("train_speed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module          # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def run_script(*args, timeout=180):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout)


def test_quick_run_writes_tables_and_json(tmp_path, train_speed):
    out, md = tmp_path / "speed.json", tmp_path / "speed.md"
    proc = run_script("--quick", "--threads", "1", "--models", "dense-ae-64", "--json", str(out),
                      "--markdown", str(md))
    assert proc.returncode == 0, proc.stderr
    assert "| 196-64-16-3 AE | 64 | fresh |" in proc.stdout
    assert "| 196-64-16-3 AE | 64 | trained |" in proc.stdout
    data = json.loads(out.read_text())
    machine = data["machine"]
    assert machine["threads"] == 1 and data["gemm_peak_gflops"]["peak"] > 0
    assert machine["cpu"]["model"] == train_speed.cpu_description()["model"] != "unknown"
    assert data["settings"]["train_steps"] == 20
    (res,) = data["results"]
    assert res["model"] == "dense-ae-64" and res["batch"] == 64 and res["train_steps"] == 20
    available = [n for n in ("tinyae", "raw", "torch", "jax", "dezero") if n in res["impls"]]
    assert available[:3] == ["tinyae", "raw", "torch"]
    for regime in ("fresh", "trained"):
        g = res[regime]
        for impl in available:
            assert g[impl]["samples_per_s"] > 0 and len(g[impl]["rounds_ms"]) == res["rounds"]
            assert g[impl]["worst_step_ms"] >= g[impl]["step_ms"] >= g[impl]["best_step_ms"] > 0
        ratio = g["ratios"]["torch"]
        assert ratio["max"] >= ratio["median"] >= ratio["min"] > 0
        rounds = g["torch"]["rounds_ms"], g["tinyae"]["rounds_ms"]
        assert ratio["median"] == pytest.approx(float(np.median([p / t for p, t in zip(*rounds)])))
    assert res["flops_per_sample"] == pytest.approx(3 * 2 * (196 * 64 + 64 * 16 + 16 * 3) * 2)
    assert res["peak_bytes"]["tinyae"] > 0
    params = (196 * 64 + 64 + 64 * 16 + 16 + 16 * 3 + 3) + (3 * 16 + 16 + 16 * 64 + 64 + 64 * 196 + 196)
    assert res["adam_subnormals"]["tinyae"]["entries"] == 2 * params      # exp_avg and exp_avg_sq
    text = md.read_text()
    assert text.startswith("`python benchmarks/train_speed.py --quick") and machine["cpu"]["model"] in text


def test_isolated_processes_run(tmp_path):
    out = tmp_path / "speed.json"
    proc = run_script("--quick", "--threads", "1", "--models", "dense-ae-64", "--impls", "tinyae,torch",
                      "--isolate", "--settle", "0.05", "--train-steps", "5", "--no-memory", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert data["settings"]["isolate"] is True and data["settings"]["settle"] == 0.05
    (res,) = data["results"]
    assert res["impls"] == ["tinyae", "torch"]
    assert len(res["trained"]["torch"]["rounds_ms"]) == 3 and res["trained"]["ratios"]["torch"]["median"] > 0


@pytest.mark.parametrize("key,batch", [("dense-ae-64", None), ("dense-vae-64", None),
                                       ("ae-784-200", 32), ("vae-784-128", 32), ("conv-ae-200", 4)])
def test_implementations_compute_the_same_steps(train_speed, key, batch):
    peers = ("jax", "dezero") if key in ("dense-ae-64", "vae-784-128") else ()
    losses = train_speed.agreement(key, batch=batch, impls=("raw", "tinyae", "torch") + peers)
    np.testing.assert_allclose(losses["raw"], losses["tinyae"], rtol=1e-5)
    np.testing.assert_allclose(losses["torch"], losses["tinyae"], rtol=1e-4)
    if "jax" in losses:
        np.testing.assert_allclose(losses["jax"], losses["tinyae"], rtol=1e-4)
    if "dezero" in losses:   # its Adam adds ε before the bias correction (benchmarks/peers.py)
        np.testing.assert_allclose(losses["dezero"], losses["tinyae"], rtol=1e-3)


def test_subnormal_count(train_speed):
    tiny = np.finfo(np.float32).tiny
    a = np.array([0.0, tiny, tiny / 2, -tiny / 4, 1e-3, np.float32(1e-45)], dtype=np.float32)
    assert train_speed.count_subnormals([a, np.zeros(3, np.float64)]) == (3, 9)


def test_dezero_float32_like_for_like(train_speed):
    """DeZero on NumPy ≥ 2 promotes its float32 gradients to float64 (Python numbers become
    float64 0-d arrays); the benchmark's twin keeps them float32, and says which it ran."""
    import peers
    if not peers.available()["dezero"]:
        pytest.skip("DeZero is not installed")
    bench = train_speed.BENCH_BY_KEY["ae-784-200"]
    x = train_speed.make_batches(train_speed.load_images(8, 0)[0], train_speed.Bench(
        bench.key, bench.title, bench.builder, 8, bench.input), 1)[0]
    parts = train_speed.model_parts(train_speed.build_model(bench, 0))
    fixed = peers.dezero_step(parts, 0)
    fixed(x)
    assert fixed.grad_dtypes == [["float32"]]
    naive = peers.dezero_step(parts, 0, float32_constants=False)
    naive(x)
    expected = ["float64"] if int(np.__version__.split(".")[0]) >= 2 else ["float32"]
    assert naive.grad_dtypes == [expected]
    peers.import_dezero()                    # leave DeZero patched for later users in this process


def test_cupy_backend_fails_clearly_without_a_gpu():
    from tinyae.backend import cupy_available
    if cupy_available():
        pytest.skip("a CUDA device is present")
    proc = run_script("--backend", "cupy", "--quick", timeout=60)
    assert proc.returncode == 2
    assert "cupy" in proc.stderr.lower() and "Traceback" not in proc.stderr


def test_gpu_check_plans_the_matching_cupy_and_writes_its_table(train_speed):  # (puts benchmarks/ on sys.path)
    """benchmarks/gpu_check.py's logic that needs no device (its --dry-run runs the rest)."""
    import gpu_check
    plan13 = [" ".join(c) for c in gpu_check.install_plan({"present": True, "cuda": "13.0"})]
    plan12 = [" ".join(c) for c in gpu_check.install_plan({"present": True, "cuda": "12.4"})]
    from importlib.util import find_spec
    if find_spec("cupy") is None:
        assert any("cupy-cuda13x" in c for c in plan13) and any("cupy-cuda12x" in c for c in plan12)
    assert all("whl/cu130" in c for c in plan13 if "torch" in c) and all("whl/cu126" in c for c in plan12 if "torch" in c)
    row = {"title": "conv AE", "batch": 64, "step_ms": {"tinyae-cupy": 2.0, "torch-cuda": 3.0},
           "ratios": {"torch-cuda": {"median": 1.5, "min": 1.25, "max": 1.75}}}
    report = {"dry_run": True, "device": {"note": "nvidia-smi not found", "cuda": None}, "install": [],
              "gpu_tests": {"summary": "81 skipped", "returncode": 0}, "benchmark": {"rows": [row], "notes": []},
              "main_job": {"cupy": {"seconds_per_epoch": [1.25]}, "numpy": {"note": "skipped (time budget)"}},
              "seconds": 12.0}
    md = gpu_check.markdown(report)
    assert "DRY RUN" in md and "| conv AE | 64 | 2.00 | 3.00 | — | 1.50 (1.25–1.75) | — |" in md
    assert "| --backend numpy | skipped (time budget) |" in md


def test_input_grad_benchmark_runs_and_compares_both_sides():
    """benchmarks/input_grad.py: need_dx=False skips the first layer's dL/dx, need_dx=True not."""
    script = SCRIPT.parent / "input_grad.py"
    proc = subprocess.run([sys.executable, str(script), "--repeat", "2", "--steps", "2", "--settle", "0",
                           "--batch", "16", "--train-steps", "3"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("# CPU: ")                       # the machine, from the system
    lines = [x.strip() for x in proc.stdout.splitlines() if not x.startswith("#")]
    for regime, at in (("fresh", 0), ("trained", 4)):
        assert lines[at] == f"{regime}:"
        assert lines[at + 1].startswith("need_dx=False (no dL/dx)")
        assert lines[at + 2].startswith("need_dx=True (dL/dx computed)")
        ratio = float(lines[at + 3].split(":")[1].split()[0])
        assert 0.1 < ratio < 10


def test_module_overhead_benchmark_prints_one_line_per_model():
    """benchmarks/module_overhead.py: tinyae against the raw kernels, per-round overhead and quartiles."""
    script = SCRIPT.parent / "module_overhead.py"
    proc = subprocess.run([sys.executable, str(script), "--models", "dense-ae-64,dense-vae-64", "--rounds", "4",
                           "--steps", "2", "--warmup", "1", "--train-steps", "3"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("# CPU: ")                       # the machine, from the system
    lines = [x for x in proc.stdout.splitlines() if not x.startswith("#")]
    assert [x.split()[:2] for x in lines] == [["dense-ae-64", "fresh"], ["dense-ae-64", "trained"],
                                              ["dense-vae-64", "fresh"], ["dense-vae-64", "trained"]]
    for line in lines:
        tinyae_us, raw_us = float(line.split()[3]), float(line.split()[6])
        overhead = float(line.split("overhead")[1].split("%")[0])
        assert tinyae_us > 0 and raw_us > 0
        assert -90 < overhead < 1000 and "4 rounds of 2 steps" in line
    bad = subprocess.run([sys.executable, str(script), "--models", "nope"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unknown model(s) nope" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize("model", ["main-job", "dense-vae-64"])
def test_ab_versions_times_a_model_of_two_trees(model):
    """benchmarks/ab_versions.py: the same tree as A and B, one round: a ratio line per model
    (the main job's step comes from each tree's own examples/vae_mnist.py)."""
    root = SCRIPT.parents[1]
    proc = subprocess.run([sys.executable, str(SCRIPT.parent / "ab_versions.py"), str(root), str(root),
                           "--model", model, "--rounds", "2", "--steps", "1", "--train-steps", "3"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith(f"{model}, batch 64, trained (3 more steps): B/A per round: median "), last
    assert 0.1 < float(last.split("median ")[1].split()[0]) < 10
