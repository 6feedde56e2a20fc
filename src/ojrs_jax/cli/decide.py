"""`ojrs-decide`: schedule measured channels with a trained OJRS run (encoder, policy, P2 eq. 5-13).

    ojrs-decide --run RUN_DIR --channels IN.npz --out OUT.npz

IN.npz holds `h` of shape (B, N, M): linear channel power gains. OUT.npz gets `a` (B, N) int32
(0 = local, j = MEC j), `latency` (B,) weighted latency in s, `f` (B, N) CPU speed in Hz and `p`
(B, N) power in W (transmit power if offloaded, local CPU power kappa f^3 if local). Weights are
those in force at the end of training (the run's scenario.json). Bad input: one line, exit 2,
no output file. RUN_DIR is checked whole (`ojrs_jax.run.rundir`) and refused while another process
writes it; --out must be a new name or a regular file (a link, device or directory is refused).

With `--deployment DEP.json|npz` the run is an `ojrs-train-any` model and DEP gives the
deployment (positions or large-scale gains, D, F, w, MEC capacities): see cli/decide_any.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ojrs_jax.app.hydra import error_line
from ojrs_jax.core.cache import enable_compilation_cache
from ojrs_jax.core.io import check_output, write_npz
from ojrs_jax.core.settings import ConfigError
from ojrs_jax.run.scheduler import load_channels, load_run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="ojrs-decide", description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", required=True, type=Path, help="directory of an ojrs-train run")
    ap.add_argument("--channels", required=True, type=Path, help="npz with h (B, N, M)")
    ap.add_argument("--out", required=True, type=Path, help="npz to write (a, latency, f, p)")
    ap.add_argument("--deployment", type=Path, help="ojrs-train-any run: deployment .json/.npz")
    ap.add_argument("--refine", type=int, default=0, help="with --deployment: ASA iterations")
    ap.add_argument(
        "--polish",
        type=int,
        help="with --deployment: best-response passes after the policy (default 1; 0: the "
        "policy alone)",
    )
    args = ap.parse_args(argv)
    enable_compilation_cache()
    try:
        check_output(args.out, "--out ")
        if args.deployment is not None:  # a model for any deployment (cli/decide_any.py)
            from ojrs_jax.cli.decide_any import decide_any

            out = decide_any(
                args.run, args.deployment, args.channels, args.out, args.refine, args.polish
            )
        else:
            sched = load_run(args.run)  # validated, under the run directory's read lock
            out = sched.allocate(load_channels(args.channels, sched.n_ue, sched.n_mec))
            if not np.all(np.isfinite(out["latency"])):
                raise ConfigError("non-finite latency for these channels; nothing written")
            write_npz(args.out, **out)
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
