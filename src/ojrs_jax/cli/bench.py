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


@cli_guard
def main(argv: list[str] | None = None) -> None:
    from ojrs_jax.bench import api
    from ojrs_jax.bench import suites as S
    from ojrs_jax.bench.entries import WORK

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
    r.add_argument("--work", type=Path, default=WORK, help="trained entries")
    lb = sub.add_parser("leaderboard", help="every built-in scheduler on the suites")
    lb.add_argument("suites", nargs="*", help=f"suites (default: all of {', '.join(S.SUITES)})")
    lb.add_argument("--schedulers", nargs="+", help="a subset of the built-in schedulers")
    lb.add_argument("--out", type=Path, default=Path("runs/leaderboard"))
    lb.add_argument("--work", type=Path, default=WORK, help="trained entries")
    ex = sub.add_parser("export", help="a suite's problems and optima as one .npz")
    ex.add_argument("suite", choices=S.SUITES)
    ex.add_argument("out", type=Path)
    b = sub.add_parser("build", help="draw and certify a suite into the package (maintainers)")
    b.add_argument("suite", choices=S.SUITES)
    b.add_argument("--out", type=Path, help="another directory than the package's data")
    a = ap.parse_args(argv)

    if a.verb == "build":
        print(json.dumps(api.build(a.suite, a.out), indent=1))
    elif a.verb == "export":
        print(
            f"wrote {api.export(a.suite, a.out)}: the problems of suite {a.suite} and their optima"
        )
    elif a.verb == "run":
        result = api.run(a.suite, a.scheduler, command=a.command, work=a.work)
        print(api.summary(result))
        if a.out is not None:
            from ojrs_jax.core.io import atomic_write_text

            atomic_write_text(a.out, json.dumps(result, indent=1))
    else:
        api.leaderboard(a.suites or None, a.schedulers, a.out, a.work)
        print(f"wrote {a.out / 'leaderboard.md'}, leaderboard.png and leaderboard.json")


if __name__ == "__main__":
    main(sys.argv[1:])
