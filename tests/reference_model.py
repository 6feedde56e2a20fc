"""Independent float64 NumPy reference of the system model, P2 and the baseline rules.

Written from the paper with plain loops, not from the JAX code, so the tests compare two
independent implementations.
"""

from __future__ import annotations

import math

import numpy as np


class RefModel:
    """The model of Sec. III for one scenario, from plain float64 arrays."""

    def __init__(self, scn) -> None:
        g = lambda x: np.asarray(x, dtype=np.float64)  # noqa: E731
        self.ue, self.mec = g(scn.ue_pos), g(scn.mec_pos)
        self.D, self.F, self.w = g(scn.data_bits), g(scn.cycles), g(scn.weights)
        self.f_mec = g(scn.f_mec)
        self.B, self.p_max, self.beta0 = float(scn.bandwidth), float(scn.p_max), float(scn.beta0)
        self.noise, self.kappa, self.f_loc = float(scn.noise), float(scn.kappa), float(scn.f_local)
        self.N, self.M = self.ue.shape[0], self.mec.shape[0]

    def distance(self, i: int, j: int) -> float:
        dx, dy = self.ue[i] - self.mec[j]
        return max(math.hypot(dx, dy), 1.0)

    def path_gain(self) -> np.ndarray:
        return np.array(
            [[self.beta0 / self.distance(i, j) ** 2 for j in range(self.M)] for i in range(self.N)]
        )

    def rate(self, h: float) -> float:
        return self.B * math.log2(1.0 + self.p_max * h / self.noise)

    def f0(self) -> float:
        return min(self.f_loc, (self.p_max / self.kappa) ** (1.0 / 3.0))

    def allocation(self, h: np.ndarray, a: np.ndarray):
        """KKT allocation (f, p, per-UE latency) and the weighted latency."""
        f = np.zeros(self.N)
        p = np.zeros(self.N)
        t = np.zeros(self.N)
        for i in range(self.N):
            j = int(a[i])
            if j == 0:
                f[i] = self.f0()
                p[i] = self.kappa * f[i] ** 3
                t[i] = self.F[i] / f[i]
            else:
                share_sum = sum(
                    math.sqrt(self.w[k] * self.F[k]) for k in range(self.N) if a[k] == j
                )
                f[i] = self.f_mec[j - 1] * math.sqrt(self.w[i] * self.F[i]) / share_sum
                p[i] = self.p_max
                t[i] = self.D[i] / self.rate(h[i, j - 1]) + self.F[i] / f[i]
        return f, p, t, float(np.sum(self.w * t))

    def latency(self, h: np.ndarray, a: np.ndarray) -> float:
        return self.allocation(h, a)[3]

    def capacity_rule(self, a: np.ndarray) -> np.ndarray:
        """Extra UEs of MECs hosting more than floor(F_MEC/F_L) tasks go local, largest F first."""
        a = np.array(a, dtype=np.int64)
        for j in range(1, self.M + 1):
            cap = math.floor(self.f_mec[j - 1] / self.f_loc)
            hosted = [i for i in range(self.N) if a[i] == j]
            # keep the cap tasks with smallest F (ties: lower index kept)
            hosted.sort(key=lambda i: (self.F[i], i))
            for i in hosted[cap:]:
                a[i] = 0
        return a

    def greedy(self) -> np.ndarray:
        a = np.array(
            [1 + min(range(self.M), key=lambda j: self.distance(i, j)) for i in range(self.N)]
        )
        return self.capacity_rule(a)
