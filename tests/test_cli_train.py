"""`ojrs-train` and `ojrs-decide` end to end in subprocesses: outputs, decisions, bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import TINY_CLI_ARGS

from ojrs_jax.system.scenario import load_scenario

TINY_ARGS = TINY_CLI_ARGS


def cli(module, args, **kw):
    return subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=900, **kw
    )


@pytest.fixture(scope="module")
def run_dir(tiny_run_dir):
    return tiny_run_dir  # conftest.py: one tiny ojrs-train run in a subprocess


def test_train_writes_run_directory(run_dir):
    for f in (
        "config.yaml",
        "scenario.json",
        "scenario_start.json",
        "model.msgpack",
        "metrics.csv",
        "summary.json",
        "reward.png",
        "loss.png",
        "t_sa.png",
        "checkpoint/state.msgpack",
        "checkpoint/meta.json",
    ):
        assert (run_dir / f).is_file(), f
    s = json.loads((run_dir / "summary.json").read_text())
    assert s["epochs"] == 200 and 0 < s["eval"]["nrr_policy"] <= 1.0 + 1e-9
    assert s["eval"]["certified"] == 50
    lines = (run_dir / "metrics.csv").read_text().strip().splitlines()
    assert len(lines) == 201 and lines[0].startswith("epoch,")
    # the weights changed at epoch 100: scenario.json holds the final ones
    w0 = np.asarray(load_scenario(run_dir / "scenario_start.json").weights)
    w1 = np.asarray(load_scenario(run_dir / "scenario.json").weights)
    assert not np.allclose(w0, w1)


def read_scalars(event_dir) -> dict[str, dict[int, float]]:
    """tag -> {step: value} of every scalar in the TensorBoard event files of a directory
    (TFRecord framing: length, its CRC, an Event proto, its CRC)."""
    import struct

    from tensorboardX.proto import event_pb2

    out: dict[str, dict[int, float]] = {}
    for f in sorted(event_dir.glob("events.out.tfevents.*")):
        data, i = f.read_bytes(), 0
        while i < len(data):
            (n,) = struct.unpack("<Q", data[i : i + 8])
            ev = event_pb2.Event.FromString(data[i + 12 : i + 12 + n])
            i += 12 + n + 4
            for v in ev.summary.value:
                out.setdefault(v.tag, {})[ev.step] = v.simple_value
    return out


def test_train_log_and_tensorboard_events(run_dir):
    log = (run_dir / "train.log").read_text()
    for needle in (
        f"run {run_dir}: N = 6, M = 2, 200 epochs, seed 0",
        "training: 200 epochs in",
        "evaluation on 50 held-out problems: done",
        "summary: epochs 200",
    ):
        assert needle in log, needle
    nrr = json.loads((run_dir / "summary.json").read_text())["eval"]["nrr_policy"]
    assert f"NRR {nrr:.4g}" in log
    # one point per epoch, equal to metrics.csv (float32 in the event file)
    scalars = read_scalars(run_dir / "tensorboard")
    rows = np.genfromtxt(run_dir / "metrics.csv", delimiter=",", names=True)
    assert sorted(scalars) == sorted(n for n in rows.dtype.names if n != "epoch")
    for tag, points in scalars.items():
        assert sorted(points) == list(range(200)), tag
        np.testing.assert_allclose([points[e] for e in range(200)], rows[tag], rtol=1e-6)


def test_decide_outputs(run_dir, tmp_path):
    import jax

    from ojrs_jax.system.p2 import latency
    from ojrs_jax.system.scenario import sample_channels

    scn = load_scenario(run_dir / "scenario.json")
    h = np.asarray(sample_channels(jax.random.key(1), scn, 7))
    np.savez(tmp_path / "in.npz", h=h)
    p = cli(
        "ojrs_jax.cli.decide",
        [
            "--run",
            str(run_dir),
            "--channels",
            str(tmp_path / "in.npz"),
            "--out",
            str(tmp_path / "out.npz"),
        ],
    )
    assert p.returncode == 0, p.stderr
    z = np.load(tmp_path / "out.npz")
    assert z["a"].shape == (7, 6) and z["a"].dtype == np.int32
    assert z["a"].min() >= 0 and z["a"].max() <= 2
    assert z["latency"].shape == (7,) and z["f"].shape == (7, 6) and z["p"].shape == (7, 6)
    for b in range(7):
        want = float(latency(scn, h[b].astype(np.float32), z["a"][b]))
        np.testing.assert_allclose(z["latency"][b], want, rtol=1e-5)
        # allocation: P_max when offloaded, MEC budgets respected
        off = z["a"][b] > 0
        np.testing.assert_allclose(z["p"][b][off], float(scn.p_max))
        for j in (1, 2):
            assert z["f"][b][z["a"][b] == j].sum() <= float(scn.f_mec[j - 1]) * (1 + 1e-5)


@pytest.mark.parametrize(
    "case,needle",
    [
        ("missing", "cannot read channels file"),
        ("garbage", "is not an .npz archive"),
        ("npy", "not an .npz archive"),
        ("wrong_name", "no array 'h'"),
        ("rank", "must have 2 or 3 dimensions"),
        ("nm", "the run's deployment (N, M) = (6, 2)"),
        ("negative", "must be positive"),
        ("zero", "must be positive"),
        ("nan", "NaN or infinite"),
        ("inf", "NaN or infinite"),
        ("empty", "is empty"),
    ],
)
def test_decide_rejects_bad_input(run_dir, tmp_path, case, needle):
    good = np.full((3, 6, 2), 1e-5)
    path = tmp_path / "in.npz"
    if case == "garbage":
        path.write_bytes(b"not an npz file")
    elif case == "npy":
        with open(path, "wb") as fh:
            np.save(fh, good)
    elif case != "missing":
        arrays = {
            "wrong_name": {"H": good},
            "rank": {"h": good[None]},
            "nm": {"h": np.ones((3, 6, 3))},
            "negative": {"h": -good},
            "zero": {"h": good * 0},
            "empty": {"h": good[:0]},
            "nan": {"h": np.where(np.arange(2) == 0, np.nan, good)},
            "inf": {"h": np.where(np.arange(2) == 0, np.inf, good)},
        }[case]
        np.savez(path, **arrays)
    out = tmp_path / "out.npz"
    p = cli(
        "ojrs_jax.cli.decide", ["--run", str(run_dir), "--channels", str(path), "--out", str(out)]
    )
    assert p.returncode == 2
    assert p.stderr.strip().startswith("error:") and needle in p.stderr
    assert "Traceback" not in p.stderr
    assert not out.exists()


def test_decide_rejects_directory_as_output(run_dir, tmp_path):
    np.savez(tmp_path / "in.npz", h=np.full((2, 6, 2), 1e-5))
    p = cli(
        "ojrs_jax.cli.decide",
        ["--run", str(run_dir), "--channels", str(tmp_path / "in.npz"), "--out", str(tmp_path)],
    )
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip() == (
        f"error: --out {str(tmp_path)!r} is a directory; only a regular file is written or replaced"
    )
    assert sorted(f.name for f in tmp_path.iterdir()) == ["in.npz"]


def test_decide_rejects_missing_run(tmp_path):
    np.savez(tmp_path / "in.npz", h=np.ones((1, 6, 2)))
    p = cli(
        "ojrs_jax.cli.decide",
        [
            "--run",
            str(tmp_path / "nope"),
            "--channels",
            str(tmp_path / "in.npz"),
            "--out",
            str(tmp_path / "o.npz"),
        ],
    )
    assert p.returncode == 2 and "does not exist" in p.stderr


def test_train_bad_config_one_line(tmp_path):
    p = cli("ojrs_jax.cli.train", ["train.phi=0", f"hydra.run.dir={tmp_path / 'r'}"])
    assert p.returncode == 2 and "train.phi" in p.stderr and "Traceback" not in p.stderr


def test_decide_compilation_cache(run_dir, tmp_path):
    """`ojrs-decide` fills the cache named by OJRS_CACHE_DIR, a second process reuses it with the
    same output, and OJRS_CACHE_DIR=off writes no cache at all."""
    import os

    np.savez(tmp_path / "in.npz", h=np.full((3, 6, 2), 2e-5))
    args = ["--run", str(run_dir), "--channels", str(tmp_path / "in.npz")]
    cache = tmp_path / "cache"
    env = {**os.environ, "OJRS_CACHE_DIR": str(cache)}
    first = cli("ojrs_jax.cli.decide", [*args, "--out", str(tmp_path / "a.npz")], env=env)
    assert first.returncode == 0, first.stderr
    entries = sorted(p.name for p in cache.rglob("*") if p.is_file())
    assert entries, "no compiled program was cached"
    second = cli("ojrs_jax.cli.decide", [*args, "--out", str(tmp_path / "b.npz")], env=env)
    assert second.returncode == 0, second.stderr
    a, b = np.load(tmp_path / "a.npz"), np.load(tmp_path / "b.npz")
    for k in ("a", "latency", "f", "p"):
        np.testing.assert_array_equal(a[k], b[k])
    off = tmp_path / "off"
    env_off = {**os.environ, "OJRS_CACHE_DIR": "off", "XDG_CACHE_HOME": str(off)}
    third = cli("ojrs_jax.cli.decide", [*args, "--out", str(tmp_path / "c.npz")], env=env_off)
    assert third.returncode == 0, third.stderr
    assert not off.exists()


def test_cache_dir_rules(monkeypatch, tmp_path):
    from ojrs_jax.core.cache import cache_dir

    monkeypatch.setenv("OJRS_CACHE_DIR", str(tmp_path / "x"))
    assert cache_dir() == tmp_path / "x"
    for off in ("off", "0", "", "None"):
        monkeypatch.setenv("OJRS_CACHE_DIR", off)
        assert cache_dir() is None
    monkeypatch.delenv("OJRS_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "ojrs-jax" / "xla"
