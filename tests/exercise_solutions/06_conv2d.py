"""Exercise 6: a convolution's backward pass, through im2col.

Read first: tinyae/nn/im2col.py and docs/backprop.md, sections "Level 2: convolution as one
matrix product" and "Backward of the convolution".

Shapes: x (N, C, H, W), w (F, C, KH, KW), b (F,), stride (SH, SW), pads (PT, PB, PL, PR),
y (N, F, OH, OW).  ``im2col`` copies every receptive field of the padded input into a
column, so the forward is one matrix product (given below):

    cols = im2col(xpad)          (C·KH·KW, N·OH·OW)
    W    = w.reshape(F, -1)      (F, C·KH·KW)
    Y    = W · cols + b          (F, N·OH·OW), then back to (N, F, OH, OW)

Given dy (N, F, OH, OW), write ``conv2d_backward``; it returns (dx, dw, db):

    dY = dy as the matrix (F, N·OH·OW)           (``as_matrix`` below)
    db = Σ of dY over its columns                (F,)
    dW = dY · colsᵀ                              (F, C·KH·KW), then w's shape
    dx = col2im(Wᵀ · dY), without the padding    (N, C, H, W)

``col2im(dcols, xpad_shape, (KH, KW), stride, (OH, OW))`` is given: it adds every column
entry back onto the pixel of the padded input it was copied from.

Check:  python -m tinyae.exercises check DIR conv2d
"""
import numpy as np

from tinyae.nn.im2col import col2im, im2col, pad_hw


def as_matrix(a):
    """(N, K, H, W) → (K, N·H·W): channels as rows, one column per (n, h, w), like cols."""
    return a.transpose(1, 0, 2, 3).reshape(a.shape[1], -1)


def conv2d_forward(x, w, b, stride, pads):
    """(y, cols): y (N, F, OH, OW) = w ⋆ x + b; backward needs cols."""
    (n, _, h, wd), (f, _, kh, kw), (sh, sw), (pt, pb, pl, pr) = x.shape, w.shape, stride, pads
    oh, ow = (pt + h + pb - kh) // sh + 1, (pl + wd + pr - kw) // sw + 1
    cols = im2col(pad_hw(x, pads), (kh, kw), stride, (oh, ow))      # (C·KH·KW, N·OH·OW)
    y = w.reshape(f, -1) @ cols + b[:, None]                        # (F, N·OH·OW)
    return y.reshape(f, n, oh, ow).transpose(1, 0, 2, 3), cols


def conv2d_backward(dy, cols, x_shape, w, stride, pads):
    (n, c, h, wd), (f, _, kh, kw), (pt, pb, pl, pr) = x_shape, w.shape, pads
    dy_mat = as_matrix(dy)                                          # (F, N·OH·OW)
    db = dy_mat.sum(axis=1)
    dw = (dy_mat @ cols.T).reshape(w.shape)
    dxpad = col2im(w.reshape(f, -1).T @ dy_mat, (n, c, pt + h + pb, pl + wd + pr), (kh, kw), stride, dy.shape[2:])
    return dxpad[:, :, pt:pt + h, pl:pl + wd], dw, db
