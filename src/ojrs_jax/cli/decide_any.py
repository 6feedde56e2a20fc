"""`ojrs-decide --deployment`: an `ojrs-train-any` model's decisions (eqs. 5-13, 24).

    ojrs-decide --run RUN_DIR --deployment DEP.npz|DEP.json --channels IN.npz --out OUT.npz
        [--refine T]    # T ASA iterations after the policy (README: NRR >= 0.994 with 20)
        [--polish P]    # then P best-response passes (default 1; 0: the policy alone)

DEP holds `data_bits`, `cycles`, `weights` (N,) and `f_mec` (M,) (scalars broadcast), and either
`ue_pos` (N, 2) with `mec_pos` (M, 2) in metres or `gain` (N, M), the large-scale gains; with a
leading batch dimension B every per-UE/MEC field is given per channel draw. IN.npz holds `h`
(B, N, M) or (N, M). OUT.npz gets `a`, `latency`, `f`, `p` as for a fixed run.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from ojrs_jax.core.io import write_npz
from ojrs_jax.run.any_scheduler import POLISH, load_any_run
from ojrs_jax.system.scenario import ConfigError

FIELDS = ("ue_pos", "mec_pos", "gain", "data_bits", "cycles", "weights", "f_mec")


def load_deployment(path: Path) -> dict:
    """The deployment's fields from .json (lists) or .npz (arrays); unknown fields fail."""
    try:
        if path.suffix == ".json":
            d = json.loads(path.read_text())
            if not isinstance(d, dict):
                raise ConfigError(f"{path} must hold a JSON object of fields")
        else:
            if not zipfile.is_zipfile(path):
                raise ConfigError(f"{path} is neither a .json file nor an .npz archive")
            with np.load(path, allow_pickle=False) as z:
                d = {k: np.asarray(z[k]) for k in z.files}
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read deployment file {str(path)!r}: {e}") from None
    unknown = sorted(set(d) - set(FIELDS) - {"format"})
    if unknown:
        raise ConfigError(f"deployment file has unknown field {unknown[0]!r}")
    missing = [k for k in ("data_bits", "cycles", "weights", "f_mec") if k not in d]
    if missing:
        raise ConfigError(f"deployment file lacks field {missing[0]!r}")
    return {k: v for k, v in d.items() if k in FIELDS}


def load_h(path: Path) -> np.ndarray:
    try:
        if not zipfile.is_zipfile(path):
            raise ConfigError(f"{path} is not an .npz archive (numpy.savez(path, h=h))")
        with np.load(path, allow_pickle=False) as z:
            if "h" not in z.files:
                raise ConfigError(f"{path} has no array 'h'")
            return np.asarray(z["h"])
    except OSError as e:
        raise ConfigError(f"cannot read channels file {str(path)!r}: {e}") from None


def decide_any(
    run: Path,
    deployment: Path,
    channels: Path,
    out: Path,
    refine: int = 0,
    polish: int | None = None,
) -> dict:
    """Load, check, decide (`refine` ASA iterations after the policy, then `polish`
    best-response passes, None: `any_scheduler.POLISH`), write; raises `ConfigError` with one
    line on bad input."""
    polish = POLISH if polish is None else polish
    if refine < 0:
        raise ConfigError(f"--refine must be >= 0, got {refine}")
    if polish < 0:
        raise ConfigError(f"--polish must be >= 0, got {polish}")
    sched = load_any_run(run, refine, polish)
    dep = sched.deployment(**load_deployment(deployment))
    res = sched.allocate(dep, load_h(channels))
    if not np.all(np.isfinite(res["latency"])):
        raise ConfigError("non-finite latency for these inputs; nothing written")
    write_npz(out, **res)
    return res
