"""`ojrs-decide`: schedule measured channels with a trained OJRS run (encoder, policy, P2 eq. 5-13).

    ojrs-decide --run RUN_DIR --channels IN.npz --out OUT.npz

IN.npz holds `h` of shape (B, N, M): linear channel power gains. OUT.npz gets `a` (B, N) int32
(0 = local, j = MEC j), `latency` (B,) weighted latency in s, `f` (B, N) CPU speed in Hz and `p`
(B, N) power in W (transmit power if offloaded, local CPU power kappa f^3 if local). Weights are
those in force at the end of training (the run's scenario.json). Bad input: one line, exit 2,
no output file.

With `--deployment DEP.json|npz` the run is an `ojrs-train-any` model and DEP gives the
deployment (positions or large-scale gains, D, F, w, MEC capacities): see cli/decide_any.py.
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from pathlib import Path

import numpy as np

from ojrs_jax.cache import enable_compilation_cache
from ojrs_jax.config import ConfigError
from ojrs_jax.io import write_npz
from ojrs_jax.scenario import load_scenario
from ojrs_jax.scheduler import load_run


def load_channels(path: Path, n_ue: int, n_mec: int) -> np.ndarray:
    """Read and validate `h` (B, N, M) from an npz file."""
    try:
        if path.is_file() and not zipfile.is_zipfile(path):  # np.load would try .npy or pickle
            raise OSError("not an .npz archive (write it with numpy.savez(path, h=h))")
        with np.load(path, allow_pickle=False) as z:
            if "h" not in z.files:
                raise ConfigError(
                    f"{path} has no array 'h' (found: {', '.join(z.files) or 'none'})"
                )
            h = np.asarray(z["h"])
    except ConfigError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise ConfigError(f"cannot read channels file {str(path)!r}: {e}") from None
    if h.ndim != 3:
        raise ConfigError(f"'h' must have shape (B, N, M) = (B, {n_ue}, {n_mec}), got {h.shape}")
    if h.shape[1:] != (n_ue, n_mec):
        raise ConfigError(
            f"'h' has N, M = {h.shape[1:]}, but the run was trained for N, M = {(n_ue, n_mec)}"
        )
    if h.shape[0] == 0:
        raise ConfigError("'h' is an empty batch (B = 0)")
    if not np.issubdtype(h.dtype, np.number) or np.iscomplexobj(h):
        raise ConfigError(f"'h' must be real numbers, got dtype {h.dtype}")
    h = h.astype(np.float64)
    if not np.all(np.isfinite(h)):
        raise ConfigError("'h' has NaN or infinite gains")
    if np.any(h <= 0):
        raise ConfigError("'h' has zero or negative gains (linear power gains must be > 0)")
    return h


def decide_run(run_dir: Path, h: np.ndarray) -> dict[str, np.ndarray]:
    """Decisions and allocations of a trained run for channels h (B, N, M)."""
    return load_run(run_dir).allocate(h)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="ojrs-decide", description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", required=True, type=Path, help="directory of an ojrs-train run")
    ap.add_argument("--channels", required=True, type=Path, help="npz with h (B, N, M)")
    ap.add_argument("--out", required=True, type=Path, help="npz to write (a, latency, f, p)")
    ap.add_argument("--deployment", type=Path, help="ojrs-train-any run: deployment .json/.npz")
    ap.add_argument("--refine", type=int, default=0, help="with --deployment: ASA iterations")
    args = ap.parse_args(argv)
    enable_compilation_cache()
    if args.deployment is not None:  # a model for any deployment (cli/decide_any.py)
        from ojrs_jax.cli.decide_any import decide_any

        try:
            out = decide_any(args.run, args.deployment, args.channels, args.out, args.refine)
        except ConfigError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(f"wrote {args.out}: {out['a'].size // out['a'].shape[-1]} decisions, "
              f"mean latency {out['latency'].mean():.4f} s")  # fmt: skip
        return 0
    try:
        scn_path = args.run / "scenario.json"
        if not args.run.is_dir():
            raise ConfigError(f"run directory {str(args.run)!r} does not exist")
        if args.out.is_dir():
            raise ConfigError(f"--out {str(args.out)!r} is a directory, not a file name")
        scn = load_scenario(scn_path)
        h = load_channels(args.channels, scn.n_ue, scn.n_mec)
        out = decide_run(args.run, h)
        if not np.all(np.isfinite(out["latency"])):
            raise ConfigError("non-finite latency for these channels; nothing written")
        try:
            write_npz(args.out, **out)
        except OSError as e:
            raise ConfigError(f"cannot write {str(args.out)!r}: {e}") from None
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {h.shape[0]} decisions, mean latency {out['latency'].mean():.4f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
