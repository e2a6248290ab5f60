"""Exercise 7: max pooling's backward pass: route the gradient to the winner (ties!).

Read first: docs/backprop.md, section "Max pooling: routing the gradient".

Shapes: x (N, C, H, W), windows KH = KW = k, S = ``stride`` apart (no padding),
y (N, C, OH, OW) with OH = (H − k) // S + 1 (likewise OW):

    y[n, c, oh, ow] = max_{i, j < k} x[n, c, S·oh + i, S·ow + j]

Away from ties the max equals one of its arguments, the winner, and does not depend on the
others: the winner gets dy[n, c, oh, ow] and every other pixel of the window gets 0.

* Windows overlap when S < k: a pixel that wins two windows collects both gradients.
* Ties: when a window holds its maximum twice, give the whole dy to the *first* maximum in
  row-major order (what tinyae and PyTorch do; ``np.argmax`` of the window flattened to k·k
  finds exactly that one).

Return dx (N, C, H, W); the layer has no parameters.

Check:  python -m tinyae.exercises check DIR maxpool
"""
import numpy as np

from tinyae.nn import Module


class MaxPool2d(Module):
    def __init__(self, kernel_size, stride=None):
        super().__init__()
        self.k, self.s = kernel_size, stride or kernel_size

    def forward(self, x):
        self.x = x
        (n, c, h, w), k, s = x.shape, self.k, self.s
        oh, ow = (h - k) // s + 1, (w - k) // s + 1
        y = np.empty((n, c, oh, ow), dtype=x.dtype)
        for i in range(oh):
            for j in range(ow):
                y[:, :, i, j] = x[:, :, s * i:s * i + k, s * j:s * j + k].max(axis=(2, 3))
        return y

    def backward(self, dy, need_dx=True):
        # your code: dx, the shape of x
        raise NotImplementedError
