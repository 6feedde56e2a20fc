"""The certified evaluation: decisions scored in float64 against SCIP's optimum (Sec. V.B, NRR).

The one definition of NRR, used by the training runs (`run.evaluation.evaluate_run`), the
any-deployment grid (`experiments.any_grid`), the SAE's decision fidelity (`sae.metrics`), the
offline code study and the jobs of `ojrs-reproduce`. `certify(cases, decisions)` scores every
named set of decisions in float64 on the real part of each problem (`exact.latency_np`, the
MIQP's own cost data), has SCIP certify the optimum of each problem (warm started with the best
decision; or takes precomputed optimal latencies as `reference`), and reports for every name x:
`latency_x` (mean), `nrr_x` (mean of L(exact) / L(x), each term in (0, 1]), `nrr_x_median`,
`nrr_x_p10`, `nrr_x_min`; and `latency_exact`, `certified` (problems SCIP proved optimal),
`exact_seconds` (SCIP's total), `draws`; without SCIP only the latencies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import numpy as np

from ojrs_jax.core.progress import bar
from ojrs_jax.system.deployment import Problem, unpad
from ojrs_jax.system.exact import TIME_LIMIT, cost_matrix, exact_miqp, latency_np
from ojrs_jax.system.scenario import Scenario


def latency64(scn: Scenario, H: np.ndarray, A: np.ndarray) -> np.ndarray:
    """L(a) of eq. 13 in float64 for decisions A (..., K, N) on draws H (K, N, M): the value of
    `ojrs_jax.system.exact.latency_np` for each (draw, decision), with the costs computed once
    per draw."""
    H = np.asarray(H, np.float64)
    A = np.asarray(A)
    lead, (k, n) = A.shape[:-2], A.shape[-2:]
    flat = A.reshape(-1, k, n)
    out = np.empty(flat.shape[:2], np.float64)
    for e in range(k):
        cost, c = cost_matrix(scn, H[e])
        for s in range(flat.shape[0]):
            a = flat[s, e]
            lin = cost[np.arange(a.size), a].sum()
            loads = np.array([c[a == j + 1, j].sum() for j in range(c.shape[1])])
            out[s, e] = float(lin + np.sum(loads**2))
    return out.reshape(*lead, k)


def nrr(l_ref: np.ndarray, l_pol: np.ndarray) -> np.ndarray:
    """NRR: mean over the draws (last axis) of L(reference) / L(policy), in float64."""
    return np.mean(np.asarray(l_ref, np.float64) / np.asarray(l_pol, np.float64), axis=-1)


def nrr_stats(l_ref: np.ndarray, l_pol: np.ndarray, name: str) -> dict[str, float]:
    """`nrr_<name>` (mean), `_median`, `_p10` and `_min` of L(reference) / L(decision)."""
    r = np.asarray(l_ref, np.float64) / np.asarray(l_pol, np.float64)
    return {
        f"nrr_{name}": float(r.mean()),
        f"nrr_{name}_median": float(np.median(r)),
        f"nrr_{name}_p10": float(np.percentile(r, 10)),
        f"nrr_{name}_min": float(r.min()),
    }


@dataclass(frozen=True)
class Case:
    """One problem's real part on the host: a scenario of N real UEs and M real MECs, its
    channel in float64, and where its UEs and MECs sit in the padded problem."""

    scn: Scenario  # NumPy-backed, unpadded
    h: np.ndarray  # (N, M) float64
    ue_idx: np.ndarray  # (N,) indices of the real UEs in the padded problem
    mec_idx: np.ndarray  # (M,) indices of the real MECs

    def decision(self, a: np.ndarray) -> np.ndarray:
        """A padded decision (N_max,) as a decision of the real part (0 local, j real MEC j)."""
        a = np.asarray(a)[self.ue_idx]
        pos = np.zeros(int(np.max(self.mec_idx, initial=-1)) + 2, np.int64)
        pos[self.mec_idx + 1] = np.arange(1, self.mec_idx.size + 1)
        return np.where(a > 0, pos[np.clip(a, 0, pos.size - 1)], 0)


def cases(problems: Problem) -> list[Case]:
    """The real part of every problem of a batch, on the host (one copy of the arrays). The
    channels h (B, N, M) share one deployment or have one each (leading axis B)."""
    dep = jax.tree.map(np.asarray, problems.dep)
    H = np.asarray(problems.h, np.float64)
    shared = dep.gain.ndim == 2
    out = []
    for d in range(H.shape[0]):
        one = dep if shared else jax.tree.map(lambda x, d=d: x[d], dep)
        if not one.masked:
            n, m = H.shape[1:]
            out.append(Case(one.scn, H[d], np.arange(n), np.arange(m)))
            continue
        scn, h = unpad(one, H[d])
        ue_idx, mec_idx = np.flatnonzero(one.ue_mask), np.flatnonzero(one.mec_mask)
        out.append(Case(scn, np.asarray(h, np.float64), ue_idx, mec_idx))
    return out


def certify(
    cs: list[Case],
    decisions: dict[str, Any],
    exact: bool = True,
    time_limit: float = TIME_LIMIT,
    desc: str = "SCIP optimum",
    reference: tuple[np.ndarray, int] | None = None,
) -> dict[str, Any]:
    """The one certified evaluation: each named decision set `decisions[name]` (D, N_max) on the
    problems `cs`, in float64, against SCIP's optimum of each problem (warm started with the
    best of the decisions), or against `reference` = (optimal latencies (D,), how many of them
    SCIP certified) computed before. Keys: see the module docstring."""
    dec = {k: np.asarray(v) for k, v in decisions.items()}
    lat = {k: np.zeros(len(cs)) for k in dec}
    real = {k: [c.decision(v[d]) for d, c in enumerate(cs)] for k, v in dec.items()}
    for d, c in enumerate(cs):
        for k in dec:
            lat[k][d] = latency_np(c.scn, c.h, real[k][d])
    out: dict[str, Any] = {"draws": len(cs)}
    for k, v in lat.items():
        out[f"latency_{k}"] = float(v.mean())
    if not exact:
        return out
    ex, certified, seconds = np.zeros(len(cs)), 0, 0.0
    if reference is not None:
        ex, certified = np.asarray(reference[0], np.float64), int(reference[1])
    for d in bar(range(len(cs)) if reference is None else [], desc=desc, unit="draw"):
        c = cs[d]
        best = min(dec, key=lambda k, d=d: lat[k][d])
        r = exact_miqp(c.scn, c.h, time_limit, real[best][d])
        ex[d], seconds = r.latency, seconds + r.seconds
        certified += r.status == "optimal"
    out.update(latency_exact=float(ex.mean()), certified=int(certified), exact_seconds=seconds)
    for k, v in lat.items():
        out.update(nrr_stats(ex, v, k))
    return out
