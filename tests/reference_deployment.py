"""Independent float64 NumPy reference of the any-deployment model (padded deployments).

Written from the formulas (README / module docstrings of the paper's model, eqs. 1-3, 5-13, 24-25
and the mobile model), not from src/ojrs_jax: loops over UEs and MECs, float64 throughout. Every
function takes plain NumPy arrays (or a `Deployment`/`Scenario`, read once into float64 by
`dep_np`/`scn_np`), so a refactor of the JAX package cannot change what these compute.

Notation: N UEs, M MECs; a decision a (N,) has a_i = 0 (local) or a_i = j (MEC j, 1-based).
"""

from __future__ import annotations

import math

import numpy as np

CLIP = 12.0  # |log feature| cap of the feature policy


# --- reading the JAX containers once ----------------------------------------------------------


def scn_np(scn) -> dict:
    """The scenario's fields as float64 NumPy (vectors) and Python floats (constants)."""
    out = {
        name: np.asarray(getattr(scn, name), np.float64)
        for name in ("ue_pos", "mec_pos", "data_bits", "cycles", "weights", "f_mec")
    }
    for name in ("bandwidth", "p_max", "beta0", "noise", "kappa", "f_local"):
        out[name] = float(np.asarray(getattr(scn, name)))
    return out


def dep_np(dep) -> dict:
    """A padded deployment as float64 NumPy: the scenario fields plus gain and the masks."""
    out = scn_np(dep.scn)
    out["gain"] = np.asarray(dep.gain, np.float64)
    out["ue_mask"] = np.asarray(dep.ue_mask, bool)
    out["mec_mask"] = np.asarray(dep.mec_mask, bool)
    return out


def real_part(d: dict, h: np.ndarray | None = None):
    """The real sub-problem of a padded deployment dict: (dict restricted to the real UEs and
    MECs, h restricted likewise or None, UE indices, MEC indices)."""
    ui = np.flatnonzero(d["ue_mask"])
    mi = np.flatnonzero(d["mec_mask"])
    s = dict(d)
    for k in ("ue_pos", "data_bits", "cycles", "weights"):
        s[k] = d[k][ui]
    for k in ("mec_pos", "f_mec"):
        s[k] = d[k][mi]
    s["gain"] = d["gain"][np.ix_(ui, mi)]
    s["ue_mask"] = np.ones(ui.size, bool)
    s["mec_mask"] = np.ones(mi.size, bool)
    hr = None if h is None else np.asarray(h, np.float64)[np.ix_(ui, mi)]
    return s, hr, ui, mi


# --- physical model ---------------------------------------------------------------------------


def large_scale_gain(ue_pos: np.ndarray, mec_pos: np.ndarray, beta0: float) -> np.ndarray:
    """g_ij = beta0 / max(R_ij, 1 m)^2 with R_ij = ||ue_i - mec_j||_2 (eq. 1's path loss)."""
    n, m = len(ue_pos), len(mec_pos)
    g = np.zeros((n, m))
    for i in range(n):
        for j in range(m):
            r = math.hypot(ue_pos[i][0] - mec_pos[j][0], ue_pos[i][1] - mec_pos[j][1])
            g[i, j] = beta0 / max(r, 1.0) ** 2
    return g


def rate(s: dict, h: float) -> float:
    """r = B log2(1 + P_max h / sigma^2) in bit/s (eq. 2 at full power), written as
    B log1p(snr) / ln 2 so a deep fade (snr below float64's epsilon) keeps a positive rate."""
    return s["bandwidth"] * math.log1p(s["p_max"] * h / s["noise"]) / math.log(2.0)


def f0(s: dict) -> float:
    """Local CPU speed f_i0 = min(F_L, (P_max / kappa)^(1/3))."""
    return min(s["f_local"], (s["p_max"] / s["kappa"]) ** (1.0 / 3.0))


def latency(s: dict, h: np.ndarray, a) -> float:
    """Closed-form weighted latency on an UNPADDED problem (eqs. 5-13 with P2 solved):

    L(a) = sum_{a_i = 0} w_i F_i / f_i0 + sum_{a_i > 0} w_i D_i / r_{i,a_i}
           + sum_j (sum_{i: a_i = j} sqrt(w_i F_i))^2 / F_MEC_j.
    """
    loads = [0.0] * len(s["f_mec"])
    total = 0.0
    for i, j in enumerate(np.asarray(a).tolist()):
        w, F, D = s["weights"][i], s["cycles"][i], s["data_bits"][i]
        if j == 0:
            total += w * F / f0(s)
        else:
            total += w * D / rate(s, h[i, j - 1])
            loads[j - 1] += math.sqrt(w * F)
    return total + sum(load**2 / fm for load, fm in zip(loads, s["f_mec"], strict=True))


def latency_padded(d: dict, h: np.ndarray, a) -> float:
    """L(a) of a padded deployment: only real UEs count (padded UEs' entries are ignored), and
    a real UE is mapped to the real sub-problem's MEC numbering; a real UE on a padded MEC is
    an error (such a decision is not admissible)."""
    s, hr, ui, mi = real_part(d, h)
    to_real = {0: 0, **{int(j) + 1: k + 1 for k, j in enumerate(mi)}}
    a = np.asarray(a)
    return latency(s, hr, [to_real[int(a[i])] for i in ui])


def all_latencies(s: dict, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every decision of {0..M}^N as rows (K, N), K = (M+1)^N, with its L(a), vectorised over
    decisions but built from the same formula as `latency`:
    per-UE option costs c_i0 = w_i F_i / f_i0, c_ij = w_i D_i / r_ij, plus the MEC loads."""
    n, m = h.shape
    w, F, D = s["weights"], s["cycles"], s["data_bits"]
    cost = np.zeros((n, m + 1))
    for i in range(n):
        cost[i, 0] = w[i] * F[i] / f0(s)
        for j in range(m):
            cost[i, j + 1] = w[i] * D[i] / rate(s, h[i, j])
    A = np.indices((m + 1,) * n).reshape(n, -1).T.astype(np.int64)  # (K, N), every decision
    own = cost[np.arange(n)[None, :], A].sum(axis=1)
    sq = np.sqrt(w * F)
    comp = np.zeros(len(A))
    for j in range(1, m + 1):
        comp += ((A == j) * sq[None, :]).sum(axis=1) ** 2 / s["f_mec"][j - 1]
    return A, own + comp


def brute_force(s: dict, h: np.ndarray) -> tuple[np.ndarray, float]:
    """Exact optimum min_a L(a) of an unpadded problem by enumerating all (M+1)^N decisions."""
    A, L = all_latencies(s, h)
    k = int(np.argmin(L))
    return A[k], float(L[k])


# --- baselines --------------------------------------------------------------------------------


def greedy(s: dict) -> np.ndarray:
    """Greedy of Sec. V.D on an UNPADDED problem, from the large-scale gains:

    1. a_i = 1 + argmax_j g_ij (the nearest MEC; ties: the lowest j);
    2. capacity rule: MEC j can host cap_j = floor(F_MEC_j / F_L) tasks; of the UEs on j, the
       cap_j with the smallest F_i stay (ties: lower index stays), the others run locally.
    """
    g = s["gain"]
    n, m = g.shape
    a = np.zeros(n, np.int64)
    for i in range(n):
        best = 0
        for j in range(1, m):
            if g[i, j] > g[i, best]:
                best = j
        a[i] = best + 1
    for j in range(1, m + 1):
        cap = math.floor(s["f_mec"][j - 1] / s["f_local"])
        hosted = sorted((i for i in range(n) if a[i] == j), key=lambda i: (s["cycles"][i], i))
        for i in hosted[cap:]:
            a[i] = 0
    return a


def mutation_probs(d: dict, h: np.ndarray, local_weight: float) -> np.ndarray:
    """ASA's h-mutation distribution q (N_max, M_max + 1) on a padded deployment (eq. 27 over
    the real options): for a real UE i, with M the real MEC count and lw the local weight,

        q_i0 = (lw / M) / (1 + lw / M),
        q_ij = (h_ij / sum_{k real} h_ik) / (1 + lw / M)   (j real),   q_ij = 0 (j padded);

    a padded UE has q_i0 = 1 (it never moves)."""
    n_max, m_max = d["gain"].shape
    real_m = [j for j in range(m_max) if d["mec_mask"][j]]
    w0 = local_weight / len(real_m)
    q = np.zeros((n_max, m_max + 1))
    for i in range(n_max):
        if not d["ue_mask"][i]:
            q[i, 0] = 1.0
            continue
        total = sum(h[i, j] for j in real_m)
        q[i, 0] = w0 / (1.0 + w0)
        for j in real_m:
            q[i, j + 1] = h[i, j] / total / (1.0 + w0)
    return q


# --- feature policy ---------------------------------------------------------------------------


def _clog(x: float) -> float:
    """log x clipped to [-CLIP, CLIP] (x > 0)."""
    return min(max(math.log(x), -CLIP), CLIP)


def features(d: dict, h: np.ndarray) -> dict:
    """The feature policy's inputs on the REAL UEs and MECs of a padded deployment (dict with
    (N, M) arrays; entries of padded UEs/links are NaN: they are not specified). With
    l_i = w_i F_i / f_i0, r(x) = B log2(1 + P_max x / sigma^2), S = sum_{k real} sqrt(w_k F_k)
    and clog = log clipped to [-12, 12]:

        link[i, j, 0] = clog(w_i D_i / r(h_ij) / l_i)
        link[i, j, 1] = clog(w_i D_i / r(g_ij) / l_i)
        link[i, j, 2] = clog(w_i F_i / F_MEC_j / l_i)
        link[i, j, 3] = log1p(sqrt(w_i F_i) S / F_MEC_j / l_i)          (not clipped)
        ue[i]         = log l_i - mean_{k real} log l_k   (= log(l_i / geometric mean of l))
        glob          = (log N / 5, log M / 3)            (N, M: real counts)
        rel[i, j]     = 2 sqrt(w_i F_i) / F_MEC_j / l_i
        sqrt_wf[i]    = sqrt(w_i F_i)
    """
    n_max, m_max = d["gain"].shape
    um, mm = d["ue_mask"], d["mec_mask"]
    w, F, D, fm = d["weights"], d["cycles"], d["data_bits"], d["f_mec"]
    real_u = [i for i in range(n_max) if um[i]]
    real_m = [j for j in range(m_max) if mm[j]]
    loc = {i: w[i] * F[i] / f0(d) for i in real_u}
    S = sum(math.sqrt(w[i] * F[i]) for i in real_u)
    link = np.full((n_max, m_max, 4), np.nan)
    rel = np.full((n_max, m_max), np.nan)
    for i in real_u:
        for j in real_m:
            link[i, j, 0] = _clog(w[i] * D[i] / rate(d, h[i, j]) / loc[i])
            link[i, j, 1] = _clog(w[i] * D[i] / rate(d, d["gain"][i, j]) / loc[i])
            link[i, j, 2] = _clog(w[i] * F[i] / fm[j] / loc[i])
            link[i, j, 3] = math.log1p(math.sqrt(w[i] * F[i]) * S / fm[j] / loc[i])
            rel[i, j] = 2.0 * math.sqrt(w[i] * F[i]) / fm[j] / loc[i]
    mean_log = sum(math.log(loc[i]) for i in real_u) / len(real_u)
    ue = np.full(n_max, np.nan)
    sqrt_wf = np.full(n_max, np.nan)
    for i in real_u:
        ue[i] = math.log(loc[i]) - mean_log
        sqrt_wf[i] = math.sqrt(w[i] * F[i])
    glob = np.array([math.log(len(real_u)) / 5.0, math.log(len(real_m)) / 3.0])
    return {"link": link, "ue": ue, "glob": glob, "rel": rel, "sqrt_wf": sqrt_wf}


def log_softmax(z: np.ndarray) -> np.ndarray:
    """log p_k = z_k - log sum_l exp z_l (shifted by max z for stability), last axis."""
    z = np.asarray(z, np.float64)
    top = z.max(axis=-1, keepdims=True)
    return z - top - np.log(np.exp(z - top).sum(axis=-1, keepdims=True))


def eq25_loss(
    logits: np.ndarray, a_star: np.ndarray, ue_mask: np.ndarray, params_sq: float, lam: float
) -> float:
    """Eq. 25 on a batch, as documented: logits (B, R, N, M+1) of R passes, a* (B, N),

        loss = -(1 / (R * sum_b N_b)) sum_b sum_r sum_{i real in b} log softmax(z_bri)[a*_bi]
               + lambda / 2 * ||theta||^2,

    the cross-entropy averaged over passes and over the real UEs of the batch."""
    lp = log_softmax(logits)
    b_, r_, n_, _ = lp.shape
    total, count = 0.0, 0
    for b in range(b_):
        for r in range(r_):
            for i in range(n_):
                if ue_mask[b, i]:
                    total -= lp[b, r, i, int(a_star[b, i])]
                    count += 1
    return total / count + 0.5 * lam * params_sq


# --- mobile model -----------------------------------------------------------------------------


def waypoint_step(pos: np.ndarray, wp: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Random-waypoint motion of one epoch: a UE at distance d from its waypoint moves `step`
    metres straight towards it if d > step, else lands on it (arrived). Returns (new positions
    (N, 2), arrived (N,) bool)."""
    new = np.array(pos, np.float64, copy=True)
    arrived = np.zeros(len(pos), bool)
    for i in range(len(pos)):
        dx, dy = wp[i][0] - pos[i][0], wp[i][1] - pos[i][1]
        dist = math.hypot(dx, dy)
        if dist <= step:
            new[i] = wp[i]
            arrived[i] = True
        else:
            new[i] = (pos[i][0] + step * dx / dist, pos[i][1] + step * dy / dist)
    return new, arrived


def gauss_markov(fading: np.ndarray, e: np.ndarray, rho: float) -> np.ndarray:
    """l(t) = rho l(t-1) + sqrt(1 - rho^2) e(t), on the real and imaginary parts alike."""
    innovation = math.sqrt(1.0 - rho**2) * np.asarray(e, np.float64)
    return rho * np.asarray(fading, np.float64) + innovation


def fading_channel(gain: np.ndarray, fading: np.ndarray) -> np.ndarray:
    """h_ij = g_ij |l_ij|^2 = g_ij (Re l_ij^2 + Im l_ij^2); fading (N, M, 2)."""
    f = np.asarray(fading, np.float64)
    return np.asarray(gain, np.float64) * (f[..., 0] ** 2 + f[..., 1] ** 2)
