"""`ojrs-reproduce` and `ojrs-aggregate`: a tiny joblib multirun, its aggregation checked against
the raw job outputs, sharded == unsharded seeds on forced host devices, references, bad input."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
from conftest import exhaustive_optima

from ojrs_jax.experiments.results import PAPER_TABLE3, aggregate
from ojrs_jax.run.evaluation import make_reference, phase_stats
from ojrs_jax.search.pso import pso_from_mapping
from ojrs_jax.system.scenario import ConfigError, SystemConfig, make_scenario, sample_channels

TINY = [
    "scale=tiny",
    "sae.latent=8",
    "sae.steps=50",
    "sae.batch_size=32",
    "sae.memory_size=64",
    "asa.k=16",
    "asa.max_iter=8",
    "asa.t_sa0=4",
    "train.epochs=200",
    "train.phi=5",
    "train.batch=32",
    "train.buffer=64",
    "train.change_epoch=100",
    "sae_pretrain.draws=256",
    "sae.restarts=2",  # two initialisations: their losses go into result.json as a list
    "reproduce.eval_every=50",
    "reproduce.eval_draws=20",
    "reproduce.seeds=2",
    "table2.draws=20",
    "pso.n_iter=10",
]


def cli(module, args, env=None, timeout=900):
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    d = tmp_path_factory.mktemp("reproduce") / "sweep"
    p = cli(
        "ojrs_jax.cli.reproduce",
        [
            "-m",
            "hydra/launcher=local_joblib",
            "experiment=table2,table3,drl_per,drl_uniform",
            *TINY,
            f"hydra.sweep.dir={d}",
        ],
    )
    assert p.returncode == 0, p.stderr[-3000:]
    return d


def read_csv(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_multirun_writes_every_job_and_the_aggregate(sweep):
    jobs = sorted(p.parent.name for p in sweep.glob("*/result.json"))
    assert jobs == ["0_table2", "1_table3", "2_drl_per", "3_drl_uniform"]
    res = sweep / "results"
    for f in (
        "results.md",
        "table2.md",
        "table2.csv",
        "table3.md",
        "table3.csv",
        "drl.csv",
        "figures/fig8_t_sa.png",
        "figures/fig9_drl_per.png",
        "figures/fig10_drl_uniform.png",
        "figures/table3_nrr_curves.png",
        "raw/table3_1_table3/nrr_curves.npz",
    ):
        assert (res / f).is_file(), f
    # the drl jobs ran with their experiment's preset and replay
    for name, replay in (("2_drl_per", "per"), ("3_drl_uniform", "uniform")):
        r = json.loads((sweep / name / "result.json").read_text())
        assert r["replay"] == replay and r["preset"] == "paper"
        assert np.load(sweep / name / "metrics.npz")["reward"].shape == (2, 200)
    for name in ("0_table2", "1_table3"):  # sae.restarts=2: both losses and the one kept
        sae = json.loads((sweep / name / "result.json").read_text())["sae"]
        assert len(sae["restart_losses"]) == 2 and sae["restart"] in (0, 1)
        assert sae["restart_losses"][int(sae["restart"])] == min(sae["restart_losses"])
    # result.json records the job's settings, the command line's overrides included
    cfg = json.loads((sweep / "1_table3" / "result.json").read_text())["config"]
    assert cfg["train"]["epochs"] == 200 and cfg["train"]["change_epoch"] == 100
    assert cfg["sae"]["restarts"] == 2 and cfg["reproduce"]["eval_draws"] == 20


def test_table3_aggregate_matches_the_raw_curves(sweep):
    """F/S-Best/Avg recomputed here from the job's per-point NRR (nrr_curves.npz)."""
    job = sweep / "1_table3"
    r = json.loads((job / "result.json").read_text())
    c = np.load(job / "nrr_curves.npz")
    assert c["nrr_exact"].shape == (4, 2)  # 200 epochs / 50, 2 seeds
    assert np.all(c["epoch"] == [50, 100, 150, 200])
    f = c["epoch"] < r["change_epoch"]  # the weights change at change_epoch (env.scenario_at)
    row = read_csv(sweep / "results" / "table3.csv")[0]
    assert row["M"] == "2" and row["seeds"] == "2"
    for ref in ("exact", "pso"):
        x = c[f"nrr_{ref}"]
        for name, sel in (("F", f), ("S", ~f)):
            best, avg = x[sel].max(0), x[sel].mean(0)
            label = "PSO" if ref == "pso" else ref
            for stat, v in (("Best", best), ("Avg", avg)):
                want = f"{v.mean():.4f} +- {v.std():.4f}"
                assert row[f"{name}-{stat} vs {label}"] == want
    # NRR against the certified optimum cannot exceed 1; the optimum was proved on every draw
    assert np.all(c["nrr_exact"] <= 1 + 1e-5) and np.all(c["nrr_exact"] > 0.3)
    assert r["exact_certified"] == [20, 20]
    assert row["paper F-Best (PSO)"] == f"{PAPER_TABLE3[2][2]:.4f}"


def test_table2_rows_are_consistent(sweep):
    r = json.loads((sweep / "0_table2" / "result.json").read_text())
    rows = {x["method"]: x for x in r["rows"]}
    assert list(rows) == ["ojrs", "greedy", "random", "asa", "pso", "exact"]
    assert rows["exact"]["nrr_exact"] == pytest.approx(1.0)
    for name, x in rows.items():
        assert x["latency"] >= rows["exact"]["latency"] * (1 - 1e-5), name
        assert 0 < x["nrr_exact"] <= 1 + 1e-5
        assert x["reward"] == pytest.approx(1 / x["latency"])
    draws = read_csv(sweep / "0_table2" / "table2_draws.csv")
    assert len(draws) == 20
    lat = np.array([[float(d[m]) for m in rows] for d in draws])
    np.testing.assert_allclose(lat.mean(0), [rows[m]["latency"] for m in rows], rtol=1e-9)


def test_each_job_logs_its_phases_and_key_numbers(sweep):
    """reproduce.log of every job (Hydra's job logging) holds its phases and its summary line,
    the line `ojrs-reproduce` prints; for Table II the numbers of result.json."""
    from ojrs_jax.experiments.results import job_summary

    for job in ("0_table2", "1_table3", "2_drl_per", "3_drl_uniform"):
        r = json.loads((sweep / job / "result.json").read_text())
        log = (sweep / job / "reproduce.log").read_text()
        assert "SAE pretraining done" in log and "training: 200 epochs in" in log, job
        assert f"job {r['name']} done in" in log and job_summary(r) in log, job
    r = json.loads((sweep / "0_table2" / "result.json").read_text())
    rows = {x["method"]: x for x in r["rows"]}
    line = job_summary(r)
    assert f"L exact {rows['exact']['latency']:.4g}" in line
    assert f"OJRS NRR vs exact {rows['ojrs']['nrr_exact']:.4g}" in line
    assert (
        "references (SCIP and PSO) on 20 draws"
        in (sweep / "1_table3" / "reproduce.log").read_text()
    )


def test_aggregate_cli_over_several_dirs(sweep, tmp_path):
    out = tmp_path / "agg"
    p = cli(
        "ojrs_jax.cli.aggregate",
        [str(sweep / "1_table3"), str(sweep / "2_drl_per"), "--out", str(out)],
    )
    assert p.returncode == 0, p.stderr
    assert (out / "table3.csv").is_file() and (out / "drl.csv").is_file()
    assert not (out / "table2.csv").exists()


def test_aggregate_bad_input(tmp_path):
    p = cli("ojrs_jax.cli.aggregate", [str(tmp_path / "missing")])
    assert p.returncode == 2 and p.stderr.startswith("error: not a directory")
    p = cli("ojrs_jax.cli.aggregate", [str(tmp_path)])
    assert p.returncode == 2 and "no result.json" in p.stderr
    (tmp_path / "job").mkdir()
    (tmp_path / "job" / "result.json").write_text("{broken")
    with pytest.raises(ConfigError, match="cannot read"):
        aggregate([tmp_path], tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "override, message",
    [
        ("reproduce.kind=table9", "reproduce.kind must be one of"),
        ("reproduce.eval_every=33", "reproduce.eval_every (33) must be a multiple of train.phi"),
        ("reproduce.seeds=0", "reproduce.seeds must be a positive integer"),
        ("reproduce.bogus=1", "unknown setting"),
        ("experiment=table7", "no option 'table7' in config group 'experiment'"),
    ],
)
def test_reproduce_bad_settings(override, message, tmp_path):
    args = [a for a in TINY if not a.startswith(override.split("=")[0] + "=")]
    p = cli("ojrs_jax.cli.reproduce", [*args, override, f"hydra.run.dir={tmp_path}"])
    assert p.returncode == 2, p.stderr[-2000:]
    assert p.stderr.startswith("error:") and message in p.stderr, p.stderr
    assert not (tmp_path / "result.json").exists()


def test_phase_stats_against_numpy():
    rng = np.random.default_rng(0)
    evals = [{"phase": "F" if i < 3 else "S", "nrr": rng.random(4)} for i in range(5)]
    x = np.stack([e["nrr"] for e in evals])
    st = phase_stats(evals, "F", "nrr")
    np.testing.assert_array_equal(st["best"], np.max(x[:3], axis=0))
    np.testing.assert_array_equal(st["avg"], np.mean(x[:3], axis=0))
    assert phase_stats(evals[:3], "S", "nrr") == {}


def test_reference_is_the_exhaustive_optimum():
    scn = make_scenario(SystemConfig(n_ue=6, n_mec=2))
    H = sample_channels(jax.random.key(3), scn, 8)
    ref = make_reference(jax.random.key(4), scn, H, *pso_from_mapping({"n_iter": 20}), 30.0)
    assert ref.certified == 8
    np.testing.assert_allclose(ref.exact, exhaustive_optima(scn, H), rtol=1e-5)
    assert np.all(ref.pso >= ref.exact * (1 - 1e-5))


SHARD_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax, numpy as np
    from hydra import compose, initialize_config_module
    from ojrs_jax.app.hydra import to_container
    from ojrs_jax.run.build import build, pretrain_sae
    from ojrs_jax.run.loop import seed_mesh, train_seeds
    with initialize_config_module("ojrs_jax.conf", version_base="1.3"):
        cfg = to_container(compose("reproduce", overrides=sys.argv[2:]))
    spec = build({**cfg, "train": {**cfg["train"], "chunk": 50}})
    keys, env = spec.keys(), spec.env_params()
    sae, _ = pretrain_sae(keys["sae"], spec)
    out = {"devices": len(jax.devices()), "mesh4": seed_mesh(4).size, "mesh3": seed_mesh(3).size}
    arrays = {}
    for shard in (False, True):
        r = train_seeds(spec.trainer, keys["train"], 4, sae, env, shard=shard)
        out[f"used_{shard}"] = r.devices
        sh = jax.tree.leaves(r.state.policy)[0].sharding
        out[f"spec_{shard}"] = str(getattr(sh, "spec", None))
        for k, v in r.metrics.items():
            arrays[f"{shard}_{k}"] = v
        for i, leaf in enumerate(jax.tree.leaves(r.state.policy)):
            arrays[f"{shard}_policy{i}"] = np.asarray(leaf)
    np.savez(sys.argv[1], **arrays)
    print(json.dumps(out))
    """
)


def test_sharded_seeds_equal_unsharded(tmp_path):
    """4 seeds on 2 forced CPU devices (the seed axis split 2 + 2) give the unsharded numbers.

    Sharding changes how XLA lays out each device's batch, so sums may be taken in another
    order: equal up to float32 rounding, which Adam amplifies step by step (after 400 steps, 20
    per round, the parameters differ by up to 7e-4). The run is kept short (80 steps) so that
    the comparison checks the same computation rather than the growth of rounding errors.
    """
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    f = tmp_path / "out.npz"
    args = [a for a in TINY if a.split("=")[0].split(".")[0] not in ("reproduce", "table2")]
    p = subprocess.run(
        [sys.executable, "-c", SHARD_SCRIPT, str(f), *args, "train.epochs=100", "train.updates=4"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    info = json.loads(p.stdout.strip().splitlines()[-1])
    assert info["devices"] == 2 and info["mesh4"] == 2 and info["mesh3"] == 1
    assert info["used_True"] == 2 and info["used_False"] == 1
    assert "seed" in info["spec_True"]
    z = np.load(f)
    names = sorted(k[len("False_") :] for k in z.files if k.startswith("False_"))
    assert "reward" in names and any(n.startswith("policy") for n in names)
    for n in names:
        np.testing.assert_allclose(z[f"True_{n}"], z[f"False_{n}"], rtol=1e-5, atol=1e-6, err_msg=n)
    # the seeds differ from each other (the test would pass trivially otherwise)
    assert not np.allclose(z["False_reward"][0], z["False_reward"][1])
