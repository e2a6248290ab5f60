"""examples/inpainting.py (issue 16): the denoising AE against OpenCV's Telea and Navier–Stokes
inpainting, scored inside the corrupted region; without OpenCV the comparison is skipped."""
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from test_pytorch_tutorials import EXAMPLES, load_example, png_shape, run_example  # noqa: E402
from tinyae.plot import title_height  # noqa: E402


def test_corruptions_and_scores():
    ip = load_example("inpainting")
    masks = ip.corruptions(200, 10, seed=1)
    assert masks["pixels"].shape == masks["patch"].shape == (200, 784)
    assert 0.45 < masks["pixels"].mean() < 0.55                          # half the pixels
    assert (masks["patch"].sum(axis=1) == 100).all()                     # one 10×10 square each
    rows, cols = np.nonzero(masks["patch"].reshape(200, 28, 28).any(axis=0))
    assert rows.min() >= 4 and rows.max() <= 23 and cols.min() >= 4 and cols.max() <= 23
    x = np.random.default_rng(0).uniform(-1, 1, (200, 784)).astype(np.float32)
    given = ip.model_inputs(x, masks["pixels"], "pixels")
    np.testing.assert_array_equal(given[masks["pixels"]], 0)
    np.testing.assert_allclose(given[~masks["pixels"]], 2 * x[~masks["pixels"]])    # the {0, 2} mask
    np.testing.assert_array_equal(ip.model_inputs(x, masks["patch"], "patch"), np.where(masks["patch"], 0, x))
    est = x.copy()
    est[masks["patch"]] += 0.5                                           # wrong by 0.5 inside only
    assert ip.region_mse(est, x, masks["patch"]) == pytest.approx(0.25)


def test_inpainting_script_with_and_without_opencv(tmp_path):
    pytest.importorskip("cv2", reason="opencv-python-headless (the inpaint extra) is not installed")
    proc, out = run_example("inpainting", tmp_path, "--batch-size", "16", limit=2000, epochs=3)
    report = json.loads((out / "inpainting.json").read_text())
    table = report["mse_in_region"]
    for kind in ("pixels", "patch"):
        assert set(table[kind]) == {"corrupted", "standard-500", "denoising-500", "telea", "ns"}
        for method in ("standard-500", "denoising-500", "telea", "ns"):     # every repair beats the holes
            assert table[kind][method] < table[kind]["corrupted"], (kind, method)
    # a grey patch: the denoising AE fills it better than the same net trained on clean digits
    # (on dropped pixels it needs the full run's budget for that: docs/results.md)
    assert table["patch"]["denoising-500"] < table["patch"]["standard-500"]
    t = title_height(100)
    for kind in ("pixels", "patch"):      # 5 labelled rows of 10: input, corrupted, AE, Telea, NS
        h, w = png_shape(out / f"inpainting_{kind}.png")[:2]
        assert h == 2 * (5 * 28 + 6 * 2) + t and w > 2 * (10 * 28 + 11 * 2)

    # the same models (--from), with cv2 made unimportable: a one-line note, the AE rows only
    env = dict(os.environ, MPLBACKEND="Agg", TINYAE_OFFLINE="1", OPENBLAS_NUM_THREADS="1")
    env.pop("TINYAE_DATA", None)
    script = EXAMPLES / "inpainting.py"
    argv = [str(script), "--data", "embedded", "--limit", "2000", "--no-progress", "--from", str(out),
            "--out", str(tmp_path / "no_cv2")]
    code = (f"import sys, runpy; sys.modules['cv2'] = None; sys.path.insert(0, {str(EXAMPLES)!r}); "
            f"sys.argv = {argv!r}; runpy.run_path({str(script)!r}, run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    notes = [line for line in proc.stdout.splitlines() if "OpenCV" in line]
    assert notes == ["OpenCV (cv2) is not installed: the Telea and Navier-Stokes comparison is skipped "
                     "(pip install 'tinyae[inpaint]')"]
    again = json.loads((tmp_path / "no_cv2" / "inpainting.json").read_text())["mse_in_region"]
    for kind in ("pixels", "patch"):
        assert set(again[kind]) == {"corrupted", "standard-500", "denoising-500"}
        assert again[kind]["denoising-500"] == pytest.approx(table[kind]["denoising-500"], rel=1e-6)
        assert png_shape(tmp_path / "no_cv2" / f"inpainting_{kind}.png")[0] == 2 * (3 * 28 + 4 * 2) + t
