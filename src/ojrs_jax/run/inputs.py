"""What a user hands a scheduler: channels and deployments, read and checked once (no equation).

Every value is checked in the precision the scheduler computes in (float32): a number that is
finite in float64 but overflows float32 (1e39) or underflows it to zero (1e-46) is refused,
as are NaN, infinities, strings, complex numbers, booleans and empty batches. Files are read
only when they are regular files of at most `MAX_INPUT_BYTES` (a device such as /dev/zero, a
pipe or a directory is refused before it is opened), as `.npz` archives without pickles or as
JSON. Each fault is a `ConfigError` of one line naming the value or the file.
"""

from __future__ import annotations

import json
import os
import stat
import zipfile
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np

from ojrs_jax.core.settings import ConfigError
from ojrs_jax.system.deployment import Deployment
from ojrs_jax.system.scenario import Scenario, SystemConfig

MAX_INPUT_BYTES = int(os.environ.get("OJRS_MAX_INPUT_BYTES", 2**31))  # 2 GiB per input file
F32 = np.finfo(np.float32)
DEPLOYMENT_FIELDS = ("ue_pos", "mec_pos", "gain", "data_bits", "cycles", "weights", "f_mec")


def real_array(name: str, v: Any, ranks: tuple[int, ...], positive: bool = False) -> np.ndarray:
    """`v` as a float64 array of one of `ranks` dimensions whose values are real, finite and
    representable in float32 (and > 0 with `positive`, also after the cast to float32)."""
    try:
        a = np.asarray(v)
    except (TypeError, ValueError):  # ragged nested lists
        raise ConfigError(f"{name} must be an array of real numbers, got a ragged list") from None
    if a.dtype == object or a.dtype.kind not in "iuf":
        kind = {"b": "booleans", "c": "complex numbers", "U": "strings", "S": "bytes"}.get(
            a.dtype.kind, f"values of type {a.dtype}"
        )
        raise ConfigError(f"{name} must be real numbers, got {kind}")
    if a.ndim not in ranks:
        want = " or ".join(str(r) for r in ranks)
        raise ConfigError(f"{name} must have {want} dimensions, got shape {a.shape}")
    if a.size == 0:
        raise ConfigError(f"{name} is empty (shape {a.shape})")
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise ConfigError(f"{name} has NaN or infinite values")
    if np.any(np.abs(a) > F32.max):
        raise ConfigError(f"{name} has values beyond float32's range (|x| > {F32.max:.3g})")
    if positive:
        if np.any(a <= 0):
            raise ConfigError(f"{name} must be positive")
        if np.any(a < F32.tiny):
            raise ConfigError(
                f"{name} has values below float32's smallest normal number ({F32.tiny:.3g})"
            )
    return a


def make_deployment(
    sys: SystemConfig, *, data_bits, cycles, weights, f_mec, ue_pos=None, mec_pos=None, gain=None
) -> Deployment:
    """A checked `Deployment` (unpadded) from tasks, MEC capacities and either positions (m) or
    large-scale gains g_ij. Every field may carry a leading batch dimension B (then all that
    are given per UE/MEC must). A bad input raises `ConfigError` with one line naming it."""
    if (gain is None) == (ue_pos is None and mec_pos is None):
        raise ConfigError("give either gain (N, M) or both ue_pos (N, 2) and mec_pos (M, 2)")
    if gain is not None:
        g = real_array("gain", gain, (2, 3), positive=True)
    else:
        if ue_pos is None or mec_pos is None:
            raise ConfigError("positions need both ue_pos (N, 2) and mec_pos (M, 2)")
        up, mp = real_array("ue_pos", ue_pos, (2, 3)), real_array("mec_pos", mec_pos, (2, 3))
        if up.shape[-1] != 2 or mp.shape[-1] != 2:
            raise ConfigError(
                f"ue_pos and mec_pos must end in 2 coordinates, got {up.shape}, {mp.shape}"
            )
        d = np.linalg.norm(up[..., :, None, :] - mp[..., None, :, :], axis=-1)
        g = real_array("gain from the positions", sys.beta0 / np.maximum(d, 1.0) ** 2, (2, 3), True)
    n, m = g.shape[-2:]
    batch = g.shape[:-2]
    vecs = {}
    for name, v, size in (
        ("data_bits", data_bits, n),
        ("cycles", cycles, n),
        ("weights", weights, n),
        ("f_mec", f_mec, m),
    ):
        a = real_array(name, v, (0, 1, 2), positive=True)
        if a.ndim == 0:
            a = np.full((size,), float(a))
        if a.shape[-1] != size:
            what = "N" if size == n else "M"
            raise ConfigError(f"{name} must have length {what} = {size}, got shape {a.shape}")
        vecs[name] = a
    shapes = {a.shape[:-1] for a in vecs.values()} | {batch}
    shapes.discard(())
    if len(shapes) > 1:
        raise ConfigError(f"inconsistent batch dimensions in the deployment: {sorted(shapes)}")
    b = next(iter(shapes)) if shapes else ()
    f32 = jnp.float32

    def full(a, tail):
        return jnp.asarray(np.broadcast_to(a, b + tail), f32)

    consts = {
        k: jnp.asarray(getattr(sys, k), f32)
        for k in ("bandwidth", "p_max", "beta0", "noise", "kappa", "f_local")
    }
    if b:
        consts = {k: jnp.broadcast_to(v, b) for k, v in consts.items()}
    scn = Scenario(
        ue_pos=full(np.zeros(2), (n, 2)) if ue_pos is None else full(up, (n, 2)),
        mec_pos=full(np.zeros(2), (m, 2)) if mec_pos is None else full(mp, (m, 2)),
        data_bits=full(vecs["data_bits"], (n,)),
        cycles=full(vecs["cycles"], (n,)),
        weights=full(vecs["weights"], (n,)),
        f_mec=full(vecs["f_mec"], (m,)),
        **consts,
    )
    return Deployment(
        scn=scn,
        gain=full(g, (n, m)),
        ue_mask=jnp.ones(b + (n,), bool),
        mec_mask=jnp.ones(b + (m,), bool),
    )


def check_channels(
    h: Any, n_ue: int, n_mec: int, batch: int | None = None, whose: str = "the deployment"
) -> np.ndarray:
    """Channels h (N, M) or (B, N, M) of linear power gains for a deployment of N UEs and M
    MECs (`whose`, for the message; and B deployments when `batch` is given), checked;
    float32."""
    h = real_array("channels h", h, (2, 3), positive=True)
    if h.shape[-2:] != (n_ue, n_mec):
        raise ConfigError(
            f"channels h have (N, M) = {h.shape[-2:]}, {whose} (N, M) = {(n_ue, n_mec)}"
        )
    if batch is not None and (h.ndim != 3 or h.shape[0] != batch):
        raise ConfigError(f"a batch of {batch} deployments needs h of shape (B, N, M), B = {batch}")
    return h.astype(np.float32)


def regular_file(path: Path, what: str) -> Path:
    """`path` if it is a regular file of at most MAX_INPUT_BYTES, else a `ConfigError`."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError as e:
        raise ConfigError(f"cannot read {what} {str(path)!r}: {e.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"{what} {str(path)!r} is not a regular file")
    if st.st_size > MAX_INPUT_BYTES:
        raise ConfigError(
            f"{what} {str(path)!r} has {st.st_size} bytes, more than {MAX_INPUT_BYTES} "
            "(OJRS_MAX_INPUT_BYTES)"
        )
    return path


def _npz(path: Path, what: str) -> dict[str, np.ndarray]:
    regular_file(path, what)
    if not zipfile.is_zipfile(path):  # np.load would try .npy or pickle
        raise ConfigError(
            f"{what} {str(path)!r} is not an .npz archive (write it with numpy.savez)"
        )
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: np.asarray(z[k]) for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise ConfigError(f"cannot read {what} {str(path)!r}: {e}") from None


def read_channels(path: Path) -> np.ndarray:
    """`h` of an .npz file, (N, M) or (B, N, M), checked by `real_array` (shape against a
    deployment: `check_channels`)."""
    z = _npz(path, "channels file")
    if "h" not in z:
        raise ConfigError(f"{path} has no array 'h' (found: {', '.join(z) or 'none'})")
    return real_array(f"'h' of {path}", z["h"], (2, 3), positive=True)


def read_deployment(path: Path) -> dict[str, Any]:
    """The fields of a deployment (`make_deployment`'s arguments) from .json (lists) or .npz
    (arrays); an unknown or a missing field fails by name."""
    if Path(path).suffix == ".json":
        regular_file(path, "deployment file")
        try:
            d = json.loads(Path(path).read_text())
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise ConfigError(f"cannot read deployment file {str(path)!r}: {e}") from None
        if not isinstance(d, dict):
            raise ConfigError(f"{path} must hold a JSON object of fields")
    else:
        d = _npz(path, "deployment file")
    unknown = sorted(set(d) - set(DEPLOYMENT_FIELDS) - {"format"})
    if unknown:
        raise ConfigError(f"deployment file has unknown field {unknown[0]!r}")
    missing = [k for k in ("data_bits", "cycles", "weights", "f_mec") if k not in d]
    if missing:
        raise ConfigError(f"deployment file lacks field {missing[0]!r}")
    return {k: v for k, v in d.items() if k in DEPLOYMENT_FIELDS}
