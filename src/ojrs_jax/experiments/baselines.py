"""The reference rules of paper Table II on sampled channel epochs (`ojrs-baselines`).

Samples E channel epochs of the configured scenario and runs every method of `methods` on each
(Greedy, Random, ASA-only, plain SA, PSO, and Exact: the SCIP MIQP optimum); returns per-draw
latency, decision and time. `write_outputs` writes baselines.csv (one row per epoch and method)
and summary.csv.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import jax
import numpy as np

from ojrs_jax.core.io import write_csv
from ojrs_jax.core.progress import bar, log_summary
from ojrs_jax.core.settings import (
    ConfigError,
    positive_int,
    positive_number,
    rename_settings,
    seed_value,
)
from ojrs_jax.env import fixed as env_mod
from ojrs_jax.search.asa import ASAConfig, ASAParams, asa_from_mapping, asa_search, plain_sa
from ojrs_jax.search.baselines import greedy, random_decision
from ojrs_jax.search.pso import PSOConfig, PSOParams, pso, pso_from_mapping
from ojrs_jax.system.exact import TIME_LIMIT, exact_miqp
from ojrs_jax.system.p2 import P2_METHODS, solve_p2
from ojrs_jax.system.scenario import Scenario, SystemConfig, make_scenario, system_config

log = logging.getLogger(__name__)

# A heuristic maps (key, scenario, h (N, M)) to a decision a (N,); it is jitted with P2.
Decider = Callable[[jax.Array, Scenario, jax.Array], jax.Array]


@dataclass(frozen=True)
class Searches:
    """Settings of the search rules started from Greedy (the `asa`, `sa` and `pso` groups)."""

    asa: ASAConfig = field(default_factory=ASAConfig)
    asa_params: ASAParams = field(default_factory=ASAParams)
    sa_iterations: int = 20  # plain SA: fixed iteration count (K, temperature, cooling from asa)
    pso: PSOConfig = field(default_factory=PSOConfig)
    pso_params: PSOParams = field(default_factory=PSOParams)

    @classmethod
    def from_mapping(cls, c: dict) -> Searches:
        """From a config holding `asa`, `sa` and `pso` nodes (defaults where a node is absent)."""
        asa_cfg, asa_par = asa_from_mapping(c.get("asa", {}) or {})
        sa = {"iterations": cls.sa_iterations, **(c.get("sa", {}) or {})}
        sa_iter = positive_int(sa, "iterations", "sa.")
        pso_cfg, pso_par = pso_from_mapping(c.get("pso", {}) or {})
        return cls(asa_cfg, asa_par, sa_iter, pso_cfg, pso_par)


BASELINES_KEYS = {"scale", "system", "draws", "seed", "methods", "p2", "exact", "asa", "sa", "pso"}


@dataclass(frozen=True)
class BaselinesConfig:
    """Typed `ojrs-baselines` settings (conf/baselines.yaml); the one source of its defaults."""

    system: SystemConfig = field(default_factory=SystemConfig)
    draws: int = 200  # channel draws (epochs) E every method runs on
    seed: int = 0  # seed of the channel draws and of Random
    methods: tuple[str, ...] = ("greedy", "random", "exact")
    p2_method: str = "closed_form"  # how P2's CPU shares are solved for the heuristics
    time_limit: float = TIME_LIMIT  # SCIP time limit per draw, s
    searches: Searches = field(default_factory=Searches)

    def __post_init__(self) -> None:
        positive_int({"draws": self.draws}, "draws", "")
        seed_value({"seed": self.seed})
        if self.p2_method not in P2_METHODS:
            raise ConfigError(
                f"p2.method must be one of {', '.join(P2_METHODS)}, got {self.p2_method!r}"
            )
        positive_number({"time_limit": self.time_limit}, "time_limit", "exact.", TIME_LIMIT)

    @classmethod
    def from_mapping(cls, c: dict) -> BaselinesConfig:
        """From the resolved `ojrs-baselines` config (or a dict with the same keys; the earlier
        name `epochs` of `draws` is accepted); an unknown key fails by name."""
        c = rename_settings(c, "baselines")
        unknown = sorted(set(c) - BASELINES_KEYS)
        if unknown:
            raise ConfigError(f"unknown setting {unknown[0]!r}")
        methods = c.get("methods", list(available_methods()))
        if not isinstance(methods, list | tuple) or not all(isinstance(m, str) for m in methods):
            raise ConfigError(f"methods must be a list of method names, got {methods!r}")
        return cls(
            system=system_config(c),
            draws=c.get("draws", cls.draws),
            seed=c.get("seed", cls.seed),
            methods=tuple(methods),
            p2_method=(c.get("p2", {}) or {}).get("method", cls.p2_method),
            time_limit=(c.get("exact", {}) or {}).get("time_limit", cls.time_limit),
            searches=Searches.from_mapping(c),
        )


def search_heuristics(s: Searches) -> dict[str, Decider]:
    """ASA-only (T_SA(0) iterations), plain SA and PSO, each started from Greedy."""
    asa_cfg, asa_par = s.asa, s.asa_params
    sa_iter = s.sa_iterations
    pso_cfg, pso_par = s.pso, s.pso_params

    def asa(key, scn, h):
        a0 = greedy(scn, h)
        return asa_search(
            key, scn, h, a0, asa_cfg.t_sa0, asa_par, k=asa_cfg.k, max_iter=asa_cfg.max_iter
        )[0]

    def sa(key, scn, h):
        return plain_sa(key, scn, h, greedy(scn, h), sa_iter, asa_par, k=asa_cfg.k)[0]

    def pso_(key, scn, h):
        return pso(
            key,
            scn,
            h,
            greedy(scn, h),
            pso_par,
            n_particles=pso_cfg.n_particles,
            n_iter=pso_cfg.n_iter,
        )[0]

    return {"asa": asa, "sa": sa, "pso": pso_}


HEURISTICS: dict[str, Decider] = {
    "greedy": lambda key, scn, h: greedy(scn, h),
    "random": lambda key, scn, h: random_decision(key, scn),
    **search_heuristics(Searches()),
}
EXACT = "exact"


def available_methods() -> tuple[str, ...]:
    return (*HEURISTICS, EXACT)


def _timed(fn: Callable, *args) -> tuple[tuple, float]:
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return out, time.perf_counter() - t0


def run_baselines(
    cfg: BaselinesConfig, extra: dict[str, Decider] | None = None
) -> dict[str, dict[str, np.ndarray]]:
    """Run the configured methods; returns per-method arrays latency, seconds (E,) and a (E, N).

    `extra` adds deciders by name (the reproduction adds the trained OJRS pipeline), timed the
    same way as the built-in rules: one jitted call of decision + P2 per draw."""
    methods, draws, p2_method, time_limit = cfg.methods, cfg.draws, cfg.p2_method, cfg.time_limit
    known = (*available_methods(), *(extra or {}))
    for m in methods:
        if m not in known:
            raise ConfigError(f"unknown method {m!r}; available: {', '.join(known)}")
    log.info(
        "baselines: %s on %d draws (N = %d, M = %d)",
        ", ".join(methods),
        draws,
        cfg.system.n_ue,
        cfg.system.n_mec,
    )

    scn = make_scenario(cfg.system)
    k_h, k_m = jax.random.split(jax.random.key(cfg.seed))
    H = env_mod.draws(k_h, env_mod.make_params(scn), draws)
    keys = jax.random.split(k_m, draws)
    heuristics = {**HEURISTICS, **search_heuristics(cfg.searches), **(extra or {})}
    results: dict[str, dict[str, np.ndarray]] = {}
    for name in methods:
        if name == EXACT:
            continue
        decide = heuristics[name]

        @jax.jit
        def step(key, scn, h, decide=decide):
            a = decide(key, scn, h)
            return a, solve_p2(scn, h, a, p2_method).latency

        jax.block_until_ready(step(keys[0], scn, H[0]))  # compile outside the timing
        outs = [_timed(step, keys[e], scn, H[e]) for e in bar(range(draws), desc=name, unit="draw")]
        results[name] = {
            "a": np.stack([np.asarray(o[0][0]) for o in outs]),
            "latency": np.array([float(o[0][1]) for o in outs]),
            "seconds": np.array([o[1] for o in outs]),
        }
        log_summary(log, name, _key_numbers(results[name]))
    if EXACT in methods:
        warm = np.asarray(greedy(scn))
        draws_it = bar(range(draws), desc="exact (SCIP)", unit="draw")
        res = [exact_miqp(scn, np.asarray(H[e]), time_limit, warm) for e in draws_it]
        results[EXACT] = {
            "a": np.stack([r.a for r in res]),
            "latency": np.array([r.latency for r in res]),
            "seconds": np.array([r.seconds for r in res]),
            "optimal": np.array([r.status == "optimal" for r in res]),
        }
        exact_numbers = _key_numbers(results[EXACT])
        log_summary(
            log, EXACT, {**exact_numbers, "certified": int(results[EXACT]["optimal"].sum())}
        )
    return {m: results[m] for m in methods}


def _key_numbers(r: dict[str, np.ndarray]) -> dict[str, float]:
    lat = r["latency"]
    return {
        "draws": len(lat),
        "mean L": float(lat.mean()),
        "median L": float(np.median(lat)),
        "s/decision": float(r["seconds"].mean()),
    }


def summarise(results: dict[str, dict[str, np.ndarray]]) -> list[tuple]:
    """Rows (method, mean L, std L, median L, mean 1/L, seconds per decision, draws < exact).

    The median is reported beside the mean because a deep Rayleigh fade makes one upload time
    enormous: E[1/log(1 + snr l)] diverges for l ~ Exp(1), so means of rules that ignore the
    channel (Greedy, Random) are dominated by a few draws.
    """
    rows = []
    exact = results.get(EXACT)
    for name, r in results.items():
        lat = r["latency"]
        beat = (
            ""
            if exact is None or name == EXACT
            else int(np.sum(lat < exact["latency"] * (1 - 1e-5)))
        )
        rows.append(
            (
                name,
                lat.mean(),
                lat.std(),
                np.median(lat),
                np.mean(1.0 / lat),
                r["seconds"].mean(),
                beat,
            )
        )
    return rows


def write_outputs(results: dict[str, dict[str, np.ndarray]], rows: list[tuple], out: Path) -> None:
    """baselines.csv (one row per epoch and method) and summary.csv (the rows of `summarise`)."""
    per_epoch = [
        (e, name, float(r["latency"][e]), float(1.0 / r["latency"][e]), float(r["seconds"][e]))
        for name, r in results.items()
        for e in range(len(r["latency"]))
    ]
    write_csv(out / "baselines.csv", ["epoch", "method", "latency", "reward", "seconds"], per_epoch)
    write_csv(
        out / "summary.csv",
        [
            "method",
            "latency_mean",
            "latency_std",
            "latency_median",
            "reward_mean",
            "seconds_per_decision",
            "draws_below_exact",
        ],
        rows,
    )
