"""Adaptive simulated annealing (ASA) action search, paper Sec. IV.D, Algorithm 2, eqs. 26-30.

Integer coding (eq. 25): a decision is a (N,) int32 with a_i = 0 local, a_i = j for MEC j.

h-mutation (eqs. 27-29). Every UE i has a distribution q_i over the options M0 = {0..M}:

    q_ij = s_ij / (1 + lw / M)            for j >= 1,   s_ij = h_ij / sum_k h_ik,
    q_i0 = (lw / M) / (1 + lw / M)        (neutral local value),

so with the default local weight lw = 1 the local option weighs as much as an average MEC
(q_i0 = 1 / (M + 1)); the MEC options keep the paper's ratios h_ij / sum_k h_ik. UE i keeps its
option with probability P_i^mut = q_{i,a_i} (eq. 27); the literal rule changes about half the UEs
per move, so a mutation-rate scale c turns it into a mutation probability
m_i = min(1, c (1 - q_{i,a_i})) (c = 1 is the paper's rule). A mutating UE draws a *different*
option with probability proportional to q_i over M0 \\ {a_i} (eq. 29's randm), so "keeps its
option" happens with probability exactly 1 - m_i.

Per iteration G, K neighbours of the current x(G-1) are drawn and evaluated in parallel (vmap of
the P2 closed form); the best one x'(G) is accepted by the Boltzmann rule (eq. 26)

    x(G) = x'(G)  if exp((f(x(G-1)) - f(x'(G))) / T(G)) > rand,  else x(G-1),

with T(G) = phi_c T(G-1) and T(0) = t0 * f(a0) (t0 is relative so one value fits every N and
weight scale). The best decision seen is returned, so f(a_best) <= f(a0) always. With K = 128 the
best of K neighbours is nearly always an improvement until the search converges, so t0 and phi_c
matter little here (N = 30: t0 in {0, 0.002, 0.01, 0.02} gave the same mean gap to the optimum);
K and the mutation scale c do matter (chosen from K in {32, 64, 128, 256} x c in {0.05, 0.1,
0.2}; benchmarks/bench_asa.py measures the resulting gaps). The iteration
count T_SA adapts between epochs by eq. 30 (`adapt_t_sa`). Plain SA (`plain_sa`) is the same loop
with random neighbours: uniform q and a constant mutation probability.

`asa_search` takes T_SA as a traced int32 and runs a `while_loop` with T_SA steps, so a new T_SA
never recompiles and a single search costs T_SA (not max_iter) iterations; under `vmap` the loop
runs until the largest T_SA of the batch, the others idle (their state is kept by the batched
`while_loop`'s select).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import chex
import jax
import jax.numpy as jnp
from flax import struct

from ojrs_jax.core.settings import ConfigError, split_settings
from ojrs_jax.search.baselines import greedy
from ojrs_jax.system.deployment import Problem, decision, link_mask, problem_costs
from ojrs_jax.system.p2 import OptionCosts, costs_latency, option_costs
from ojrs_jax.system.scenario import Scenario


@struct.dataclass
class ASAParams:
    """Sweepable ASA numbers (pytree leaves: change them without recompiling, or vmap them)."""

    t0: float = 0.002  # initial temperature relative to the start: T(0) = t0 * L(a0)
    phi_c: float = 0.9  # cooling factor phi_c in (0, 1): T(G) = phi_c T(G-1)
    mut_scale: float = 0.1  # c: mutation probability m_i = min(1, c (1 - q_{i,a_i}))
    local_weight: float = 1.0  # lw > 0: weight of the local option relative to an average MEC
    eps: float = 0.02  # eq. 30 threshold on the loss decrease Delta-delta


@dataclass(frozen=True)
class ASAConfig:
    """Static ASA sizes (Python ints; changing them recompiles)."""

    k: int = 128  # K neighbours generated and evaluated in parallel per iteration
    max_iter: int = 100  # cap of T_SA: eq. 30 is clipped to [1, max_iter]
    t_sa0: int = 20  # T_SA(0), the initial iteration count (paper: 20)

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ConfigError(f"asa.{f.name} must be a positive integer, got {v!r}")
        if self.t_sa0 > self.max_iter:
            raise ConfigError(f"asa.t_sa0={self.t_sa0} exceeds asa.max_iter={self.max_iter}")


def _check_params(p: ASAParams) -> None:
    checks = {
        "t0": lambda v: v > 0,
        "phi_c": lambda v: 0 < v <= 1,
        "mut_scale": lambda v: v > 0,
        "local_weight": lambda v: v > 0,
        "eps": lambda v: True,
    }
    for name, ok in checks.items():
        v = getattr(p, name)
        good = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        if not good or not ok(v):
            raise ConfigError(f"asa.{name} has an invalid value {v!r}")


def asa_from_mapping(m: dict) -> tuple[ASAConfig, ASAParams]:
    """Typed (config, params) from a plain mapping (the Hydra `asa` group); unknown keys fail."""
    cfg_kw, par_kw = split_settings(m, "asa", ASAConfig, ASAParams)
    cfg = ASAConfig(**cfg_kw)
    params = ASAParams(**par_kw)
    _check_params(params)
    return cfg, params


@struct.dataclass
class ASAState:
    """Annealing state after iteration G."""

    a: chex.Array  # (N,) int32 current solution x(G)
    cost: chex.Array  # () f(x(G)), s
    a_best: chex.Array  # (N,) int32 best solution seen
    cost_best: chex.Array  # () f(a_best), s
    temp: chex.Array  # () temperature T for the next acceptance, s


@struct.dataclass
class Draws:
    """All random numbers of one iteration (so a reference can be fed the same ones)."""

    u: chex.Array  # (K, N) uniform: UE i of neighbour k mutates if u < m_i, new option by u / m_i
    u_acc: chex.Array  # () uniform: the `rand` of the Boltzmann rule (eq. 26)


def _mix32(x: jax.Array) -> jax.Array:
    """A bijective 32-bit integer hash (Wellons' "lowbias32": xorshift-multiply, 2 rounds)."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def stream_seeds(key: jax.Array) -> jax.Array:
    """Two 32-bit seeds (2,) uint32 of one search's random stream, drawn from its key."""
    return jax.random.bits(key, (2,), jnp.uint32)


def iteration_draws(seeds: jax.Array, g: jax.Array | int, k: int, n_ue: int) -> Draws:
    """The uniforms of iteration g of a search: a counter-based hash of (seeds, g, index).

    Why not `jax.random` per iteration: on the CPU one threefry call for the K N + 1 numbers of
    an iteration (3841 at N = 30) costs 40-70 us, more than everything else in the iteration.
    Here every number is two rounds of a bijective integer hash of its counter g (K N + 1) + index
    mixed with the search's two seeds (which do come from the key, once per search), one fused
    elementwise kernel. Numbers are 24-bit uniforms u = (b + 1/2) 2^-24, so 0 < u < 1.
    """
    count = k * n_ue + 1
    x = jnp.arange(count, dtype=jnp.uint32) + jnp.asarray(g, jnp.uint32) * jnp.uint32(count)
    b = _mix32(_mix32(x + seeds[0]) ^ seeds[1])
    u = ((b >> 8).astype(jnp.float32) + 0.5) * (1.0 / 2**24)
    return Draws(u=u[:-1].reshape(k, n_ue), u_acc=u[-1])


def sample_draws(key: jax.Array, k: int, n_ue: int) -> Draws:
    """The uniforms of one iteration with K neighbours over N UEs (a fresh stream's first)."""
    return iteration_draws(stream_seeds(key), 0, k, n_ue)


def option_probs(h: jax.Array, local_weight: jax.Array | float) -> jax.Array:
    """h-mutation distribution q (N, M+1) over M0 (eq. 27 with the neutral local value)."""
    chex.assert_rank(h, 2)
    m = h.shape[1]
    share = h / jnp.sum(h, axis=1, keepdims=True)  # h_ij / sum_k h_ik
    w0 = jnp.full((h.shape[0], 1), local_weight / m, h.dtype)
    return jnp.concatenate([w0, share], axis=1) / (1.0 + local_weight / m)


def problem_probs(p: Problem, local_weight: jax.Array | float) -> jax.Array:
    """h-mutation distribution q (N, M+1) of one epoch's problem (eq. 27). On a masked
    deployment it covers the real options only: the MEC shares h_ij / sum_{k real} h_ik, the
    local option weighing as much as an average real MEC, and a padded UE has all its mass on
    local (it keeps option 0 and never mutates)."""
    if not p.dep.masked:
        return option_probs(p.h, local_weight)
    dep, h = p.dep, p.h
    hm = jnp.where(link_mask(dep), h, 0.0)
    m_real = jnp.maximum(jnp.sum(dep.mec_mask), 1).astype(h.dtype)
    share = hm / jnp.maximum(jnp.sum(hm, axis=1, keepdims=True), jnp.finfo(h.dtype).tiny)
    w0 = local_weight / m_real
    q = jnp.concatenate([jnp.full((h.shape[0], 1), w0, h.dtype), share], axis=1) / (1.0 + w0)
    local_only = jax.nn.one_hot(jnp.zeros(h.shape[0], jnp.int32), h.shape[1] + 1, dtype=h.dtype)
    return jnp.where(dep.ue_mask[:, None], q, local_only)


def uniform_probs(h: jax.Array) -> jax.Array:
    """Plain SA's distribution: every option of M0 equally likely, (N, M+1)."""
    n, m = h.shape
    return jnp.full((n, m + 1), 1.0 / (m + 1), h.dtype)


def mutation_rates(q: jax.Array, a: jax.Array, scale: jax.Array | float) -> jax.Array:
    """m_i = min(1, c (1 - q_{i,a_i})) (N,): UE i mutates with m_i, keeps its option otherwise."""
    q_keep = jnp.take_along_axis(q, a[:, None], axis=1)[:, 0]
    return jnp.clip(scale * (1.0 - q_keep), 0.0, 1.0)


def transition_matrix(q: jax.Array, a: jax.Array, scale: jax.Array | float) -> jax.Array:
    """P(a'_i = j) (N, M+1) of one neighbour: keep a_i w.p. 1 - m_i, else j != a_i prop. to q_ij."""
    m = mutation_rates(q, a, scale)
    other = q * (1.0 - jax.nn.one_hot(a, q.shape[1], dtype=q.dtype))
    move = other / jnp.sum(other, axis=1, keepdims=True)
    return m[:, None] * move + (1.0 - m)[:, None] * jax.nn.one_hot(a, q.shape[1], dtype=q.dtype)


def mutation_matrix(h: jax.Array, a: jax.Array, params: ASAParams) -> jax.Array:
    """ASA's h-mutation transition probabilities P(a'_i = j) (N, M+1) from a (N,) (eqs. 27-29)."""
    return transition_matrix(option_probs(h, params.local_weight), a, params.mut_scale)


def neighbours(draws: Draws, q: jax.Array, a: jax.Array, m: jax.Array) -> jax.Array:
    """K neighbours (K, N) of a (N,) (eq. 29): UE i mutates when u < m_i and then takes a different
    option by inverse CDF of q_i restricted to M0 \\ {a_i} at u / m_i (uniform on [0, 1) given
    the mutation, so one random number per UE serves both: random numbers dominate the cost)."""
    n_opt = q.shape[1]
    other = q * (1.0 - jax.nn.one_hot(a, n_opt, dtype=q.dtype))  # (N, M+1)
    cdf = jnp.cumsum(other, axis=1)  # (N, M+1), last column = total
    mutate = draws.u < m[None, :]  # (K, N)
    u_pick = jnp.where(mutate, draws.u / jnp.where(m > 0, m, 1.0)[None, :], 0.0)
    # Option j is taken when cdf_{j-1} <= u < cdf_j; the excluded a_i has zero width.
    t = u_pick[:, :, None] * cdf[None, :, -1:]  # (K, N, 1)
    new = jnp.minimum(jnp.sum(cdf[None] <= t, axis=2), n_opt - 1).astype(a.dtype)
    return jnp.where(mutate, new, a[None, :])


def tell(
    state: ASAState, cands: jax.Array, costs: jax.Array, u_acc: jax.Array, phi_c: jax.Array | float
) -> ASAState:
    """Boltzmann acceptance of the best of K candidates (eq. 26), best-so-far, cooling."""
    i = jnp.argmin(costs)
    a_new, c_new = cands[i], costs[i]
    # exp((f_old - f_new) / T) > rand, written in logs so large improvements cannot overflow.
    accept = (state.cost - c_new) / state.temp > jnp.log(u_acc)
    a = jnp.where(accept, a_new, state.a)
    cost = jnp.where(accept, c_new, state.cost)
    better = c_new < state.cost_best
    return state.replace(
        a=a,
        cost=cost,
        a_best=jnp.where(better, a_new, state.a_best),
        cost_best=jnp.where(better, c_new, state.cost_best),
        temp=state.temp * phi_c,
    )


def asa_init(scn: Scenario, h: jax.Array, a0: jax.Array, params: ASAParams) -> ASAState:
    """State x(0) = a0 with T(0) = t0 * f(a0)."""
    return _init(option_costs(scn, h), a0, params)


def _init(costs: OptionCosts, a0: jax.Array, params: ASAParams) -> ASAState:
    a0 = jnp.asarray(a0, jnp.int32)
    c0 = costs_latency(costs, a0)
    return ASAState(a=a0, cost=c0, a_best=a0, cost_best=c0, temp=params.t0 * c0)


def _step(
    draws: Draws,
    state: ASAState,
    q: jax.Array,
    costs: OptionCosts,
    params: ASAParams,
    guided: bool,
) -> ASAState:
    """One generation given the per-search constants: q (N, M+1) and the option costs."""
    if guided:
        m = mutation_rates(q, state.a, params.mut_scale)
    else:  # plain SA: uniform options, a constant mutation probability c M / (M + 1)
        m = mutation_rates(q, jnp.zeros_like(state.a), params.mut_scale)
    cands = neighbours(draws, q, state.a, m)
    cand_costs = costs_latency(costs, cands)  # (K,): the K neighbours in parallel
    return tell(state, cands, cand_costs, draws.u_acc, params.phi_c)


def asa_iteration(
    draws: Draws,
    state: ASAState,
    scn: Scenario,
    h: jax.Array,
    params: ASAParams,
    guided: bool = True,
) -> ASAState:
    """One generation of Algorithm 2 (lines 4-7) from given random numbers."""
    q = option_probs(h, params.local_weight) if guided else uniform_probs(h)
    return _step(draws, state, q, option_costs(scn, h), params, guided)


def _search(key, scn, h, a0, n_iter, params, k: int, max_iter: int, guided: bool):
    # Everything that does not change between iterations is computed once: the h-mutation
    # distribution and the rate-dependent latency terms (a log per link).
    q = option_probs(h, params.local_weight) if guided else uniform_probs(h)
    return search_with(key, q, option_costs(scn, h), a0, n_iter, params, k, max_iter, guided)


def search_with(
    key,
    q: jax.Array,
    costs: OptionCosts,
    a0,
    n_iter,
    params: ASAParams,
    k: int,
    max_iter: int,
    guided: bool = True,
):
    """The search loop given the mutation distribution q (N, M+1) and the option costs, so a
    caller can restrict both (`search` on a masked problem: padded UEs never move, padded MECs
    have q = 0). Returns (a_best, L(a_best), trace) as `asa_search`."""
    n_ue = q.shape[0]
    n_iter = jnp.clip(jnp.asarray(n_iter, jnp.int32), 0, max_iter)
    state = _init(costs, a0, params)
    trace = jnp.full((max_iter,), state.cost_best)

    def cond(carry):
        return carry[0] < n_iter

    seeds = stream_seeds(key)

    def body(carry):
        g, state, trace = carry
        draws = iteration_draws(seeds, g, k, n_ue)
        state = _step(draws, state, q, costs, params, guided)
        return g + 1, state, trace.at[g].set(state.cost_best)

    _, state, trace = jax.lax.while_loop(cond, body, (jnp.int32(0), state, trace))
    trace = jnp.where(jnp.arange(max_iter) < n_iter, trace, state.cost_best)
    return state.a_best, state.cost_best, trace


def asa_search(
    key: jax.Array,
    scn: Scenario,
    h: jax.Array,
    a0: jax.Array,
    n_iter: jax.Array | int,
    params: ASAParams,
    *,
    k: int,
    max_iter: int,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """ASA (Algorithm 2) from a0 (N,) for n_iter = T_SA iterations (traced, clipped to max_iter).

    Returns (a_best (N,), L(a_best) (), trace (max_iter,)): trace[G] is the best L after
    iteration G + 1 (constant after n_iter). L(a_best) <= L(a0) always.
    """
    return _search(key, scn, h, a0, n_iter, params, k, max_iter, guided=True)


def label_channels(
    key: jax.Array,
    scn: Scenario,
    h: jax.Array,
    params: ASAParams,
    *,
    k: int,
    n_iter: int,
    batch: int = 64,
) -> jax.Array:
    """Searched actions a* (E, N) = ASA(Greedy, h_e) for each channel h (E, N, M): `n_iter`
    iterations of K neighbours from the Greedy decision (Algorithm 2), the labels of an offline
    fit of the policy (eq. 25). Channels are searched `batch` at a time (`lax.map`)."""
    a0 = greedy(scn)

    def one(args: tuple[jax.Array, jax.Array]) -> jax.Array:
        kk, hh = args
        return asa_search(kk, scn, hh, a0, n_iter, params, k=k, max_iter=n_iter)[0]

    return jax.lax.map(one, (jax.random.split(key, h.shape[0]), h), batch_size=batch)


def search(
    key: jax.Array,
    p: Problem,
    a0: jax.Array,
    n_iter: jax.Array | int,
    params: ASAParams,
    *,
    k: int,
    max_iter: int,
    moves: float = 0.0,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """ASA (Algorithm 2) on one epoch's problem, padded or not: `asa_search` on the real part
    (padded UEs never move, padded MECs are never proposed). Returns (a_best, L, trace).

    `moves` > 0 caps the mutation scale at moves / N (N the real UEs): about `moves` UEs change
    per neighbour whatever N (a fixed c = 0.1 moves about 15 of 300 UEs, and the search stalls).
    """
    if moves > 0:
        n_real = jnp.maximum(jnp.sum(p.dep.ue_mask), 1).astype(jnp.float32)
        params = params.replace(mut_scale=jnp.minimum(params.mut_scale, moves / n_real))
    q = problem_probs(p, params.local_weight)
    a0 = decision(p.dep, a0)
    return search_with(key, q, problem_costs(p), a0, n_iter, params, k, max_iter)


def plain_sa(
    key: jax.Array,
    scn: Scenario,
    h: jax.Array,
    a0: jax.Array,
    n_iter: int,
    params: ASAParams,
    *,
    k: int,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Traditional SA (paper Fig. 7): random neighbours (uniform options, each UE mutating with
    probability c M / (M + 1)), fixed n_iter iterations, same acceptance and cooling as ASA.
    Returns (a_best (N,), L(a_best) (), trace (n_iter,))."""
    return _search(key, scn, h, a0, n_iter, params, k, n_iter, guided=False)


def adapt_t_sa(
    t_sa: jax.Array | int,
    delta_decrease: jax.Array | float,
    eps: jax.Array | float = 0.02,
    *,
    max_iter: int = 100,
) -> jax.Array:
    """Adaptive iteration count (eq. 30), clipped to [1, max_iter]:

    T_SA + 1 if Delta-delta >= eps;  T_SA - 1 if Delta-delta < eps and T_SA != 1;  1 otherwise.
    """
    t_sa = jnp.asarray(t_sa, jnp.int32)
    nxt = jnp.where(delta_decrease >= eps, t_sa + 1, jnp.maximum(t_sa - 1, 1))
    return jnp.clip(nxt, 1, max_iter).astype(jnp.int32)


def best_response(costs: OptionCosts, a0: jax.Array, sweeps: int = 1) -> jax.Array:
    """`sweeps` passes of single-UE best responses from a0 (N,): UE 0, 1, ..., N-1 in turn
    moves to the option that lowers L most given everyone else's choice (a move is taken only
    if it lowers L, so L(result) <= L(a0)). With L = sum_i c_{i,a_i} + sum_j S_j^2 / F_j
    (S_j: sum of sqrt(w F) on MEC j), UE i's cost of option j >= 1 is c_ij + (2 S_j' s_i +
    s_i^2) / F_j with S_j' the load without it: N (M + 1) exact evaluations a pass, no
    randomness. Options that cost PAD_COST (padded MECs) are never taken; UEs with all options
    at 0 (padding) stay. A deterministic polish of a policy's decision
    (docs/findings/any-deployment.md).
    """
    a0 = jnp.asarray(a0, jnp.int32)
    n_ue, n_opt = costs.per_option.shape
    onehot = jax.nn.one_hot(a0, n_opt, dtype=costs.per_option.dtype)
    load = costs.sqrt_wf @ onehot[:, 1:]  # (M,)

    def move(i, carry):
        a, load = carry
        s, cur = costs.sqrt_wf[i], a[i]
        own = jax.nn.one_hot(cur - 1, n_opt - 1, dtype=load.dtype)  # zeros when local
        rest = load - s * own
        option = costs.per_option[i] + jnp.concatenate(
            [jnp.zeros(1, load.dtype), (2.0 * rest * s + s * s) * costs.inv_f_mec]
        )
        best = jnp.argmin(option).astype(jnp.int32)
        new = jnp.where(option[best] < option[cur], best, cur)
        return a.at[i].set(new), rest + s * jax.nn.one_hot(new - 1, n_opt - 1, dtype=load.dtype)

    a, _ = jax.lax.fori_loop(0, sweeps * n_ue, lambda t, c: move(t % n_ue, c), (a0, load))
    return a
