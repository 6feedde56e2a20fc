"""Injected faults (issue 18): each ends in one `error:` line and exit 2, writes no output.

A damaged or mismatched run directory (config.yaml, scenario.json, model.msgpack, checkpoint),
resuming without config.yaml or a finished run, two processes on one run directory (the lock),
`--out` naming a link or a device, two sweeps holding the same experiment, seeds and sizes out of
range, an interpolation that cannot resolve, disk full, epochs that phi does not divide. The
library is called in-process where a subprocess adds nothing; each kind of fault also runs
through a real command for its exit status.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_CLI_ARGS
from flax import serialization

from ojrs_jax.core.io import atomic_write_text, check_output, write_npz
from ojrs_jax.core.settings import ConfigError
from ojrs_jax.run.rundir import load_trained, reading, writing

IN_PROCESS = ["hydra/job_logging=none", "hydra/hydra_logging=none"]


def cli(module: str, args: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=600, **kw
    )


def one_error_line(p: subprocess.CompletedProcess) -> str:
    """The single stderr line of a command that failed cleanly with exit 2."""
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2, p.stderr[-2000:]
    assert "Traceback" not in p.stderr and len(lines) == 1, p.stderr[-2000:]
    assert lines[0].startswith("error: ")
    return lines[0]


def copy_run(tiny_run_dir: Path, tmp_path: Path) -> Path:
    d = tmp_path / "run"
    shutil.copytree(tiny_run_dir, d)
    return d


def edit_json(path: Path, change) -> None:
    path.write_text(json.dumps(change(json.loads(path.read_text()))))


def drop_ue(s: dict) -> dict:
    """scenario.json of the same deployment without its last UE (N = 6 -> 5)."""
    return {**s, **{k: s[k][:-1] for k in ("ue_pos", "data_bits", "cycles", "weights")}}


def set_config(d: Path, text: str) -> None:
    (d / "config.yaml").write_text(text)


# fault -> (what it does to a copy of a finished run, a phrase of the message, file named)
RUN_FAULTS = {
    "model holds a msgpack scalar": (
        lambda d: (d / "model.msgpack").write_bytes(serialization.msgpack_serialize(7)),
        "is not a trained model (expected policy and encoder parameters, got an int)",
        "model.msgpack",
    ),
    "model is not msgpack": (
        lambda d: (d / "model.msgpack").write_bytes(b"\xc1\xc1 not msgpack"),
        "not a msgpack file",
        "model.msgpack",
    ),
    "config is bad YAML": (
        lambda d: set_config(d, "seed: [1\ntrain: {"),
        "not valid YAML: expected ',' or ']'",
        "config.yaml",
    ),
    "config is a list": (
        lambda d: set_config(d, "- 1\n- 2\n"),
        "must be a mapping of settings, got a list",
        "config.yaml",
    ),
    "config is empty": (
        lambda d: set_config(d, ""),
        "must be a mapping of settings, got nothing",
        "config.yaml",
    ),
    "config is YAML-tagged": (
        lambda d: set_config(d, "!!python/object/apply:os.getpid []\n"),
        "could not determine a constructor for the tag",
        "config.yaml",
    ),
    "config group is a list": (
        lambda d: set_config(d, (d / "config.yaml").read_text() + "train: [1, 2]\n"),
        "train must be a group of settings, got a list",
        "config.yaml",
    ),
    "scenario is a list": (
        lambda d: (d / "scenario.json").write_text("[1, 2]"),
        "not an ojrs scenario file",
        "scenario.json",
    ),
    "scenario field is a string": (
        lambda d: edit_json(d / "scenario.json", lambda s: {**s, "bandwidth": "1e6"}),
        "field 'bandwidth' must be a number or a rectangular list of numbers",
        "scenario.json",
    ),
    "scenario list is ragged": (
        lambda d: edit_json(
            d / "scenario.json", lambda s: {**s, "ue_pos": [[1.0, 2.0], [3.0], *s["ue_pos"][2:]]}
        ),
        "field 'ue_pos' must be a number or a rectangular list of numbers",
        "scenario.json",
    ),
    "scenario for N = 5 beside a run for N = 6": (
        lambda d: edit_json(d / "scenario.json", drop_ue),
        "has N, M = (5, 2), but config.yaml has scale.n_ue, scale.n_mec = (6, 2)",
        "scenario.json",
    ),
    "scenario and config for N = 5 beside a model for N = 6": (
        lambda d: (
            edit_json(d / "scenario.json", drop_ue),
            set_config(d, (d / "config.yaml").read_text().replace("n_ue: 6", "n_ue: 5")),
        ),
        "does not fit the run's N = 5, M = 2",
        "model.msgpack",
    ),
}


@pytest.mark.parametrize("fault", list(RUN_FAULTS))
def test_run_directory_faults_are_one_line(fault, tiny_run_dir, tmp_path):
    inject, phrase, named = RUN_FAULTS[fault]
    d = copy_run(tiny_run_dir, tmp_path)
    load_trained(d)  # the copy is whole before the fault
    inject(d)
    with pytest.raises(ConfigError) as e:
        load_trained(d)
    msg = str(e.value)
    assert phrase in msg and str(d / named) in msg and "\n" not in msg, msg


def test_decide_on_a_damaged_run_exits_2(tiny_run_dir, tmp_path):
    d = copy_run(tiny_run_dir, tmp_path)
    (d / "model.msgpack").write_bytes(serialization.msgpack_serialize(7))
    np.savez(tmp_path / "in.npz", h=np.full((2, 6, 2), 1e-5))
    out = tmp_path / "out.npz"
    p = cli(
        "ojrs_jax.cli.decide",
        ["--run", str(d), "--channels", str(tmp_path / "in.npz"), "--out", str(out)],
    )
    assert one_error_line(p) == (
        f"error: {d / 'model.msgpack'} is not a trained model (expected policy and encoder "
        "parameters, got an int)"
    )
    assert not out.exists()


# --- checkpoint and resume -------------------------------------------------------------------

RESUME = [*TINY_CLI_ARGS, "resume=true"]


def checkpoint_template(d: Path):
    """The run's TrainState, built from its config.yaml as `ojrs-train` builds it."""
    import jax

    from ojrs_jax.run.build import build
    from ojrs_jax.run.checkpoint import read_config
    from ojrs_jax.sae.model import init_sae

    spec = build(read_config(d))
    n, m = spec.scn.n_ue, spec.scn.n_mec
    return spec.trainer.init(jax.random.key(0), init_sae(jax.random.key(1), spec.sae_cfg, n * m, m))


def rewrite_checkpoint(d: Path, change) -> None:
    ck = d / "checkpoint" / "state.msgpack"
    blob = serialization.msgpack_restore(ck.read_bytes())
    ck.write_bytes(serialization.msgpack_serialize(change(blob)))


def test_checkpoint_faults(tiny_run_dir, tmp_path):
    from ojrs_jax.run.checkpoint import load_state

    d = copy_run(tiny_run_dir, tmp_path)
    template = checkpoint_template(d)
    assert load_state(d, template)[2] == 200
    ck = d / "checkpoint" / "state.msgpack"

    def wrong_shape(b):
        dense = b["state"]["policy"]["params"]["Dense_0"]
        dense["bias"] = np.zeros(3, np.float32)
        return b

    rewrite_checkpoint(d, wrong_shape)
    with pytest.raises(ConfigError) as e:
        load_state(d, template)
    assert str(e.value) == (
        f"cannot resume from {ck}: state policy/params/Dense_0/bias has shape (3,) float32, "
        "expected (32,) float32 (not this run's checkpoint)"
    )
    shutil.copyfile(tiny_run_dir / "checkpoint" / "state.msgpack", ck)
    rewrite_checkpoint(d, lambda b: {**b, "metrics": {k: v[:150] for k, v in b["metrics"].items()}})
    with pytest.raises(ConfigError, match=r"metrics '\w+' have shape \(150,\), expected one"):
        load_state(d, template)
    ck.write_bytes(serialization.msgpack_serialize([1, 2]))
    with pytest.raises(ConfigError, match="not a checkpoint, got a list"):
        load_state(d, template)


def test_resume_with_a_damaged_checkpoint_exits_2(tiny_run_dir, tmp_path):
    d = copy_run(tiny_run_dir, tmp_path)
    (d / "summary.json").unlink()  # a run killed after its last checkpoint
    rewrite_checkpoint(d, lambda b: {**b, "metrics": {k: v[:150] for k, v in b["metrics"].items()}})
    before = (d / "checkpoint" / "state.msgpack").read_bytes()
    line = one_error_line(cli("ojrs_jax.cli.train", [*RESUME, f"hydra.run.dir={d}"]))
    assert line.startswith(f"error: cannot resume from {d / 'checkpoint' / 'state.msgpack'}: ")
    assert "have shape (150,), expected one number per epoch done (200,)" in line
    assert (d / "checkpoint" / "state.msgpack").read_bytes() == before
    assert not (d / "summary.json").exists()


def test_resume_without_config_is_refused(tiny_run_dir, tmp_path):
    d = copy_run(tiny_run_dir, tmp_path)
    (d / "config.yaml").unlink()
    (d / "summary.json").unlink()
    before = (d / "checkpoint" / "state.msgpack").read_bytes()
    line = one_error_line(cli("ojrs_jax.cli.train", [*RESUME, "seed=1", f"hydra.run.dir={d}"]))
    assert line == (
        f"error: cannot resume {d}: it has a checkpoint but no config.yaml, so the settings the "
        "checkpoint was made with are unknown (restore config.yaml, or start afresh in another "
        "directory)"
    )
    assert not (d / "config.yaml").exists()
    assert (d / "checkpoint" / "state.msgpack").read_bytes() == before


def test_resume_of_a_finished_run_reports_it(tiny_run_dir, tmp_path):
    d = copy_run(tiny_run_dir, tmp_path)
    files = [
        "config.yaml",
        "scenario.json",
        "model.msgpack",
        "metrics.csv",
        "summary.json",
        "checkpoint/state.msgpack",
    ]
    before = {f: ((d / f).read_bytes(), (d / f).stat().st_mtime_ns) for f in files}
    p = cli("ojrs_jax.cli.train", [*RESUME, f"hydra.run.dir={d}"])
    assert p.returncode == 0, p.stderr[-2000:]
    lines = p.stdout.splitlines()
    assert lines[0] == f"{d} is already finished (200 epochs): nothing to do; its summary:"
    summary = json.loads((d / "summary.json").read_text())
    assert f"mean {summary['eval']['nrr_policy']:.4f}" in p.stdout
    assert {f: ((d / f).read_bytes(), (d / f).stat().st_mtime_ns) for f in files} == before


# --- the lock of a run directory -------------------------------------------------------------


def test_lock_refuses_a_second_writer_and_readers(tmp_path):
    d = tmp_path / "run"
    with reading(tmp_path / "never-locked"):  # no lock file: nothing to wait for
        pass
    with writing(d):
        assert (d / ".lock").read_text().strip() == str(os.getpid())
        with pytest.raises(ConfigError) as e:
            with writing(d):
                pass
        assert str(e.value) == (
            f"run directory {d} is in use by another process (pid {os.getpid()}); wait for it "
            "to finish, or use another directory"
        )
        with pytest.raises(ConfigError, match="is being written by another process"):
            with reading(d):
                pass
    with reading(d), reading(d):  # readers share the lock
        with pytest.raises(ConfigError, match="in use by another process"):
            with writing(d):
                pass
    with writing(d):  # released
        pass


def test_second_train_on_a_locked_directory_exits_2(tiny_run_dir, tmp_path):
    d = copy_run(tiny_run_dir, tmp_path)
    before = (d / "config.yaml").read_bytes()
    with writing(d):
        p = cli("ojrs_jax.cli.train", [*TINY_CLI_ARGS, "seed=1", f"hydra.run.dir={d}"])
        with pytest.raises(ConfigError, match=f"run directory {d} is being written"):
            load_trained(d)  # what ojrs-decide reads through
    assert one_error_line(p) == (
        f"error: run directory {d} is in use by another process (pid {os.getpid()}); wait for "
        "it to finish, or use another directory"
    )
    assert (d / "config.yaml").read_bytes() == before


# --- outputs: only regular files are replaced ------------------------------------------------


def test_outputs_refuse_links_and_devices(tmp_path):
    target = tmp_path / "target.npz"
    target.write_bytes(b"keep me")
    link = tmp_path / "link.npz"
    link.symlink_to(target)
    with pytest.raises(ConfigError) as e:
        write_npz(link, a=np.ones(2))
    assert str(e.value) == (
        f"{str(link)!r} is a symbolic link to {str(target)!r}; only a regular file is written "
        "or replaced"
    )
    assert link.is_symlink() and target.read_bytes() == b"keep me"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="is a FIFO; only a regular file"):
        atomic_write_text(fifo, "x")
    with pytest.raises(ConfigError, match="'/dev/null' is a character device"):
        check_output("/dev/null", "--out ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", "link.npz", "target.npz"]


def test_decide_refuses_a_link_as_out(tiny_run_dir, tmp_path):
    np.savez(tmp_path / "in.npz", h=np.full((2, 6, 2), 1e-5))
    target = tmp_path / "precious"
    target.write_text("keep me")
    link = tmp_path / "out.npz"
    link.symlink_to(target)
    p = cli(
        "ojrs_jax.cli.decide",
        ["--run", str(tiny_run_dir), "--channels", str(tmp_path / "in.npz"), "--out", str(link)],
    )
    assert one_error_line(p) == (
        f"error: --out {str(link)!r} is a symbolic link to {str(target)!r}; only a regular file "
        "is written or replaced"
    )
    assert link.is_symlink() and target.read_text() == "keep me"


@pytest.mark.parametrize(
    "where,err", [("os.fsync", errno.ENOSPC), ("tempfile.mkstemp", errno.EACCES)]
)
def test_failed_write_names_the_file_and_leaves_nothing(where, err, tmp_path, monkeypatch):
    import ojrs_jax.core.io as io_mod

    def fail(*a, **k):
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr(f"{io_mod.__name__}.{where}", fail)
    old = tmp_path / "old.txt"
    old.write_text("previous")
    for path in (tmp_path / "new.txt", old):
        with pytest.raises(OSError) as e:
            atomic_write_text(path, "new contents")
        assert str(e.value) == f"[Errno {err}] cannot write {path}: {os.strerror(err)}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.txt"]
    assert old.read_text() == "previous"


def test_disk_full_during_train_is_one_line(tmp_path, monkeypatch, capsys):
    """The Hydra guard reports an OSError from the task as one line, exit 2."""
    from ojrs_jax.cli.train import main

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("ojrs_jax.core.io.os.fsync", full)
    d = tmp_path / "run"
    monkeypatch.setattr(sys, "argv", ["t", *TINY_CLI_ARGS, *IN_PROCESS, f"hydra.run.dir={d}"])
    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    # the first file of a run is Hydra's record (app.hydra.save_record), written under the lock
    assert err == [f"error: cannot write {d / '.hydra' / 'config.yaml'}: No space left on device"]
    assert not d.exists()  # the start made the directory and wrote nothing: it is removed


# --- aggregation of sweeps -------------------------------------------------------------------


def fig7_job(d: Path, start: float) -> Path:
    d.mkdir(parents=True)
    r = {
        "kind": "fig7",
        "name": "fig7",
        "start": start,
        "asa_final": 1.0,
        "sa_final": 1.1,
        "exact": 0.9,
        "wall_seconds": 1.0,
    }
    (d / "result.json").write_text(json.dumps(r))
    return d


def test_aggregate_refuses_the_same_experiment_twice(tmp_path):
    from ojrs_jax.experiments.results import aggregate

    a, b = fig7_job(tmp_path / "A" / "0", 2.0), fig7_job(tmp_path / "B" / "0", 3.0)
    out = tmp_path / "out"
    assert aggregate([tmp_path / "A"], out)["jobs"] == 1  # one sweep alone aggregates
    shutil.rmtree(out)
    with pytest.raises(ConfigError) as e:
        aggregate([tmp_path / "A", tmp_path / "B"], out)
    assert str(a) in str(e.value) and str(b) in str(e.value)
    assert not out.exists()
    p = cli("ojrs_jax.cli.aggregate", [str(tmp_path / "A"), str(tmp_path / "B"), "--out", str(out)])
    assert one_error_line(p) == (
        f"error: the same experiment (fig7) is in {a} and {b}: one would overwrite the other's "
        "table and figures (aggregate them separately, each with its own --out)"
    )
    assert not out.exists()


def test_sweep_callback_warns_instead_of_overwriting(tmp_path, capsys):
    """A sweep over seeds of one experiment: the jobs stay, the aggregation is skipped."""
    from omegaconf import OmegaConf

    from ojrs_jax.experiments.results import AggregateCallback

    a, b = fig7_job(tmp_path / "0", 2.0), fig7_job(tmp_path / "1", 3.0)
    AggregateCallback().on_multirun_end(
        OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}})
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: the sweep was not aggregated: ")
    assert f"is in {a} and {b}" in err[0]
    assert not (tmp_path / "results").exists()


# --- settings: ranges, interpolation, epochs and phi -----------------------------------------

SETTING_FAULTS = [
    (
        ["seed=99999999999999999999999"],
        "seed must be an integer in 0..4294967295, got 99999999999999999999999",
    ),
    (["scale.n_ue=100000"], "scale.n_ue must be an integer in 1..10000, got 100000"),
    (["scale.n_mec=0"], "scale.n_mec must be an integer in 1..100, got 0"),
    (["seed=-1"], "seed must be an integer in 0..4294967295, got -1"),
    (
        ["seed=${oc.env:OJRS_TEST_NOPE}"],
        "cannot resolve the interpolation of seed: Environment variable 'OJRS_TEST_NOPE' not found",
    ),
    (
        ["train.phi=1000", "train.epochs=300"],
        "train.epochs (300) must be a multiple of train.phi (1000): training runs in whole blocks "
        "of phi epochs (nearest: train.epochs=1000)",
    ),
]


@pytest.mark.parametrize("overrides,message", SETTING_FAULTS)
def test_setting_faults_in_process(overrides, message, tmp_path, monkeypatch, capsys):
    from ojrs_jax.cli.train import main

    monkeypatch.delenv("OJRS_TEST_NOPE", raising=False)
    d = tmp_path / "run"
    monkeypatch.setattr(sys, "argv", ["t", *overrides, *IN_PROCESS, f"hydra.run.dir={d}"])
    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"error: {message}"]
    assert not (d / "config.yaml").exists()


@pytest.mark.parametrize("i", [0, 4, 5])  # a range, an interpolation, epochs and phi
def test_setting_faults_exit_2(i, tmp_path):
    overrides, message = SETTING_FAULTS[i]
    env = {k: v for k, v in os.environ.items() if k != "OJRS_TEST_NOPE"}
    p = cli("ojrs_jax.cli.train", [*overrides, f"hydra.run.dir={tmp_path / 'run'}"], env=env)
    assert one_error_line(p) == f"error: {message}"
    assert not (tmp_path / "run" / "config.yaml").exists()


def test_epochs_rule_for_every_task():
    """One TrainConfig for every task: the whole-blocks rule names the nearest valid epochs,
    and the old `general.epochs` of ojrs-train-any reaches the same rule."""
    from ojrs_jax.agent.config import TrainConfig
    from ojrs_jax.app.compose import compose_config
    from ojrs_jax.run.build import build

    assert TrainConfig(epochs=300, phi=10).n_blocks == 30
    with pytest.raises(ConfigError, match=r"nearest: train.epochs=1230 or train.epochs=1240"):
        TrainConfig(epochs=1234, phi=10)
    with pytest.raises(ConfigError, match=r"train.epochs \(7\) must be a multiple"):
        build(compose_config(["general.epochs=7", "train.phi=5"], "train_any"))
