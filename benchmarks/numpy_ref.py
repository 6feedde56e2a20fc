"""Plain NumPy references of the OJRS pieces, for the JAX-vs-NumPy speed ratios.

Written as a NumPy user reasonably would: vectorised over UEs, MECs, the K ASA neighbours and (for
the batched decision) over the batch; Python loops only over ASA iterations and training epochs.
Same computations as the JAX code (src/ojrs_jax): the P2 closed form (p2.latency), the 2r-SAE
encoder (sae.SAE.encode), the policy MLP (policy.PolicyNet), ASA (asa.asa_search) and one
Algorithm 3 epoch (train.make_trainer) with a hand-written backprop of the policy loss (eq. 25).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ScenarioNP:
    """The scenario's arrays in float64."""

    gain: np.ndarray  # (N, M) path gain beta0 / R^2
    data_bits: np.ndarray  # (N,)
    cycles: np.ndarray  # (N,)
    weights: np.ndarray  # (N,)
    f_mec: np.ndarray  # (M,)
    bandwidth: float
    p_max: float
    noise: float
    f0: float  # local speed min(F_L, (P_max / kappa)^(1/3))

    @property
    def n_ue(self) -> int:
        return self.gain.shape[0]

    @property
    def n_mec(self) -> int:
        return self.gain.shape[1]


def scenario_np(scn) -> ScenarioNP:
    """Copy an `ojrs_jax.system.scenario.Scenario` into NumPy float64."""
    f = lambda x: np.asarray(x, np.float64)  # noqa: E731
    d = np.linalg.norm(f(scn.ue_pos)[:, None, :] - f(scn.mec_pos)[None, :, :], axis=-1)
    gain = float(scn.beta0) / np.maximum(d, 1.0) ** 2
    f0 = min(float(scn.f_local), np.cbrt(float(scn.p_max) / float(scn.kappa)))
    return ScenarioNP(
        gain=gain,
        data_bits=f(scn.data_bits),
        cycles=f(scn.cycles),
        weights=f(scn.weights),
        f_mec=f(scn.f_mec),
        bandwidth=float(scn.bandwidth),
        p_max=float(scn.p_max),
        noise=float(scn.noise),
        f0=float(f0),
    )


def latency(sc: ScenarioNP, h: np.ndarray, a: np.ndarray) -> np.ndarray:
    """P2 closed form L(a) for h (..., N, M) and a (..., N) broadcasting on the leading axes."""
    r = sc.bandwidth * np.log1p(sc.p_max * h / sc.noise) / np.log(2.0)  # (..., N, M)
    r = np.broadcast_to(r, a.shape + (sc.n_mec,))
    r_ch = np.take_along_axis(r, np.clip(a - 1, 0, sc.n_mec - 1)[..., None], axis=-1)[..., 0]
    off = a > 0
    upload = np.sum(np.where(off, sc.weights * sc.data_bits / r_ch, 0.0), axis=-1)
    wf = sc.weights * sc.cycles
    local = np.sum(np.where(off, 0.0, wf), axis=-1) / sc.f0
    onehot = a[..., None] == np.arange(1, sc.n_mec + 1)  # (..., N, M)
    load = np.einsum("...n,...nm->...m", np.sqrt(wf), onehot)
    return local + upload + np.sum(load**2 / sc.f_mec, axis=-1)


# --- networks --------------------------------------------------------------------------------


def elu(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0)


def dense_list(params: dict, prefix: str, dtype=np.float32) -> list[tuple[np.ndarray, np.ndarray]]:
    """Flax Dense layers `{prefix}_0, {prefix}_1, ...` -> [(kernel (in, out), bias)] in NumPy."""
    out = []
    i = 0
    while f"{prefix}_{i}" in params:
        p = params[f"{prefix}_{i}"]
        out.append((np.asarray(p["kernel"], dtype), np.asarray(p["bias"], dtype)))
        i += 1
    return out


def encode(layers, x: np.ndarray, latent_activation: bool = True) -> np.ndarray:
    """sae.SAE.encode with the elu activation: x (..., N*M) -> s (..., latent)."""
    for w, b in layers[:-1]:
        x = elu(x @ w + b)
    w, b = layers[-1]
    x = x @ w + b
    return elu(x) if latent_activation else x


def policy_logits(layers, s: np.ndarray, n_ue: int) -> np.ndarray:
    """PolicyNet: ReLU hidden layers, linear output reshaped to (..., N, M+1)."""
    x = s
    for w, b in layers[:-1]:
        x = relu(x @ w + b)
    w, b = layers[-1]
    out = x @ w + b
    return out.reshape(*s.shape[:-1], n_ue, -1)


def decide(sc: ScenarioNP, enc, pol, gbar: float, h: np.ndarray):
    """The decision pipeline: preprocess (h / gbar), encode, policy argmax, P2 latency.
    h (N, M) or (B, N, M) -> (a, L)."""
    x = (h / gbar).reshape(*h.shape[:-2], -1).astype(np.float32)
    a = np.argmax(policy_logits(pol, encode(enc, x), sc.n_ue), axis=-1)
    return a, latency(sc, h, a)


# --- ASA (asa.asa_search) --------------------------------------------------------------------


def asa(
    rng: np.random.Generator,
    sc: ScenarioNP,
    h: np.ndarray,
    a0: np.ndarray,
    n_iter: int = 20,
    k: int = 128,
    t0: float = 0.002,
    phi_c: float = 0.9,
    mut_scale: float = 0.1,
    local_weight: float = 1.0,
):
    """ASA from a0 (N,): h-mutation, K neighbours evaluated at once, Boltzmann acceptance of the
    best one, geometric cooling; returns (a_best, L(a_best))."""
    n, m = h.shape
    n_opt = m + 1
    share = h / h.sum(axis=1, keepdims=True)
    q = np.concatenate([np.full((n, 1), local_weight / m), share], axis=1) / (1 + local_weight / m)
    rows = np.arange(n)
    a = a0.astype(np.int64)
    cost = float(latency(sc, h, a))
    a_best, cost_best, temp = a, cost, t0 * cost
    for _ in range(n_iter):
        u = rng.random((k, n))
        u_acc = rng.random()
        mrate = np.clip(mut_scale * (1.0 - q[rows, a]), 0.0, 1.0)  # (N,)
        other = q.copy()
        other[rows, a] = 0.0
        cdf = np.cumsum(other, axis=1)
        mutate = u < mrate
        u_pick = np.where(mutate, u / np.where(mrate > 0, mrate, 1.0), 0.0)
        t = u_pick[:, :, None] * cdf[None, :, -1:]
        new = np.minimum((cdf[None] <= t).sum(axis=2), n_opt - 1)
        cands = np.where(mutate, new, a[None, :])  # (K, N)
        costs = latency(sc, h, cands)  # (K,)
        i = int(np.argmin(costs))
        c_new = float(costs[i])
        if (cost - c_new) / temp > np.log(u_acc):
            a, cost = cands[i], c_new
        if c_new < cost_best:
            a_best, cost_best = cands[i], c_new
        temp *= phi_c
    return a_best, cost_best


# --- Algorithm 3 (train.make_trainer) --------------------------------------------------------


class PolicyTrainer:
    """Policy MLP (ReLU hidden layers) with eq. 25's loss, hand-written backprop and Adam."""

    def __init__(self, layers, lr=1e-3, lam=0.02, b1=0.9, b2=0.999, eps=1e-8):
        self.p = [np.array(x, np.float32) for wb in layers for x in wb]  # w0, b0, w1, b1, ...
        self.m = [np.zeros_like(x) for x in self.p]
        self.v = [np.zeros_like(x) for x in self.p]
        self.t = 0
        self.lr, self.lam, self.b1, self.b2, self.eps = lr, lam, b1, b2, eps

    @property
    def layers(self):
        return list(zip(self.p[0::2], self.p[1::2], strict=True))

    def norm_sq(self) -> float:
        return float(sum(np.sum(x.astype(np.float64) ** 2) for x in self.p))

    def loss_grad(self, s: np.ndarray, a_star: np.ndarray, grad: bool = True):
        """Eq. 25 on a batch s (B, D), a* (B, N): (loss, grads or None)."""
        acts = [s]
        x = s
        ws = self.layers
        for w, b in ws[:-1]:
            x = relu(x @ w + b)
            acts.append(x)
        w, b = ws[-1]
        bsz, n = a_star.shape
        logits = (x @ w + b).reshape(bsz, n, -1)
        z = logits - logits.max(axis=-1, keepdims=True)
        lse = np.log(np.exp(z).sum(axis=-1, keepdims=True))
        logp = z - lse
        picked = np.take_along_axis(logp, a_star[..., None], axis=-1)[..., 0]
        loss = -float(picked.mean()) + 0.5 * self.lam * self.norm_sq()
        if not grad:
            return loss, None
        d = np.exp(logp)
        np.put_along_axis(
            d, a_star[..., None], np.take_along_axis(d, a_star[..., None], -1) - 1, -1
        )
        d = (d / (bsz * n)).reshape(bsz, -1).astype(np.float32)  # dL/dlogits
        grads = [None] * len(self.p)
        for li in range(len(ws) - 1, -1, -1):
            w, _ = ws[li]
            inp = acts[li]
            grads[2 * li] = inp.T @ d + self.lam * w
            grads[2 * li + 1] = d.sum(axis=0) + self.lam * ws[li][1]
            if li > 0:
                d = (d @ w.T) * (inp > 0)
        return loss, grads

    def adam_step(self, grads) -> None:
        self.t += 1
        c1, c2 = 1 - self.b1**self.t, 1 - self.b2**self.t
        for i, g in enumerate(grads):
            self.m[i] = self.b1 * self.m[i] + (1 - self.b1) * g
            self.v[i] = self.b2 * self.v[i] + (1 - self.b2) * g * g
            self.p[i] = self.p[i] - self.lr * (self.m[i] / c1) / (
                np.sqrt(self.v[i] / c2) + self.eps
            )


def train_loop(
    rng: np.random.Generator,
    sc: ScenarioNP,
    enc,
    pol_layers,
    gbar: float,
    epochs: int = 200,
    phi: int = 10,
    batch: int = 128,
    buffer: int = 1024,
    t_sa0: int = 20,
    max_iter: int = 100,
    k: int = 128,
    eps_t: float = 0.02,
    train: bool = True,
) -> dict:
    """Algorithm 3 per epoch: draw h, encode, act, ASA(T_SA), add to a uniform FIFO buffer; every
    phi epochs one Adam step of the policy on `batch` sampled transitions, then eq. 30 on T_SA.
    The SAE encoder stays fixed (no incremental learning) and replay is uniform, not 2p-ER."""
    n, m = sc.gain.shape
    pt = PolicyTrainer(pol_layers)
    s_buf = np.zeros((buffer, enc[-1][0].shape[1]), np.float32)
    a_buf = np.zeros((buffer, n), np.int64)
    size, ptr, t_sa = 0, 0, t_sa0
    lat, tsas = [], []
    for ep in range(epochs):
        h = sc.gain * rng.exponential(size=(n, m))
        s = encode(enc, (h / gbar).reshape(-1).astype(np.float32))
        a = np.argmax(policy_logits(pt.layers, s, n), axis=-1)
        a_star, l_star = asa(rng, sc, h, a, t_sa, k)
        lat.append(l_star)
        tsas.append(t_sa)
        s_buf[ptr], a_buf[ptr] = s, a_star
        ptr, size = (ptr + 1) % buffer, min(size + 1, buffer)
        if train and (ep + 1) % phi == 0:
            idx = rng.integers(0, size, batch)
            before, grads = pt.loss_grad(s_buf[idx], a_buf[idx])
            pt.adam_step(grads)
            after, _ = pt.loss_grad(s_buf[idx], a_buf[idx], grad=False)
            delta = before - after
            t_sa = int(np.clip(t_sa + 1 if delta >= eps_t else max(t_sa - 1, 1), 1, max_iter))
    return {"latency_search_mean": float(np.mean(lat)), "t_sa_mean": float(np.mean(tsas))}
