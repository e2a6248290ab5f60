"""Exercise 4: a two-layer autoencoder's backward chain, by hand.

Read first: examples/backprop_by_hand.py and docs/models.md, section "Autoencoder".

The layers are tinyae's own (their backward passes are done); this exercise is the chain
that connects them.  The forward pass ran

    a = enc(x)          Linear   (N, D) → (N, H)
    h = act(a)          ReLU     (N, H)
    b = dec(h)          Linear   (N, H) → (N, D)
    x_hat = out(b)      Sigmoid  (N, D)
    loss = loss_fn(x_hat, x)     MSE, mean over the N·D pixels

Walk it backwards: each ``layer.backward(d_output)`` returns d_input and adds the layer's
parameter gradients into their ``.grad``; ``loss_fn.backward()`` gives dL/dx̂ to start.
x is data: tell the first layer so (``need_dx=False``), nobody needs dL/dx.  Return nothing;
the checker reads every ``.grad``.

Check:  python -m tinyae.exercises check DIR chain
"""


def backward(enc, act, dec, out, loss_fn):
    dx_hat = loss_fn.backward()
    db = out.backward(dx_hat)
    dh = dec.backward(db)
    da = act.backward(dh)
    enc.backward(da, need_dx=False)
