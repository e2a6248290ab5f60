"""tinyae.plot's figures for the PyTorch tutorials (issue 16): labelled image rows, the latent
scatter's legend per digit, and latent spaces side by side on the same axes."""
import numpy as np
import pytest
from matplotlib import image as mimage

from tinyae import plot


def test_save_image_rows_size_and_tiles(tmp_path):
    rng = np.random.default_rng(0)
    rows = {"input": rng.uniform(0, 1, (12, 10, 10)), "corrupted": np.zeros((12, 100)),
            "repaired": np.ones((12, 10, 10))}
    path = plot.save_image_rows(rows, tmp_path / "rows.png", n=6, scale=2, pad=2)
    img = mimage.imread(path)
    h, w = img.shape[:2]
    assert h == 2 * (3 * 10 + 4 * 2)                     # 3 rows, no title
    grid_w = 2 * (6 * 10 + 7 * 2)
    assert w > grid_w
    grid = img[:, w - grid_w:, :3]
    # tile (row 1, col 0) is black, (row 2, col 5) white, both exactly (no resampling)
    y1, y2, x0, x5 = 2 * (2 + 12), 2 * (2 + 2 * 12), 2 * 2, 2 * (2 + 5 * 12)
    assert np.all(grid[y1:y1 + 20, x0:x0 + 20] == 0) and np.all(grid[y2:y2 + 20, x5:x5 + 20] == 1)
    titled = mimage.imread(plot.save_image_rows(list(rows.items()), tmp_path / "t.png", title="x"))
    assert titled.shape[0] == 2 * (3 * 10 + 4 * 2) + plot.title_height(100)     # n: all 12
    with pytest.raises(ValueError, match="image shapes differ"):
        plot.save_image_rows({"a": np.zeros((2, 10, 10)), "b": np.zeros((2, 12, 12))}, tmp_path / "bad.png")
    with pytest.raises(ValueError, match="non-empty dict"):
        plot.save_image_rows({}, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_latent_scatter_legend_and_comparison_on_shared_axes(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(10), 30)
    spread = rng.normal(0, 1, (300, 3)) + 8.0 * rng.normal(0, 1, (10, 3))[labels]
    compact = rng.normal(0, 1, (300, 3))
    assert mimage.imread(plot.save_latent_scatter(compact, labels, tmp_path / "l.png", legend=True)).shape[:2] \
        == (560, 720)
    # what is drawn: the axes' limits and the legend entries, caught at savefig
    from matplotlib.figure import Figure
    seen = {}
    original = Figure.savefig

    def spy(fig, *args, **kwargs):
        seen["axes"] = [ax for ax in fig.axes if hasattr(ax, "get_zlim")]
        seen["legends"] = [[t.get_text() for t in ax.get_legend().get_texts()] for ax in fig.axes
                           if ax.get_legend() is not None]
        seen["limits"] = [(ax.get_xlim(), ax.get_ylim(), ax.get_zlim()) for ax in seen["axes"]]
        return original(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", spy)
    path = plot.save_latent_comparison([spread, compact], labels, tmp_path / "c.png", titles=["AE", "VAE"],
                                       title="same digits")
    assert mimage.imread(path).shape[:2] == (560, 1280)
    assert len(seen["axes"]) == 2 and seen["limits"][0] == seen["limits"][1]    # the same axes
    (xlim, ylim, zlim) = seen["limits"][0]
    assert xlim[0] < spread[:, 0].min() and xlim[1] > spread[:, 0].max()       # the wider space fits
    assert seen["legends"] == [[str(d) for d in range(10)]]                    # one entry per digit
    plot.save_latent_scatter(spread, labels, tmp_path / "l2.png", legend=True)
    assert seen["legends"] == [[str(d) for d in range(10)]]
    with pytest.raises(ValueError, match="the same shape"):
        plot.save_latent_comparison([spread, compact[:10]], labels[:10], tmp_path / "bad.png")
    with pytest.raises(ValueError, match="2-D or 3-D codes"):
        plot.save_latent_comparison([np.zeros((5, 4))], None, tmp_path / "bad.png")
    with pytest.raises(ValueError, match="titles: 1 titles for 2 panels"):
        plot.save_latent_comparison([spread, compact], labels, tmp_path / "bad.png", titles=["AE"])
    assert not (tmp_path / "bad.png").exists()
