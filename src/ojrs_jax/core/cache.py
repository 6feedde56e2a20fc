"""JAX's persistent compilation cache in a per-user directory, so a new process reuses compiled
code (no equation).

The command-line entry points call `enable_compilation_cache()` once at start-up. The directory
is `$OJRS_CACHE_DIR` when set, else `$XDG_CACHE_HOME/ojrs-jax/xla` (`~/.cache/ojrs-jax/xla`);
`OJRS_CACHE_DIR=off` (or `0`, `none`, empty string) disables it. Every compiled function is
cached, however short its compile, since `ojrs-decide`'s whole start-up is a few of them.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

OFF = ("", "0", "off", "none", "false")


def cache_dir() -> Path | None:
    """The cache directory in force, or None when disabled."""
    env = os.environ.get("OJRS_CACHE_DIR")
    if env is not None:
        return None if env.strip().lower() in OFF else Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ojrs-jax" / "xla"


def enable_compilation_cache() -> Path | None:
    """Point JAX's persistent compilation cache at `cache_dir()`; returns it (None: disabled,
    or the directory cannot be created, in which case JAX simply compiles as usual)."""
    path = cache_dir()
    if path is None:
        return None
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
