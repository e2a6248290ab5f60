"""Text rendered to pixels: the titles and row labels of :mod:`tinyae.plot`'s image figures.

The image grids of :mod:`tinyae.plot` are written pixel-exactly (one array element per
pixel, no resampling), so their titles and row labels cannot be Matplotlib artists laid
out around an axes.  Instead the text is drawn on its own small Agg canvas of an exact
size, read back as a ``(height, width, 4)`` uint8 RGBA array and stacked onto the grid
with :func:`numpy.concatenate`:

    with_title(rgba, title, dpi)  →  [title band (title_height(dpi), W, 4)]
                                     [rgba       (H, W, 4)               ]

Everything here works on host (NumPy) arrays only: :mod:`tinyae.plot` copies device
arrays to the host before it draws.
"""
from __future__ import annotations

import math

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["title_height"]

FONT_SIZE = 10             # points, for titles and row labels


def new_figure(width_px, height_px, dpi):
    """A Figure on an Agg canvas whose saved size is exactly width_px × height_px at ``dpi``.

    Agg truncates width·dpi to an int, so a quarter pixel is added against
    float round-off (``4.84 * 100`` may be ``483.99999``).
    """
    fig = Figure(figsize=((width_px + 0.25) / dpi, (height_px + 0.25) / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def title_height(dpi=100):
    """Height in pixels of the title band above an image grid: ``round(0.3 * dpi)``."""
    return int(round(0.3 * dpi))


def render_text(width, height, items, dpi, fontsize=FONT_SIZE):
    """A white (height, width, 4) uint8 image with text drawn on it.

    ``items``: (x, y, text, ha) with x, y in pixels from the top-left corner,
    text vertically centred on y.  A text wider than the image is shrunk (down
    to 6 pt) to fit.
    """
    fig = new_figure(width, height, dpi)
    canvas = fig.canvas
    renderer = canvas.get_renderer()
    for x, y, text, ha in items:
        t = fig.text((x + 0.5) / width, 1 - (y + 0.5) / height, text, ha=ha, va="center",
                     fontsize=fontsize)
        size = fontsize
        while size > 6 and t.get_window_extent(renderer).width > width - 4:
            size -= 1
            t.set_fontsize(size)
    canvas.draw()
    buf = np.asarray(canvas.buffer_rgba())
    out = np.full((height, width, 4), 255, dtype=np.uint8)
    h, w = min(height, buf.shape[0]), min(width, buf.shape[1])
    out[:h, :w] = buf[:h, :w]
    fig.clear()
    return out


def text_width(text, dpi, fontsize=FONT_SIZE):
    """Width in pixels of ``text`` rendered at ``fontsize`` points."""
    fig = new_figure(10, 10, dpi)
    t = fig.text(0, 0, text, fontsize=fontsize)
    width = t.get_window_extent(fig.canvas.get_renderer()).width
    fig.clear()
    return int(math.ceil(width))


def with_title(rgba, title, dpi):
    """Stack a title band (``title_height(dpi)`` pixels) on top of an image, if a title is given."""
    if title is None:
        return rgba
    band_h, width = title_height(dpi), rgba.shape[1]
    band = render_text(width, band_h, [(width / 2, band_h / 2, str(title), "center")], dpi)
    return np.concatenate([band, rgba], axis=0)
