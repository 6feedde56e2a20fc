"""The benchmark's Python API, in the shape of `ojrs-bench`: run, leaderboard, export, build.

from ojrs_jax import bench
r = bench.run("paper", "greedy_br")                        # a built-in scheduler
r = bench.run("mobile", decide=my_decide)                  # a Python callable (deployment, h) -> a
r = bench.run("paper", command="python my_sched.py {in} {out}")  # an external command
print(bench.summary(r))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ojrs_jax.core.settings import ConfigError


def _suite(name: str) -> Any:
    from ojrs_jax.bench import suites as S

    return S.load_suite(name)  # names an unknown suite


def _builtins(work: Path | None) -> dict:
    """The built-in entries; the trained ones keep their runs under `work` (None: the
    default, `entries.WORK`)."""
    from ojrs_jax.bench.entries import builtin_entries

    return builtin_entries() if work is None else builtin_entries(work)


def run(
    suite: str,
    scheduler: str | None = None,
    *,
    command: str | None = None,
    decide: Any = None,
    batched: bool = True,
    name: str | None = None,
    work: Path | None = None,
    repeats: int = 3,
) -> dict[str, Any]:
    """One scheduler on one suite: a built-in by name, an external `command` or a Python `decide`
    (exactly one of the three). The result: NRR mean, median, p10, min, time per decision, cells."""
    from ojrs_jax.bench.harness import Entry, run_entry

    given = [x is not None for x in (scheduler, command, decide)]
    if sum(given) != 1:
        raise ConfigError("give exactly one of a scheduler's name, command= or decide=")
    s = _suite(suite)
    if command is not None:
        entry = Entry(name or "command", command=command)
    elif decide is not None:
        entry = Entry(name or getattr(decide, "__name__", "decide"), decide, batched=batched)
    else:
        builtins = _builtins(work)
        if scheduler not in builtins:
            known = ", ".join(builtins)
            raise ConfigError(f"unknown scheduler {scheduler!r} (built-in: {known})")
        entry = builtins[scheduler]
    if entry.suites is not None and s.name not in entry.suites:
        raise ConfigError(f"{entry.name} applies to the suites {', '.join(entry.suites)}")
    return run_entry(entry, s, repeats)


def leaderboard(
    suites: list[str] | None = None,
    schedulers: list[str] | None = None,
    out: Path = Path("runs/leaderboard"),
    work: Path | None = None,
) -> list[dict[str, Any]]:
    """Every built-in scheduler (or `schedulers`) on every suite (or `suites`) it applies to;
    writes leaderboard.md, leaderboard.png and leaderboard.json into `out`."""
    from ojrs_jax.bench import suites as S
    from ojrs_jax.bench.leaderboard import leaderboard as board

    builtins = _builtins(work)
    names = list(schedulers or builtins)
    unknown = [n for n in names if n not in builtins]
    if unknown:
        raise ConfigError(f"unknown scheduler {unknown[0]!r} (built-in: {', '.join(builtins)})")
    loaded = [_suite(s) for s in (suites or S.SUITES)]
    return board(loaded, [builtins[n] for n in names], Path(out))


def export(suite: str, path: Path) -> Path:
    """A suite's problems with their certified optima as one .npz (for other tools)."""
    from ojrs_jax.bench import suites as S
    from ojrs_jax.core.io import atomic_write_bytes

    atomic_write_bytes(Path(path), S.to_bytes(_suite(suite)))
    return Path(path)


def build(suite: str, out: Path | None = None) -> dict[str, Any]:
    """Draw and certify a suite with SCIP into the package's data (maintainers) or `out`."""
    from ojrs_jax.bench import suites as S

    return S.build_suite(suite, out)  # names an unknown suite


def summary(r: dict[str, Any]) -> str:
    """A result of `run` in a few lines: the suite's NRR and time, then each cell's."""
    from ojrs_jax.bench.leaderboard import _time

    lines = [
        f"{r['scheduler']} on {r['suite']} v{r['version']}: NRR {r['nrr']:.4f} (median "
        f"{r['nrr_median']:.4f}, p10 {r['nrr_p10']:.4f}, min {r['nrr_min']:.4f}) on "
        f"{r['certified']} certified of {r['problems']} problems, "
        f"{_time(r['seconds_per_decision'])} per decision"
    ]
    for name, c in r["cells"].items():
        lines.append(
            f"  {name}: NRR {c['nrr']:.4f} (min {c['nrr_min']:.4f}), {c['certified']} problems"
        )
    return "\n".join(lines)
