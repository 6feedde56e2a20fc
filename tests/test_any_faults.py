"""The any-deployment path tried as a hostile user would: every fault is one `error:` line on
stderr with exit code 2 (3 for a diverged run, 130 for Ctrl-C), and nothing is written or
overwritten. `ojrs-train-any` is `ojrs-train` with deployment=random and train=any, so it
shares the fixed path's run directory (lock, refusal to overwrite, resume, non-finite stop);
`ojrs-decide` is one code path for every run. The table of faults, message and exit code of
each, is docs' "Reliability" page; each row is a case below."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_ANY_ARGS

from ojrs_jax.cli.decide import main as decide_main
from ojrs_jax.core.settings import ConfigError
from ojrs_jax.run.rundir import writing
from ojrs_jax.run.scheduler import load_run

RUN_FILES = ("config.yaml", "model.msgpack", "summary.json", "metrics.csv")


def train_any(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ojrs_jax.cli.train_any", *TINY_ANY_ARGS, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def one_error_line(p: subprocess.CompletedProcess | str, code: int | None = None) -> str:
    err = p if isinstance(p, str) else p.stderr
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err[-2000:]
    if code is not None and not isinstance(p, str):
        assert p.returncode == code, (p.returncode, err[-2000:])
    return lines[0]


def digest(d: Path) -> dict[str, str]:
    """Every file under `d` (the run's files, Hydra's record .hydra/, the log, the checkpoint)."""
    return {
        str(f.relative_to(d)): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(d.rglob("*"))
        if f.is_file()
    }


@pytest.fixture(scope="module")
def any_run(tmp_path_factory) -> Path:
    """One finished tiny `ojrs-train-any` run: read or copy it, never change it."""
    d = tmp_path_factory.mktemp("any") / "run"
    p = train_any(f"hydra.run.dir={d}")
    assert p.returncode == 0, p.stderr[-3000:]
    assert "NRR" in p.stdout and all((d / f).exists() for f in RUN_FILES)
    # Hydra's record of the run, written by the run once it claimed the directory
    assert (d / ".hydra" / "overrides.yaml").read_text().split()[1::2] == TINY_ANY_ARGS
    return d


@pytest.fixture()
def inputs(tmp_path) -> dict[str, Path]:
    """A deployment of 4 UEs and 2 MECs (JSON) and 3 channels of it (npz)."""
    rng = np.random.default_rng(0)
    dep = {
        "ue_pos": rng.uniform(0, 60, (4, 2)).tolist(),
        "mec_pos": [[15.0, 15.0], [45.0, 45.0]],
        "data_bits": [8e5, 6e5, 1e6, 9e5],
        "cycles": 1e9,
        "weights": 1.0,
        "f_mec": [5e10, 4e10],
    }
    (tmp_path / "dep.json").write_text(json.dumps(dep))
    np.savez(tmp_path / "h.npz", h=rng.uniform(1e-7, 1e-5, (3, 4, 2)))
    return {"dep": tmp_path / "dep.json", "h": tmp_path / "h.npz", "dir": tmp_path}


def decide(run: Path, io: dict, *extra: str, out: Path | None = None, dep=True) -> list[str]:
    args = ["--run", str(run), "--channels", str(io["h"]), "--out", str(out or io["dir"] / "o.npz")]
    return [*args, *(["--deployment", str(io["dep"])] if dep else []), *extra]


def run_decide(capsys, argv: list[str], code: int = 2) -> str:
    rc = decide_main(argv)
    err = capsys.readouterr().err
    assert rc == code, err
    return one_error_line(err) if code else err


# --- training ---------------------------------------------------------------------------------


def test_a_diverged_run_exits_3_and_leaves_no_model(tmp_path):
    d = tmp_path / "run"
    p = train_any("train.learning_rate=1e30", f"hydra.run.dir={d}")
    line = one_error_line(p, 3)
    assert "non-finite loss or parameters at epoch" in line
    assert not (d / "model.msgpack").exists() and not (d / "summary.json").exists()


def test_a_finished_run_is_never_overwritten(any_run, tmp_path):
    d = tmp_path / "run"
    shutil.copytree(any_run, d)
    before = digest(d)
    assert {".hydra/overrides.yaml", "train.log", "checkpoint/meta.json"} <= before.keys()
    p = train_any("train.epochs=20", f"hydra.run.dir={d}")
    line = one_error_line(p, 2)
    assert f"run directory {d} already holds a finished run" in line and "resume=true" in line
    assert digest(d) == before  # Hydra's record of the finished run included
    # resume=true reports it finished and writes nothing
    p = train_any("resume=true", f"hydra.run.dir={d}")
    assert p.returncode == 0 and "already finished" in p.stdout
    assert digest(d) == before


def test_a_run_directory_in_use_is_refused(tmp_path):
    d = tmp_path / "run"
    with writing(d):
        p = train_any(f"hydra.run.dir={d}")
    assert "is in use by another process" in one_error_line(p, 2)
    assert [f.name for f in d.iterdir()] == [".lock"]  # the holder's lock file alone


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("deployment.n_ue=[0,5]", "deployment.n_ue"),
        ("deployment.n_ue=[2,9]", "exceeds its static maximum 6"),
        ("deployment.data_bits=[1e-50,1e6]", "below float32's normal range"),
        ("deployment.f_mec=[1e10,1e40]", "overflows float32"),
        ("deployment.speed=-1", "deployment.speed"),
        ("train.arch=mlp", "train.arch=mlp needs train.state=sae or train.state=channel"),
        ("train.rounds=0", "train.rounds must be a positive integer"),
        ("train.init_from=/nonexistent", "train.init_from"),
        ("+general.foo=1", "unknown setting"),
        ("deployment=nowhere", "no option 'nowhere'"),
    ],
)
def test_bad_settings_are_one_line(override, needle, tmp_path):
    d = tmp_path / "run"
    p = train_any(override, f"hydra.run.dir={d}")
    assert needle in one_error_line(p, 2)
    assert not d.exists()  # nothing written: not even the directory


def test_a_policy_of_one_deployment_cannot_train_on_a_distribution(tmp_path):
    d = tmp_path / "run"
    p = train_any("train.arch=per_ue", "train.state=channel", f"hydra.run.dir={d}")
    assert "needs the policy for any deployment" in one_error_line(p, 2)


# Ctrl-C as in a terminal: a test session started in the background by a non-interactive shell
# passes SIGINT ignored to its children, and Python keeps an ignored SIGINT; the child restores
# Python's handler itself (no preexec_fn: forking a multithreaded JAX process is unsafe).
KEYBOARD = (
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv[0] = 'ojrs-train-any'; "
    "runpy.run_module('ojrs_jax.cli.train_any', run_name='__main__')"
)


def test_ctrl_c_is_one_line_exit_130_and_keeps_the_checkpoint(tmp_path):
    d = tmp_path / "run"
    cmd = [sys.executable, "-c", KEYBOARD, *TINY_ANY_ARGS]
    cmd += ["train.epochs=100000", "train.chunk=20", f"hydra.run.dir={d}"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ck = d / "checkpoint" / "meta.json"
    t0 = time.time()
    while not ck.exists() and time.time() - t0 < 900 and p.poll() is None:
        time.sleep(0.2)
    assert ck.exists(), p.communicate()[1][-2000:]
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err[-2000:]
    line = one_error_line(err)
    assert "interrupted at epoch" in line and "resume=true continues" in line
    assert not (d / "model.msgpack").exists()


def test_a_full_disk_with_tensorboard_is_one_line_not_a_hang(tmp_path, monkeypatch, capsys):
    """TensorBoard's events are written in the training process: a full disk stops the job
    with one line (its background writer used to die and leave the loop blocked forever)."""
    import tensorboardX.record_writer

    from ojrs_jax.cli.train_any import main

    def full(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(tensorboardX.record_writer.RecordWriter, "write", full)
    d = tmp_path / "run"
    argv = [
        "t",
        *TINY_ANY_ARGS,
        "tensorboard=true",
        "hydra/job_logging=none",
        "hydra/hydra_logging=none",
    ]
    monkeypatch.setattr(sys, "argv", [*argv, f"hydra.run.dir={d}"])
    t0 = time.time()
    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 2 and time.time() - t0 < 300
    assert one_error_line(capsys.readouterr().err) == "error: No space left on device"
    assert not (d / "model.msgpack").exists()
    assert (d / "config.yaml").exists()  # what the started run wrote is kept, as it was


# --- deciding ---------------------------------------------------------------------------------


def test_decide_for_a_given_deployment(any_run, inputs, capsys):
    assert decide_main(decide(any_run, inputs)) == 0
    with np.load(inputs["dir"] / "o.npz") as z:
        assert z["a"].shape == (3, 4) and np.all(np.isfinite(z["latency"]))
        assert z["a"].min() >= 0 and z["a"].max() <= 2


def test_decide_refuses_a_run_being_written(any_run, inputs, tmp_path, capsys):
    d = tmp_path / "copy"
    shutil.copytree(any_run, d)
    with writing(d):
        line = run_decide(capsys, decide(d, inputs))
    assert "is being written by another process" in line
    assert not (inputs["dir"] / "o.npz").exists()


@pytest.mark.parametrize("which", ["h", "dep"])
def test_out_may_not_name_an_input(any_run, inputs, which, capsys):
    before = inputs[which].read_bytes()
    line = run_decide(capsys, decide(any_run, inputs, out=inputs[which]))
    assert "file; write elsewhere" in line
    assert inputs[which].read_bytes() == before


def test_out_may_not_replace_a_file_of_the_run(any_run, inputs, tmp_path, capsys):
    d = tmp_path / "copy"
    shutil.copytree(any_run, d)
    before = digest(d)
    line = run_decide(capsys, decide(d, inputs, out=d / "model.msgpack"))
    assert "would replace a file of the run" in line
    assert digest(d) == before


def test_a_device_as_channels_is_refused_at_once(any_run, inputs, capsys):
    t0 = time.time()
    argv = decide(any_run, inputs)
    argv[argv.index("--channels") + 1] = "/dev/zero"
    line = run_decide(capsys, argv)
    assert "is not a regular file" in line and time.time() - t0 < 30


def write_dep(inputs, **changes):
    dep = json.loads(inputs["dep"].read_text())
    dep.update(changes)
    inputs["dep"].write_text(json.dumps(dep))


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"weights": ["a", "b", "c", "d"]}, "weights must be real numbers, got strings"),
        ({"data_bits": [8e5, [1, 2], 1e6, 9e5]}, "ragged"),
        ({"weights": [True, True, False, True]}, "weights must be real numbers, got booleans"),
        ({"f_mec": []}, "f_mec is empty"),
        ({"ue_pos": [], "mec_pos": []}, "ue_pos must have 2 or 3 dimensions, got shape (0,)"),
        ({"cycles": 1e39}, "cycles has values beyond float32's range"),
        ({"data_bits": [8e5, 1e-46, 1e6, 9e5]}, "below float32's smallest normal"),
        ({"f_mec": [5e10, float("nan")]}, "f_mec has NaN or infinite values"),
        ({"weights": -1.0}, "weights must be positive"),
        ({"f_mec": [5e10]}, "f_mec must have length M = 2"),
        ({"colour": "red"}, "unknown field 'colour'"),
        ({"gain": [[1e-6, 1e-6]] * 4}, "give either gain"),
    ],
)
def test_bad_deployments_are_one_line(any_run, inputs, changes, needle, capsys):
    write_dep(inputs, **changes)
    assert needle in run_decide(capsys, decide(any_run, inputs))
    assert not (inputs["dir"] / "o.npz").exists()


def test_a_deployment_without_a_field_is_refused(any_run, inputs, capsys):
    dep = json.loads(inputs["dep"].read_text())
    del dep["cycles"]
    inputs["dep"].write_text(json.dumps(dep))
    assert "lacks field 'cycles'" in run_decide(capsys, decide(any_run, inputs))


def test_a_complex_npz_deployment_is_refused(any_run, inputs, capsys):
    dep = {k: np.asarray(v) for k, v in json.loads(inputs["dep"].read_text()).items()}
    dep["f_mec"] = dep["f_mec"] + 1j
    np.savez(inputs["dir"] / "dep.npz", **dep)
    inputs["dep"] = inputs["dir"] / "dep.npz"
    assert "f_mec must be real numbers, got complex" in run_decide(capsys, decide(any_run, inputs))


@pytest.mark.parametrize(
    ("h", "needle"),
    [
        (np.zeros((0, 4, 2)), "is empty"),
        (np.full((3, 4, 2), 1e-6) + 1j, "must be real numbers, got complex"),
        (np.full((3, 4, 2), 1e39), "beyond float32's range"),
        (np.full((3, 4, 2), 1e-46), "below float32's smallest normal"),
        (np.full((3, 4, 2), np.nan), "NaN or infinite"),
        (np.full((3, 4, 2), -1e-6), "must be positive"),
        (np.full((3, 5, 2), 1e-6), "the deployment (N, M) = (4, 2)"),
        (np.array(["x"] * 8).reshape(4, 2), "got strings"),
    ],
)
def test_bad_channels_are_one_line(any_run, inputs, h, needle, capsys):
    np.savez(inputs["h"], h=h)
    assert needle in run_decide(capsys, decide(any_run, inputs))
    assert not (inputs["dir"] / "o.npz").exists()


def test_channels_file_that_is_not_an_archive(any_run, inputs, capsys):
    inputs["h"].write_bytes(b"not a zip")
    assert "is not an .npz archive" in run_decide(capsys, decide(any_run, inputs))
    np.savez(inputs["h"], x=np.ones(3))
    assert "has no array 'h'" in run_decide(capsys, decide(any_run, inputs))


def test_a_batch_of_deployments_needs_as_many_channels(any_run, inputs, capsys):
    dep = json.loads(inputs["dep"].read_text())
    dep["weights"] = [[1.0] * 4] * 2  # two deployments
    inputs["dep"].write_text(json.dumps(dep))
    assert "a batch of 2 deployments" in run_decide(capsys, decide(any_run, inputs))


def test_no_deployment_for_a_policy_of_any_deployment(any_run, inputs, capsys):
    line = run_decide(capsys, decide(any_run, inputs, dep=False))
    assert "decides for any deployment and has none of its own" in line


def test_a_deployment_for_a_policy_of_one_deployment(tiny_run_dir, inputs, capsys):
    line = run_decide(capsys, decide(tiny_run_dir, inputs))
    assert "decides for its own deployment (N = 6, M = 2) only" in line


@pytest.mark.parametrize(("flag", "value"), [("--polish", "-1"), ("--refine", "-2")])
def test_negative_passes_are_refused(any_run, inputs, flag, value, capsys):
    assert f"{flag} must be >= 0" in run_decide(capsys, decide(any_run, inputs, flag, value))


def test_refine_on_a_policy_of_one_deployment(tiny_run_dir, inputs, capsys):
    np.savez(inputs["h"], h=np.full((2, 6, 2), 1e-6))
    line = run_decide(capsys, decide(tiny_run_dir, inputs, "--refine", "5", dep=False))
    assert "refine (ASA after the policy) is for a policy for any deployment" in line


def test_a_deployment_beyond_the_training_range_warns(any_run, inputs, capsys):
    rng = np.random.default_rng(1)
    write_dep(inputs, ue_pos=rng.uniform(0, 60, (9, 2)).tolist(), data_bits=8e5)
    np.savez(inputs["h"], h=np.full((2, 9, 2), 1e-6))
    err = run_decide(capsys, decide(any_run, inputs), code=0)
    want = "warning: the deployment's N (9) lies outside the range the policy was trained on"
    assert f"{want} (2..6)" in err
    with np.load(inputs["dir"] / "o.npz") as z:
        assert z["a"].shape == (2, 9)


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        (lambda d: (d / "model.msgpack").unlink(), "missing model.msgpack"),
        (lambda d: (d / "model.msgpack").write_bytes(b"\x00\x01"), "cannot read trained model"),
        (lambda d: (d / "config.yaml").write_text("- a list\n"), "must be a mapping"),
        (lambda d: (d / "config.yaml").unlink(), "missing config.yaml"),
    ],
)
def test_damaged_runs_are_one_line(any_run, inputs, tmp_path, damage, needle, capsys):
    d = tmp_path / "copy"
    shutil.copytree(any_run, d)
    damage(d)
    assert needle in run_decide(capsys, decide(d, inputs))


def test_a_model_with_nan_parameters_is_refused(any_run, inputs, tmp_path, capsys):
    import jax
    from flax import serialization

    d = tmp_path / "copy"
    shutil.copytree(any_run, d)
    model = serialization.msgpack_restore((d / "model.msgpack").read_bytes())
    model["policy"] = jax.tree.map(lambda x: np.full_like(x, np.nan), model["policy"])
    (d / "model.msgpack").write_bytes(serialization.msgpack_serialize(model))
    assert "NaN or infinite parameters" in run_decide(capsys, decide(d, inputs))
    with pytest.raises(ConfigError, match="NaN or infinite parameters"):
        load_run(d)


def test_the_shipped_model_of_an_older_version_loads(inputs, capsys):
    """benchmarks/results/any_run_e: an `ojrs-train-any` run of before the trainers became one
    (a `general` group, any_model.msgpack) decides through the same loader."""
    run = Path(__file__).parents[1] / "benchmarks" / "results" / "any_run_e"
    assert decide_main(decide(run, inputs)) == 0, capsys.readouterr().err
    sched = load_run(run)
    assert sched.any_deployment and sched.polish == 1 and sched.trained_on.n_ue == (5, 300)
    with pytest.raises(ConfigError, match="polish must be an integer >= 0"):
        load_run(run, polish=-1)
