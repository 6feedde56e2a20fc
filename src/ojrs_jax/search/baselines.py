"""Reference decision rules of paper Sec. V.D: Random, Greedy (nearest MEC), exhaustive search.

Random and Greedy apply the capacity rule of Sec. V.D: MEC j is insufficient when it hosts more
than floor(F_MEC_j / F_L) tasks (it could not give each at least the UE's local speed); the
extra UEs, those with the largest F_i first, then run locally. All rules are pure, jit- and
vmap-friendly (exhaustive search enumerates (M+1)^N decisions and is meant for N <= 10).
Greedy and Random take a `Scenario` or a `system.deployment.Deployment`; on a masked one the
rules see the real UEs and MECs only (a padded UE stays local, a padded MEC is never chosen).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ojrs_jax.system.deployment import Deployment, decision
from ojrs_jax.system.p2 import batched_latency
from ojrs_jax.system.scenario import Scenario, distances


def capacity_rule(scn: Scenario, a: jax.Array) -> jax.Array:
    """Send the extra UEs of over-full MECs home, largest F_i first (Sec. V.D). a (N,) -> (N,)."""
    cap = jnp.floor(scn.f_mec / scn.f_local)  # (M,) tasks each MEC can host at >= F_L
    n = a.shape[0]
    idx = jnp.arange(n)
    same = (a[:, None] == a[None, :]) & (a[:, None] > 0)
    # rank_i = UEs on i's MEC that are kept before i: smaller F, or equal F and lower index.
    before = (scn.cycles[None, :] < scn.cycles[:, None]) | (
        (scn.cycles[None, :] == scn.cycles[:, None]) & (idx[None, :] < idx[:, None])
    )
    rank = jnp.sum(same & before, axis=1)
    cap_i = cap[jnp.clip(a - 1, 0, scn.n_mec - 1)]
    return jnp.where((a > 0) & (rank >= cap_i), 0, a).astype(jnp.int32)


def greedy(x: Scenario | Deployment, h: jax.Array | None = None) -> jax.Array:
    """Greedy: every UE offloads to its nearest MEC (largest large-scale gain), then the capacity
    rule. Returns a (N,)."""
    del h  # the rule looks at distances only
    if isinstance(x, Deployment) and x.masked:
        g = jnp.where(x.mec_mask[None, :], x.gain, -jnp.inf)
        a = jnp.where(x.ue_mask, jnp.argmax(g, axis=1).astype(jnp.int32) + 1, 0)
        return decision(x, capacity_rule(x.scn, a))
    scn = x.scn if isinstance(x, Deployment) else x
    a = jnp.argmin(distances(scn), axis=1).astype(jnp.int32) + 1
    return capacity_rule(scn, a)


def random_decision(key: jax.Array, x: Scenario | Deployment) -> jax.Array:
    """Random: each UE picks one of its options (local or a real MEC) uniformly, then the
    capacity rule."""
    if isinstance(x, Deployment) and x.masked:
        real = jnp.concatenate([jnp.ones((1,), bool), x.mec_mask])  # (M+1,)
        logits = jnp.broadcast_to(jnp.where(real, 0.0, -jnp.inf), (x.n_max, real.shape[0]))
        a = jax.random.categorical(key, logits).astype(jnp.int32)
        return decision(x, capacity_rule(x.scn, decision(x, a)))
    scn = x.scn if isinstance(x, Deployment) else x
    a = jax.random.randint(key, (scn.n_ue,), 0, scn.n_mec + 1, dtype=jnp.int32)
    return capacity_rule(scn, a)


def all_decisions(n_ue: int, n_mec: int) -> jax.Array:
    """Every decision in {0..M}^N as a ((M+1)^N, N) int32 array (row k = digits of k, base M+1)."""
    k = jnp.arange((n_mec + 1) ** n_ue)
    powers = (n_mec + 1) ** jnp.arange(n_ue)
    return ((k[:, None] // powers[None, :]) % (n_mec + 1)).astype(jnp.int32)


def exhaustive(scn: Scenario, h: jax.Array, chunk: int = 65536) -> tuple[jax.Array, jax.Array]:
    """Optimal decision by enumeration, for tiny N: returns (a (N,), L(a))."""
    n, m = scn.n_ue, scn.n_mec
    total = (m + 1) ** n
    if total > 50_000_000:
        raise ValueError(f"exhaustive search over {total} decisions is too large; use exact_miqp")
    cands = all_decisions(n, m)
    vals = jnp.concatenate(
        [batched_latency(scn, h, cands[s : s + chunk]) for s in range(0, total, chunk)]
    )
    best = jnp.argmin(vals)
    return cands[best], vals[best]
