"""The paper's experiments (Sec. V: Tables II-III, Figs. 3-10, NRR) as jobs of `ojrs-reproduce`.

One job runs one experiment (`reproduce.kind`) and writes `result.json` plus its raw metrics and
figures to its Hydra job directory; `ojrs_jax.experiments.results.aggregate` turns any set of such
directories (a Hydra multirun sweep, or several) into one results folder of Markdown and CSV tables
and PNG figures. Several training seeds run as one vmapped computation whose seed axis is sharded
over a `jax.sharding.Mesh` of the available devices, so one GPU/TPU host keeps every device busy.

Definitions used in Table III (the paper leaves them open; docs/reproduction.md):
- NRR of a policy at an evaluation point = mean over a fixed held-out set of channel draws of
  L(reference) / L(policy decision) in float64, with the task weights in force at that point
  (after t epochs, those of epoch t: `ojrs_jax.run.evaluation.weights_changed`); the reference
  is the certified SCIP optimum (`vs exact`) or PSO (`vs PSO`, the paper's reference).
- The policy is evaluated every `reproduce.eval_every` epochs. F-Best and F-Avg are the maximum
  and the mean of a seed's NRR over the evaluation points before the weight change (epoch 5000);
  S-Best and S-Avg the same over the points from it on. Tables give mean +- std over seeds.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import jax
import numpy as np

from ojrs_jax.app.hydra import to_container
from ojrs_jax.core.io import atomic_write_text, write_csv, write_npz
from ojrs_jax.core.progress import phase
from ojrs_jax.core.settings import (
    ConfigError,
    integer,
    positive_int,
    positive_number,
    rename_settings,
    split_settings,
)
from ojrs_jax.env.fixed import EnvParams
from ojrs_jax.experiments.results import job_summary
from ojrs_jax.run.build import RunSpec, build, pretrain_sae
from ojrs_jax.run.evaluation import epochs_to_stable, make_reference, nrr_evaluator, phase_stats
from ojrs_jax.run.loop import SeedRun, train_seeds
from ojrs_jax.run.tracking import open_writer, tensorboard_setting
from ojrs_jax.sae.model import SAEConfig
from ojrs_jax.search.asa import asa_from_mapping
from ojrs_jax.search.pso import pso_from_mapping
from ojrs_jax.system.deployment import Problem, from_scenario
from ojrs_jax.system.exact import TIME_LIMIT
from ojrs_jax.system.scenario import sample_channels, system_config

KINDS = ("table2", "table3", "drl", "sae", "fig7")
log = logging.getLogger(__name__)


# --- experiments ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReproduceSettings:
    """The `reproduce` group of conf/reproduce.yaml, typed (name and preset label the tables)."""

    kind: str = "table2"  # table2 | table3 | drl | sae | fig7 (set by the experiment)
    name: str = ""  # the experiment's name in the aggregated tables (default: kind)
    preset: str = ""  # label of the training settings in the tables
    seeds: int = 3  # training seeds, vmapped in one computation and sharded over the devices
    shard: bool = True  # shard the seed axis over a mesh of all devices
    eval_every: int = 500  # epochs between NRR evaluations of every seed's policy (Table III)
    eval_draws: int = 200  # held-out channel draws of the NRR evaluation
    time_limit: float = TIME_LIMIT  # SCIP time limit per draw, s
    progress: bool = False  # progress bar with the reward after every chunk on stderr
    tensorboard: bool = False  # per-epoch metrics to <job dir>/tensorboard

    @classmethod
    def from_mapping(cls, c: dict) -> ReproduceSettings:
        """From the resolved `ojrs-reproduce` config (its `reproduce` node), checked."""
        r = rename_settings({"reproduce": dict(c.get("reproduce", {}) or {})}, "reproduce")
        r = {f.name: getattr(cls, f.name) for f in fields(cls)} | r["reproduce"]
        split_settings(r, "reproduce", cls)  # an unknown key fails by name
        if r["kind"] not in KINDS:
            raise ConfigError(
                f"reproduce.kind must be one of {', '.join(KINDS)}, got {r['kind']!r}"
            )
        for key in ("shard", "progress"):
            if not isinstance(r[key], bool):
                raise ConfigError(f"reproduce.{key} must be true or false, got {r[key]!r}")
        return cls(
            kind=r["kind"],
            name=str(r["name"] or ""),
            preset=str(r["preset"] or ""),
            seeds=positive_int(r, "seeds", "reproduce."),
            shard=r["shard"],
            eval_every=positive_int(r, "eval_every", "reproduce."),
            eval_draws=positive_int(r, "eval_draws", "reproduce."),
            time_limit=positive_number(r, "time_limit", "reproduce.", TIME_LIMIT),
            progress=r["progress"],
            tensorboard=tensorboard_setting(r["tensorboard"], "reproduce.tensorboard"),
        )


def _train(s: ReproduceSettings, out: Path, *args: Any, **kw: Any) -> SeedRun:
    """`train_seeds` with the job's progress bar and optional TensorBoard writer."""
    writer = open_writer(s.tensorboard, out)
    try:
        return train_seeds(*args, progress=s.progress, writer=writer, **kw)
    finally:
        if writer is not None:
            writer.close()


def _spec_for_seeds(c: dict, eval_every: int) -> RunSpec:
    """Build the run with chunks of eval_every epochs (one evaluation after each chunk)."""
    t = dict(c.get("train", {}) or {})
    phi = t.get("phi", 10)
    epochs = t.get("epochs", 10000)
    if isinstance(phi, int) and isinstance(epochs, int) and phi > 0:
        if eval_every % phi or epochs % eval_every:
            raise ConfigError(
                f"reproduce.eval_every ({eval_every}) must be a multiple of train.phi ({phi}) "
                f"and divide train.epochs ({epochs})"
            )
    return build({**c, "train": {**t, "chunk": eval_every}})


def _sae_summary(rep: dict[str, Any]) -> dict[str, Any]:
    """The SAE pretraining report for result.json: numbers as floats, lists (the final held-out
    losses of `sae.restarts` initialisations) as lists of floats, the loss curve left out."""
    return {
        k: [float(x) for x in v] if isinstance(v, list | tuple) else float(v)
        for k, v in rep.items()
        if k != "loss_curve"
    }


def _mean_std(x: np.ndarray) -> dict[str, float]:
    x = np.asarray(x, np.float64)
    return {"mean": float(x.mean()), "std": float(x.std()), "values": [float(v) for v in x]}


def run_table3(c: dict, out: Path) -> dict[str, Any]:
    """Table III for the configured M: SAE Acc and CR; F/S-Best/Avg NRR vs exact and PSO."""
    s = ReproduceSettings.from_mapping(c)
    spec = _spec_for_seeds(c, s.eval_every)
    keys = spec.keys()
    env = spec.env_params()
    sae_params, sae_rep = pretrain_sae(keys["sae"], spec)
    k_h, k_p1, k_p2 = jax.random.split(keys["eval"], 3)
    H = sample_channels(k_h, spec.scn, s.eval_draws)
    scn2 = spec.scn.replace(weights=env.weights_after)
    t0 = time.perf_counter()
    pso_cfg, pso_par = pso_from_mapping(c.get("pso", {}))
    with phase(log, f"references (SCIP and PSO) on {s.eval_draws} draws, two weight sets"):
        refs = (
            make_reference(k_p1, spec.scn, H, pso_cfg, pso_par, s.time_limit),
            make_reference(k_p2, scn2, H, pso_cfg, pso_par, s.time_limit),
        )
    ref_s = time.perf_counter() - t0
    run = _train(
        s,
        out,
        spec.trainer,
        keys["train"],
        s.seeds,
        sae_params,
        env,
        nrr_evaluator(spec.trainer, env, refs),
        shard=s.shard,
    )
    table = {}
    for ref_name in ("exact", "pso"):
        for ph in ("F", "S"):
            st = phase_stats(run.evals, ph, f"nrr_{ref_name}")
            for stat, v in st.items():
                table[f"{ph}-{stat.capitalize()} vs {ref_name}"] = _mean_std(v)
    curves = {
        "epoch": np.array([e["epoch"] for e in run.evals]),
        **{
            k: np.stack([e[k] for e in run.evals])
            for k in ("nrr_exact", "nrr_pso", "latency")
            if run.evals
        },
    }
    write_npz(out / "nrr_curves.npz", **curves)
    _write_training_metrics(out, run)
    result = {
        "kind": "table3",
        **_scenario_info(spec),
        "seeds": s.seeds,
        "eval_every": s.eval_every,
        "eval_draws": s.eval_draws,
        "change_epoch": int(env.change_epoch),
        "sae": _sae_summary(sae_rep),
        "exact_certified": [refs[0].certified, refs[1].certified],
        "reference_seconds": ref_s,
        "train_seconds": run.seconds,
        "first_chunk_seconds": run.first_chunk_seconds,
        "devices": run.devices,
        "table3": table,
        "final_nrr_exact": _mean_std(run.evals[-1]["nrr_exact"]) if run.evals else None,
        "epochs_to_stable": _stable_epochs(run, env),
    }
    return result


def run_drl(c: dict, out: Path) -> dict[str, Any]:
    """Figs. 8-10 material: S seeds of Algorithm 3 with the configured replay; the per-epoch
    reward, loss and T_SA (seed mean and per seed) and the epochs to a stable reward."""
    s = ReproduceSettings.from_mapping(c)
    spec = _spec_for_seeds(c, s.eval_every)
    keys = spec.keys()
    env = spec.env_params()
    sae_params, _ = pretrain_sae(keys["sae"], spec)
    run = _train(s, out, spec.trainer, keys["train"], s.seeds, sae_params, env, shard=s.shard)
    _write_training_metrics(out, run)
    stable = _stable_epochs(run, env)
    return {
        "kind": "drl",
        **_scenario_info(spec),
        "replay": spec.train_cfg.replay,
        "seeds": s.seeds,
        "change_epoch": int(env.change_epoch),
        "train_seconds": run.seconds,
        "first_chunk_seconds": run.first_chunk_seconds,
        "devices": run.devices,
        "epochs_to_stable": _mean_std(np.array(stable)),
        "final_t_sa": [int(t) for t in np.asarray(run.state.t_sa)],
    }


def run_table2(c: dict, out: Path) -> dict[str, Any]:
    """Table II: train OJRS (one seed, static weights), then time and score every method on the
    same channel draws: OJRS (encoder + policy + P2), Greedy, Random, ASA, PSO and Exact."""
    from ojrs_jax.experiments.baselines import EXACT, BaselinesConfig, Searches, run_baselines

    s = ReproduceSettings.from_mapping(c)
    spec = _spec_for_seeds(c, s.eval_every)
    keys = spec.keys()
    env = spec.env_params()
    sae_params, sae_rep = pretrain_sae(keys["sae"], spec)
    run = _train(s, out, spec.trainer, keys["train"], 1, sae_params, env, shard=False)
    _write_training_metrics(out, run)
    pol = jax.tree.map(lambda x: x[0], spec.trainer.deciding(run.state))
    enc = None if run.state.sae is None else jax.tree.map(lambda x: x[0], run.state.sae.online)
    decide = spec.trainer.decide

    def ojrs(key, scn, h):
        return decide(pol, enc, env, Problem(dep=from_scenario(scn), h=h[None]))[0]

    t2 = dict(c.get("table2", {}) or {})
    bcfg = BaselinesConfig(
        system=system_config(c),
        draws=positive_int(t2, "draws", "table2."),
        seed=int(c.get("seed", 0)) + 1,  # draws unseen in training
        methods=tuple(t2.get("methods", ["ojrs", "greedy", "random", "asa", "pso", "exact"])),
        time_limit=s.time_limit,
        searches=Searches.from_mapping(c),
    )
    res = run_baselines(bcfg, extra={"ojrs": ojrs})
    rows = []
    ex = res.get(EXACT)
    for name, r in res.items():
        lat = r["latency"]
        row = {
            "method": name,
            "seconds_per_decision": float(r["seconds"].mean()),
            "seconds_median": float(np.median(r["seconds"])),
            "latency": float(lat.mean()),
            "latency_median": float(np.median(lat)),
            "reward": float(1.0 / lat.mean()),
            "reward_mean_of_inverse": float(np.mean(1.0 / lat)),
        }
        if ex is not None:
            row["nrr_exact"] = float(np.mean(ex["latency"] / lat))
        rows.append(row)
    write_csv(
        out / "table2_draws.csv",
        ["draw", *res],
        ([e, *(float(r["latency"][e]) for r in res.values())] for e in range(bcfg.draws)),
    )
    return {
        "kind": "table2",
        **_scenario_info(spec),
        "draws": bcfg.draws,
        "train_seconds": run.seconds,
        "sae": _sae_summary(sae_rep),
        "exact_certified": None if ex is None else int(ex["optimal"].sum()),
        "rows": rows,
    }


def run_sae_study(c: dict, out: Path) -> dict[str, Any]:
    """Figs. 3-6: AE vs SAE vs 2r-SAE accuracy, loss and error distributions (`ojrs-sae`)."""
    from ojrs_jax.experiments.sae_outputs import figures, summary_json, write_outputs
    from ojrs_jax.experiments.sae_study import run_sae, settings

    run = settings({**(c.get("sae_study", {}) or {}), "seed": integer(c, "seed", "")})
    r = run_sae(system_config(c), SAEConfig.from_mapping(c.get("sae", {}) or {}), run)
    write_outputs(r, out)
    figures(r, out, r["run"]["hist_bins"])
    sj = summary_json(r)
    return {
        "kind": "sae",
        "n_ue": r["system"]["n_ue"],
        "n_mec": r["system"]["n_mec"],
        "cr": r["cr"],
        "pca_bound": r["pca_bound"],
        "models": {n: m["test"] for n, m in sj["models"].items()},
    }


def run_fig7_study(c: dict, out: Path) -> dict[str, Any]:
    """Fig. 7: best fitness per iteration, ASA vs plain SA (`ojrs-fig7`)."""
    from ojrs_jax.experiments.fig7 import Fig7Config, run_fig7

    asa_cfg, asa_par = asa_from_mapping(c.get("asa", {}) or {})
    (own,) = split_settings(dict(c.get("fig7", {}) or {}), "fig7", Fig7Config)
    fcfg = Fig7Config(
        system=system_config(c), asa=asa_cfg, asa_params=asa_par, seed=integer(c, "seed", ""), **own
    )
    s = run_fig7(fcfg, out)
    return {"kind": "fig7", **s}


RUNNERS: dict[str, Callable[[dict, Path], dict[str, Any]]] = {
    "table2": run_table2,
    "table3": run_table3,
    "drl": run_drl,
    "sae": run_sae_study,
    "fig7": run_fig7_study,
}


def run_experiment(cfg: Any, out: Path) -> dict[str, Any]:
    """Run the configured experiment into `out`; writes and returns result.json's content."""
    c = to_container(cfg)
    kind = ReproduceSettings.from_mapping(c).kind
    out.mkdir(parents=True, exist_ok=True)
    name = str(c.get("reproduce", {}).get("name") or kind)
    log.info("job %s (%s) into %s", name, kind, out)
    t0 = time.perf_counter()
    result = RUNNERS[kind](c, out)
    result["name"] = name
    result["preset"] = str(c.get("reproduce", {}).get("preset", ""))
    result["config"] = c  # every setting the job ran with (overrides included)
    result["wall_seconds"] = time.perf_counter() - t0
    atomic_write_text(out / "result.json", json.dumps(result, indent=1, default=_json_default))
    log.info("job %s done in %.1f s: %s", name, result["wall_seconds"], job_summary(result))
    return result


def _json_default(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def _scenario_info(spec: RunSpec) -> dict[str, Any]:
    t = spec.train_cfg
    return {
        "n_ue": spec.scn.n_ue,
        "n_mec": spec.scn.n_mec,
        "epochs": t.n_blocks * t.phi,
        "train": {
            "state": t.state,
            "arch": t.arch,
            "replay": t.replay,
            "lam": t.lam,
            "updates": t.updates,
            "buffer": t.buffer,
        },
    }


def _stable_epochs(run: SeedRun, env: EnvParams) -> list[int]:
    """Each seed's epochs to a stable reward, before the weight change."""
    change = int(env.change_epoch)
    return [epochs_to_stable(r[: min(r.size, change)]) for r in run.metrics["reward"]]


def _write_training_metrics(out: Path, run: SeedRun) -> None:
    """Per-epoch metrics of every seed (metrics.npz) and their seed mean (metrics_mean.csv)."""
    write_npz(out / "metrics.npz", **run.metrics)
    cols = sorted(run.metrics)
    mean = {k: run.metrics[k].mean(axis=0) for k in cols}
    n = len(mean[cols[0]])
    write_csv(
        out / "metrics_mean.csv",
        ["epoch", *cols],
        ([e, *(float(mean[k][e]) for k in cols)] for e in range(n)),
    )
