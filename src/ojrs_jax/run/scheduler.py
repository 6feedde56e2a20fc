"""A trained OJRS scheduler: channel in, decision (eq. 24) and P2 allocation (eqs. 5-13) out.

    sched = load_run("outputs/2026-11-29/12-00-00")   # a finished `ojrs-train` run directory
    a = sched.decide(h)                                 # h (N, M) or (B, N, M) -> a (..., N)
    out = sched.allocate(h)                             # {"a", "latency", "f", "p"}

Loading reads `config.yaml`, `scenario.json` and `model.msgpack` through `rundir.load_trained`,
which checks that they agree (N, M and every parameter's shape) under the run directory's read
lock; no trainer or replay buffer is built (the msgpack tree is the parameter tree). The
whole decision (preprocessing, encoder when the policy reads the 2r-SAE code, policy argmax and
the closed-form P2 allocation) is one jitted function with the trained parameters folded in as
constants (`policy.inference_fn`), so a decision is one call.

A batch runs as vmapped chunks of `BATCH_CHUNK` decisions. When JAX has several local devices
(GPUs, or a CPU split into devices with `JAX_NUM_CPU_DEVICES=2`), a batch of at least that many
channels is split evenly over them (padded with copies of its first channel, trimmed after):
the decisions are the same as on one device, the latencies equal to float32 rounding.
"""

from __future__ import annotations

import functools
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec

from ojrs_jax.agent.policy import inference_flops, inference_fn
from ojrs_jax.core.settings import ConfigError
from ojrs_jax.sae import channel_map
from ojrs_jax.sae import model as sae_mod
from ojrs_jax.system.p2 import solve_p2_closed_form
from ojrs_jax.system.scenario import Scenario

BATCH_CHUNK = 256  # decisions per vmapped chunk of a batch

# XLA:CPU's YNNPACK library fusions: the dense layers' products and the context's mean run as
# YNNPACK calls instead of XLA's own kernels (bias and ReLU stay in XLA's loops, as the compiled
# program shows); a batch of decisions takes about 16 % less time here (BENCHMARKS.md). Importing
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
    """Bound decision functions of one trained model on one deployment."""

    scn: Scenario  # deployment with the weights in force at the end of training
    flops_per_decision: int  # policy network FLOPs of one decision (dense layers)
    pipeline: Any  # jitted h (..., N, M) float32 -> (a, latency, f, p), for benchmarks

    @property
    def n_ue(self) -> int:
        return self.scn.n_ue

    @property
    def n_mec(self) -> int:
        return self.scn.n_mec

    def decide(self, h: Any) -> np.ndarray:
        """Offloading decisions a (..., N) int32 (0 = local, j = MEC j) for channels (..., N, M)."""
        return self.allocate(h)["a"]

    def allocate(self, h: Any) -> dict[str, np.ndarray]:
        """Decisions and their P2 allocation: a (..., N), latency (...) in s, f (..., N) in Hz,
        p (..., N) in W (transmit power when offloaded, local CPU power kappa f^3 otherwise)."""
        h = np.asarray(h, np.float32)
        if h.ndim not in (2, 3) or h.shape[-2:] != (self.n_ue, self.n_mec):
            raise ConfigError(
                f"channels must have shape (N, M) or (B, N, M) with N, M = "
                f"{(self.n_ue, self.n_mec)}, got {tuple(h.shape)}"
            )
        if not np.all(np.isfinite(h)):
            raise ConfigError("channels have NaN or infinite gains")
        a, lat, f, p = self.pipeline(h)
        return {
            "a": np.asarray(a, np.int32),
            "latency": np.asarray(lat, np.float64),
            "f": np.asarray(f, np.float64),
            "p": np.asarray(p, np.float64),
        }


def make_scheduler(
    scn: Scenario,
    train_cfg: Any,
    sae_cfg: sae_mod.SAEConfig,
    policy: Any,
    encoder: Any,
    compiler_options: dict[str, Any] | None | str = "auto",
) -> Scheduler:
    """A scheduler from trained parameters (policy, and the online encoder when the policy reads
    the 2r-SAE code) and the run's typed configs (`train.TrainConfig`, `sae.SAEConfig`).

    `compiler_options` for its jitted call: "auto" (`cpu_fusion_options()`, checked once per
    process), None (the package's defaults) or a dict of XLA options (benchmarks compare them)."""
    n, m = scn.n_ue, scn.n_mec
    net = train_cfg.policy_net(n, m, sae_cfg)
    logits = inference_fn(net, policy)
    stats = channel_map.channel_stats(scn, sae_cfg.preprocess)
    encoder = jax.tree.map(jnp.asarray, encoder) if train_cfg.state == "sae" else None

    def one(h: jax.Array):
        x = channel_map.preprocess(h, stats)
        s = sae_mod.encode(encoder, sae_cfg, x) if encoder is not None else x
        a = jnp.argmax(logits(s), axis=-1).astype(jnp.int32)
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

    return Scheduler(scn=scn, flops_per_decision=inference_flops(net, policy), pipeline=pipeline)


def load_channels(path: Path, n_ue: int, n_mec: int) -> np.ndarray:
    """Read and validate `h` (B, N, M) from an npz file."""
    try:
        if path.is_file() and not zipfile.is_zipfile(path):  # np.load would try .npy or pickle
            raise OSError("not an .npz archive (write it with numpy.savez(path, h=h))")
        with np.load(path, allow_pickle=False) as z:
            if "h" not in z.files:
                raise ConfigError(
                    f"{path} has no array 'h' (found: {', '.join(z.files) or 'none'})"
                )
            h = np.asarray(z["h"])
    except ConfigError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise ConfigError(f"cannot read channels file {str(path)!r}: {e}") from None
    if h.ndim != 3:
        raise ConfigError(f"'h' must have shape (B, N, M) = (B, {n_ue}, {n_mec}), got {h.shape}")
    if h.shape[1:] != (n_ue, n_mec):
        raise ConfigError(
            f"'h' has N, M = {h.shape[1:]}, but the run was trained for N, M = {(n_ue, n_mec)}"
        )
    if h.shape[0] == 0:
        raise ConfigError("'h' is an empty batch (B = 0)")
    if not np.issubdtype(h.dtype, np.number) or np.iscomplexobj(h):
        raise ConfigError(f"'h' must be real numbers, got dtype {h.dtype}")
    h = h.astype(np.float64)
    if not np.all(np.isfinite(h)):
        raise ConfigError("'h' has NaN or infinite gains")
    if np.any(h <= 0):
        raise ConfigError("'h' has zero or negative gains (linear power gains must be > 0)")
    return h


def load_run(run_dir: str | Path) -> Scheduler:
    """The trained scheduler of a finished `ojrs-train` run directory; a missing, malformed or
    mismatched file (`rundir.load_trained`) raises `ConfigError` naming it."""
    from ojrs_jax.run.rundir import load_trained

    run = load_trained(run_dir)
    return make_scheduler(run.scn, run.train_cfg, run.sae_cfg, run.policy, run.encoder)
