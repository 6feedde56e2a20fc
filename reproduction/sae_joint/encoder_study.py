"""Does the encoder's shape or the amount of training limit a one-number-per-UE code? Offline test.

Issue 28's learned code (`train=sae_joint`) stays below the paper's Table III at M = 2..5. This
study asks, offline and on one deployment (N = 30, deployment seed 2), whether a richer encoder
of the same code width, or more labels and Adam steps, raise the ceiling of the code: the NRR of
the per-UE policy fitted on ASA labels together with the encoder (eq. 25 + w x eq. 23, w = 0.001,
as `train=sae_joint`), certified against the exact optimum on the 200 held-out draws of
joint_m<M>_s2.json (joint_study.py, the same channels and optima).

The encoder variants (all one number per UE, CR = 1 - 1/M; decoder per UE, so the code stays a
compression of h):
- `base`: the library's per-UE 2r-SAE (M -> 64 -> 64 -> 1, shared by every UE), as the preset;
- `id<E>`: the encoder and decoder also read a learned E-wide embedding of the UE's identity
  (a conditional autoencoder: each UE's code can be tailored to its position);
- `ctx<C>`: the encoder also reads a C-wide mean over all UEs of a per-UE feature (so each UE's
  number can depend on the whole channel matrix, as the paper's flat SAE's does);
- `lin`: the code layer is linear (no ELU on the code: its negative side is not squashed);
- `log`: the encoder reads [x, ln x] of the UE's row (a deep fade is far from a good link in
  ln x; the decoder still reconstructs x);
- `ff<K>`: the policy reads the code through K Fourier pairs, [z, sin(pi 2^k z), cos(pi 2^k z)]
  for k < K (NeRF's positional encoding: a one-number code with fine structure the policy's
  ReLU layers could not resolve from z alone);
- `regret<B>`: the loss also holds B x the policy's expected regret, sum over UEs and options of
  pi_i(o) (L with UE i moved to o - L of the label) / L of the label (others at their labels,
  clipped at 0): a cost-sensitive eq. 25 that weighs a UE's mistake by what it costs;
each pretrained by eq. 23 for `--pretrain` Adam steps (0: from a random SAE), then fitted with
the policy for `--steps` Adam steps on ASA labels of `--labels` training channels; `--inits`
lists the SAE's random initialisations (0: the key of joint_study.py, i > 0: folded in).
With `--distill N` (the offline form of `train.distill`) a teacher, the per-UE policy reading
the channel, is fitted to the ASA labels first (6000 Adam steps), and the code and its policy
are fitted to the teacher's option probabilities on N fresh channels instead of the labels.

    python reproduction/sae_joint/encoder_study.py --m 5 --variants base id16 ctx32 id16_ctx32
    python reproduction/sae_joint/encoder_study.py --m 5 --steps 12000 --labels 16000
    python reproduction/sae_joint/encoder_study.py --m 4 --steps 12000 --distill 20000

Writes reproduction/sae_joint/encoder_m<M>_s2.json (one row per variant and setting).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ojrs_jax.agent.agents import fit_offline
from ojrs_jax.agent.policy import PerUEPolicy, policy_loss
from ojrs_jax.experiments import code_study
from ojrs_jax.sae import channel_map
from ojrs_jax.sae import model as sae_mod
from ojrs_jax.system import p2
from ojrs_jax.system.certify import cases, certify, latency64
from ojrs_jax.system.deployment import Problem, from_scenario
from ojrs_jax.system.scenario import SystemConfig, make_scenario, sample_channels

N_UE, CODE_WEIGHT, LAM = 30, 0.001, 1e-4
SAE_CFG = sae_mod.SAEConfig(variant="2r_sae")  # eq. 23: gamma1 0.5, gamma2 0.08, l2 of kernels
HERE = Path(__file__).parent


class RowSAE(nn.Module):
    """Per-UE autoencoder of one number per UE, optionally identity-conditioned and with context."""

    n_ue: int
    n_mec: int
    embed: int = 0  # width of the UE-identity embedding read by encoder and decoder (0: none)
    context: int = 0  # width of the all-UE mean feature read by the encoder (0: none)
    linear_code: bool = False  # the code layer without ELU
    log_input: bool = False  # the encoder reads [x, ln x] of each row
    hidden: tuple[int, ...] = (64, 64)

    def setup(self) -> None:
        if self.embed:
            self.ue_embedding = self.param(
                "ue_embedding", nn.initializers.normal(0.1), (self.n_ue, self.embed)
            )
        if self.context:
            self.context_layer = nn.Dense(self.context)
        self.enc = [nn.Dense(w) for w in (*self.hidden, 1)]
        self.dec = [nn.Dense(w) for w in (*self.hidden[::-1], self.n_mec)]

    def _with_identity(self, rows: jax.Array) -> jax.Array:
        if not self.embed:
            return rows
        e = jnp.broadcast_to(self.ue_embedding, (*rows.shape[:-1], self.embed))
        return jnp.concatenate([rows, e], axis=-1)

    def encode(self, x: jax.Array) -> jax.Array:
        """x (..., N*M) -> code (..., N)."""
        rows = x.reshape(*x.shape[:-1], self.n_ue, self.n_mec)
        if self.log_input:
            rows = jnp.concatenate([rows, jnp.log(jnp.maximum(rows, 1e-6))], -1)
        r = self._with_identity(rows)
        if self.context:
            c = jnp.mean(nn.relu(self.context_layer(r)), axis=-2, keepdims=True)
            r = jnp.concatenate([r, jnp.broadcast_to(c, (*r.shape[:-1], self.context))], -1)
        for layer in self.enc[:-1]:
            r = nn.elu(layer(r))
        z = self.enc[-1](r)
        return (z if self.linear_code else nn.elu(z))[..., 0]

    def decode(self, z: jax.Array) -> jax.Array:
        """code (..., N) -> x-hat (..., N*M)."""
        r = self._with_identity(z[..., None])
        for layer in self.dec[:-1]:
            r = nn.elu(layer(r))
        y = self.dec[-1](r)
        return y.reshape(*y.shape[:-2], -1)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.decode(self.encode(x))


def eq23(mod: RowSAE, params, x: jax.Array, stats: channel_map.ChannelStats) -> jax.Array:
    """Eq. 23 of `mod` as `sae.model.loss_terms` and `total_loss` compute it for SAE_CFG."""
    xh = mod.apply({"params": params}, x)
    rho = channel_map.relative_channel(channel_map.log_channel(x, stats))
    rho_h = channel_map.relative_channel(channel_map.log_channel(xh, stats))
    terms = {
        "mse": jnp.mean(jnp.square(x - xh)),
        "rel": jnp.mean(jnp.sum(jnp.square(rho - rho_h), axis=(-2, -1))),
        "l2": sae_mod.l2_norm_sq(params, SAE_CFG),
    }
    return sae_mod.total_loss(terms, SAE_CFG)


def fourier(z: jax.Array, k: int) -> jax.Array:
    """Codes z (..., N) -> (..., N * (1 + 2k)): each z with sin and cos of pi 2^j z, j < k."""
    if not k:
        return z
    f = jnp.pi * 2.0 ** jnp.arange(k)
    zz = z[..., None]
    out = jnp.concatenate([zz, jnp.sin(zz * f), jnp.cos(zz * f)], -1)
    return out.reshape(*z.shape[:-1], -1)


def expected_regret(
    scn, stats: channel_map.ChannelStats, logits: jax.Array, x: jax.Array, a: jax.Array
) -> jax.Array:
    """Mean over channels of sum_i sum_o pi_i(o) max(0, L(a with a_i = o) - L(a)) / L(a): what
    the policy's single-UE deviations from the labels a (B, N) cost, relative (x: (B, N*M))."""
    c = jax.vmap(lambda h: p2.option_costs(scn, h))(channel_map.postprocess(x, stats))
    onehot = jax.nn.one_hot(a, logits.shape[-1])
    sw = c.sqrt_wf[..., None]  # (B, N, 1)
    load = jnp.sum(onehot[..., 1:] * sw, axis=-2, keepdims=True)  # (B, 1, M)
    rest = load - sw * onehot[..., 1:]  # each MEC's load without UE i
    shared = (2.0 * rest * sw + sw**2) * c.inv_f_mec[:, None, :]
    option = c.per_option + jnp.concatenate([jnp.zeros_like(shared[..., :1]), shared], -1)
    now = jnp.take_along_axis(option, a[..., None], axis=-1)
    total = jnp.sum(onehot * c.per_option, (-2, -1)) + jnp.sum(load[:, 0] ** 2 * c.inv_f_mec, -1)
    r = jax.lax.stop_gradient(jnp.maximum(option - now, 0.0) / total[:, None, None])
    return jnp.mean(jnp.sum(jax.nn.softmax(logits, -1) * r, axis=(-2, -1)))


def parse_variant(name: str) -> tuple[dict, int, float]:
    """'base', 'id16', 'ctx32', 'lin', 'log', 'ff6', 'regret1' joined by '_' -> (RowSAE's
    settings, the policy's Fourier pairs, the regret term's weight)."""
    out: dict = {"embed": 0, "context": 0}
    pairs, beta = 0, 0.0
    for part in name.split("_"):
        if part == "base":
            continue
        if part == "lin":
            out["linear_code"] = True
        elif part == "log":
            out["log_input"] = True
        elif part.startswith("ff") and part[2:].isdigit():
            pairs = int(part[2:])
        elif part.startswith("regret"):
            try:
                beta = float(part[6:])
            except ValueError:
                raise SystemExit(f"error: regret<B> needs a number B, got {part!r}") from None
        elif part.startswith("id") and part[2:].isdigit():
            out["embed"] = int(part[2:])
        elif part.startswith("ctx") and part[3:].isdigit():
            out["context"] = int(part[3:])
        else:
            raise SystemExit(
                f"error: unknown variant part {part!r} (base, id<E>, ctx<C>, lin, log, ff<K>, "
                "regret<B>)"
            )
    return out, pairs, beta


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--m", type=int, default=5)
    ap.add_argument("--variants", nargs="+", default=["base"])
    ap.add_argument("--pretrain", type=int, default=3000, help="eq. 23 Adam steps (0: random)")
    ap.add_argument("--steps", type=int, default=3000, help="joint offline Adam steps")
    ap.add_argument("--labels", type=int, default=4000, help="ASA-labelled training channels")
    ap.add_argument("--inits", type=int, nargs="+", default=[0], help="SAE initialisations")
    ap.add_argument("--distill", type=int, default=0, help="fit to a teacher on N fresh channels")
    args = ap.parse_args()
    if args.distill < 0:
        raise SystemExit(f"error: --distill must be >= 0, got {args.distill}")
    record = HERE / f"joint_m{args.m}_s2.json"
    if not record.exists():
        raise SystemExit(f"error: {record} missing; run joint_study.py --m {args.m} first")
    a_opt = np.asarray(json.loads(record.read_text())["a_opt"])
    draws = len(a_opt)
    scn = make_scenario(SystemConfig(n_ue=N_UE, n_mec=args.m, layout="paper", seed=2))
    k_tr, k_te, k_lab, k_pol, k_sae = jax.random.split(jax.random.key(0), 5)  # as joint_study
    h_tr = sample_channels(k_tr, scn, max(5000, args.labels))
    h_te = sample_channels(k_te, scn, 2000)
    stats = channel_map.channel_stats(scn, "linear")
    x_tr = channel_map.preprocess(h_tr, stats).reshape(h_tr.shape[0], -1)
    x_te = channel_map.preprocess(h_te, stats).reshape(h_te.shape[0], -1)
    labels = code_study.asa_labels(k_lab, scn, h_tr[: args.labels])
    x_lab = x_tr[: args.labels]
    x_fit, y_fit, teacher = x_lab, labels, None
    if args.distill:  # the teacher reads the channel; its softmax on fresh channels is the target
        net_t = PerUEPolicy(n_ue=N_UE, n_mec=args.m, hidden=(64, 64), embed=32, code_width=0)
        k_t = jax.random.fold_in(k_pol, 99)
        pol_t = fit_offline(
            k_t,
            lambda p, xb, a: policy_loss(net_t, p, xb, a, LAM),
            net_t.init(k_t, x_lab[:1]),
            x_lab,
            labels,
            6000,
            256,
            1e-3,
        )
        h_soft = sample_channels(jax.random.fold_in(k_tr, 7), scn, args.distill)
        x_fit = channel_map.preprocess(h_soft, stats).reshape(args.distill, -1)
        y_fit = jax.nn.softmax(net_t.apply(pol_t, x_fit), -1)
        teacher = np.asarray(jnp.argmax(net_t.apply(pol_t, x_te[:draws]), -1))
    h_d = np.asarray(h_te[:draws], np.float64)
    cs = cases(Problem(dep=from_scenario(scn), h=h_d))
    ref = (latency64(scn, h_d, a_opt), draws)
    out = HERE / f"encoder_m{args.m}_s2.json"
    for name, init in [(v, i) for v in args.variants for i in args.inits]:
        t0 = time.perf_counter()
        settings, pairs, beta = parse_variant(name)
        if beta and args.distill:
            raise SystemExit("error: regret<B> needs the labels; it does not go with --distill")
        mod = RowSAE(N_UE, args.m, **settings)
        net = PerUEPolicy(
            n_ue=N_UE, n_mec=args.m, hidden=(64, 64), embed=32, code_width=1 + 2 * pairs
        )
        k_init = k_sae if init == 0 else jax.random.fold_in(k_sae, init)
        params = mod.init(k_init, x_tr[:1])["params"]
        if args.pretrain:
            params = fit_offline(
                k_sae,
                lambda p, xb, _, mod=mod: eq23(mod, p, xb, stats),
                params,
                x_tr,
                x_tr[:, :1],  # unused labels
                args.pretrain,
                512,
                3e-3,
            )
        code = mod.apply({"params": params}, x_tr[:1], method=RowSAE.encode)[0]
        pol0 = net.init(k_pol, fourier(code, pairs))

        def joint(theta, xb, a, mod=mod, net=net, pairs=pairs, beta=beta):
            s = fourier(mod.apply({"params": theta[1]}, xb, method=RowSAE.encode), pairs)
            # a: ASA labels, or with --distill the teacher's option probabilities
            out = policy_loss(net, theta[0], s, a, LAM) + CODE_WEIGHT * eq23(
                mod, theta[1], xb, stats
            )
            if beta:
                out = out + beta * expected_regret(scn, stats, net.apply(theta[0], s), xb, a)
            return out

        pol, params = fit_offline(k_pol, joint, (pol0, params), x_fit, y_fit, args.steps, 256, 1e-3)
        s = mod.apply({"params": params}, x_te[:draws], method=RowSAE.encode)
        a = np.asarray(jnp.argmax(net.apply(pol, fourier(s, pairs)), -1))
        decisions = {"policy": a} if teacher is None else {"policy": a, "teacher": teacher}
        sc = certify(cs, decisions, reference=ref)
        h_hat = channel_map.postprocess(mod.apply({"params": params}, x_te), stats)
        row = {
            "variant": name,
            "init": init,
            "pretrain_steps": args.pretrain,
            "steps": args.steps,
            "labels": args.labels,
            "draws": draws,
            "offline_nrr": sc["nrr_policy"],
            "offline_nrr_p10": sc["nrr_policy_p10"],
            "wape_acc": float(channel_map.reconstruction_accuracy(h_te, h_hat)),
            "seconds": time.perf_counter() - t0,
        }
        if args.distill:
            row.update(distill=args.distill, teacher_nrr=sc["nrr_teacher"])
        tag = (f"_d{args.distill}" if args.distill else "") + (f"_i{init}" if init else "")
        # read again just before writing: several studies may run at once into one record
        res = json.loads(out.read_text()) if out.exists() else {}
        res[f"{name}_p{args.pretrain}_s{args.steps}_l{args.labels}{tag}"] = row
        out.write_text(json.dumps(res, indent=1))
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
