"""Shared test settings: hypothesis profiles, data location, backends."""
import os
import pathlib

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", deadline=None, max_examples=25, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("dev", deadline=None, max_examples=10,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"


@pytest.fixture(scope="session")
def mnist_dir():
    """The four original MNIST IDX files (../shared/data/mnist beside the checkout)."""
    path = pathlib.Path(os.environ.get("TINYAE_TEST_MNIST", SHARED_MNIST))
    if not (path / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"MNIST files not found at {path}")
    return path


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def _cupy_ready() -> bool:
    from tinyae import backend
    return backend.cupy_available()


CUPY_READY = _cupy_ready()


def _standin() -> bool:
    from tinyae import backend
    return backend.cupy_is_standin()


def pytest_report_header(config):
    if _standin():
        return "cupy: TINYAE_FAKE_CUPY=1, the CPU stand-in (tinyae/_cupy_standin.py): device discipline only"
    return None


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` run only where CuPy and a CUDA device are present, or on the CPU
    stand-in (TINYAE_FAKE_CUPY=1); there, those also marked ``cuda("feature")`` skip, naming
    the CUDA feature they need."""
    standin = _standin()
    skip = pytest.mark.skip(reason="needs CuPy and a CUDA device (pip install 'tinyae[cuda12]')")
    for item in items:
        if "gpu" not in item.keywords:
            continue
        if not CUPY_READY:
            item.add_marker(skip)
        elif standin and item.get_closest_marker("cuda") is not None:
            feature = item.get_closest_marker("cuda").args[0]
            item.add_marker(pytest.mark.skip(reason=f"needs real CUDA ({feature}); the CuPy stand-in "
                                                    "(TINYAE_FAKE_CUPY=1) runs on the CPU"))
