"""The arguments of the convolution and pooling layers: kernel_size, stride and padding as
pairs of ints, "same"/"valid" padding, and the output size of a sliding window.  Each check
names the layer and says what was expected."""
from __future__ import annotations

import numbers

from .._checks import positive_int

def pair(value, what: str, layer: str):
    """``value`` as a pair of Python ints: ``3 -> (3, 3)``, ``(3, 5) -> (3, 5)``."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value), int(value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value):
        return int(value[0]), int(value[1])
    raise ValueError(f"{layer}: {what} must be an int or a pair of ints, got {value!r}")


def check_positive(values, what: str, layer: str, allow_zero: bool = False):
    """Raise a ValueError naming ``layer`` unless every entry of ``values`` is > 0 (>= 0)."""
    bad = [v for v in values if (v < 0 if allow_zero else v <= 0)]
    if bad:
        need = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{layer}: {what} must be {need}, got {tuple(values)}")
    return tuple(values)


def same_padding(kh: int, kw: int):
    """(PT, PB, PL, PR) that keeps H×W for a stride-1 convolution: K - 1 in all, the extra
    row/column of an even K at the bottom/right, as Keras' ``padding='same'`` (K = 6: 2 and 3)."""
    return (kh - 1) // 2, kh // 2, (kw - 1) // 2, kw // 2


def resolve_padding(padding, kernel, stride, layer: str):
    """(PT, PB, PL, PR) from an int, a pair (symmetric), "valid" or "same" (stride 1 only)."""
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0, 0, 0
        if padding == "same":
            if tuple(stride) != (1, 1):
                raise ValueError(f"{layer}: padding='same' needs stride 1, got stride {tuple(stride)}; "
                                 "give the padding as numbers for a strided convolution")
            return same_padding(*kernel)
        raise ValueError(f"{layer}: padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
    ph, pw = check_positive(pair(padding, "padding", layer), "padding", layer, allow_zero=True)
    return ph, ph, pw, pw


def conv_output_size(layer: str, in_hw, kernel, stride, pads):
    """(OH, OW) of a sliding window, or a ValueError naming the layer and the numbers
    when the kernel does not fit in the padded input."""
    (h, w), (kh, kw), (sh, sw) = in_hw, kernel, stride
    pt, pb, pl, pr = pads
    hp, wp = h + pt + pb, w + pl + pr
    if kh > hp or kw > wp:
        raise ValueError(f"{layer}: kernel size ({kh}, {kw}) is larger than the padded input ({hp}, {wp}) "
                         f"(input {h}×{w} plus padding {pads} as (top, bottom, left, right))")
    return (hp - kh) // sh + 1, (wp - kw) // sw + 1


def channels(layer: str, in_channels, out_channels):
    """Raise unless both channel counts are positive ints (TypeError for a non-int, ValueError
    for one below 1, as every other integer argument)."""
    positive_int(in_channels, "in_channels", layer)
    positive_int(out_channels, "out_channels", layer)
