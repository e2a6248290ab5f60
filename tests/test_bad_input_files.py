"""Bad input to fit, the data module, checkpoints and file writing: each case asserts the
exception type and that the message names the thing and what was expected; and nothing is
lost or leaked (finite checkpoints only, no orphaned temporary files, the user's umask,
one data source for both splits, a cache that heals)."""
import gzip
import http.server
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tinyae import data, models, plot
from tinyae._checks import DTypeError
from tinyae.checkpoint import CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint
from tinyae.data import DataLoader, sources   # sources: the settings the tests patch
from tinyae.optim import SGD, Adam
from tinyae.train import TrainingError, TrainingInterrupted, fit


def toy(n=48, d=12, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, size=(n, d)).astype(np.float32)


def small_ae(**kw):
    return models.build("mlp-ae", **{"sizes": [12, 6, 3], "activation": "tanh", "seed": 0, **kw})


def quiet_fit(model, opt, train, test=None, **kw):
    return fit(model, opt, train, test, progress=False, log=kw.pop("log", None), **kw)


# --------------------------------------------------------------------------
# fit refuses nonsense
# --------------------------------------------------------------------------

@pytest.mark.parametrize("kw, exc, words", [
    (dict(epochs=-1), ValueError, ["epochs", ">= 0", "-1"]),
    (dict(epochs=2.5), TypeError, ["epochs", "whole number", "2.5"]),
    (dict(epochs=True), TypeError, ["epochs", "whole number", "bool"]),
    (dict(epochs="3"), TypeError, ["epochs", "whole number", "'3'"]),
    (dict(batch_size=0), ValueError, ["batch_size", ">= 1", "0"]),
    (dict(batch_size=2.5), TypeError, ["batch_size", "whole number", "2.5"]),
    (dict(seed=-1), ValueError, ["seed", ">= 0", "-1"]),
    (dict(seed=1.5), TypeError, ["seed", "whole number"]),
])
def test_fit_refuses_bad_numbers(kw, exc, words):
    model = small_ae()
    before = {k: v.copy() for k, v in model.state_dict().items()}
    with pytest.raises(exc) as info:
        quiet_fit(model, Adam(model.parameters()), toy(), **{"epochs": 1, **kw})
    msg = str(info.value)
    assert msg.startswith("fit: ") and all(w in msg for w in words), msg
    assert all(np.array_equal(v, model.state_dict()[k]) for k, v in before.items())   # nothing trained


@pytest.mark.parametrize("train, exc, words", [
    (np.zeros((0, 12), np.float32), ValueError, ["train is empty", "0 samples"]),
    (None, TypeError, ["train is None", "array"]),
    (5, TypeError, ["train must be an array", "int"]),
    ("digits.npy", TypeError, ["train must be an array", "str"]),
    ([[0.1] * 12] * 8, TypeError, ["list of lists", "numpy.asarray"]),
    ([], ValueError, ["train is empty", "no batches"]),
    (np.float32(3.0), ValueError, ["train must be an array of samples", "0-d"]),
])
def test_fit_refuses_what_is_not_a_training_set(train, exc, words):
    model = small_ae()
    with pytest.raises(exc) as info:
        quiet_fit(model, Adam(model.parameters()), train, epochs=1)
    assert all(w in str(info.value) for w in words), str(info.value)


def test_fit_refuses_an_empty_test_set():
    model = small_ae()
    with pytest.raises(ValueError) as info:
        quiet_fit(model, Adam(model.parameters()), toy(), np.zeros((0, 12), np.float32), epochs=1)
    assert "test is empty" in str(info.value) and "test=None" in str(info.value)


def test_fit_refuses_an_optimizer_of_another_model():
    model, other = small_ae(), small_ae(seed=1)
    with pytest.raises(ValueError) as info:
        quiet_fit(model, Adam(other.parameters()), toy(), epochs=1)
    msg = str(info.value)
    assert "holds none of this model's 8 parameters" in msg and "Adam(model.parameters()" in msg


@pytest.mark.parametrize("wrap", [lambda x: x, lambda x: [(x[:16], None), (x[16:], None)]],
                         ids=["array", "batches"])
def test_fit_on_uint8_pixels_is_the_models_dtype_error(wrap):
    pixels = (toy() * 255).astype(np.uint8)
    model = small_ae()
    with pytest.raises(DTypeError) as info:
        quiet_fit(model, Adam(model.parameters()), wrap(pixels), epochs=1)
    msg = str(info.value)
    assert msg.startswith(("fit: train", "fit: a batch of train")) and "got dtype uint8" in msg and "tinyae.data.to_float" in msg
    with pytest.raises(DTypeError) as own:                        # what model.loss says itself
        model.loss(pixels)
    assert msg.split("must be", 1)[1] == str(own.value).split("must be", 1)[1]


def test_fit_epochs_0_trains_nothing():
    model = small_ae()
    before = {k: v.copy() for k, v in model.state_dict().items()}
    hist = quiet_fit(model, Adam(model.parameters()), toy(), epochs=0)
    assert len(hist) == 0 and all(np.array_equal(v, model.state_dict()[k]) for k, v in before.items())


# --------------------------------------------------------------------------
# Never save a broken model
# --------------------------------------------------------------------------

class BlowUpLoader:
    """4 batches of 8; in epoch ``bad`` (1-based) the last batch is scaled by 1e8, so SGD's step
    on it leaves parameters that overflow on the next forward (the loss of the step is finite)."""

    def __init__(self, x, bad):
        self.x, self.bad, self.epoch = x, bad, 0

    def set_epoch(self, e):
        self.epoch = e

    def __len__(self):
        return 4

    def __iter__(self):
        for i in range(4):
            xb = self.x[i * 8:(i + 1) * 8].copy()
            if self.epoch + 1 == self.bad and i == 3:
                xb *= np.float32(1e8)
            yield xb, None


def test_no_checkpoint_of_a_blown_up_model_without_a_test_set(tmp_path):
    ck = tmp_path / "ck.npz"
    model = small_ae(activation="identity")
    with pytest.raises(TrainingError) as info:
        quiet_fit(model, SGD(model.parameters(), lr=0.1), BlowUpLoader(toy(32), bad=2), epochs=3,
                  checkpoint=ck)
    msg = str(info.value)
    assert "after epoch 2" in msg and "last training batch" in msg and "after epoch 1) is unchanged" in msg
    state = load_checkpoint(ck)
    assert state.epoch == 1
    assert all(np.all(np.abs(v) < 10) for v in state.model.state_dict().values())


def test_checkpoint_write_failure_is_a_training_error_keeping_the_last_one(tmp_path, monkeypatch):
    ck = tmp_path / "ck.npz"
    model = small_ae()
    opt = Adam(model.parameters())
    quiet_fit(model, opt, toy(), epochs=1, checkpoint=ck)
    real = np.savez

    def full_disk(f, **arrays):
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", full_disk)
    with pytest.raises(TrainingError) as info:
        quiet_fit(model, opt, toy(), epochs=2, checkpoint=ck, resume=True)
    msg = str(info.value)
    assert f"could not write the checkpoint {ck} after epoch 2" in msg and "No space left" in msg
    assert "after epoch 1) is unchanged" in msg and "Free some disk space" in msg
    monkeypatch.setattr(np, "savez", real)
    assert load_checkpoint(ck).epoch == 1 and sorted(os.listdir(tmp_path)) == ["ck.npz"]


# --------------------------------------------------------------------------
# Ctrl-C
# --------------------------------------------------------------------------

def test_ctrl_c_says_which_epoch_the_checkpoint_holds(tmp_path):
    ck = tmp_path / "ck.npz"

    def ctrl_c_in_epoch_2(epoch, model, history):
        if epoch == 2:
            raise KeyboardInterrupt

    model = small_ae()
    with pytest.raises(TrainingInterrupted) as info:
        quiet_fit(model, Adam(model.parameters()), toy(), epochs=4, checkpoint=ck,
                  callbacks=[ctrl_c_in_epoch_2])
    assert isinstance(info.value, KeyboardInterrupt)
    assert (info.value.epoch, info.value.saved) == (2, 1)
    assert str(info.value) == f"interrupted in epoch 2; the checkpoint {ck} holds epoch 1; resume=True continues"
    assert load_checkpoint(ck).epoch == 1


# --------------------------------------------------------------------------
# Resume never ignores the user
# --------------------------------------------------------------------------

def trained(tmp_path, builder="mlp-ae", epochs=1, lr=1e-2, batch_size=16, seed=0, **kw):
    ck = tmp_path / "ck.npz"
    model = models.build(builder, **{"sizes": [12, 6, 3], "activation": "tanh", "seed": 0, **kw})
    quiet_fit(model, Adam(model.parameters(), lr=lr), toy(), epochs=epochs, checkpoint=ck,
              batch_size=batch_size, seed=seed)
    return ck


def test_resume_with_a_new_lr_uses_it_and_logs_the_change(tmp_path):
    ck = trained(tmp_path, lr=1e-2)
    model, lines = small_ae(), []
    opt = Adam(model.parameters(), lr=1e-3)
    hist = fit(model, opt, toy(), epochs=3, checkpoint=ck, resume=True, batch_size=16, progress=False,
               log=lines.append)
    assert opt.lr == 1e-3                             # the checkpoint's 1e-2 did not win
    assert "changed from epoch 2 on: lr 0.01 -> 0.001" in lines[0]
    assert [r["lr"] for r in hist.records] == [1e-2, 1e-3, 1e-3]
    assert hist[1]["changed"] == "lr 0.01 -> 0.001" and "changed" not in hist[2]
    assert load_checkpoint(ck).history[1]["lr"] == 1e-3


def test_resume_with_a_new_batch_size_uses_it_and_logs_the_change(tmp_path):
    ck = trained(tmp_path, batch_size=16, lr=1e-3)
    model, lines = small_ae(), []
    hist = fit(model, Adam(model.parameters(), lr=1e-3), toy(), epochs=2, checkpoint=ck, resume=True,
               batch_size=24, progress=False, log=lines.append)
    assert "batch_size 16 -> 24" in lines[0] and hist[1]["changed"] == "batch_size 16 -> 24"
    assert [r["batch_size"] for r in hist.records] == [16, 24]


def test_resume_with_another_seed_is_refused(tmp_path):
    ck = trained(tmp_path, seed=0, lr=1e-3)
    model = small_ae()
    with pytest.raises(CheckpointError) as info:
        quiet_fit(model, Adam(model.parameters()), toy(), epochs=2, checkpoint=ck, resume=True,
                  batch_size=16, seed=3)
    msg = str(info.value)
    assert str(ck) in msg and "seed 0" in msg and "seed 3" in msg and "keeps its seed" in msg


def test_resume_with_another_architecture_of_the_same_shapes_is_refused(tmp_path):
    ck = trained(tmp_path, lr=1e-3)
    model = small_ae(activation="relu")
    before = {k: v.copy() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError) as info:
        quiet_fit(model, Adam(model.parameters()), toy(), epochs=2, checkpoint=ck, resume=True,
                  batch_size=16)
    msg = str(info.value)
    assert "activation='tanh' in the checkpoint, 'relu' now" in msg and "another --out" in msg
    assert all(np.array_equal(v, model.state_dict()[k]) for k, v in before.items())   # nothing loaded


def test_resume_with_a_new_beta_uses_it_and_logs_the_change(tmp_path):
    ck = trained(tmp_path, builder="mlp-vae", lr=1e-3, beta=1.0, loss="mse", reduction="sum")
    model = models.build("mlp-vae", sizes=[12, 6, 3], activation="tanh", seed=0, beta=4.0, loss="mse",
                         reduction="sum")
    lines = []
    hist = fit(model, Adam(model.parameters(), lr=1e-3), toy(), epochs=2, checkpoint=ck, resume=True,
               batch_size=16, progress=False, log=lines.append)
    assert "beta 1 -> 4" in lines[0] and hist[1]["changed"] == "beta 1 -> 4" and model.beta == 4.0


# --------------------------------------------------------------------------
# Checkpoint files: what is missing or does not parse is named
# --------------------------------------------------------------------------

def rewrite(path, drop=(), **replace):
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files if k not in drop}
    arrays.update({k: np.array(v) for k, v in replace.items()})
    with open(path, "wb") as f:
        np.savez(f, **arrays)


@pytest.mark.parametrize("drop, replace, words", [
    (("history",), {}, ["field 'history' is missing"]),
    (("builder_kwargs", "rng"), {}, ["field 'builder_kwargs' is missing", "'rng'"]),
    ((), {"meta": "{tinyae: 0.1"}, ["field 'meta' is not valid JSON"]),
    ((), {"history": '{"epoch": 1}'}, ["field 'history' should hold a JSON list", "dict"]),
    ((), {"builder_kwargs": "[1, 2]"}, ["field 'builder_kwargs' should hold a JSON object", "list"]),
    ((), {"epoch": "three"}, ["field 'epoch' should be a whole number", "'three'"]),
    ((), {"epoch": -2}, ["field 'epoch' is -2, expected >= 0"]),
    ((), {"builder_kwargs": '{"sizes": [12, 6, 3], "wings": 2}'}, ["cannot rebuild the model", "wings"]),
])
def test_damaged_checkpoint_names_file_and_field(tmp_path, drop, replace, words):
    model = small_ae()
    path = save_checkpoint(tmp_path / "ck.npz", model, Adam(model.parameters()), epoch=1)
    rewrite(path, drop, **replace)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    msg = str(info.value)
    assert msg.startswith(str(path)) and all(w in msg for w in words), msg


def test_a_folder_is_not_a_checkpoint(tmp_path):
    (tmp_path / "ck.npz").mkdir()
    with pytest.raises(CheckpointError, match="is a folder, not a checkpoint file") as info:
        read_checkpoint(tmp_path / "ck.npz")
    assert str(tmp_path / "ck.npz") in str(info.value)


# --------------------------------------------------------------------------
# No orphans; the user's umask
# --------------------------------------------------------------------------

def test_fit_removes_what_a_killed_checkpoint_write_left(tmp_path):
    ck = tmp_path / "ck.npz"
    orphans = [tmp_path / ".ck.npz.k3j9x_a2.tmp", tmp_path / ".tmp-ck.npz.ab12cd34"]   # ours, tinyae 0.1's
    for p in orphans:
        p.write_bytes(b"half a checkpoint")
    (tmp_path / ".other.npz.k3j9x_a2.tmp").write_bytes(b"not ours to remove")
    model, lines = small_ae(), []
    fit(model, Adam(model.parameters()), toy(), epochs=1, checkpoint=ck, progress=False, log=lines.append)
    assert sorted(os.listdir(tmp_path)) == [".other.npz.k3j9x_a2.tmp", "ck.npz"]
    assert lines[0].startswith("removed .") and "unfinished write of an interrupted run" in lines[0]
    assert all(p.name in lines[0] for p in orphans)


@pytest.fixture
def umask():
    def set_mask(mask):
        old = os.umask(mask)
        restore.append(old)
    restore = []
    yield set_mask
    for old in restore[:1]:
        os.umask(old)


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_written_files_get_the_users_umask(tmp_path, umask, mask):
    umask(mask)
    model = small_ae()
    files = [save_checkpoint(tmp_path / "ck.npz", model, epoch=1),
             plot.save_loss_curves([{"epoch": 1, "train_loss": 1.0}], tmp_path / "loss.png")]
    data.write_idx(tmp_path / "a.idx.gz", np.zeros((2, 3), np.uint8))
    files.append(tmp_path / "a.idx.gz")
    for f in files:
        assert os.stat(f).st_mode & 0o777 == 0o666 & ~mask, (f, oct(os.stat(f).st_mode))


def test_plot_removes_the_leftover_of_a_killed_figure_write(tmp_path):
    orphan = tmp_path / ".loss.png.x1y2z3w4.tmp"
    orphan.write_bytes(b"half a png")
    plot.save_loss_curves([{"epoch": 1, "train_loss": 1.0}], tmp_path / "loss.png")
    assert sorted(os.listdir(tmp_path)) == ["loss.png"]


# --------------------------------------------------------------------------
# data: integers, not truncated; to_float never divides twice
# --------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [2.5, 4.0, "4", True, 0, -3, None])
def test_dataloader_batch_size_must_be_a_positive_int(bad):
    with pytest.raises(ValueError) as info:
        DataLoader(np.zeros((10, 2), np.float32), batch_size=bad)
    msg = str(info.value)
    assert "DataLoader: batch_size must be a positive integer" in msg and repr(bad) in msg


@pytest.mark.parametrize("bad", [7.5, 14.0, "14", False, 0])
def test_resize_size_must_be_a_positive_int(bad):
    with pytest.raises(ValueError) as info:
        data.resize(np.zeros((2, 28, 28), np.uint8), size=bad)
    assert "resize: size must be a positive integer" in str(info.value) and repr(bad) in str(info.value)


def test_dataloader_refuses_a_list():
    with pytest.raises(ValueError, match="DataLoader: x must be an array of samples.*numpy.asarray"):
        DataLoader([[0.0, 1.0]] * 4, batch_size=2)


def test_to_float_keeps_floats_in_unit_range_as_they_are():
    x = np.array([[0.0, 0.25, 1.0]], np.float64)
    np.testing.assert_array_equal(data.to_float(x), x.astype(np.float32))
    np.testing.assert_array_equal(data.to_float(x, range="symmetric"), [[-1.0, -0.5, 1.0]])
    pixels = np.array([[0, 51, 255]], np.uint8)
    once = data.to_float(pixels)
    np.testing.assert_array_equal(data.to_float(once), once)       # idempotent: never /255 twice
    assert data.to_float(once).dtype == np.float32


@pytest.mark.parametrize("x, words", [
    (np.array([0.0, 128.0, 255.0], np.float32), ["float images must already be in [0, 1]", "max 255",
                                                 "to_float before resize"]),
    (np.array([0.5, np.nan]), ["float images must already be in [0, 1]", "NaN"]),
    (np.array([-0.5, 0.5]), ["min -0.5"]),
    (np.array([0, 300], np.int64), ["integer pixels must be in 0-255", "300"]),
    (np.array([True, False]), ["expected uint8 pixels", "bool"]),
])
def test_to_float_refuses_what_is_not_pixels(x, words):
    with pytest.raises(ValueError) as info:
        data.to_float(x)
    assert str(info.value).startswith("to_float: ") and all(w in str(info.value) for w in words)


# --------------------------------------------------------------------------
# data: one source for both splits; the cache heals; a mirror URL
# --------------------------------------------------------------------------

@pytest.fixture
def isolated(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for var in ("TINYAE_DATA", "TINYAE_OFFLINE", "TINYAE_MNIST_MIRROR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(sources, "SYSTEM_DIRS", {})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/"
    monkeypatch.setattr(sources, "MIRRORS", {"mnist": [closed], "fashion-mnist": [closed]})
    monkeypatch.setattr(sources, "DOWNLOAD_TIMEOUT", 2.0)
    monkeypatch.setattr(sources, "_download_failures", {})
    monkeypatch.setattr(sources, "_fallback_announced", False)
    return tmp_path


def log_lines(capsys):
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("tinyae.data:")]


@pytest.mark.parametrize("present", ["train", "test"])
def test_one_split_of_full_mnist_is_not_mixed_with_the_embedded_other(mnist_dir, isolated, monkeypatch,
                                                                      capsys, present):
    folder = isolated / "only"
    folder.mkdir()
    for base in sources._FILES[present]:
        os.symlink(mnist_dir / f"{base}.gz", folder / f"{base}.gz")
    monkeypatch.setenv("TINYAE_DATA", str(folder))
    monkeypatch.setenv("TINYAE_OFFLINE", "1")
    train, _ = data.load_mnist("train")
    test, _ = data.load_mnist("test")
    assert (len(train), len(test)) == (4000, 1000)                  # both embedded, never 60,000 + 1,000
    first = log_lines(capsys)[0]
    missing = "test" if present == "train" else "train"
    if present == "train":       # asked for train first: it is there, test is not
        assert "full MNIST train is there but test not found" in first and "never mixed" in first
    else:
        assert "full MNIST train not found" in first
    assert "using the 5,000-digit embedded subset" in first and "for train and test alike" in first
    with pytest.raises(data.DataError, match=f"MNIST {missing} not found"):
        data.load_mnist(missing, subset="full")                     # explicit: a clear error instead


def serve(folder):
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(folder), **kwargs)

        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/", requests


@pytest.fixture
def mirror(mnist_dir):
    server, url, requests = serve(mnist_dir)
    yield url, requests
    server.shutdown()
    server.server_close()


def test_half_finished_download_is_completed_from_a_mirror(isolated, mirror, monkeypatch, capsys, mnist_dir):
    url, requests = mirror
    cache = isolated / "cache" / "tinyae" / "mnist"
    cache.mkdir(parents=True)
    shutil.copy(mnist_dir / "t10k-images-idx3-ubyte.gz", cache)        # the labels' download failed
    monkeypatch.setenv("TINYAE_MNIST_MIRROR", url)                       # the mirror URL, from the env
    images, labels = data.load_mnist("test", subset="full")
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
    assert requests == ["/t10k-labels-idx1-ubyte.gz"]                   # only the missing file
    out = log_lines(capsys)
    assert any("holds t10k-images-idx3-ubyte.gz but not t10k-labels-idx1-ubyte(.gz)" in line
               and "downloading the missing file" in line for line in out), out


def test_half_finished_download_offline_is_passed_over_not_blocking(isolated, monkeypatch, capsys, mnist_dir):
    cache = isolated / "cache" / "tinyae" / "mnist"
    cache.mkdir(parents=True)
    shutil.copy(mnist_dir / "t10k-images-idx3-ubyte.gz", cache)
    monkeypatch.setenv("TINYAE_OFFLINE", "1")
    assert len(data.load_mnist("test")[0]) == 1000                       # auto: the embedded subset
    with pytest.raises(data.DataError) as info:
        data.load_mnist("test", subset="full")
    msg = str(info.value)
    assert "holds t10k-images-idx3-ubyte.gz but not t10k-labels-idx1-ubyte(.gz)" in msg
    assert "passed over" in msg and "TINYAE_OFFLINE" in msg


def test_killed_download_leftovers_are_removed_on_the_next_run(isolated, mirror, monkeypatch, capsys):
    url, _ = mirror
    cache = isolated / "cache" / "tinyae" / "mnist"
    cache.mkdir(parents=True)
    stale = cache / ".t10k-images-idx3-ubyte.gz.q8w7e6r5.tmp"
    fresh = cache / ".t10k-labels-idx1-ubyte.gz.a1s2d3f4.tmp"              # another process, still going
    for p in (stale, fresh):
        p.write_bytes(b"partial download")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    monkeypatch.setenv("TINYAE_MNIST_MIRROR", url)
    data.load_mnist("test", subset="full")
    assert not stale.exists() and fresh.exists()
    out = log_lines(capsys)
    assert any("removed 1 unfinished download(s)" in line and stale.name in line for line in out), out


def test_downloads_get_the_users_umask(isolated, mirror, monkeypatch, umask):
    url, _ = mirror
    umask(0o022)
    monkeypatch.setenv("TINYAE_MNIST_MIRROR", url)
    data.load_mnist("test", subset="full", verbose=False)
    cache = isolated / "cache" / "tinyae" / "mnist"
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in cache.iterdir()}
    assert modes == {"t10k-images-idx3-ubyte.gz": "0o644", "t10k-labels-idx1-ubyte.gz": "0o644"}


def test_mirror_env_replaces_the_built_in_mirrors(isolated, monkeypatch):
    monkeypatch.setenv("TINYAE_MNIST_MIRROR", "http://127.0.0.1:9/a/, http://127.0.0.1:9/b/")
    assert data.mirrors("mnist") == ["http://127.0.0.1:9/a/", "http://127.0.0.1:9/b/"]
    with pytest.raises(data.DownloadError) as info:
        data.load_mnist("test", subset="full", verbose=False)
    assert "127.0.0.1:9/a/" in str(info.value) and "127.0.0.1:9/b/" in str(info.value)


def test_a_corrupt_download_in_the_cache_is_named(isolated, mnist_dir):
    cache = isolated / "cache" / "tinyae" / "mnist"
    cache.mkdir(parents=True)
    whole = (mnist_dir / "t10k-labels-idx1-ubyte.gz").read_bytes()
    shutil.copy(mnist_dir / "t10k-images-idx3-ubyte.gz", cache)
    (cache / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(gzip.decompress(whole)[:-7]))
    with pytest.raises(data.DataError) as info:
        data.load_mnist("test", subset="full", download=False)
    assert "t10k-labels-idx1-ubyte.gz" in str(info.value) and "truncated" in str(info.value)
    assert Path(cache / "t10k-labels-idx1-ubyte.gz").exists()
