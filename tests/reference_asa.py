"""Float64 NumPy reference of one ASA / plain-SA iteration (paper eqs. 26-29), by loops.

Written from the paper's equations, not from src/ojrs_jax/asa.py: it shares only the contract of
the random numbers (one uniform u per neighbour and UE: mutate when u < m_i, then pick the new
option at u / m_i by inverse CDF over the other options in index order; one uniform for
acceptance).
"""

from __future__ import annotations

import math

import numpy as np


def scenario_np(scn) -> dict:
    """The scenario's numbers as float64 NumPy."""
    return {
        name: np.asarray(getattr(scn, name), np.float64)
        for name in (
            "data_bits",
            "cycles",
            "weights",
            "f_mec",
            "bandwidth",
            "p_max",
            "noise",
            "kappa",
            "f_local",
        )
    }


def latency_ref(s: dict, h: np.ndarray, a: np.ndarray) -> float:
    """Closed form of L(a) (eqs. 5-13), UE by UE."""
    f0 = min(float(s["f_local"]), (float(s["p_max"]) / float(s["kappa"])) ** (1 / 3))
    total = 0.0
    loads = np.zeros(h.shape[1])
    for i, j in enumerate(np.asarray(a)):
        w, F, D = s["weights"][i], s["cycles"][i], s["data_bits"][i]
        if j == 0:
            total += w * F / f0
        else:
            r = s["bandwidth"] * math.log2(1 + s["p_max"] * h[i, j - 1] / s["noise"])
            total += w * D / r
            loads[j - 1] += math.sqrt(w * F)
    return float(total + np.sum(loads**2 / s["f_mec"]))


def option_probs_ref(h: np.ndarray, local_weight: float, guided: bool = True) -> np.ndarray:
    """q (N, M+1): local weight lw/M against MEC shares h_ij / sum_k h_ik, normalised (eqs. 27-29);
    uniform over the M+1 options for plain SA."""
    n, m = h.shape
    q = np.zeros((n, m + 1))
    for i in range(n):
        if not guided:
            q[i] = 1.0 / (m + 1)
            continue
        weights = [local_weight / m] + [h[i, j] / h[i].sum() for j in range(m)]
        q[i] = np.array(weights) / sum(weights)
    return q


def mutation_rate_ref(q: np.ndarray, a: np.ndarray, scale: float, guided: bool = True):
    """m_i = min(1, c (1 - q_{i,a_i})); plain SA uses c M / (M + 1) for every UE."""
    n, m1 = q.shape
    if not guided:
        return np.full(n, min(1.0, scale * (m1 - 1) / m1))
    return np.array([min(1.0, scale * (1.0 - q[i, a[i]])) for i in range(n)])


def transition_ref(q: np.ndarray, a: np.ndarray, m: np.ndarray) -> np.ndarray:
    """P(a'_i = j): keep w.p. 1 - m_i, else j != a_i w.p. m_i q_ij / sum_{l != a_i} q_il."""
    n, m1 = q.shape
    p = np.zeros((n, m1))
    for i in range(n):
        rest = sum(q[i, j] for j in range(m1) if j != a[i])
        for j in range(m1):
            p[i, j] = (1 - m[i]) if j == a[i] else m[i] * q[i, j] / rest
    return p


def neighbour_ref(u: np.ndarray, q: np.ndarray, a: np.ndarray, m: np.ndarray) -> np.ndarray:
    """One neighbour (N,) from uniforms u (N,)."""
    out = np.array(a, copy=True)
    for i in range(len(a)):
        if u[i] >= m[i]:
            continue
        opts = [j for j in range(q.shape[1]) if j != a[i]]
        w = np.array([q[i, j] for j in opts])
        target = (u[i] / m[i]) * w.sum()
        acc = 0.0
        out[i] = opts[-1]
        for j, wj in zip(opts, w, strict=True):
            acc += wj
            if target < acc:
                out[i] = j
                break
    return out


def iteration_ref(
    s: dict,
    h: np.ndarray,
    state: dict,
    u: np.ndarray,
    u_acc: float,
    params: dict,
    guided: bool = True,
) -> tuple[dict, dict]:
    """One generation: K neighbours, best of K, Boltzmann rule (eq. 26), best-so-far, cooling.

    Returns (new state, info) with info = {"uphill_accepted": bool, "rejected": bool}.
    """
    a = state["a"]
    q = option_probs_ref(h, params["local_weight"], guided)
    m = mutation_rate_ref(q, a, params["mut_scale"], guided)
    cands = [neighbour_ref(u[k], q, a, m) for k in range(u.shape[0])]
    costs = [latency_ref(s, h, c) for c in cands]
    k = int(np.argmin(costs))
    accept = math.exp(min((state["cost"] - costs[k]) / state["temp"], 700.0)) > u_acc
    new = dict(state)
    if accept:
        new["a"], new["cost"] = cands[k], costs[k]
    if costs[k] < state["cost_best"]:
        new["a_best"], new["cost_best"] = cands[k], costs[k]
    new["temp"] = state["temp"] * params["phi_c"]
    info = {"uphill_accepted": accept and costs[k] > state["cost"], "rejected": not accept}
    return new, info
