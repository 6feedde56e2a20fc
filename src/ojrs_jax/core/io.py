"""Safe file output: atomic writes of text, CSV and NumPy archives (no equation).

Every file is written to a temporary name in the target folder and renamed into place, so a
reader never sees a half-written file and a crash leaves the old file (or none). Files get the
permissions of any new file under the process's umask (0644 under umask 022). Only a regular
file is replaced: a symbolic link, a directory, a device node, a FIFO or a socket at the target
path is refused with `ConfigError` (a link is not followed either: name its target instead). A
failed write (disk full, permission denied) raises `OSError` naming the target, not the
temporary file, and leaves no temporary file behind.
"""

from __future__ import annotations

import csv
import io
import os
import stat
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from ojrs_jax.core.settings import ConfigError

KINDS = (  # what a path that is not a regular file is, for the refusal
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_output(path: str | os.PathLike, what: str = "") -> None:
    """Refuse (`ConfigError`) an output path that exists and is not a regular file; `what`
    prefixes the message (e.g. "--out ")."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISREG(mode):
        return
    kind = next((k for test, k in KINDS if test(mode)), "not a regular file")
    extra = f" to {os.readlink(path)!r}" if stat.S_ISLNK(mode) else ""
    raise ConfigError(
        f"{what}{str(path)!r} is {kind}{extra}; only a regular file is written or replaced"
    )


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically; returns the path."""
    path = Path(path)
    check_output(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise OSError(e.errno, f"cannot write {path}: {e.strerror}") from None
    try:
        # mkstemp creates the file 0600; an output is an ordinary file, readable as the umask says
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        check_output(path)  # again: a link may have appeared while the data was written
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise OSError(e.errno, f"cannot write {path}: {e.strerror}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically."""
    return atomic_write_bytes(path, text.encode())


def write_csv(path: str | os.PathLike, header: Sequence[str], rows: Iterable[Sequence]) -> Path:
    """Write a CSV table atomically."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(rows)
    return atomic_write_text(path, buf.getvalue())


def write_npz(path: str | os.PathLike, **arrays: np.ndarray) -> Path:
    """Write a NumPy .npz archive atomically."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return atomic_write_bytes(path, buf.getvalue())
