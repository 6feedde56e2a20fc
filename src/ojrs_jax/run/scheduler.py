"""A trained OJRS scheduler: channel in, decision (eq. 24) and P2 allocation (eqs. 5-13) out.

    sched = load_run("outputs/2026-11-29/12-00-00")   # any finished `ojrs-train` run directory
    a = sched.decide(h)                   # its own deployment: h (N, M) or (B, N, M) -> a (..., N)
    out = sched.allocate(h)               # {"a", "latency", "f", "p"}
    dep = sched.deployment(ue_pos=..., mec_pos=..., data_bits=..., cycles=..., weights=...,
                           f_mec=...)     # or gain=(N, M) instead of the positions
    a = sched.decide(dep, h)              # any deployment: a policy trained for any (train=any)

One scheduler for every run. A policy trained on the paper's deployment (`train.arch` mlp,
per_ue, per_ue_code) decides for that deployment: its whole decision (preprocessing, encoder
when the policy reads the 2r-SAE code, policy argmax and the closed-form P2 allocation) is one
jitted function with the trained parameters folded in as constants (`policy.inference_fn`). A
policy for any deployment (`train.arch=feature`) decides for any N and M given with the channels
(`decide(deployment, h)`), by default followed by one pass of single-UE best responses
(`asa.best_response`: deterministic, never worse; `polish=0` for the policy alone), and for its
own deployment too when it was trained on one. Deployments and channels are checked by
`run.inputs`; a deployment outside the range a policy was trained on gets a warning naming it.

Loading (`load_run`) goes through `rundir.load_trained`, which checks that the files agree under
the run directory's read lock; no trainer or replay buffer is built (the msgpack tree is the
parameter tree). A batch runs as vmapped chunks of `BATCH_CHUNK` decisions. When JAX has
several local devices (GPUs, or a CPU split into devices with `JAX_NUM_CPU_DEVICES=2`), a batch
of at least that many channels on the own deployment is split evenly over them (padded with
copies of its first channel, trimmed after): the decisions are the same as on one device, the
latencies equal to float32 rounding.
"""

from __future__ import annotations

import functools
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec

from ojrs_jax.agent import feature_policy as fp
from ojrs_jax.agent.policy import inference_flops, inference_fn
from ojrs_jax.core.settings import ConfigError
from ojrs_jax.run.inputs import check_channels, make_deployment
from ojrs_jax.sae import channel_map
from ojrs_jax.sae import model as sae_mod
from ojrs_jax.search.asa import ASAParams, best_response, search
from ojrs_jax.system.deployment import (
    Deployment,
    DeploymentConfig,
    Problem,
    from_scenario,
    problem_allocation,
    problem_costs,
)
from ojrs_jax.system.p2 import option_costs, solve_p2_closed_form
from ojrs_jax.system.scenario import Scenario, SystemConfig

POLISH_ANY = 1  # best-response passes after a policy for any deployment (load_run's default)

BATCH_CHUNK = 256  # decisions per vmapped chunk of a batch

# XLA:CPU's YNNPACK library fusions: the dense layers' products and the context's mean run as
# YNNPACK calls instead of XLA's own kernels (bias and ReLU stay in XLA's loops, as the compiled
# program shows); a batch of decisions takes about 16 % less time here (docs/performance.md).
# Importing
# `ojrs_jax` turns these fusions off for everything else (jaxlib 0.10.2 miscompiles some vmapped
# one-hot sums with them, JAX issue 39103); the scheduler's one jitted call asks for them back
# only where a check of that very pattern, and of a dense layer, gives the right values.
# Two more options shape XLA's own loops (bias, ReLU, the narrow products, P2): 512-bit vectors
# where the CPU has them (AVX-512 here; a preference LLVM ignores elsewhere), and max/min without
# NaN propagation (ReLU's max: `Scheduler.allocate` and `ojrs-decide` refuse non-finite channels,
# so no NaN reaches it); together 0.966 of the library fusions' time per batched decision
# here (benchmarks/bench_cpu_options.py), the same decisions (tested).
# OJRS_CPU_FUSIONS=off compiles it with the package's defaults.
CPU_FUSIONS = {
    "xla_cpu_experimental_ynn_fusion_type": (
        "LIBRARY_FUSION_TYPE_DOT,LIBRARY_FUSION_TYPE_ELTWISE,LIBRARY_FUSION_TYPE_REDUCE"
    ),
    "xla_cpu_prefer_vector_width": 512,
    "xla_cpu_enable_fast_min_max": True,
}


@functools.cache
def cpu_fusion_options() -> dict[str, str | int | bool] | None:
    """`CPU_FUSIONS` on the CPU backend when this jaxlib takes them and computes right with them,
    else None (the package's defaults). The check, once per process: doubly vmapped sums over
    one-hot selections (the pattern of JAX issue 39103, which P2 uses) and a dense layer with
    ReLU and a mean, compiled with the options, against NumPy."""
    if os.environ.get("OJRS_CPU_FUSIONS", "").lower() in ("off", "0", "false"):
        return None
    if jax.default_backend() != "cpu":
        return None
    rng = np.random.default_rng(0)
    h = rng.uniform(1.0, 2.0, (10, 6, 2)).astype(np.float32)
    a = rng.integers(0, 3, (729, 6))
    x = rng.normal(size=(4, 30, 64)).astype(np.float32)
    w = rng.normal(size=(64, 64)).astype(np.float32)

    def check(h, x):
        def sel(h, a):
            return jnp.sum((a[:, None] == jnp.arange(1, 3)) * h, axis=1) + (a == 0)

        sums = jax.vmap(lambda hb: jax.vmap(sel, (None, 0))(hb, jnp.asarray(a)))(h)
        return sums, jnp.mean(jax.nn.relu(x @ w + 0.5), axis=-2)

    try:
        sums, layer = jax.jit(check, compiler_options=CPU_FUSIONS)(h, x)
    except (jax.errors.JaxRuntimeError, ValueError, TypeError):  # a jaxlib without them
        return None
    want_sums = np.sum((a[None, :, :, None] == np.arange(1, 3)) * h[:, None], -1) + (a == 0)
    want_layer = np.mean(np.maximum(x @ w + 0.5, 0.0), axis=-2)
    ok = np.allclose(sums, want_sums, rtol=1e-6) and np.allclose(
        layer, want_layer, rtol=1e-4, atol=1e-4
    )
    return CPU_FUSIONS if ok else None


@dataclass(frozen=True)
class Scheduler:
    """A trained policy as a scheduler: `decide` and `allocate` for its own deployment (h) or,
    for a policy trained for any deployment, for a given one (deployment, h)."""

    scn: Scenario | None  # its own deployment, weights at the end of training (None: none)
    sys: SystemConfig  # physical constants of the deployments a user gives
    flops_per_decision: int | None  # policy network FLOPs of one decision (dense layers)
    pipeline: Any  # jitted h (..., N, M) float32 -> (a, latency, f, p) on the own deployment
    any_pipeline: Any = None  # jitted (deployment, h) -> dict, for a policy for any deployment
    trained_on: DeploymentConfig | None = None  # the distribution it was trained on
    polish: int = 0  # best-response passes after the policy
    refine: int = 0  # ASA iterations after the policy (a policy for any deployment)
    net: Any = None  # the policy network (flax module), for studies of the policy itself
    params: Any = None  # its trained parameters

    @property
    def any_deployment(self) -> bool:
        """The policy decides for any deployment (`decide(deployment, h)`)."""
        return self.any_pipeline is not None

    @property
    def n_ue(self) -> int:
        return self._own().n_ue

    @property
    def n_mec(self) -> int:
        return self._own().n_mec

    def _own(self) -> Scenario:
        if self.scn is None:
            raise ConfigError(
                "this scheduler decides for any deployment and has none of its own: give "
                "decide(deployment, h) (sched.deployment(...) builds one)"
            )
        return self.scn

    def deployment(self, **fields: Any) -> Deployment:
        """`inputs.make_deployment` with this run's physical constants."""
        return make_deployment(self.sys, **fields)

    def decide(self, *args: Any) -> np.ndarray:
        """Offloading decisions a (..., N) int32 (0 = local, j = MEC j): `decide(h)` on the own
        deployment, `decide(deployment, h)` on another (a policy for any deployment)."""
        return self.allocate(*args)["a"]

    def allocate(self, *args: Any) -> dict[str, np.ndarray]:
        """Decisions and their P2 allocation: a (..., N), latency (...) in s, f (..., N) in Hz,
        p (..., N) in W (transmit power when offloaded, local CPU power kappa f^3 otherwise);
        `allocate(h)` or `allocate(deployment, h)` as `decide`."""
        if len(args) == 1:
            scn = self._own()
            h = check_channels(args[0], scn.n_ue, scn.n_mec, whose="the run's deployment")
            if self.pipeline is not None:
                a, lat, f, p = self.pipeline(h)
                out = {"a": a, "latency": lat, "f": f, "p": p}
            else:
                out = self.any_pipeline(from_scenario(scn), jnp.asarray(h))
        elif len(args) == 2:
            if self.any_pipeline is None:
                n, m = self._own().n_ue, self._own().n_mec
                raise ConfigError(
                    f"this run's policy decides for its own deployment (N = {n}, M = {m}) only: "
                    "call decide(h); a policy for any deployment is trained with train=any"
                )
            dep = args[0] if isinstance(args[0], Deployment) else self.deployment(**args[0])
            n, m = dep.gain.shape[-2:]
            batch = dep.gain.shape[0] if dep.gain.ndim == 3 else None
            h = check_channels(args[1], n, m, batch)
            self._warn_outside(dep)
            out = self.any_pipeline(dep, jnp.asarray(h))
        else:
            raise TypeError("allocate(h) or allocate(deployment, h)")
        return {k: np.asarray(v, np.int32 if k == "a" else np.float64) for k, v in out.items()}

    def _warn_outside(self, dep: Deployment) -> None:
        """A warning naming the training range when the deployment lies outside it."""
        t = self.trained_on
        if t is None or t.kind == "fixed":
            return
        n, m = dep.gain.shape[-2:]
        ranges = [("N", n, t.n_ue), ("M", m, t.n_mec)]
        scn = jax.tree.map(np.asarray, dep.scn)
        for name, v, r in (
            ("D", scn.data_bits, t.data_bits),
            ("F", scn.cycles, t.cycles),
            ("w", scn.weights, t.weight),
            ("F_MEC", scn.f_mec, t.f_mec),
        ):
            ranges.append((name, (float(np.min(v)), float(np.max(v))), r))
        for name, v, (lo, hi) in ranges:
            vlo, vhi = v if isinstance(v, tuple) else (v, v)
            if vlo < lo * (1 - 1e-6) or vhi > hi * (1 + 1e-6):
                seen = f"{v}" if not isinstance(v, tuple) else f"{vlo:.4g}..{vhi:.4g}"
                warnings.warn(
                    f"the deployment's {name} ({seen}) lies outside the range the policy was "
                    f"trained on ({lo:.4g}..{hi:.4g}): its decisions there are not measured",
                    UserWarning,
                    stacklevel=3,
                )


def make_scheduler(
    scn: Scenario,
    train_cfg: Any,
    sae_cfg: sae_mod.SAEConfig,
    policy: Any,
    encoder: Any,
    compiler_options: dict[str, Any] | None | str = "auto",
    polish: int = 0,
    sys: SystemConfig | None = None,
) -> Scheduler:
    """A scheduler from trained parameters (policy, and the online encoder when the policy reads
    the 2r-SAE code) and the run's typed configs (`train.TrainConfig`, `sae.SAEConfig`).

    `compiler_options` for its jitted call: "auto" (`cpu_fusion_options()`, checked once per
    process), None (the package's defaults) or a dict of XLA options (benchmarks compare them).
    `polish` best-response passes follow the policy's argmax (0: the policy's own decision)."""
    n, m = scn.n_ue, scn.n_mec
    net = train_cfg.policy_net(n, m, sae_cfg)
    logits = inference_fn(net, policy)
    stats = channel_map.channel_stats(scn, sae_cfg.preprocess)
    encoder = jax.tree.map(jnp.asarray, encoder) if train_cfg.state == "sae" else None

    def one(h: jax.Array):
        x = channel_map.preprocess(h, stats)
        s = sae_mod.encode(encoder, sae_cfg, x) if encoder is not None else x
        a = jnp.argmax(logits(s), axis=-1).astype(jnp.int32)
        if polish:
            a = best_response(option_costs(scn, h), a, polish)
        alloc = solve_p2_closed_form(scn, h, a)
        return a, alloc.latency, alloc.f, alloc.p

    def batched(h: jax.Array):
        # Vmapped chunks: the hidden activations of 256 decisions (2 MB at N = 30) stay in
        # cache; one vmap over 4096 was 4x slower per decision here.
        return jax.lax.map(one, h, batch_size=BATCH_CHUNK)

    devices = jax.local_devices()
    mesh = Mesh(np.array(devices), ("batch",)) if len(devices) > 1 else None

    if compiler_options == "auto":
        compiler_options = cpu_fusion_options()

    @functools.partial(jax.jit, compiler_options=compiler_options)
    def pipeline(h: jax.Array):
        if h.ndim == 2:
            return one(h)
        b, nd = h.shape[0], len(devices)
        if mesh is None or b < nd:
            return batched(h)
        pad = -b % nd  # static: the batch size is part of the traced shape
        hp = jnp.concatenate([h, jnp.broadcast_to(h[:1], (pad, *h.shape[1:]))]) if pad else h
        spec = PartitionSpec("batch")
        out = jax.shard_map(batched, mesh=mesh, in_specs=spec, out_specs=spec)(hp)
        return jax.tree.map(lambda o: o[:b], out)

    sys = SystemConfig(n_ue=n, n_mec=m) if sys is None else sys
    flops = inference_flops(net, policy)
    return Scheduler(scn, sys, flops, pipeline, polish=polish, net=net, params=policy)


def _asa_params() -> ASAParams:
    """ASA's default numbers as float32 leaves (the refinement's searches)."""
    return jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), ASAParams())


def make_any_scheduler(
    net: fp.FeaturePolicy,
    params: Any,
    sys: SystemConfig,
    scn: Scenario | None = None,
    refine: int = 0,
    polish: int = POLISH_ANY,
    trained_on: DeploymentConfig | None = None,
) -> Scheduler:
    """A scheduler of a policy for any deployment: the policy's argmax, `refine` ASA iterations
    (K = 128, about 5 UEs moved per neighbour, a fixed key), then `polish` best-response passes,
    and P2's allocation; on `scn` too when it has an own deployment."""
    params = jax.tree.map(jnp.asarray, params)
    asa_p = _asa_params()

    def one(d: Deployment, x: jax.Array) -> dict:
        p = Problem(dep=d, h=x)
        a = fp.act(net, params, d, x)
        if refine:  # a fixed key: the same inputs give the same decision
            a, _, _ = search(
                jax.random.key(0), p, a, refine, asa_p, k=128, max_iter=refine, moves=5.0
            )
        if polish:
            a = best_response(problem_costs(p), a, polish)
        return problem_allocation(p, a)

    @jax.jit
    def any_pipeline(dep: Deployment, h: jax.Array) -> dict:
        if h.ndim == 2:
            return one(dep, h)
        return jax.vmap(one, (0 if dep.gain.ndim == 3 else None, 0))(dep, h)

    return Scheduler(scn, sys, None, None, any_pipeline, trained_on, polish, refine, net, params)


def load_run(run_dir: str | Path, polish: int | None = None, refine: int = 0) -> Scheduler:
    """The trained scheduler of any finished `ojrs-train` run directory (the fixed deployment's
    or a policy for any deployment, of this version or an older one); a missing, malformed or
    mismatched file (`rundir.load_trained`) raises `ConfigError` naming it. `polish`
    best-response passes follow the policy (default: one for a policy for any deployment, none
    for a policy of one deployment, whose decision is then the trained policy's own); `refine`
    ASA iterations come first (a policy for any deployment only)."""
    from ojrs_jax.run.rundir import load_trained

    for name, v in (("polish", polish), ("refine", refine)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
            raise ConfigError(f"{name} must be an integer >= 0, got {v!r}")
    run = load_trained(run_dir)
    if run.any_deployment:
        net = run.train_cfg.policy_net(2, 1, run.sae_cfg)
        polish = POLISH_ANY if polish is None else polish
        return make_any_scheduler(
            net, run.policy, run.sys_cfg, run.scn, refine, polish, run.deployment
        )
    if refine:
        raise ConfigError(
            "refine (ASA after the policy) is for a policy for any deployment (train=any); "
            "this run's policy decides for its own deployment"
        )
    return make_scheduler(
        run.scn,
        run.train_cfg,
        run.sae_cfg,
        run.policy,
        run.encoder,
        polish=polish or 0,
        sys=run.sys_cfg,
    )
