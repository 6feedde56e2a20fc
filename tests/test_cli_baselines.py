"""`ojrs-baselines` end to end: table, CSV, exact <= heuristics, bad input, installed configs."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUN = [sys.executable, "-m", "ojrs_jax.cli.baselines"]


def run(args, cwd, env=None):
    return subprocess.run(RUN + args, cwd=cwd, capture_output=True, text=True, env=env, timeout=600)


def test_baselines_cli_writes_table_and_csv(tmp_path):
    out = tmp_path / "run"
    p = run(["scale=tiny", "draws=4", f"hydra.run.dir={out}"], cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    # Hydra's record, written by the command once its settings passed (app.hydra.save_record)
    assert (
        out / ".hydra" / "overrides.yaml"
    ).read_text().split() == "- scale=tiny - draws=4".split()
    for name in ("greedy", "random", "exact"):
        assert name in p.stdout
    rows = list(csv.DictReader(open(out / "baselines.csv")))
    assert len(rows) == 12
    by = {(r["method"], r["epoch"]): float(r["latency"]) for r in rows}
    for e in range(4):
        ex = by[("exact", str(e))]
        assert ex <= by[("greedy", str(e))] * (1 + 1e-6)
        assert ex <= by[("random", str(e))] * (1 + 1e-6)
    summary = list(csv.DictReader(open(out / "summary.csv")))
    assert [r["method"] for r in summary] == ["greedy", "random", "exact"]
    assert all(r["draws_below_exact"] in ("0", "") for r in summary)


@pytest.mark.parametrize(
    "override,needle",
    [
        ("scale.n_ue=0", "n_ue"),
        ("scale.n_mec=-2", "n_mec"),
        ("system.p_max=-1", "p_max"),
        ("system.bandwidth=nan", "bandwidth"),
        ("system.data_bits=-8", "data_bits"),
        ("system.f_mec=0", "f_mec"),
        ("scale.layout=hexagon", "layout"),
        ("draws=0", "draws"),
        ("methods=[greedy,magic]", "magic"),
        ("p2.method=newton", "p2.method"),
    ],
)
def test_bad_config_fails_with_one_line(tmp_path, override, needle):
    extra = [] if override.startswith("draws") else ["draws=1"]
    p = run([*extra, override, f"hydra.run.dir={tmp_path / 'r'}"], cwd=tmp_path)
    assert p.returncode == 2
    lines = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
    assert lines[-1].startswith("error:") and needle in lines[-1]
    assert "Traceback" not in p.stderr
    assert not (tmp_path / "r").exists()  # nothing written: not even Hydra's record or the log


def test_old_name_of_draws_still_works_with_a_warning(tmp_path):
    """`epochs` was renamed `draws`: the old override is applied under the new name, with a
    warning (here it is checked by the validator under its new name)."""
    p = run(["epochs=0", f"hydra.run.dir={tmp_path / 'r'}"], cwd=tmp_path)
    assert p.returncode == 2
    assert "warning: setting 'epochs' is now called 'draws'" in p.stderr
    assert p.stderr.strip().splitlines()[-1] == "error: draws must be a positive integer, got 0"


def test_configs_found_after_plain_install(tmp_path):
    """A non-editable install carries conf/ inside the package; run it from an unrelated folder."""
    target = tmp_path / "site"
    pip = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert pip.returncode == 0, pip.stderr
    assert (target / "ojrs_jax" / "conf" / "scale" / "paper_m2.yaml").exists()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    code = "import ojrs_jax; print(ojrs_jax.__file__); import ojrs_jax.cli.baselines as b; b.main()"
    p = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "scale=tiny",
            "draws=2",
            "methods=[greedy]",
            f"hydra.run.dir={elsewhere / 'out'}",
        ],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[0].startswith(str(target))  # the installed copy ran
    assert (elsewhere / "out" / "summary.csv").exists()
