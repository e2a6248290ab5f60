#!/usr/bin/env python
"""Everything tinyae wants to know about a machine with an NVIDIA GPU, in one command
(under 8 minutes), written to one JSON file and one Markdown table:

    python benchmarks/gpu_check.py                 # on the GPU machine
    python benchmarks/gpu_check.py --dry-run       # anywhere: the same logic on the CPU

1. **The device**: ``nvidia-smi`` (name, driver, memory, the CUDA version the driver supports).
2. **Install what is missing**: CuPy matching that CUDA major version (``cupy-cuda12x`` or
   ``cupy-cuda13x``) when ``import cupy`` fails, and a CUDA build of PyTorch when the one
   installed has no CUDA (``--index-url https://download.pytorch.org/whl/cu126`` or ``cu130``).
   A failed install (no network, say) is recorded and the stages that need it are skipped.
3. **The GPU tests**: ``python -m pytest -q -m gpu`` (tests/test_gpu.py).
4. **The GPU benchmark**: tinyae on CuPy vs PyTorch CUDA vs tinyae on NumPy, the dense AE and
   VAE at batch 64 … 4096 and the conv AE at 64 … 1024, each framework in its own process
   (benchmarks/train_speed.py's ProcessRunner), rounds interleaved with a settle pause, ratios
   per round as median (min–max).  tinyae-NumPy is skipped where a round would take too long.
5. **The main job on both backends**: ``examples/vae_mnist.py --backend cupy`` and
   ``--backend numpy``, 2 epochs each, seconds per epoch as the example prints them.

``--dry-run`` runs every stage's logic without CUDA, on the CuPy stand-in (TINYAE_FAKE_CUPY=1,
tinyae/_cupy_standin.py: the CuPy code path on the CPU, device discipline only): it prints the
install commands instead of running them, runs the gpu-marked tests on the stand-in (those that
need real CUDA skip, naming it), runs the benchmark with tinyae's "cupy" side on the stand-in
and "cuda" replaced by PyTorch CPU (small batches, few rounds: the times mean nothing), and the
main job with --backend cupy on the stand-in and --backend numpy for one short epoch, and
writes the same two files, marked as a dry run.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DENSE_BATCHES = (64, 256, 1024, 4096)
CONV_BATCHES = (64, 256, 1024)
MODELS = (("ae-784-200", DENSE_BATCHES), ("vae-784-128", DENSE_BATCHES), ("conv-ae-200", CONV_BATCHES))


class Clock:
    """The run's time budget."""

    def __init__(self, budget):
        self.t0, self.budget = time.monotonic(), budget

    def left(self):
        return self.budget - (time.monotonic() - self.t0)


def sh(cmd, timeout, env=None):
    """(returncode, stdout+stderr tail) of a command; never raises."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=max(1, timeout), env=env, cwd=ROOT)
        return proc.returncode, (proc.stdout + proc.stderr)[-4000:]
    except subprocess.TimeoutExpired:
        return 124, f"timed out after {timeout:.0f} s"
    except OSError as exc:
        return 127, str(exc)


def device_info():
    if not shutil.which("nvidia-smi"):
        return {"present": False, "note": "nvidia-smi not found"}
    code, out = sh(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"], 30)
    info = {"present": code == 0, "query": out.strip()}
    code, out = sh(["nvidia-smi"], 30)
    m = re.search(r"CUDA Version:\s*([\d.]+)", out)
    info["cuda"] = m.group(1) if m else None
    return info


def install_plan(dev):
    """The pip commands that would make CuPy and PyTorch CUDA importable (empty when they are)."""
    major = int(dev["cuda"].split(".")[0]) if dev.get("cuda") else 12
    plan = []
    if importlib.util.find_spec("cupy") is None:
        plan.append([sys.executable, "-m", "pip", "install", "-q", f"cupy-cuda{13 if major >= 13 else 12}x"])
    torch_cuda = False
    if importlib.util.find_spec("torch") is not None:
        code, out = sh([sys.executable, "-c", "import torch; print(torch.cuda.is_available())"], 120)
        torch_cuda = code == 0 and out.strip().endswith("True")
    if not torch_cuda:
        index = "cu130" if major >= 13 else "cu126"
        plan.append([sys.executable, "-m", "pip", "install", "-q", "torch",
                     "--index-url", f"https://download.pytorch.org/whl/{index}"])
    return plan


def gpu_tests(clock, dry):
    code, out = sh([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", "tests/test_gpu.py"],
                   min(180, clock.left() - 200) if not dry else 180)
    summary = next((line for line in reversed(out.splitlines()) if re.search(r"\d+ (passed|skipped|failed)", line)),
                   out.splitlines()[-1] if out else "")
    return {"returncode": code, "summary": summary.strip("= ")}


def benchmark(clock, dry, threads):
    sys.path.insert(0, str(HERE))
    import train_speed as ts  # noqa: PLC0415
    rows, notes = [], []
    repeat, round_time, settle = (3, 0.05, 0.05) if dry else (5, 0.2, 0.2)
    for key, batches in MODELS:
        for batch in (batches[:2] if dry else batches):
            if clock.left() < 150:
                notes.append(f"{key} batch {batch} and later: skipped (time budget)")
                break
            bench = ts.dataclasses.replace(ts.BENCH_BY_KEY[key], batch=batch)
            sides = {"tinyae-cupy": ("tinyae", "cupy", not dry),     # dry: the CuPy stand-in
                     "torch-cuda": ("torch", "numpy" if dry else "cupy", not dry),
                     "tinyae-numpy": ("tinyae", "numpy", False)}
            if key == "conv-ae-200" and batch > 256:
                sides.pop("tinyae-numpy")       # seconds per step on the CPU
            runners = {}
            try:
                for label, (impl, backend_name, gpu) in sides.items():
                    try:
                        runners[label] = ts.ProcessRunner(impl, bench, 0, gpu, 2, threads, backend_name)
                    except (ts.peers.PeerUnsupported, RuntimeError) as exc:
                        notes.append(f"{key} batch {batch}: {label} not run ({exc})")
                if "tinyae-cupy" not in runners:
                    continue
                for r in runners.values():
                    r.run(3)
                slowest = max(r.run(2) for r in runners.values())
                steps = max(2, min(2000, round(round_time / slowest)))
                rounds = ts.timed_rounds(runners, steps, repeat, settle)
            finally:
                for r in runners.values():
                    r.close()
            row = {"model": key, "title": bench.title, "batch": batch, "steps_per_round": steps,
                   "step_ms": {k: statistics.median(v) * 1e3 for k, v in rounds.items()}}
            base = rounds["tinyae-cupy"]
            row["ratios"] = {k: ts.spread([o / b for o, b in zip(v, base)]) for k, v in rounds.items()
                             if k != "tinyae-cupy"}
            rows.append(row)
            print(f"#   {key} batch {batch}: " + ", ".join(f"{k} {v:.2f} ms" for k, v in row["step_ms"].items()),
                  flush=True)
    return {"rows": rows, "notes": notes}


def main_job(clock, dry):
    out = {}
    env = dict(os.environ, MPLBACKEND="Agg")
    extra = ["--epochs", "1", "--limit", "2000", "--data", "embedded"] if dry else ["--epochs", "2"]
    for label, backend_name in (("cupy", "cupy"), ("numpy", "numpy")):   # dry: cupy is the stand-in
        if clock.left() < 40:
            out[label] = {"note": "skipped (time budget)"}
            continue
        with tempfile.TemporaryDirectory() as tmp:
            code, text = sh([sys.executable, "examples/vae_mnist.py", "--backend", backend_name, "--no-progress",
                             "--out", tmp, *extra], min(200, clock.left() - 20), env=env)
        seconds = [float(s) for s in re.findall(r"epoch \d+/\d+ .*\(([\d.]+) s\)", text)]
        out[label] = {"returncode": code, "seconds_per_epoch": seconds, "backend_run": backend_name,
                      "tail": text[-600:] if code else ""}
    return out


def markdown(report):
    lines = [f"# GPU check{' (DRY RUN on the CPU: no CUDA numbers)' if report['dry_run'] else ''}", "",
             f"- device: {report['device'].get('query') or report['device'].get('note')}; "
             f"driver CUDA {report['device'].get('cuda')}",
             f"- installs: {report['install'] or 'nothing missing'}",
             f"- pytest -m gpu: {report['gpu_tests']['summary']} (exit {report['gpu_tests']['returncode']})", "",
             "| model | batch | tinyae-CuPy ms | PyTorch CUDA ms | tinyae-NumPy ms | "
             "PyTorch/tinyae-CuPy | tinyae-NumPy/tinyae-CuPy |", "|---|---|---|---|---|---|---|"]

    def cell(row, k):
        return f"{row['step_ms'][k]:.2f}" if k in row["step_ms"] else "—"

    def ratio(row, k):
        s = row["ratios"].get(k)
        return "—" if s is None else f"{s['median']:.2f} ({s['min']:.2f}–{s['max']:.2f})"
    for row in report["benchmark"]["rows"]:
        lines.append(f"| {row['title']} | {row['batch']} | {cell(row, 'tinyae-cupy')} | {cell(row, 'torch-cuda')} | "
                     f"{cell(row, 'tinyae-numpy')} | {ratio(row, 'torch-cuda')} | {ratio(row, 'tinyae-numpy')} |")
    lines += [""] + [f"- {n}" for n in report["benchmark"]["notes"]]
    job = report["main_job"]
    lines += ["", "| main job (examples/vae_mnist.py) | seconds per epoch |", "|---|---|"]
    for label in ("cupy", "numpy"):
        j = job.get(label, {})
        secs = ", ".join(f"{s:.1f}" for s in j.get("seconds_per_epoch", [])) or j.get("note", f"exit {j.get('returncode')}")
        lines.append(f"| --backend {label}{' (the CPU stand-in: dry run)' if report['dry_run'] and label == 'cupy' else ''}"
                     f" | {secs} |")
    lines += ["", f"total {report['seconds']:.0f} s"]
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="no CUDA: run what can run on the CPU")
    ap.add_argument("--out", type=Path, default=Path("gpu_check"), help="directory for gpu_check.json/.md")
    ap.add_argument("--budget", type=float, default=450, help="seconds for the whole run (default 450)")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads for the NumPy side")
    ap.add_argument("--no-install", action="store_true", help="do not pip install anything")
    args = ap.parse_args(argv)
    clock = Clock(args.budget)
    if args.dry_run:     # every stage below, and the processes it starts, use the CuPy stand-in
        os.environ["TINYAE_FAKE_CUPY"] = "1"
    report = {"dry_run": args.dry_run, "device": device_info()}
    print(f"# device: {report['device']}", flush=True)
    if not args.dry_run and not report["device"]["present"]:
        print("gpu_check.py: error: no NVIDIA GPU (nvidia-smi found none); use --dry-run on a CPU machine",
              file=sys.stderr)
        return 2
    plan = install_plan(report["device"])
    report["install"] = []
    for cmd in plan:
        text = " ".join(cmd[2:])
        if args.dry_run or args.no_install:
            report["install"].append(f"would run: {text}")
            continue
        code, out = sh(cmd, min(240, clock.left() - 240))
        report["install"].append(f"{text}: {'ok' if code == 0 else 'FAILED (' + out.strip()[-200:] + ')'}")
    print(f"# installs: {report['install'] or 'nothing missing'}", flush=True)
    report["gpu_tests"] = gpu_tests(clock, args.dry_run)
    print(f"# pytest -m gpu: {report['gpu_tests']['summary']}", flush=True)
    if args.dry_run or importlib.util.find_spec("cupy") is not None:
        report["benchmark"] = benchmark(clock, args.dry_run, args.threads)
    else:
        report["benchmark"] = {"rows": [], "notes": ["CuPy is not importable: the benchmark was not run"]}
    report["main_job"] = main_job(clock, args.dry_run)
    report["seconds"] = time.monotonic() - clock.t0
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2))
    (args.out / "gpu_check.md").write_text(markdown(report))
    print(markdown(report))
    print(f"wrote {args.out / 'gpu_check.json'} and {args.out / 'gpu_check.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
