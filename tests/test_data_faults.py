"""tinyae.data where a hostile caller finds the edges (issue 26, item 5 and the same classes).

* Batches never alias the data set: with ``shuffle=False`` a batch used to be a view of the
  caller's array, so ``xb += noise`` in a training loop (or an in-place transform) changed
  the data set for every later epoch.
* Arguments believed without a check: a negative or string seed (failed later, inside NumPy,
  naming neither DataLoader nor the seed), a transform that returns None or drops samples,
  ``gaussian_noise`` with a negative or NaN std (silently accepted), ``random_rotate_flip``
  with NaN degrees (an OverflowError), a flip probability of 2 or flattened images.
* Data sizes at an edge: ``flatten`` of an empty set (a reshape error).
* An error path that failed itself: ``read_idx`` of a folder (an OSError the scripts
  reported as a full disk); a gzip file with gigabytes of padding after the data is refused
  without holding the padding in memory.
"""
from __future__ import annotations

import gzip
import struct
import tracemalloc

import numpy as np
import pytest

from tinyae import data


@pytest.mark.parametrize("to_device", [True, False])
@pytest.mark.parametrize("shuffle", [False, True])
def test_batches_never_alias_the_data_set(shuffle, to_device):
    x = np.arange(24, dtype=np.float32).reshape(6, 4)
    y = np.arange(6)
    before, labels = x.copy(), y.copy()
    loader = data.DataLoader(x, y, batch_size=4, shuffle=shuffle, to_device=to_device)
    for _ in range(2):                      # two epochs: the second must see the same data
        for xb, yb in loader:
            xb += 100.0                     # what a denoising loop might do
            yb[:] = -1
    assert np.array_equal(x, before) and np.array_equal(y, labels)


def test_an_in_place_transform_leaves_the_data_set_alone():
    x = np.zeros((5, 3), np.float32)

    def noisy(xb, rng):
        xb += rng.standard_normal(xb.shape).astype(np.float32)
        return xb

    batches = [xb for xb, _ in data.DataLoader(x, batch_size=2, shuffle=False, transform=noisy)]
    assert np.all(x == 0) and any(np.any(b != 0) for b in batches)


@pytest.mark.parametrize("seed", [-1, "a", 2.5, True])
def test_dataloader_refuses_a_bad_seed_up_front(seed):
    with pytest.raises(ValueError, match=r"DataLoader: seed must be a whole number >= 0, got"):
        data.DataLoader(np.zeros((3, 2), np.float32), seed=seed)


@pytest.mark.parametrize("transform, found", [(lambda xb, rng: None, "None"),
                                              (lambda xb, rng: xb[:1], "an array of shape (1, 2)")])
def test_dataloader_names_a_transform_that_loses_the_batch(transform, found):
    loader = data.DataLoader(np.zeros((4, 2), np.float32), batch_size=2, transform=transform)
    with pytest.raises(ValueError, match=rf"transform returned {__import__('re').escape(found)} for a batch of 2"):
        list(loader)
    with pytest.raises(TypeError, match="transform must be a function"):
        data.DataLoader(np.zeros((4, 2), np.float32), transform="flip")


@pytest.mark.parametrize("std", [-0.1, float("nan"), float("inf"), "0.3"])
def test_gaussian_noise_refuses_a_bad_std(std):
    with pytest.raises(ValueError, match=r"gaussian_noise: std must be a finite number >= 0"):
        data.gaussian_noise(np.zeros((2, 2), np.float32), std, np.random.default_rng(0))


@pytest.mark.parametrize("kwargs, words", [
    ({"max_degrees": float("nan")}, "max_degrees must be a finite number >= 0"),
    ({"flip_prob": 2}, "flip_prob must be a number in [0, 1]"),
    ({"fill": float("inf")}, "fill must be a finite number"),
])
def test_random_rotate_flip_refuses_bad_settings(kwargs, words):
    with pytest.raises(ValueError, match=__import__("re").escape(words)):
        data.random_rotate_flip(np.zeros((2, 14, 14), np.float32), np.random.default_rng(0), **kwargs)


def test_random_rotate_flip_names_flattened_images():
    with pytest.raises(ValueError, match=r"expected images \(N, H, W\) or \(N, C, H, W\), got shape \(2, 196\)"):
        data.random_rotate_flip(np.zeros((2, 196), np.float32), np.random.default_rng(0))


def test_flatten_and_transforms_of_an_empty_set():
    assert data.flatten(np.zeros((0, 28, 28), np.float32)).shape == (0, 784)
    assert data.resize(np.zeros((0, 28, 28), np.float32), size=14).shape == (0, 14, 14)


def test_read_idx_of_a_folder_is_a_data_error(tmp_path):
    with pytest.raises(data.DataError, match="is a folder, not an IDX file"):
        data.read_idx(tmp_path)


def test_padding_after_the_data_is_counted_not_kept(tmp_path):
    path = tmp_path / "padded-idx1-ubyte.gz"
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(bytes([0, 0, 8, 1]) + struct.pack(">I", 3) + b"abc")
        block = bytes(1 << 20)
        for _ in range(64):                 # 64 MiB of zeros after the data, ~64 kB on disk
            f.write(block)
    tracemalloc.start()
    try:
        with pytest.raises(data.DataError, match=r"but 67108864 more bytes follow"):
            data.read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 40 * (1 << 20), f"{peak / 2**20:.0f} MiB held to refuse the file"
