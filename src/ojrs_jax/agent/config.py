"""The settings of Algorithm 3, typed: the Hydra `train` group with `asa` and `replay` (Sec. IV-V).

One `TrainConfig` for every task and policy: the paper's MLP on the 2r-SAE code (`arch=mlp`,
`state=sae`), the per-UE network on the channel (`arch=per_ue`, `state=channel`) or on a per-UE
code (`arch=per_ue_code`, `state=sae`), and the feature policy that reads a whole deployment and
decides for any N and M (`arch=feature`, `state=deployment`). Python ints and choices are
static; the numbers a sweep may change without recompiling (lambda, epsilon, ASA's and 2p-ER's
numbers) become pytree leaves of the trainer's state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from ojrs_jax.agent.feature_policy import FeaturePolicy
from ojrs_jax.agent.policy import PerUEPolicy, PolicyNet, scaled_hidden
from ojrs_jax.agent.replay import PERParams, replay_from_mapping
from ojrs_jax.core.settings import ConfigError, whole_blocks
from ojrs_jax.sae.model import SAEConfig
from ojrs_jax.search.asa import ASAConfig, ASAParams, asa_from_mapping

REPLAYS = ("per", "uniform")
STATES = ("sae", "channel", "deployment")
ARCHS = ("mlp", "per_ue", "per_ue_code", "feature")
# the state each policy reads (mlp reads the code or the channel)
ARCH_STATES = {
    "mlp": ("sae", "channel"),
    "per_ue": ("channel",),
    "per_ue_code": ("sae",),
    "feature": ("deployment",),
}


def chunk_blocks(n_blocks: int, chunk: int, phi: int) -> int:
    """Blocks per chunk: the largest divisor of n_blocks not above chunk/phi, so every chunk has
    the same length and compiles once."""
    want = max(1, chunk // phi)
    return max(d for d in range(1, min(want, n_blocks) + 1) if n_blocks % d == 0)


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


@dataclass(frozen=True)
class TrainConfig:
    """Static settings of Algorithm 3 (Python ints and choices; numbers to sweep are leaves)."""

    epochs: int = 10000  # T_DRL, a multiple of phi (whole blocks of phi epochs)
    phi: int = 10  # training interval: one policy update every phi epochs
    batch: int = 128  # transitions per policy update
    updates: int = 1  # Adam steps per training round (paper: 1), each on a fresh batch
    buffer: int = 1024  # replay capacity
    replay: str = "per"  # per (2p-ER) | uniform (traditional FIFO)
    hidden: tuple[int, ...] | str = (120, 80)  # mlp widths, or "auto" (scale with N (M+1))
    learning_rate: float = 1e-3  # Adam step size (eq. 25)
    lr_final: float = 1.0  # last Adam step's size / learning_rate (cosine decay; 1: constant)
    average: float = 0.0  # > 0: the Polyak average of theta (this decay per round) decides
    lam: float = 0.02  # lambda of eq. 25's L2 term
    explore_eps: float = 0.0  # epsilon-greedy: chance per UE of a random option before ASA
    adaptive: bool = True  # eq. 30 on (False: T_SA stays asa.t_sa0)
    change_epoch: int = 5000  # epoch at which the weights change (<= 0 or >= epochs: never)
    weight_low: float = 0.5  # new weights ~ U[weight_low, weight_high]
    weight_high: float = 1.5
    incremental_sae: bool = True  # keep training the SAE online (Alg. 1) during DRL
    code_weight: float = 0.0  # > 0: the SAE learns with the policy, eq. 25 + this x eq. 23
    warm_start: int = 0  # > 0 (with code_weight): Adam steps fitting policy and SAE to ASA labels
    warm_start_draws: int = 4096  # channels labelled by ASA (from Greedy) for the warm start
    distill: int = 0  # > 0 (with code_weight): fresh channels per step a channel teacher labels
    distill_temperature: float = 1.0  # distill: T softening teacher and student (loss x T^2)
    state: str = "sae"  # what the policy reads: sae (2r-SAE code) | channel | deployment
    arch: str = "mlp"  # mlp (the paper's DNN) | per_ue | per_ue_code | feature (any N, M)
    ue_hidden: tuple[int, ...] = (64, 64)  # per_ue: hidden widths of the shared per-UE network
    ue_embed: int = 16  # per_ue: width of the learned UE embedding and of the load context
    local_bias: float = 0.0  # added to the initial local-option logit (0: plain initialisation)
    rounds: int = 2  # feature: scoring passes (each sees the load expected from the last one)
    link_width: int = 32  # feature: width of the link embedding
    score_hidden: int = 32  # feature: width of the scoring MLP
    asa_moves: float = 0.0  # > 0: ASA's mutation scale capped at asa_moves / N (0: off)
    init_from: str = ""  # a finished run whose policy starts this one (fine-tuning); "": fresh
    chunk: int = 1000  # epochs per jitted scan chunk (progress and checkpoints between chunks)
    asa: ASAConfig = field(default_factory=ASAConfig)
    asa_params: ASAParams = field(default_factory=ASAParams)
    per: PERParams = field(default_factory=PERParams)

    def __post_init__(self) -> None:
        ints = ("epochs", "phi", "batch", "updates", "buffer", "chunk", "ue_embed", "rounds")
        for name in (*ints, "link_width", "score_hidden", "warm_start_draws"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ConfigError(f"train.{name} must be a positive integer, got {v!r}")
        whole_blocks(self.epochs, self.phi, "train.")
        if not isinstance(self.change_epoch, int) or isinstance(self.change_epoch, bool):
            raise ConfigError(f"train.change_epoch must be an integer, got {self.change_epoch!r}")
        if self.state not in STATES:
            raise ConfigError(f"train.state must be one of {', '.join(STATES)}, got {self.state!r}")
        if self.arch not in ARCHS:
            raise ConfigError(f"train.arch must be one of {', '.join(ARCHS)}, got {self.arch!r}")
        if self.state not in ARCH_STATES[self.arch]:
            want = " or ".join(f"train.state={s}" for s in ARCH_STATES[self.arch])
            raise ConfigError(f"train.arch={self.arch} needs {want}")
        if self.replay not in REPLAYS:
            raise ConfigError(f"train.replay must be one of per, uniform, got {self.replay!r}")
        for name in (
            "learning_rate",
            "lam",
            "weight_low",
            "weight_high",
            "asa_moves",
            "code_weight",
        ):
            v = getattr(self, name)
            if not _number(v) or v < 0 or (name in ("learning_rate", "weight_low") and v == 0):
                raise ConfigError(f"train.{name} must be a finite positive number, got {v!r}")
        f = self.lr_final
        if isinstance(f, bool) or not isinstance(f, int | float) or not 0 <= f <= 1:
            raise ConfigError(f"train.lr_final must be in [0, 1], got {f!r}")
        if self.weight_high < self.weight_low:
            raise ConfigError(
                f"train.weight_high ({self.weight_high}) must be >= weight_low ({self.weight_low})"
            )
        d = self.average
        if isinstance(d, bool) or not isinstance(d, int | float) or not 0 <= d < 1:
            raise ConfigError(f"train.average must be in [0, 1), got {d!r}")
        e = self.explore_eps
        if isinstance(e, bool) or not isinstance(e, int | float) or not 0 <= e <= 1:
            raise ConfigError(f"train.explore_eps must be in [0, 1], got {e!r}")
        uh = self.ue_hidden
        if not isinstance(uh, tuple) or not all(
            isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in uh
        ):
            raise ConfigError(f"train.ue_hidden must be positive widths, got {uh!r}")
        if not _number(self.local_bias):
            raise ConfigError(f"train.local_bias must be a finite number, got {self.local_bias!r}")
        if self.hidden != "auto":
            h = self.hidden
            if not isinstance(h, tuple) or not all(
                isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in h
            ):
                raise ConfigError(f"train.hidden must be 'auto' or positive widths, got {h!r}")
        if self.code_weight > 0 and (self.state != "sae" or not self.incremental_sae):
            raise ConfigError(
                "train.code_weight > 0 trains the SAE with the policy during DRL: it needs "
                f"train.state=sae and train.incremental_sae=true, got state={self.state}, "
                f"incremental_sae={self.incremental_sae}"
            )
        t = self.distill_temperature
        if not _number(t) or t <= 0:
            raise ConfigError(f"train.distill_temperature must be a finite number > 0, got {t!r}")
        if t != 1 and not self.distill:
            raise ConfigError(
                f"train.distill_temperature={t} softens a teacher's targets: it needs "
                "train.distill > 0"
            )
        if isinstance(self.init_from, bool) or not isinstance(self.init_from, str):
            raise ConfigError(
                f"train.init_from must be a run directory or '', got {self.init_from!r}"
            )
        for name, what in (  # the joint agent's options: whole counts, needing code_weight > 0
            ("warm_start", "fits the policy and the SAE together before DRL"),
            ("distill", "teaches the code's policy from a channel-reading teacher"),
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ConfigError(f"train.{name} must be an integer >= 0, got {v!r}")
            if v > 0 and self.code_weight <= 0:
                raise ConfigError(
                    f"train.{name} > 0 {what}: it needs train.code_weight > 0, "
                    f"got code_weight={self.code_weight}"
                )
        if self.code_weight > 0 and self.init_from:
            raise ConfigError(
                "train.init_from is not available with train.code_weight > 0: the policy of a "
                "run reads the code of that run's own encoder, which a new run pretrains afresh"
            )

    @property
    def n_blocks(self) -> int:
        return -(-self.epochs // self.phi)

    @property
    def chunk_blocks(self) -> int:
        return chunk_blocks(self.n_blocks, self.chunk, self.phi)

    @property
    def any_deployment(self) -> bool:
        """The policy decides for any deployment (it reads the deployment with the channel)."""
        return self.arch == "feature"

    def policy_hidden(self, n_ue: int, n_mec: int) -> tuple[int, ...]:
        return scaled_hidden(n_ue, n_mec) if self.hidden == "auto" else tuple(self.hidden)

    def policy_net(self, n_ue: int, n_mec: int, sae_cfg: SAEConfig) -> Any:
        """The policy network of `arch` for N UEs and M MECs (padded sizes for `feature`)."""
        if self.arch == "feature":
            return FeaturePolicy(self.rounds, self.link_width, self.score_hidden)
        if self.arch in ("per_ue", "per_ue_code"):
            code = sae_cfg.per_ue_code if self.arch == "per_ue_code" else 0
            return PerUEPolicy(
                n_ue=n_ue, n_mec=n_mec, hidden=self.ue_hidden, embed=self.ue_embed, code_width=code
            )
        return PolicyNet(n_ue=n_ue, n_mec=n_mec, hidden=self.policy_hidden(n_ue, n_mec))

    @classmethod
    def from_mapping(
        cls, train: dict, asa: dict | None = None, replay: dict | None = None
    ) -> TrainConfig:
        """Build from the plain `train`, `asa` and `replay` config nodes, each parsed by its own
        module (`asa.asa_from_mapping`, `replay.replay_from_mapping`); unknown keys fail."""
        m = dict(train)
        known = {f.name for f in fields(cls)} - {"asa", "asa_params", "per", "replay"}
        unknown = sorted(set(m) - known)
        if unknown:
            raise ConfigError(f"unknown train setting {unknown[0]!r}")
        kind, per, explore_eps = replay_from_mapping(replay)
        asa_cfg, asa_par = asa_from_mapping(dict(asa or {}))
        if explore_eps is not None:
            m["explore_eps"] = explore_eps
        for name in ("hidden", "ue_hidden"):
            if isinstance(m.get(name), list):
                m[name] = tuple(m[name])
        return cls(**m, replay=kind, asa=asa_cfg, asa_params=asa_par, per=per)
