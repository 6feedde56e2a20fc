"""The package's layers: library modules and experiments never import the command line."""

from __future__ import annotations

import ast
from pathlib import Path

import ojrs_jax

PKG = Path(ojrs_jax.__file__).parent


def imported_modules(path: Path) -> set[str]:
    """Absolute module names a source file imports (`import x.y`, `from x.y import z`)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def test_only_cli_imports_cli():
    offenders = [
        str(p.relative_to(PKG))
        for p in sorted(PKG.rglob("*.py"))
        if p.relative_to(PKG).parts[0] != "cli"
        and any(m == "ojrs_jax.cli" or m.startswith("ojrs_jax.cli.") for m in imported_modules(p))
    ]
    assert offenders == [], f"modules outside cli/ import ojrs_jax.cli: {offenders}"


def test_cli_modules_are_thin():
    """A command parses, calls an experiment and prints: cli/ stays small."""
    total = sum(len(p.read_text().splitlines()) for p in (PKG / "cli").glob("*.py"))
    assert total < 600, total


# The floors of the package, lowest first: a module imports its own subpackage and the floors
# below it, never a floor above and never another subpackage of its own floor.
FLOORS = {
    "core": 0,
    "system": 1,
    "sae": 2,
    "search": 2,
    "env": 2,
    "agent": 3,
    "run": 4,
    "app": 5,
    "experiments": 6,
    "bench": 6,
    "cli": 7,
}


def test_imports_go_down_the_floors():
    offenders = []
    for p in sorted(PKG.rglob("*.py")):
        rel = p.relative_to(PKG)
        if len(rel.parts) < 2:
            continue  # ojrs_jax/__init__.py: the public API, above every floor
        me = rel.parts[0]
        for m in imported_modules(p):
            parts = m.split(".")
            if parts[0] != "ojrs_jax" or len(parts) < 2 or parts[1] == me:
                continue
            other = parts[1]
            if other not in FLOORS or FLOORS[other] >= FLOORS[me]:
                offenders.append(f"{rel} imports {m}")
    assert offenders == [], offenders


def test_public_api_without_hydra_app(tmp_path):
    """`ojrs_jax.train_from_config(overrides, dir)` then `ojrs_jax.load_run(dir).decide(h)`."""
    import jax
    import numpy as np
    from conftest import TINY_CLI_ARGS, with_overrides

    args = with_overrides(TINY_CLI_ARGS, "eval.draws=4", "eval.exact=false")
    summary = ojrs_jax.train_from_config(args, tmp_path)
    assert summary["epochs"] == 200 and summary["eval"]["draws"] == 4
    sched = ojrs_jax.load_run(tmp_path)
    h = np.asarray(ojrs_jax.sample_channels(jax.random.key(0), sched.scn, 3))
    a = np.asarray(sched.decide(h))
    assert a.shape == (3, 6) and a.min() >= 0 and a.max() <= 2
