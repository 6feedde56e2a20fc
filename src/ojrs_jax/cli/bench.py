"""`ojrs-bench`: score offloading schedulers on certified suites (NRR against SCIP's optimum).

    ojrs-bench run paper --scheduler greedy            # a built-in scheduler on one suite
    ojrs-bench run grid --command "python my_sched.py" # an external one: reads {in}, writes {out}
    ojrs-bench leaderboard paper grid --out runs/board  # every built-in on each suite
    ojrs-bench export paper paper.npz                  # the problems and their optima
    ojrs-bench build paper                             # maintainers: draw and certify a suite

An external command gets two paths, the problems of one cell as .npz (fields ue_pos, mec_pos,
data_bits, cycles, weights, f_mec, gain, h with a leading batch axis, and the constants) and the
.npz it must write with `a` (B, N) integers (0 local, j MEC j): `{in}` and `{out}` in the command
are replaced, or the two paths are appended. Bad input: one `error:` line, exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ojrs_jax.app.hydra import cli_guard

EXAMPLES = """examples:
  ojrs-bench run paper --scheduler greedy_br
  ojrs-bench run paper --command "python -m ojrs_jax.bench.external_greedy {in} {out}"
  ojrs-bench leaderboard paper mobile --schedulers greedy asa droo any --out runs/board
"""


def _print(r: dict) -> None:
    from ojrs_jax.bench.leaderboard import _time

    print(
        f"{r['scheduler']} on {r['suite']} v{r['version']}: NRR {r['nrr']:.4f} (median "
        f"{r['nrr_median']:.4f}, p10 {r['nrr_p10']:.4f}, min {r['nrr_min']:.4f}) on "
        f"{r['certified']} certified of {r['problems']} problems, "
        f"{_time(r['seconds_per_decision'])} per decision"
    )
    for name, c in r["cells"].items():
        print(f"  {name}: NRR {c['nrr']:.4f} (min {c['nrr_min']:.4f}), {c['certified']} problems")


@cli_guard
def main(argv: list[str] | None = None) -> None:
    from ojrs_jax.bench import suites as S
    from ojrs_jax.core.settings import ConfigError

    ap = argparse.ArgumentParser(
        prog="ojrs-bench",
        description=__doc__.split("\n\n")[0],
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="verb", required=True)
    r = sub.add_parser("run", help="one scheduler on one suite")
    r.add_argument("suite", choices=S.SUITES)
    g = r.add_mutually_exclusive_group(required=True)
    g.add_argument("--scheduler", help="a built-in scheduler (ojrs-bench leaderboard --help)")
    g.add_argument("--command", help="an external scheduler's command")
    r.add_argument("--out", type=Path, help="write the result as JSON here")
    r.add_argument("--work", type=Path, default=Path("runs/bench"), help="trained entries")
    lb = sub.add_parser("leaderboard", help="every built-in scheduler on the suites")
    lb.add_argument("suites", nargs="*", help=f"suites (default: all of {', '.join(S.SUITES)})")
    lb.add_argument("--schedulers", nargs="+", help="a subset of the built-in schedulers")
    lb.add_argument("--out", type=Path, default=Path("runs/leaderboard"))
    lb.add_argument("--work", type=Path, default=Path("runs/bench"), help="trained entries")
    ex = sub.add_parser("export", help="a suite's problems and optima as one .npz")
    ex.add_argument("suite", choices=S.SUITES)
    ex.add_argument("out", type=Path)
    b = sub.add_parser("build", help="draw and certify a suite into the package (maintainers)")
    b.add_argument("suite", choices=S.SUITES)
    b.add_argument("--out", type=Path, help="another directory than the package's data")
    a = ap.parse_args(argv)

    if a.verb == "build":
        print(json.dumps(S.build_suite(a.suite, a.out), indent=1))
        return
    if a.verb == "export":
        from ojrs_jax.core.io import atomic_write_bytes

        suite = S.load_suite(a.suite)
        atomic_write_bytes(a.out, S.to_bytes(suite))
        print(f"wrote {a.out}: suite {suite.name} v{suite.version}, {suite.size} problems")
        return
    from ojrs_jax.bench.entries import builtin_entries
    from ojrs_jax.bench.harness import Entry, run_entry

    builtins = builtin_entries(a.work)
    if a.verb == "run":
        suite = S.load_suite(a.suite)
        if a.command is not None:
            entry = Entry("command", command=a.command)
        elif a.scheduler in builtins:
            entry = builtins[a.scheduler]
        else:
            raise ConfigError(
                f"unknown scheduler {a.scheduler!r} (built-in: {', '.join(builtins)})"
            )
        if entry.suites is not None and suite.name not in entry.suites:
            raise ConfigError(f"{entry.name} applies to the suites {', '.join(entry.suites)}")
        result = run_entry(entry, suite)
        _print(result)
        if a.out is not None:
            from ojrs_jax.core.io import atomic_write_text

            atomic_write_text(a.out, json.dumps(result, indent=1))
        return
    from ojrs_jax.bench.leaderboard import leaderboard

    names = a.schedulers or list(builtins)
    unknown = [n for n in names if n not in builtins]
    if unknown:
        raise ConfigError(f"unknown scheduler {unknown[0]!r} (built-in: {', '.join(builtins)})")
    suites = [S.load_suite(s) for s in (a.suites or S.SUITES)]
    leaderboard(suites, [builtins[n] for n in names], a.out)
    print(f"wrote {a.out / 'leaderboard.md'}, leaderboard.png and leaderboard.json")


if __name__ == "__main__":
    main(sys.argv[1:])
