"""Best fitness per iteration of ASA vs plain SA, paper Fig. 7 (eqs. 26-29) (`ojrs-fig7`).

Samples `draws` channel epochs of the configured scenario, starts both searches from the same
decision (Random by default, or Greedy), runs ASA (h-mutation) and plain SA (random neighbours)
for `iterations` iterations with the same K, temperature and cooling (the `asa` group), and plots
the best weighted latency L found so far, averaged over the draws; the mean certified optimum
(SCIP MIQP) is drawn as a reference line. Writes fig7.png and fig7.csv.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from ojrs_jax.core.io import write_csv
from ojrs_jax.core.progress import bar, log_summary, phase
from ojrs_jax.core.settings import ConfigError, positive_int, seed_value
from ojrs_jax.env import fixed as env_mod
from ojrs_jax.run.plots import save_figure
from ojrs_jax.search.asa import ASAConfig, ASAParams, asa_from_mapping, asa_search, plain_sa
from ojrs_jax.search.baselines import greedy, random_decision
from ojrs_jax.system.exact import TIME_LIMIT, exact_miqp, latency_np
from ojrs_jax.system.p2 import batched_latency
from ojrs_jax.system.scenario import Scenario, SystemConfig, make_scenario, system_config

STARTS = ("random", "greedy")
log = logging.getLogger(__name__)
FIG7_KEYS = {"scale", "system", "asa", "draws", "iterations", "start", "exact", "seed"}


@dataclass(frozen=True)
class Fig7Config:
    """Typed `ojrs-fig7` settings (conf/fig7.yaml); the one source of its defaults."""

    system: SystemConfig = field(default_factory=SystemConfig)
    asa: ASAConfig = field(default_factory=ASAConfig)
    asa_params: ASAParams = field(default_factory=ASAParams)
    draws: int = 200  # channel draws averaged
    iterations: int = 50  # search iterations of ASA and SA
    start: str = "random"  # random | greedy
    exact: bool = True  # mean certified optimum as a reference line
    seed: int = 0  # seed of the draws, the starts and the searches

    def __post_init__(self) -> None:
        for name in ("draws", "iterations"):
            positive_int({name: getattr(self, name)}, name, "")
        if self.start not in STARTS:
            raise ConfigError(f"start must be one of {', '.join(STARTS)}, got {self.start!r}")
        if not isinstance(self.exact, bool):
            raise ConfigError(f"exact must be true or false, got {self.exact!r}")
        seed_value({"seed": self.seed})

    @classmethod
    def from_mapping(cls, c: dict) -> Fig7Config:
        """From the resolved `ojrs-fig7` config (or a dict with its keys); unknown keys fail."""
        unknown = sorted(set(c) - FIG7_KEYS)
        if unknown:
            raise ConfigError(f"unknown setting {unknown[0]!r}")
        asa_cfg, asa_par = asa_from_mapping(c.get("asa", {}) or {})
        own = {k: c[k] for k in ("draws", "iterations", "start", "exact", "seed") if k in c}
        return cls(system=system_config(c), asa=asa_cfg, asa_params=asa_par, **own)


def search_curves(
    key: jax.Array,
    scn: Scenario,
    H: jax.Array,
    a0: jax.Array,
    iterations: int,
    params: ASAParams,
    k: int,
) -> dict[str, np.ndarray]:
    """Best-so-far L per iteration (D, iterations + 1), column 0 = L(a0), for ASA and plain SA,
    plus their final decisions (D, N)."""
    d = H.shape[0]
    k_asa, k_sa = jax.random.split(key)

    @jax.jit
    def run(k_asa, k_sa, H, a0):
        asa = jax.vmap(
            lambda kk, h, a: asa_search(kk, scn, h, a, iterations, params, k=k, max_iter=iterations)
        )
        sa = jax.vmap(lambda kk, h, a: plain_sa(kk, scn, h, a, iterations, params, k=k))
        return (
            asa(jax.random.split(k_asa, d), H, a0),
            sa(jax.random.split(k_sa, d), H, a0),
            batched_latency(scn, H, a0),
        )

    (a_asa, _, t_asa), (a_sa, _, t_sa), l0 = run(k_asa, k_sa, H, a0)
    col0 = np.asarray(l0)[:, None]
    return {
        "asa": np.concatenate([col0, np.asarray(t_asa)], axis=1),
        "sa": np.concatenate([col0, np.asarray(t_sa)], axis=1),
        "a_asa": np.asarray(a_asa),
        "a_sa": np.asarray(a_sa),
    }


def plot(curves: dict[str, np.ndarray], exact: np.ndarray | None, title: str) -> Figure:
    """Mean best-so-far L per iteration, and (with the exact optima (D,)) the mean gap to the
    optimum on a log scale."""
    ncol = 1 if exact is None else 2
    fig = Figure(figsize=(6.4 * ncol, 4.4))
    axes = fig.subplots(1, ncol, squeeze=False)
    it = np.arange(curves["asa"].shape[1])
    series = (("asa", "ASA (h-mutation)", "-"), ("sa", "plain SA (random neighbours)", "--"))
    ax = axes[0, 0]
    for name, label, style in series:
        ax.plot(it, curves[name].mean(axis=0), style, lw=2, label=label)
    if exact is not None:
        ax.axhline(exact.mean(), color="k", lw=1, ls=":", label="exact optimum (SCIP)")
    ax.set_xlabel("iteration G")
    ax.set_ylabel("best weighted latency L so far (s)")
    ax.set_title("mean over draws")
    if exact is not None:
        ax2 = axes[0, 1]
        for name, label, style in series:
            gap = 100 * (curves[name] / exact[:, None] - 1).mean(axis=0)
            ax2.plot(it, np.maximum(gap, 1e-4), style, lw=2, label=label)
        ax2.set_yscale("log")
        ax2.set_xlabel("iteration G")
        ax2.set_ylabel("mean gap to the exact optimum (%)")
        ax2.set_title("gap L / L* - 1 (log scale)")
        ax2.grid(alpha=0.3, which="both")
        ax2.legend()
    ax.grid(alpha=0.3)
    ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def run_fig7(cfg: Fig7Config, out_dir: Path) -> dict[str, float]:
    """Compute the curves, write fig7.png and fig7.csv; returns summary numbers."""
    draws, iterations, start = cfg.draws, cfg.iterations, cfg.start
    asa_cfg, params = cfg.asa, cfg.asa_params
    scn = make_scenario(cfg.system)
    k_h, k_a0, k_search = jax.random.split(jax.random.key(cfg.seed), 3)
    H = env_mod.draws(k_h, env_mod.make_params(scn), draws)
    if start == "greedy":
        a0 = jnp.broadcast_to(greedy(scn), (draws, scn.n_ue))
    else:
        a0 = jax.vmap(random_decision, in_axes=(0, None))(jax.random.split(k_a0, draws), scn)
    with phase(log, f"ASA and SA, {iterations} iterations on {draws} draws"):
        curves = search_curves(k_search, scn, H, a0, iterations, params, asa_cfg.k)
    # The final costs, recomputed in float64 from the MIQP's own cost data, guard the JAX values.
    for name in ("asa", "sa"):
        l64 = np.array(
            [latency_np(scn, np.asarray(H[e]), curves[f"a_{name}"][e]) for e in range(draws)]
        )
        err = np.max(np.abs(curves[name][:, -1] / l64 - 1))
        if err > 1e-4:
            raise RuntimeError(f"{name}: JAX latency differs from float64 by {err:.2e}")
    exact = None
    if cfg.exact:
        exact = np.array(
            [
                exact_miqp(scn, np.asarray(H[e]), TIME_LIMIT, np.asarray(greedy(scn))).latency
                for e in bar(range(draws), desc="exact (SCIP)", unit="draw")
            ]
        )
    exact_mean = None if exact is None else float(exact.mean())
    title = (
        f"Fig. 7: ASA vs SA, N={scn.n_ue}, M={scn.n_mec}, K={asa_cfg.k}, "
        f"{draws} draws, {start} start"
    )
    save_figure(plot(curves, exact, title), out_dir / "fig7.png")
    rows = [
        (
            g,
            curves["asa"][:, g].mean(),
            curves["sa"][:, g].mean(),
            "" if exact_mean is None else exact_mean,
        )
        for g in range(iterations + 1)
    ]
    write_csv(
        out_dir / "fig7.csv", ["iteration", "asa_best_mean", "sa_best_mean", "exact_mean"], rows
    )
    summary = {
        "start": float(curves["asa"][:, 0].mean()),
        "asa_final": float(curves["asa"][:, -1].mean()),
        "sa_final": float(curves["sa"][:, -1].mean()),
        "exact": float("nan") if exact_mean is None else exact_mean,
    }
    log_summary(log, "fig7 mean L", summary)
    return summary
