"""NumPy float64 reference of the 2r-SAE (eqs. 19-23), its metrics and the FIFO memory, for tests.

Written from the paper (eqs. 19-23), not from `ojrs_jax.sae.model`: plain loops over layers,
ratios taken as h / max h directly (the JAX code goes through logs), a deque for the memory.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

GAMMA_E = 0.5772156649015329


def to_np(params) -> dict:
    """Flax params -> {layer name: (kernel (in, out), bias (out,))} in float64."""
    return {
        name: (np.asarray(p["kernel"], np.float64), np.asarray(p["bias"], np.float64))
        for name, p in params.items()
    }


def act(name: str, v: np.ndarray) -> np.ndarray:
    if name == "elu":
        return np.where(v > 0, v, np.expm1(np.minimum(v, 0.0)))
    if name == "tanh":
        return np.tanh(v)
    if name == "relu":
        return np.maximum(v, 0.0)
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-v))
    raise ValueError(name)


def forward(params: dict, x: np.ndarray, activation: str, latent_act: bool = True):
    """(code, reconstruction) of x (B, D): sigma on every encoder layer (and on the code when
    latent_act), sigma on decoder hidden layers, linear output."""
    n_enc = sum(k.startswith("enc") for k in params)
    n_dec = sum(k.startswith("dec") for k in params)
    r = x
    for i in range(n_enc):
        w, b = params[f"enc_{i}"]
        r = r @ w + b
        if i < n_enc - 1 or latent_act:
            r = act(activation, r)
    z = r
    for i in range(n_dec):
        w, b = params[f"dec_{i}"]
        r = r @ w + b
        if i < n_dec - 1:
            r = act(activation, r)
    return z, r


def preprocess(h: np.ndarray, g: np.ndarray, kind: str) -> np.ndarray:
    """h (E, N, M) -> x (E, N*M)."""
    if kind == "linear":
        x = h / g.mean()
    else:
        x = (np.log(h) - np.log(g) + GAMMA_E) / (math.pi / math.sqrt(6))
    return x.reshape(h.shape[0], -1)


def postprocess(x: np.ndarray, g: np.ndarray, kind: str) -> np.ndarray:
    """x (E, N*M) -> h (E, N, M); linear reconstructions below 1e-12 are clipped there."""
    n, m = g.shape
    x = x.reshape(x.shape[0], n, m)
    if kind == "linear":
        return np.maximum(x, 1e-12) * g.mean()
    return np.exp(x * (math.pi / math.sqrt(6)) + np.log(g) - GAMMA_E)


def loss(params, x, g, *, kind, variant, activation, gamma1, gamma2, l2, l2_mean, latent_act=True):
    """Eq. 23 averaged over the batch (MSE alone for ae / sae)."""
    _, xh = forward(params, x, activation, latent_act)
    mse = np.mean((x - xh) ** 2)
    if variant != "2r_sae":
        return mse
    h, hh = postprocess(x, g, kind), postprocess(xh, g, kind)
    rho = h / h.max(axis=2, keepdims=True)
    rho_h = hh / hh.max(axis=2, keepdims=True)
    rel = np.mean(np.sum((rho - rho_h) ** 2, axis=(1, 2)))
    sq, count = 0.0, 0
    for w, b in params.values():
        sq += np.sum(w**2)
        count += w.size
        if l2 == "all":
            sq += np.sum(b**2)
            count += b.size
    if l2_mean:
        sq /= count
    return mse + gamma1 / 2 * rel + gamma2 / 2 * sq


def accuracy(h, hh):
    return 1.0 - np.abs(h - hh).sum() / h.sum()


def per_ue_accuracy(h, hh):
    return 1.0 - np.mean(np.abs(h - hh).sum(-1) / h.sum(-1))


def per_ue_relative_error(h, hh):
    return np.mean(np.abs(h / h.max(-1, keepdims=True) - hh / hh.max(-1, keepdims=True)))


class FifoMemory:
    """Fixed-size FIFO: an item enters iff its error exceeds the threshold; oldest leaves."""

    def __init__(self, capacity: int, threshold: float):
        self.items: deque = deque(maxlen=capacity)
        self.threshold = threshold

    def add(self, x: np.ndarray, err: float) -> bool:
        if err > self.threshold:
            self.items.append(np.array(x, np.float64))
            return True
        return False

    def contents(self) -> np.ndarray:
        """Stored rows, oldest first."""
        return np.array(list(self.items))


def minmax_preprocess(h: np.ndarray, h_train: np.ndarray) -> np.ndarray:
    """Per-link min-max scaling by the training channels' bounds: (E, N, M) -> (E, N*M)."""
    lo, hi = h_train.min(axis=0), h_train.max(axis=0)
    return ((h - lo) / (hi - lo)).reshape(h.shape[0], -1)


def forward_per_ue(params: dict, x: np.ndarray, m: int, activation: str, latent_act=True):
    """One autoencoder applied to every UE's row of M inputs, row by row: x (B, N*M) ->
    (code (B, N*k), reconstruction (B, N*M))."""
    b, n = x.shape[0], x.shape[1] // m
    codes, recs = [], []
    for i in range(n):
        z, r = forward(params, x[:, i * m : (i + 1) * m], activation, latent_act)
        codes.append(z)
        recs.append(r)
    return np.concatenate(codes, axis=1).reshape(b, -1), np.concatenate(recs, axis=1)


def paper_accuracy(h, hh, h_train):
    """1 - RMSE of per-link min-max scaled channels; the mean predictor's score; the skill."""
    lo, hi = h_train.min(0), h_train.max(0)
    u, uh, um = (h - lo) / (hi - lo), (hh - lo) / (hi - lo), (h_train.mean(0) - lo) / (hi - lo)
    mse, mse0 = np.mean((u - uh) ** 2), np.mean((u - um) ** 2)
    return 1 - math.sqrt(mse), 1 - math.sqrt(mse0), 1 - mse / mse0
