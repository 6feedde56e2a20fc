"""Plain-Python reference of the replay buffers (paper Sec. IV.E, eqs. 31-32).

Written from the paper as a list of slots, one dict per transition, to check `ojrs_jax.agent.replay`
step by step. Priorities are float64. The preserve test mirrors float32 arithmetic, because the
JAX buffer stores norms in float32 and a ratio that lands exactly on the band edge must be decided
the same way by both.
"""

from __future__ import annotations

import numpy as np


class RefPER:
    """2p-ER: preserve strategy on overwrite, priority strategy on sampling."""

    def __init__(self, capacity: int, rho_max: float = 1.2, tau: float = 0.6, eps: float = 0.001):
        self.capacity = capacity
        self.rho_max = rho_max
        self.tau = tau
        self.eps = eps
        self.slots: list[dict | None] = [None] * capacity
        self.time = 0

    def _is_preserved(self, item: dict, theta_now: float) -> bool:
        now = np.float32(theta_now)
        then = np.float32(item["theta0"])
        rmax = np.float32(self.rho_max)
        rho = now / then
        return bool(np.float32(1.0) / rmax < rho < rmax)

    def add(self, s, a, theta_norm_sq: float) -> int:
        """Insert and return the slot written."""
        stored = [it for it in self.slots if it is not None]
        p_new = max(it["p"] for it in stored) if stored else 1.0
        free = [i for i, it in enumerate(self.slots) if it is None]
        if free:
            slot = free[0]
        else:
            # FIFO order: oldest first; skip the preserved ones.
            order = sorted(range(self.capacity), key=lambda i: self.slots[i]["t"])
            evictable = [i for i in order if not self._is_preserved(self.slots[i], theta_norm_sq)]
            slot = evictable[0] if evictable else order[0]
        self.slots[slot] = {
            "s": np.array(s, np.float64),
            "a": np.array(a, np.int64),
            "theta0": float(theta_norm_sq),
            "p": p_new,
            "t": self.time,
        }
        self.time += 1
        return slot

    def set_priorities(self, idx, delta) -> None:
        delta = np.broadcast_to(np.asarray(delta, np.float64), np.shape(idx))
        new: dict[int, float] = {}
        for i, d in zip(np.asarray(idx).tolist(), delta.tolist(), strict=True):
            new[i] = max(new.get(i, -np.inf), abs(d) + self.eps)
        for i, p in new.items():
            self.slots[i]["p"] = p

    def probabilities(self) -> np.ndarray:
        w = np.array([0.0 if it is None else it["p"] ** self.tau for it in self.slots])
        return w / w.sum()

    def valid(self) -> np.ndarray:
        return np.array([it is not None for it in self.slots])


class RefUniform:
    """Traditional replay: FIFO queue, uniform sampling."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.slots: list[dict | None] = [None] * capacity
        self.queue: list[int] = []  # slot indices, oldest first
        self.time = 0

    def add(self, s, a, theta_norm_sq: float) -> int:
        if len(self.queue) < self.capacity:
            slot = len(self.queue)
        else:
            slot = self.queue.pop(0)
        self.queue.append(slot)
        self.slots[slot] = {
            "s": np.array(s, np.float64),
            "a": np.array(a, np.int64),
            "theta0": float(theta_norm_sq),
            "p": 1.0,
            "t": self.time,
        }
        self.time += 1
        return slot

    def set_priorities(self, idx, delta) -> None:
        pass

    def probabilities(self) -> np.ndarray:
        v = self.valid().astype(float)
        return v / v.sum()

    def valid(self) -> np.ndarray:
        return np.array([it is not None for it in self.slots])
