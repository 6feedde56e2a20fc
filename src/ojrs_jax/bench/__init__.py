"""A certified benchmark for offloading schedulers: suites with SCIP's optima, any scheduler.

- `api`: `run`, `leaderboard`, `export`, `build`, `summary`, the Python shape of `ojrs-bench`
  (re-exported here: `ojrs_jax.bench.run(...)`);
- `suites`: versioned suites of problems (the paper's deployments, a grid of random ones, a
  mobile walk, a large cell), each problem certified by SCIP once, stored in the package;
- `harness`: the plug-in protocol (a Python callable, or an external command reading and
  writing .npz), the checks of decisions, NRR against the stored optima, time per decision;
- `droo`: DROO (Huang, Bi, Zhang 2020) in JAX, adapted to M + 1 options per UE;
- `entries`: the built-in schedulers (baselines, searches, DROO, this project's models);
- `leaderboard`: every scheduler on every suite, one table, one figure, one record.
"""

from ojrs_jax.bench.api import build, export, leaderboard, run, summary

__all__ = ["build", "export", "leaderboard", "run", "summary"]
