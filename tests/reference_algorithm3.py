"""Float64 NumPy reference of one block of Algorithm 3 (paper Sec. IV.C-E, eqs. 24-32).

A block is phi epochs and one training round. Every epoch: observe s = preprocess(h), act
a = argmax pi(s) per UE (eq. 24; epsilon-greedy: UE i takes a random option when its uniform is
below explore_eps), search a* = ASA(a, h, T_SA) (Algorithm 2, eqs. 26-29), and the phi pairs
(s, a*) enter the replay buffer in epoch order tagged with ||theta||^2 of the block's policy
(2p-ER, eqs. 31-32: first free slot, else the oldest non-preserved, else the oldest; a new
transition takes the largest stored priority, 1.0 into an empty buffer). Then `updates` Adam
steps, each on a fresh batch: loss before, gradient, Adam, loss after on the same batch (eq. 25)

    loss(theta) = -1/(B N) sum_b sum_i log pi_theta(a*_{b,i} | s_b) + lambda/2 ||theta||^2,

the batch's priorities become |loss_before - loss_after| + epsilon (a slot drawn twice keeps the
larger), and the round's Delta-delta = sum of the decreases adapts T_SA by eq. 30.

Only the policy MLP with state = preprocessed channel is covered (no SAE). Forward, backward and
Adam (optax's constants b1 = 0.9, b2 = 0.999, eps = 1e-8) are written out in NumPy. The random
numbers come in as arrays (`BlockDraws`): channels, exploration uniforms and options, ASA's
uniforms per iteration, and for replay sampling the Gumbel noise (2p-ER: slot = argmax of
tau log p_i + g, so a different priority moves the draw) or the uniform indices per possible
number of valid slots. Nothing here imports ojrs_jax; the ASA iteration and the buffers are the
independent references of tests/reference_asa.py and tests/reference_replay.py.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
from reference_asa import iteration_ref, latency_ref
from reference_replay import RefPER, RefUniform

ADAM_B1, ADAM_B2, ADAM_EPS = 0.9, 0.999, 1e-8


@dataclass
class RefConfig:
    """Static sizes and numbers of the loop."""

    n_ue: int
    n_mec: int
    phi: int
    batch: int
    updates: int
    capacity: int
    replay: str  # per | uniform
    learning_rate: float
    lam: float
    explore_eps: float
    adaptive: bool
    k: int  # ASA neighbours per iteration
    max_iter: int  # cap of T_SA
    asa: dict  # t0, phi_c, mut_scale, local_weight, eps (eq. 30 threshold)
    per: dict  # rho_max, tau, epsilon
    scenario: dict  # float64 scenario numbers (reference_asa.scenario_np)
    weights_after: np.ndarray  # (N,) task weights from change_epoch on
    change_epoch: int
    pre_kind: str  # linear | log
    pre_loc: np.ndarray  # (N, M)
    pre_scale: np.ndarray  # (N, M)
    lr_final: float = 1.0  # step size of the last Adam step / learning_rate (cosine in between)
    adam_steps: int = 1  # Adam steps of the whole run (blocks x updates)


def step_size(cfg: RefConfig, count: int) -> float:
    """Adam step size of step number `count` (0 = the run's first): learning_rate, or with
    lr_final < 1 half a cosine period from learning_rate at step 0 down to lr_final x
    learning_rate at the run's last step, held there after it."""
    if cfg.lr_final == 1.0:
        return cfg.learning_rate
    frac = min(count / max(cfg.adam_steps - 1, 1), 1.0)
    return cfg.learning_rate * (
        cfg.lr_final + (1.0 - cfg.lr_final) * (1 + np.cos(np.pi * frac)) / 2
    )


@dataclass
class RefState:
    """Start state of a block."""

    layers: list  # [(W (in, out), b (out,))] of the policy MLP
    mu: list  # Adam first moments, same structure
    nu: list  # Adam second moments
    count: int  # Adam step count
    buffer: RefPER | RefUniform
    t_sa: int
    epoch: int


@dataclass
class BlockDraws:
    """Every random number of one block."""

    h: np.ndarray  # (phi, N, M) channels
    u_explore: np.ndarray  # (phi, N) UE i explores when u < explore_eps
    explore_option: np.ndarray  # (phi, N) int its random option in {0..M}
    asa_u: np.ndarray  # (phi, max_iter, K, N) neighbour uniforms per iteration
    asa_u_acc: np.ndarray  # (phi, max_iter) acceptance uniforms
    sample_u: np.ndarray | None = None  # (updates, B) 2p-ER sampling uniforms
    uniform_idx: np.ndarray | None = None  # (updates, C, B): row n-1 = draw over n valid slots


@dataclass
class BlockInfo:
    """What happened inside the block (for the test to check which regimes it exercised)."""

    a: np.ndarray  # (phi, N) policy actions
    a0: np.ndarray  # (phi, N) ASA start after exploration
    a_star: np.ndarray  # (phi, N) searched actions
    insert_kind: list = field(default_factory=list)  # per add: free | oldest | skip | all_kept
    idx: list = field(default_factory=list)  # per update: (B,) sampled slots
    deltas: list = field(default_factory=list)  # per update: loss decrease
    losses: list = field(default_factory=list)  # per update: loss after
    delta: float = 0.0  # Delta-delta of the round (eq. 30)


# --- policy MLP (eqs. 24-25) ---------------------------------------------------------------------


def forward(layers: list, s: np.ndarray) -> tuple[np.ndarray, list]:
    """Logits (B, N (M+1)) of states s (B, D); ReLU between layers. Returns the layer inputs and
    pre-activations for the backward pass."""
    x, cache = s, []
    for i, (w, b) in enumerate(layers):
        z = x @ w + b
        cache.append((x, z))
        x = np.maximum(z, 0.0) if i < len(layers) - 1 else z
    return x, cache


def observe_ref(cfg: RefConfig, h: np.ndarray) -> np.ndarray:
    """Policy input: preprocessed channels, (h / scale) or (ln h - loc) / scale, UE-major (N M,)."""
    x = np.log(h) - cfg.pre_loc if cfg.pre_kind == "log" else h
    return (x / cfg.pre_scale).reshape(-1)


def act_ref(layers: list, s: np.ndarray, n_opt: int) -> np.ndarray:
    """Greedy action per UE (eq. 24): s (D,) -> (N,)."""
    logits, _ = forward(layers, s[None])
    return np.argmax(logits.reshape(-1, n_opt), axis=1)


def loss_and_grad(layers: list, s: np.ndarray, a: np.ndarray, lam: float, n_opt: int):
    """Eq. 25 on a batch s (B, D), a* (B, N) and its gradient, by hand."""
    logits, cache = forward(layers, s)
    bsz, n = a.shape
    z = logits.reshape(bsz, n, n_opt)
    z = z - z.max(axis=2, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=2, keepdims=True))
    onehot = np.eye(n_opt)[a]
    ce = -np.sum(logp * onehot) / (bsz * n)
    l2 = sum(np.sum(w**2) + np.sum(b**2) for w, b in layers)
    loss = ce + 0.5 * lam * l2
    dz = ((np.exp(logp) - onehot) / (bsz * n)).reshape(bsz, n * n_opt)
    grads = [None] * len(layers)
    for i in reversed(range(len(layers))):
        x, _ = cache[i]
        w, b = layers[i]
        grads[i] = (x.T @ dz + lam * w, dz.sum(axis=0) + lam * b)
        if i > 0:
            dz = (dz @ w.T) * (cache[i - 1][1] > 0)
    return loss, grads


def loss_ref(layers: list, s: np.ndarray, a: np.ndarray, lam: float, n_opt: int) -> float:
    return loss_and_grad(layers, s, a, lam, n_opt)[0]


def adam_ref(layers, mu, nu, count, grads, lr):
    """One Adam step (optax.adam's defaults): returns layers, mu, nu, count."""
    count += 1
    out_l, out_m, out_v = [], [], []
    for (w, b), (mw, mb), (vw, vb), (gw, gb) in zip(layers, mu, nu, grads, strict=True):
        new_p, new_m, new_v = [], [], []
        for p, m, v, g in ((w, mw, vw, gw), (b, mb, vb, gb)):
            m = ADAM_B1 * m + (1 - ADAM_B1) * g
            v = ADAM_B2 * v + (1 - ADAM_B2) * g**2
            m_hat = m / (1 - ADAM_B1**count)
            v_hat = v / (1 - ADAM_B2**count)
            new_p.append(p - lr * m_hat / (np.sqrt(v_hat) + ADAM_EPS))
            new_m.append(m)
            new_v.append(v)
        out_l.append(tuple(new_p))
        out_m.append(tuple(new_m))
        out_v.append(tuple(new_v))
    return out_l, out_m, out_v, count


def norm_sq(layers: list) -> float:
    return float(sum(np.sum(w**2) + np.sum(b**2) for w, b in layers))


# --- ASA (Algorithm 2) and eq. 30 ----------------------------------------------------------------


def asa_ref(scn: dict, h, a0, n_iter: int, u, u_acc, params: dict) -> tuple[np.ndarray, float]:
    """n_iter iterations from a0 with the given draws; returns the best decision and its cost."""
    c0 = latency_ref(scn, h, a0)
    state = {"a": a0, "cost": c0, "a_best": a0, "cost_best": c0, "temp": params["t0"] * c0}
    for g in range(n_iter):
        state, _ = iteration_ref(scn, h, state, u[g], float(u_acc[g]), params)
    return np.asarray(state["a_best"]), state["cost_best"]


def adapt_t_sa_ref(t_sa: int, delta: float, eps: float, max_iter: int) -> int:
    """Eq. 30: T_SA + 1 if Delta-delta >= eps, else T_SA - 1 (not below 1); capped at max_iter."""
    nxt = t_sa + 1 if delta >= eps else (t_sa - 1 if t_sa != 1 else 1)
    return min(max(nxt, 1), max_iter)


# --- replay --------------------------------------------------------------------------------------


def insert_kind(buf: RefPER | RefUniform, theta_now: float) -> str:
    """Which 2p-ER rule the next add uses: free slot, oldest (not preserved), skip (oldest kept,
    a younger one evicted) or all_kept (every slot preserved: the oldest goes)."""
    if any(it is None for it in buf.slots):
        return "free"
    if isinstance(buf, RefUniform):
        return "oldest"
    order = sorted(range(buf.capacity), key=lambda i: buf.slots[i]["t"])
    kept = [buf._is_preserved(buf.slots[i], theta_now) for i in order]
    if all(kept):
        return "all_kept"
    return "skip" if kept[0] else "oldest"


def sample_ref(cfg: RefConfig, buf, draws: BlockDraws, u: int) -> np.ndarray:
    """Slots of update u's batch: inverse CDF of P_i = p_i^tau / sum_k p_k^tau (eq. 32) at the
    given uniforms (slot i is drawn when cdf_{i-1} <= u sum_k p_k^tau < cdf_i), or uniform."""
    valid = buf.valid()
    if cfg.replay == "uniform":
        n_valid = max(int(valid.sum()), 1)
        return np.asarray(draws.uniform_idx[u, n_valid - 1])
    p = np.array([1.0 if it is None else it["p"] for it in buf.slots])
    w = np.where(valid, p ** cfg.per["tau"], 0.0)
    cdf = np.cumsum(w)
    idx = np.searchsorted(cdf, draws.sample_u[u] * cdf[-1], side="right")
    return np.minimum(idx, np.flatnonzero(valid).max())


# --- one block -----------------------------------------------------------------------------------


def block_ref(cfg: RefConfig, st: RefState, draws: BlockDraws) -> tuple[RefState, BlockInfo]:
    """One block of Algorithm 3 from `st` (left unchanged) with the block's random numbers."""
    st = copy.deepcopy(st)
    n_opt = cfg.n_mec + 1
    n_iter = min(max(st.t_sa, 0), cfg.max_iter)
    S, A, A0, A_star = [], [], [], []
    for e in range(cfg.phi):
        h = np.asarray(draws.h[e], np.float64)
        scn = dict(cfg.scenario)
        if st.epoch + e >= cfg.change_epoch:
            scn["weights"] = np.asarray(cfg.weights_after, np.float64)
        s = observe_ref(cfg, h)
        a = act_ref(st.layers, s, n_opt)
        a0 = np.where(draws.u_explore[e] < cfg.explore_eps, draws.explore_option[e], a)
        a_star, _ = asa_ref(scn, h, a0, n_iter, draws.asa_u[e], draws.asa_u_acc[e], cfg.asa)
        S.append(s)
        A.append(a)
        A0.append(a0)
        A_star.append(a_star)
    info = BlockInfo(a=np.array(A), a0=np.array(A0), a_star=np.array(A_star))

    theta = norm_sq(st.layers)
    for s, a_star in zip(S, A_star, strict=True):
        info.insert_kind.append(insert_kind(st.buffer, theta))
        st.buffer.add(s, a_star, theta)

    for u in range(cfg.updates):
        idx = sample_ref(cfg, st.buffer, draws, u)
        s_b = np.array([st.buffer.slots[i]["s"] for i in idx])
        a_b = np.array([st.buffer.slots[i]["a"] for i in idx])
        before, grads = loss_and_grad(st.layers, s_b, a_b, cfg.lam, n_opt)
        st.layers, st.mu, st.nu, st.count = adam_ref(
            st.layers, st.mu, st.nu, st.count, grads, step_size(cfg, st.count)
        )
        after = loss_ref(st.layers, s_b, a_b, cfg.lam, n_opt)
        st.buffer.set_priorities(idx, before - after)
        info.idx.append(idx)
        info.deltas.append(before - after)
        info.losses.append(after)
    info.delta = float(sum(info.deltas))
    if cfg.adaptive:
        st.t_sa = adapt_t_sa_ref(st.t_sa, info.delta, cfg.asa["eps"], cfg.max_iter)
    st.epoch += cfg.phi
    return st, info
