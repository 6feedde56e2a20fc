"""The 2r-SAE study (eq. 23): data of paper Figs. 3-6 and Table III's SAE columns (`ojrs-sae`).

Draws `train_draws` and `test_draws` independent channel epochs of the configured scenario,
trains the `sae` model and the `compare` variants (same settings; variant, depth and loss from
conf/sae/<name>.yaml) with T_SAE Adam steps each, and reports on the held-out channels the
reconstruction accuracy Acc (1 - WAPE, see `ojrs_jax.sae.model`), the per-UE accuracy and relative
error, and CR; the three accuracy figures of `ojrs_jax.sae.metrics` (WAPE over
`deployment_seeds`, paper-style Acc beside the mean predictor, decision fidelity on
`fidelity_draws` certified draws). As a yardstick it also reports the best *linear* code of the
same width (PCA of h / gbar). With `sae.max_steps` > 0 every model trains to its plateau.
Table III retrains the `sae` model for every M in `table_mecs`; a short incremental-
learning run (Algorithm 1) follows. `write_outputs` and `figures` write metrics.json,
loss_curves.csv, table3.csv, errors.npz and fig3_accuracy.png, fig4_loss.png,
fig5_errors_2r_sae.png, fig6_errors_sae.png.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.resources
import logging
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from omegaconf import DictConfig, OmegaConf

from ojrs_jax.app.hydra import to_container
from ojrs_jax.core import ring
from ojrs_jax.core.progress import bar, log_summary
from ojrs_jax.core.settings import (
    ConfigError,
    positive_int,
    rename_settings,
    seed_value,
)
from ojrs_jax.sae import channel_map, incremental
from ojrs_jax.sae import metrics as sae_metrics
from ojrs_jax.sae import model as sae
from ojrs_jax.sae import train as sae_train
from ojrs_jax.system.scenario import (
    Scenario,
    SystemConfig,
    make_scenario,
    sample_channels,
    system_config,
)

PRESET_FIELDS = ("variant", "layers", "hidden", "gamma1", "gamma2")  # what a comparison changes
LABELS = {"ae": "AE", "sae": "SAE", "2r_sae": "2r-SAE"}
COLORS = {"ae": "tab:orange", "sae": "tab:green", "2r_sae": "tab:blue"}
PAPER_ACC = {1: None, 2: 0.9273, 5: 0.8782}  # paper Table III (SAE Acc), where legible
log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """Typed view of the non-model keys of sae_train.yaml."""

    seed: int
    model_seeds: int
    train_draws: int
    test_draws: int
    compare: tuple[str, ...]
    table_mecs: tuple[int, ...]
    incremental_epochs: int
    hist_bins: int
    errors_saved: int
    deployment_seeds: tuple[int, ...]
    fidelity_draws: int


def preset(name: str) -> dict:
    """The mapping of conf/sae/<name>.yaml."""
    path = importlib.resources.files("ojrs_jax.conf") / "sae" / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"compare lists {name!r}, which has no conf/sae/{name}.yaml")
    return to_container(OmegaConf.create(path.read_text()))


def variant_config(main: sae.SAEConfig, name: str) -> sae.SAEConfig:
    """`main` with the variant, depth and loss weights of preset `name` (everything else kept)."""
    p = sae.SAEConfig.from_mapping(preset(name))
    return dataclasses.replace(main, **{f: getattr(p, f) for f in PRESET_FIELDS})


def parse(cfg: DictConfig | dict) -> tuple[SystemConfig, sae.SAEConfig, RunSettings]:
    """Validate the whole `ojrs-sae` config once; jitted code only ever sees the typed results."""
    c = to_container(cfg)
    own = {k: v for k, v in c.items() if k not in ("scale", "system", "sae")}
    return system_config(c), sae.SAEConfig.from_mapping(c.get("sae", {})), settings(own)


def settings(c: dict) -> RunSettings:
    """The study's own keys (everything but scale, system and sae), validated."""
    c = rename_settings(c, "sae_train")
    unknown = sorted(set(c) - {f.name for f in dataclasses.fields(RunSettings)} - {"incremental"})
    if unknown:
        raise ConfigError(f"unknown setting {unknown[0]!r}")
    seed = seed_value(c)
    compare = c.get("compare", [])
    if not isinstance(compare, list) or not all(isinstance(n, str) for n in compare):
        raise ConfigError(f"compare must be a list of sae preset names, got {compare!r}")
    mecs = c.get("table_mecs", [])
    if not isinstance(mecs, list) or not all(
        isinstance(m, int) and not isinstance(m, bool) and m > 0 for m in mecs
    ):
        raise ConfigError(f"table_mecs must be a list of positive integers, got {mecs!r}")
    dseeds = c.get("deployment_seeds", [])
    if not isinstance(dseeds, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) for d in dseeds
    ):
        raise ConfigError(f"deployment_seeds must be a list of integers, got {dseeds!r}")
    fid = c.get("fidelity_draws", 0)
    if isinstance(fid, bool) or not isinstance(fid, int) or fid < 0:
        raise ConfigError(f"fidelity_draws must be an integer >= 0, got {fid!r}")
    inc = c.get("incremental", {}).get("epochs", 0)
    if isinstance(inc, bool) or not isinstance(inc, int) or inc < 0:
        raise ConfigError(f"incremental.epochs must be an integer >= 0, got {inc!r}")
    run = RunSettings(
        seed=seed,
        model_seeds=positive_int(c, "model_seeds", ""),
        train_draws=positive_int(c, "train_draws", ""),
        test_draws=positive_int(c, "test_draws", ""),
        compare=tuple(dict.fromkeys(compare)),
        table_mecs=tuple(mecs),
        incremental_epochs=inc,
        hist_bins=positive_int(c, "hist_bins", ""),
        errors_saved=positive_int(c, "errors_saved", ""),
        deployment_seeds=tuple(dseeds),
        fidelity_draws=fid,
    )
    return run


# --- experiments -----------------------------------------------------------------------------


def draw(key: jax.Array, scn: Scenario, run: RunSettings) -> tuple[jax.Array, jax.Array]:
    """Independent training and held-out channel sets (E, N, M)."""
    k_tr, k_te = jax.random.split(key)
    return (
        sample_channels(k_tr, scn, run.train_draws),
        sample_channels(k_te, scn, run.test_draws),
    )


def pca_bound(h_tr: jax.Array, h_te: jax.Array, latent: int, gbar: float) -> dict[str, float]:
    """Acc of the best linear code of width `latent`: PCA of h / gbar, clipped at 0 (float64)."""
    a = np.asarray(h_tr, np.float64).reshape(h_tr.shape[0], -1) / gbar
    h = np.asarray(h_te, np.float64)
    b = h.reshape(h.shape[0], -1) / gbar
    mu = a.mean(0)
    _, _, vt = np.linalg.svd(a - mu, full_matrices=False)
    v = vt[: min(latent, vt.shape[0])].T
    hh = (np.maximum((b - mu) @ v @ v.T + mu, 0.0) * gbar).reshape(h.shape)
    return {
        "acc": float(1.0 - np.abs(h - hh).sum() / h.sum()),
        "per_ue_acc": float(1.0 - np.mean(np.abs(h - hh).sum(-1) / h.sum(-1))),
    }


def fit(
    key: jax.Array,
    model: sae.SAEConfig,
    scn: Scenario,
    h_tr: jax.Array,
    h_te: jax.Array,
    n_seeds: int,
) -> dict[str, Any]:
    """Train `n_seeds` copies (own initial weights and minibatches) in one vmapped scan.

    Returns the parameters of seed 0, per-step curves averaged over seeds, and held-out and
    training metrics as the mean over seeds with their standard deviation (`*_std`).
    """
    stats = channel_map.channel_stats(scn, model.preprocess)
    x_tr, x_te = channel_map.preprocess(h_tr, stats), channel_map.preprocess(h_te, stats)
    n_in = x_tr.shape[-1]
    x_tr_eval = x_tr[: x_te.shape[0]]  # training-set metrics on as many channels as the test set

    # data enter as arguments, not closed-over constants, so XLA does not try to fold them
    @functools.partial(jax.vmap, in_axes=(0, None, None, None, None))
    def one(k, x_tr, x_te, x_tr_eval, stats):
        k_init, k_train = jax.random.split(k)
        params, curves = sae_train.train_sae(
            k_train, model, sae.init_sae(k_init, model, n_in, scn.n_mec), x_tr, stats, x_te
        )
        test = sae.evaluate(params, model, x_te, stats)
        return params, curves, test, sae.evaluate(params, model, x_tr_eval, stats)

    @functools.partial(jax.vmap, in_axes=(0, 0, 0, None, None, None))
    def chunk(k, params, opt_state, x_tr, x_te, stats):
        return sae_train.train_chunk(k, model, params, opt_state, x_tr, stats, x_te)

    @functools.partial(jax.vmap, in_axes=(0, None, None, None))
    def final(params, x_te, x_tr_eval, stats):
        return sae.evaluate(params, model, x_te, stats), sae.evaluate(
            params, model, x_tr_eval, stats
        )

    t0 = time.perf_counter()
    if model.max_steps:  # chunks of T_SAE steps until the seeds' mean held-out loss plateaus
        keys = jax.random.split(key, n_seeds)
        p0 = jax.vmap(lambda k: sae.init_sae(jax.random.split(k)[0], model, n_in, scn.n_mec))(keys)
        o0 = jax.vmap(sae_train.optimizer(model).init)(p0)
        step = jax.jit(chunk)

        def run(k, carry):
            p, o, m = step(jax.random.split(k, n_seeds), *carry, x_tr, x_te, stats)
            return (p, o), m

        (params, _), curves, steps = sae_train.run_to_plateau(
            jax.random.fold_in(key, 1), model, run, (p0, o0), sae_train.decay_carry
        )
        test, train = jax.block_until_ready(jax.jit(final)(params, x_te, x_tr_eval, stats))
    else:
        params, curves, test, train = jax.block_until_ready(
            jax.jit(one)(jax.random.split(key, n_seeds), x_tr, x_te, x_tr_eval, stats)
        )
        steps = model.steps
    seconds = time.perf_counter() - t0

    def stats_of(d: dict) -> dict[str, float]:
        d = sae.to_numpy(d)
        return {k: float(v.mean()) for k, v in d.items()} | {
            f"{k}_std": float(v.std()) for k, v in d.items()
        }

    acc = float(np.mean(np.asarray(test["acc"])))
    log_summary(
        log,
        f"fit {model.variant} (N = {scn.n_ue}, M = {scn.n_mec}, {n_seeds} seeds)",
        {"steps": steps, "held-out Acc": acc, "seconds": seconds},
    )
    return {
        "config": model,
        "stats": stats,
        "params": jax.tree.map(lambda a: a[0], params),
        "curves": {k: v.mean(0) for k, v in sae.to_numpy(curves).items()},
        "test": stats_of(test),
        "test_seeds": [float(a) for a in np.asarray(test["acc"])],
        "train": stats_of(train),
        "seconds_with_compile": seconds,
        "steps": steps,
    }


@functools.partial(jax.jit, static_argnames=("model",))
def _entry_errors(
    params, model: sae.SAEConfig, h: jax.Array, st: channel_map.ChannelStats
) -> jax.Array:
    hh = channel_map.postprocess(sae.reconstruct(params, model, channel_map.preprocess(h, st)), st)
    return channel_map.normalised_errors(h, hh, st)


def entry_errors(res: dict, h: jax.Array, n: int) -> np.ndarray:
    """Per-entry |h - hhat| / gbar of the first n channels of h, flattened."""
    return np.asarray(_entry_errors(res["params"], res["config"], h[:n], res["stats"])).ravel()


def reconstruction(res: dict, h: jax.Array) -> np.ndarray:
    """hhat (E, N, M) of the seed-0 model of a `fit` result, in physical units."""
    model, st = res["config"], res["stats"]
    x = channel_map.preprocess(h, st)
    return np.asarray(channel_map.postprocess(sae.reconstruct(res["params"], model, x), st))


def figures_of(res: dict, scn: Scenario, h_tr, h_te, draws: int, a_opt=None) -> dict:
    """The three accuracy figures (`ojrs_jax.sae.metrics`) of a `fit` result's seed-0 model."""
    return sae_metrics.three_figures(scn, h_tr, h_te, reconstruction(res, h_te), draws, a_opt)


def across_deployments(
    key: jax.Array,
    configs: dict,
    sys_cfg: SystemConfig,
    run: RunSettings,
    tick: Callable[[], Any] | None = None,
) -> dict[str, dict]:
    """WAPE accuracy of each model as mean +- std over `run.deployment_seeds` (UE placements),
    one training per deployment (`tick()` after each)."""
    accs: dict[str, list[float]] = {n: [] for n in configs}
    for d in run.deployment_seeds:
        scn_d = make_scenario(dataclasses.replace(sys_cfg, seed=d))
        h_tr, h_te = draw(key, scn_d, run)
        for n, model in configs.items():
            res = fit(key, model, scn_d, h_tr, h_te, 1)
            accs[n].append(res["test"]["acc"])
            if tick is not None:
                tick()
    return {n: sae_metrics.seed_summary(v) for n, v in accs.items() if v}


def incremental_run(
    key: jax.Array, res: dict, h_stream: jax.Array, h_te: jax.Array
) -> dict[str, float]:
    """Stream channels through incremental learning from the trained model (Algorithm 1)."""
    model, st = res["config"], res["stats"]
    xs, x_te = channel_map.preprocess(h_stream, st), channel_map.preprocess(h_te, st)
    state = incremental.incremental_init(model, res["params"], xs.shape[-1])

    @jax.jit
    def run(key, state, xs):
        def body(s, kx):
            return incremental.incremental_step(kx[0], s, model, kx[1], st)

        return jax.lax.scan(body, state, (jax.random.split(key, xs.shape[0]), xs))

    state, info = run(key, state, xs)
    online = sae.evaluate(state.online, model, x_te, st)
    return {
        "epochs": int(xs.shape[0]),
        "admitted_fraction": float(np.mean(np.asarray(info["added"]))),
        "memory_count": int(ring.rows(state.memory)),
        "syncs": int(np.sum(np.asarray(info["synced"]))),
        "median_error": float(np.median(np.asarray(info["err"]))),
        "acc_before": float(sae.evaluate(res["params"], model, x_te, st)["acc"]),
        "acc_online_after": float(online["acc"]),
        "rel_err_online_after": float(online["rel_err"]),
    }


def run_sae(sys_cfg: SystemConfig, model: sae.SAEConfig, run: RunSettings) -> dict[str, Any]:
    """Everything `ojrs-sae` computes, as plain data (nothing is written)."""
    for name in run.compare:
        variant_config(model, name)  # fail early on a missing or invalid preset
    for m in run.table_mecs:
        dataclasses.replace(sys_cfg, n_mec=m)  # e.g. layout=paper exists for M <= 5 only
    scn = make_scenario(sys_cfg)
    k_data, k_model, k_inc = jax.random.split(jax.random.key(run.seed), 3)
    h_tr, h_te = draw(k_data, scn, run)
    names = (model.variant, *(n for n in run.compare if n != model.variant))
    configs = {model.variant: model} | {n: variant_config(model, n) for n in names[1:]}
    other_mecs = [m for m in run.table_mecs if m != sys_cfg.n_mec]
    n_fits = len(names) * (1 + len(run.deployment_seeds)) + len(other_mecs)
    pbar = bar(total=n_fits, desc="ojrs-sae", unit="fit")
    models = {}
    for n in names:
        models[n] = fit(k_model, configs[n], scn, h_tr, h_te, run.model_seeds)
        pbar.update()
    gbar = float(jnp.mean(models[model.variant]["stats"].gain))
    bound = pca_bound(h_tr, h_te, model.state_width(sys_cfg.n_ue), gbar)
    figs, a_opt = {}, None
    for n, r in models.items():
        figs[n] = figures_of(r, scn, h_tr, h_te, run.fidelity_draws, a_opt)
        a_opt = figs[n].get("fidelity", {}).pop("a_opt", None)
    if run.fidelity_draws:  # the fidelity of no code at all: decide on the mean channel
        mean_h = np.broadcast_to(np.asarray(h_tr).mean(0), np.shape(h_te))
        figs["mean_channel"] = sae_metrics.three_figures(
            scn, h_tr, h_te, mean_h, run.fidelity_draws, a_opt
        )
        figs["mean_channel"]["fidelity"].pop("a_opt")
    seeds = across_deployments(k_model, configs, sys_cfg, run, pbar.update)
    n_err = min(run.errors_saved, run.train_draws, run.test_draws)
    errors = {
        n: {"train": entry_errors(r, h_tr, n_err), "test": entry_errors(r, h_te, n_err)}
        for n, r in models.items()
    }
    table = []
    for m in run.table_mecs:
        if m == sys_cfg.n_mec:
            res, scn_m, ht, he = models[model.variant], scn, h_tr, h_te
        else:
            scn_m = make_scenario(dataclasses.replace(sys_cfg, n_mec=m))
            ht, he = draw(k_data, scn_m, run)
            res = fit(k_model, model, scn_m, ht, he, run.model_seeds)
            pbar.update()
        g_m = float(jnp.mean(res["stats"].gain))
        f_m = figures_of(res, scn_m, ht, he, run.fidelity_draws)
        f_m.get("fidelity", {}).pop("a_opt", None)
        table.append(
            {
                "n_mec": m,
                "cr": sae.compression_ratio(sys_cfg.n_ue, m, model.state_width(sys_cfg.n_ue)),
                **{
                    k: res["test"][k]
                    for k in ("acc", "acc_std", "per_ue_acc", "rel_err", "nmse_db")
                },
                "pca_acc": pca_bound(ht, he, model.state_width(sys_cfg.n_ue), g_m)["acc"],
                "paper_style_acc": f_m["paper"]["acc"],
                "paper_style_mean_acc": f_m["paper"]["mean_acc"],
                "paper_style_skill": f_m["paper"]["skill"],
                "fidelity_nrr": f_m.get("fidelity", {}).get("nrr"),
                "fidelity_same_option": f_m.get("fidelity", {}).get("same_option"),
                "steps": res["steps"],
                "paper_acc": PAPER_ACC.get(m),
            }
        )
    pbar.close()
    inc = None
    if run.incremental_epochs:
        h_stream = sample_channels(k_inc, scn, run.incremental_epochs)
        inc = incremental_run(k_inc, models[model.variant], h_stream, h_te)
        log_summary(log, "incremental learning", inc)
    return {
        "system": dataclasses.asdict(sys_cfg),
        "run": dataclasses.asdict(run),
        "main": model.variant,
        "models": models,
        "cr": sae.compression_ratio(sys_cfg.n_ue, sys_cfg.n_mec, model.state_width(sys_cfg.n_ue)),
        "pca_bound": bound,
        "figures": figs,
        "deployments": seeds,
        "errors": errors,
        "table3": table,
        "incremental": inc,
    }
