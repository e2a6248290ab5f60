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


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` run only where CuPy and a CUDA device are present."""
    if CUPY_READY:
        return
    skip = pytest.mark.skip(reason="needs CuPy and a CUDA device (pip install 'tinyae[cuda12]')")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
