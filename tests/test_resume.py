"""`ojrs-train` reliability: kill -9 mid-run and resume equals an uninterrupted run; a
non-finite loss stops the run (exit 3) naming the epoch and keeps the last good checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_CLI_ARGS, with_overrides
from flax import serialization

# tiny scale (as tests/test_cli_train.py), six chunks so that a kill lands mid-run
ARGS = with_overrides(
    TINY_CLI_ARGS,
    "train.epochs=300",
    "train.chunk=50",
    "train.change_epoch=150",
    "eval.draws=20",
)
TOTAL, CHUNK = 300, 50
TRAIN = [sys.executable, "-m", "ojrs_jax.cli.train"]
TIMING = {"train_seconds", "first_chunk_seconds_with_compile"}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Subprocess environment sharing a persistent XLA cache: the first run compiles, the
    later ones (and the resumed run) load the same executables."""
    cache = tmp_path_factory.mktemp("xla_cache")
    return {
        **os.environ,
        "JAX_COMPILATION_CACHE_DIR": str(cache),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    }


def run(args: list[str], env: dict, cmd: list[str] = TRAIN) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*cmd, *ARGS, *args], capture_output=True, text=True, timeout=600, env=env
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory, env):
    """An uninterrupted run (it also fills the XLA cache)."""
    d = tmp_path_factory.mktemp("reference") / "run"
    p = run([f"hydra.run.dir={d}"], env)
    assert p.returncode == 0, p.stderr[-3000:]
    return d


def without_timings(summary: dict) -> dict:
    s = {k: v for k, v in summary.items() if k not in TIMING}
    s["sae"] = {k: v for k, v in s["sae"].items() if k != "seconds"}
    s["eval"] = {k: v for k, v in s["eval"].items() if k not in ("exact_seconds", "decide_seconds")}
    return s


def kill_after_first_checkpoint(proc: subprocess.Popen, run_dir: Path, timeout: float) -> int:
    """SIGKILL `proc` as soon as checkpoint/meta.json shows a completed chunk; the epoch seen."""
    meta = run_dir / "checkpoint" / "meta.json"
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end and proc.poll() is None:
        if meta.exists():
            epoch = json.loads(meta.read_text())["epoch"]  # written atomically: never partial
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return epoch
        time.sleep(0.005)
    proc.kill()
    out = proc.communicate()[0]
    pytest.fail(f"no checkpoint within {timeout} s; exit {proc.returncode}:\n{out[-3000:]}")


def test_kill_and_resume_equals_uninterrupted(tmp_path, env, reference):
    run_dir = tmp_path / "run"
    victim = subprocess.Popen(
        [*TRAIN, *ARGS, f"hydra.run.dir={run_dir}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    seen = kill_after_first_checkpoint(victim, run_dir, timeout=600)
    assert victim.returncode == -signal.SIGKILL
    assert CHUNK <= seen < TOTAL and seen % CHUNK == 0
    # killed mid-training: no final outputs, and the checkpoint present is whole
    for name in ("model.msgpack", "metrics.csv", "summary.json", "scenario.json"):
        assert not (run_dir / name).exists(), name
    assert json.loads((run_dir / "checkpoint" / "meta.json").read_text())["epoch"] >= seen
    # Hydra's record of the run's start: its command-line overrides (the run writes it)
    record = (run_dir / ".hydra" / "overrides.yaml").read_text()
    assert record.split()[1::2] == [a for a in ARGS if not a.startswith("hydra")]

    # other settings would continue a different run: refused, checkpoint untouched
    state_bytes = (run_dir / "checkpoint" / "state.msgpack").read_bytes()
    refused = run([f"hydra.run.dir={run_dir}", "resume=true", "seed=1"], env)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1] == (
        f"error: cannot resume {run_dir}: seed was 0, now 1 (resume with the run's own settings)"
    )
    assert (run_dir / "checkpoint" / "state.msgpack").read_bytes() == state_bytes
    assert (run_dir / ".hydra" / "overrides.yaml").read_text() == record

    resumed = run([f"hydra.run.dir={run_dir}", "resume=true"], env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    line = next(ln for ln in resumed.stdout.splitlines() if ln.startswith("resuming"))
    at = int(line.rsplit(" ", 1)[1])
    assert seen <= at < TOTAL and at % CHUNK == 0, line

    # the resumed run ends exactly where the uninterrupted one does
    assert (run_dir / "metrics.csv").read_text() == (reference / "metrics.csv").read_text()
    assert len((run_dir / "metrics.csv").read_text().splitlines()) == TOTAL + 1
    for name in ("model.msgpack", "scenario.json", "checkpoint/state.msgpack"):
        assert (run_dir / name).read_bytes() == (reference / name).read_bytes(), name
    s_res = json.loads((run_dir / "summary.json").read_text())
    s_ref = json.loads((reference / "summary.json").read_text())
    assert s_res["epochs"] == TOTAL and s_res["eval"]["epoch"] == TOTAL
    assert without_timings(s_res) == without_timings(s_ref)
    assert not list(run_dir.rglob("*.tmp"))
    assert (run_dir / ".hydra" / "overrides.yaml").read_text() == record  # the start's, kept


def test_resume_refuses_other_settings(tmp_path):
    """A checkpoint is only continued with the settings it was made with."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("seed: 0\ntrain:\n  epochs: 300\n")
    from ojrs_jax.run.checkpoint import check_resume_config
    from ojrs_jax.system.scenario import ConfigError

    check_resume_config(run_dir, {"seed": 0, "resume": True, "train": {"epochs": 300}}, ("resume",))
    with pytest.raises(ConfigError, match=r"train.epochs was 300, now 400"):
        check_resume_config(run_dir, {"seed": 0, "train": {"epochs": 400}}, ("resume",))


def test_real_nan_stops_run_with_exit_3(tmp_path, env):
    """A learning rate of 1e30 blows the policy up in its first update."""
    run_dir = tmp_path / "run"
    p = run([f"hydra.run.dir={run_dir}", "train.learning_rate=1e30"], env)
    assert p.returncode == 3, p.stderr[-3000:]
    err = [ln for ln in p.stderr.splitlines() if ln.strip()][-1]
    assert err == (
        "error: non-finite loss or parameters at epoch 0; no checkpoint was written "
        "(the first chunk failed)"
    )
    assert "Traceback" not in p.stderr
    for name in ("model.msgpack", "metrics.csv", "summary.json", "checkpoint/state.msgpack"):
        assert not (run_dir / name).exists(), name


# `ojrs-train` whose third chunk reports a NaN loss at its 8th epoch
POISONED = """
import dataclasses, sys
import numpy as np
import ojrs_jax.run.train as t
import ojrs_jax.cli.train as cli

real_build = t.build
calls = []

def build(c):
    spec = real_build(c)
    run_chunk = spec.trainer.run_chunk

    def poisoned(state, env):
        new_state, m = run_chunk(state, env)
        calls.append(int(state.epoch))
        if len(calls) == 3:
            m = {**m, "loss": m["loss"].at[7].set(np.nan)}
        return new_state, m

    return dataclasses.replace(spec, trainer=dataclasses.replace(spec.trainer, run_chunk=poisoned))

t.build = build
sys.argv = ["ojrs-train", *sys.argv[1:]]
cli.main()
"""


def test_nan_in_later_chunk_keeps_last_good_checkpoint(tmp_path, env):
    """The run stops naming epoch 2 * 50 + 7 and keeps the checkpoint of epoch 100, whole."""
    run_dir = tmp_path / "run"
    p = run([f"hydra.run.dir={run_dir}"], env, cmd=[sys.executable, "-c", POISONED])
    assert p.returncode == 3, p.stderr[-3000:]
    ck = run_dir / "checkpoint"
    err = [ln for ln in p.stderr.splitlines() if ln.strip()][-1]
    assert err == (
        f"error: non-finite loss or parameters at epoch 107; the last good checkpoint "
        f"(epoch 100) is kept in {ck}"
    )
    assert json.loads((ck / "meta.json").read_text()) == {"epoch": 100}
    blob = serialization.msgpack_restore((ck / "state.msgpack").read_bytes())
    assert blob["epoch"] == 100 and int(blob["state"]["epoch"]) == 100
    loss = np.asarray(blob["metrics"]["loss"])
    assert loss.shape == (100,) and np.all(np.isfinite(loss))
    for name in ("model.msgpack", "metrics.csv", "summary.json"):
        assert not (run_dir / name).exists(), name
