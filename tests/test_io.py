"""Atomic outputs (src/ojrs_jax/io.py): permissions follow the umask, no temporary file left."""

from __future__ import annotations

import os
import stat

import numpy as np

from ojrs_jax.core.io import atomic_write_text, write_npz


def test_outputs_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        a = atomic_write_text(tmp_path / "a.txt", "x")
        b = write_npz(tmp_path / "b.npz", h=np.ones(2))
        os.umask(0o077)
        c = atomic_write_text(tmp_path / "c.txt", "y")
    finally:
        os.umask(old)
    assert stat.S_IMODE(a.stat().st_mode) == 0o644
    assert stat.S_IMODE(b.stat().st_mode) == 0o644
    assert stat.S_IMODE(c.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.npz", "c.txt"]
