"""MkDocs hook: under each derivation section, a line "Code:" linking to the API entries that
implement it (the API pages link back to the sections).

The derivation pages stay plain Markdown that reads the same on a code host; the links are
added in the site only, from the table below: page → (heading prefix → API targets).  A
heading is matched by the start of its text (case-insensitive, backticks ignored).  When a
listed heading is no longer on its page (renamed, moved), the build warns — and
``mkdocs build --strict`` fails — naming it, so a link is never lost silently.
"""
from __future__ import annotations

import logging
import re

log = logging.getLogger("mkdocs.hooks.code_links")

NN, LOSSES, MODELS = "api/nn.md#tinyae.nn.", "api/losses.md#tinyae.losses.", "api/models.md#tinyae.models."

LINKS = {
    "backprop.md": {
        "The one rule": [("tinyae.nn.Module", NN + "Module"), ("tinyae.nn.Sequential", NN + "Sequential")],
        "Linear": [("tinyae.nn.Linear", NN + "Linear")],
        "Element-wise activations": [(f"tinyae.nn.{n}", NN + n)
                                     for n in ("ReLU", "LeakyReLU", "Tanh", "Sigmoid", "Identity")],
        "Shape layers": [("tinyae.nn.Flatten", NN + "Flatten"), ("tinyae.nn.Reshape", NN + "Reshape")],
        "Dropout": [("tinyae.nn.Dropout", NN + "Dropout"), ("tinyae.nn.GaussianNoise", NN + "GaussianNoise")],
        "Losses": [(f"tinyae.losses.{n}", LOSSES + n)
                   for n in ("MSELoss", "BCELoss", "BCEWithLogitsLoss", "GaussianKL")],
        "Optimizers": [("tinyae.optim.SGD", "api/optim.md#tinyae.optim.SGD"),
                       ("tinyae.optim.Adam", "api/optim.md#tinyae.optim.Adam")],
        "Convolution and pooling": [("the three levels", "api/conv_levels.md"),
                                    ("tinyae.nn.Conv2d", NN + "Conv2d")],
        "Level 1": [("tinyae.nn.reference", "api/conv_levels.md#tinyae.nn.reference")],
        "Level 2": [("tinyae.nn.im2col", "api/conv_levels.md#tinyae.nn.im2col")],
        "Backward of the convolution": [("tinyae.nn.Conv2d", NN + "Conv2d")],
        "ConvTranspose2d": [("tinyae.nn.ConvTranspose2d", NN + "ConvTranspose2d")],
        '"same" padding': [("tinyae.nn.Conv2d", NN + "Conv2d")],
        "Max pooling": [("tinyae.nn.MaxPool2d", NN + "MaxPool2d")],
        "Average pooling": [("tinyae.nn.AvgPool2d", NN + "AvgPool2d")],
        "Max unpooling": [("tinyae.nn.MaxUnpool2d", NN + "MaxUnpool2d")],
        "Nearest-neighbour upsampling": [("tinyae.nn.Upsample", NN + "Upsample")],
        "Checking a backward pass": [("tinyae.gradcheck", "api/gradcheck.md#tinyae.gradcheck"),
                                     ("tutorial: write your own layer", "tutorials/write_your_own_layer.md")],
    },
    "models.md": {
        "Autoencoder": [("tinyae.models.AutoEncoder", MODELS + "AutoEncoder")],
        "Denoising autoencoder": [("tinyae.models.AutoEncoder", MODELS + "AutoEncoder"),
                                  ("tutorial: denoising", "tutorials/denoising.md")],
        "Sparse autoencoder": [("tinyae.losses.L1ActivityPenalty", LOSSES + "L1ActivityPenalty"),
                               ("tinyae.losses.KLSparsityPenalty", LOSSES + "KLSparsityPenalty")],
        "Contractive autoencoder": [("tinyae.models.ContractiveAutoEncoder", MODELS + "ContractiveAutoEncoder"),
                                    ("tinyae.losses.ContractivePenalty", LOSSES + "ContractivePenalty"),
                                    ("tinyae.losses.StochasticContractivePenalty",
                                     LOSSES + "StochasticContractivePenalty")],
        "Variational autoencoder": [("tinyae.models.VAE", MODELS + "VAE"),
                                    ("tinyae.losses.GaussianKL", LOSSES + "GaussianKL"),
                                    ("tutorial: PyTorch examples/vae", "tutorials/vae_pytorch_example.md")],
        "Tied weights": [("tinyae.nn.TiedLinear", NN + "TiedLinear"),
                         ("tutorial: linear AE vs PCA", "tutorials/linear_ae_vs_pca.md")],
        "The architectures by name": [("tinyae.models.build", MODELS + "build"),
                                      ("tinyae.models.builders", MODELS + "builders")],
        "Training and checkpoints": [("tinyae.train.fit", "api/train.md#tinyae.train.fit"),
                                     ("tinyae.checkpoint", "api/train.md#tinyae.checkpoint")],
    },
    "data.md": {
        "Sources": [("tinyae.data.load_mnist", "api/data.md#tinyae.data.load_mnist"),
                    ("tinyae.data.load_fashion_mnist", "api/data.md#tinyae.data.load_fashion_mnist")],
        "Transforms": [("tinyae.data", "api/data.md#tinyae.data")],
        "Batches": [("tinyae.data.DataLoader", "api/data.md#tinyae.data.DataLoader")],
    },
}

HEADING = re.compile(r"^(#{2,3})[ \t]+(.+?)[ \t]*#*[ \t]*$")
FENCE = re.compile(r"^[ \t]*(```|~~~)")


def _relative(target: str, page_uri: str) -> str:
    depth = page_uri.count("/")
    return "../" * depth + target


def on_page_markdown(markdown, page, config, files):
    table = LINKS.get(page.file.src_uri)
    if not table:
        return markdown
    found = set()
    out, in_fence = [], False
    for line in markdown.split("\n"):
        out.append(line)
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        m = None if in_fence else HEADING.match(line)
        if not m:
            continue
        text = m.group(2).replace("`", "").lower()
        for prefix, targets in table.items():
            if prefix in found or not text.startswith(prefix.lower()):
                continue
            found.add(prefix)
            links = " · ".join(f"[`{name}`]({_relative(t, page.file.src_uri)})" if name.startswith("tinyae")
                               else f"[{name}]({_relative(t, page.file.src_uri)})" for name, t in targets)
            out.append("")
            out.append(f'<p class="code-link" markdown>**Code:** {links}</p>')
            break
    for prefix in table:
        if prefix not in found:
            log.warning(f"code_links: {page.file.src_uri} has no heading starting with {prefix!r} "
                        "any more; update docs/hooks/code_links.py")
    return "\n".join(out)
