"""`ojrs-decide`: schedule measured channels with a trained OJRS run (policy eq. 24, P2 eqs. 5-13).

    ojrs-decide --run RUN_DIR --channels IN.npz --out OUT.npz
    ojrs-decide --run ANY_RUN --deployment DEP.json --channels IN.npz --out OUT.npz [--polish P]

IN.npz holds `h` of shape (B, N, M) or (N, M): linear channel power gains. OUT.npz gets `a`
(B, N) int32 (0 = local, j = MEC j), `latency` (B,) weighted latency in s, `f` (B, N) CPU speed
in Hz and `p` (B, N) power in W (transmit power if offloaded, local CPU power kappa f^3 if
local). Without --deployment the channels are of the run's own deployment (weights in force at
the end of training, its scenario.json). With --deployment (a run of a policy for any deployment,
`ojrs-train-any` or `train=any`), DEP.json or DEP.npz gives the deployment: `data_bits`,
`cycles`, `weights` (N,) and `f_mec` (M,) (scalars broadcast), and either `ue_pos` (N, 2) with
`mec_pos` (M, 2) in metres or `gain` (N, M), the large-scale gains; with a leading batch
dimension B every per-UE/MEC field is given per channel draw. One best-response pass follows
such a policy by default (`--polish 0`: the policy alone; `--refine T`: T ASA iterations first).

RUN_DIR is checked whole (`ojrs_jax.run.rundir`) and refused while another process writes it;
--out must be a new name or a regular file other than an input (a link, device or directory is
refused). Bad input: one `error:` line, exit 2, no output file; interrupted: exit 130.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

import numpy as np

from ojrs_jax.app.hydra import error_line
from ojrs_jax.core.cache import enable_compilation_cache
from ojrs_jax.core.io import check_output, write_npz
from ojrs_jax.core.settings import ConfigError

EXAMPLES = """examples:
  ojrs-decide --run outputs/2026-12-06/10-00-00 --channels h.npz --out decisions.npz
  ojrs-decide --run runs/any --deployment dep.json --channels h.npz --out decisions.npz
  python -c "import numpy as np; np.savez('h.npz', h=np.full((4, 30, 2), 1e-6))"
"""


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def decide(args: argparse.Namespace) -> dict[str, np.ndarray]:
    """Load, check, decide and write; `ConfigError` (one line) on bad input."""
    from ojrs_jax.run.inputs import read_channels, read_deployment
    from ojrs_jax.run.scheduler import load_run

    check_output(args.out, "--out ")
    inputs = [("--channels", args.channels), ("--deployment", args.deployment)]
    for flag, path in inputs:
        if path is not None and _same_file(args.out, path):
            raise ConfigError(f"--out {str(args.out)!r} is the {flag} file; write elsewhere")
    if args.out.exists() and args.run.resolve() in args.out.resolve().parents:
        raise ConfigError(
            f"--out {str(args.out)!r} would replace a file of the run; write elsewhere"
        )
    for name in ("refine", "polish"):
        v = getattr(args, name)
        if v is not None and v < 0:
            raise ConfigError(f"--{name} must be >= 0, got {v}")
    sched = load_run(args.run, polish=args.polish, refine=args.refine)
    h = read_channels(args.channels)
    if args.deployment is not None:
        out = sched.allocate(sched.deployment(**read_deployment(args.deployment)), h)
    else:
        if sched.scn is not None and h.ndim == 2:
            h = h[None]
        out = sched.allocate(h)
    if not np.all(np.isfinite(out["latency"])):
        raise ConfigError("non-finite latency for these inputs; nothing written")
    write_npz(args.out, **out)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="ojrs-decide",
        description=__doc__.split("\n\n")[0],
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--run", required=True, type=Path, help="directory of a finished run")
    ap.add_argument("--channels", required=True, type=Path, help="npz with h (B, N, M)")
    ap.add_argument("--out", required=True, type=Path, help="npz to write (a, latency, f, p)")
    ap.add_argument(
        "--deployment", type=Path, help="the deployment (.json or .npz): any-deployment runs"
    )
    ap.add_argument(
        "--refine", type=int, default=0, help="ASA iterations after the policy (any-deployment)"
    )
    ap.add_argument(
        "--polish",
        type=int,
        help="best-response passes after the policy (default 1 any-deployment, else 0)",
    )
    args = ap.parse_args(argv)
    enable_compilation_cache()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            out = decide(args)
        for w in caught:
            print(f"warning: {w.message}", file=sys.stderr)
    except KeyboardInterrupt:
        print("error: interrupted; nothing written", file=sys.stderr)
        return 130
    except Exception as e:  # bad input, unreadable or unwritable file: one line, exit 2
        if (line := error_line(e)) is None:
            raise
        print(f"error: {line}", file=sys.stderr)
        return 2
    print(
        f"wrote {args.out}: {out['a'].size // out['a'].shape[-1]} decisions, "
        f"mean latency {out['latency'].mean():.4f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
