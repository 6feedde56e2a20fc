"""Mutation testing of the any-deployment and run-directory code (a script, not a pytest file).

    python tests/mutation_any.py [--only ID ...] [--out tests/mutation_any.json] [--check]
                                 [--resume] [--commit REV]

Each mutant below is one single-point edit of real-bug shape (a flipped sign or comparison, an
off-by-one, a dropped mask, a wrong index or axis, a wrong constant, a removed check, mean for
sum) in a file under src/ojrs_jax, with the test files that are "the tests of that code". For
each mutant the script applies the edit in a git worktree of HEAD (WORKTREE, under the temporary
directory), runs

    PYTHONPATH=WORKTREE/src python -m pytest -n 0 -x -q -p no:cacheprovider <test files>

with the Python that runs the script, there (cwd WORKTREE, so the worktree's tests and their
helpers run; PYTHONPATH puts the worktree's package before the editable install, for the test
process and every subprocess it starts, which is checked once before anything runs) with a timeout of 900 s and a memory cap
of 8 GiB on the test session (a mutant that opens /dev/zero as a file reads it without end),
and records killed (some test failed or errored, or the session passed the memory cap or died
of a signal), survived (all passed) or timeout, the first FAILED/ERROR line and the seconds.
The unmutated worktree must first pass the union of the selected test files (else the script
stops). The JSON record (date, commit, each mutant's result, totals, kill rate, survivors,
mutants not run yet) is written atomically after every mutant and at the end; the worktree is
removed at the end.

Before the baseline and before each mutant the script waits while an `ojrs-bench` process runs
(a shared 2-core machine). Subprocesses share one XLA compilation cache (OJRS_CACHE_DIR, under
/tmp): its keys are the compiled programs, so a mutant that changes a program compiles it anew,
and the tests that check the cache set their own directory. `--check` only validates the
mutants (each original snippet occurs exactly once in HEAD's file, test files exist);
`--resume` continues an interrupted record at --out of the same commit (its baseline stands;
its results are kept); `--commit REV` mutates another commit than HEAD (to finish such a
record after HEAD has moved on).
"""

# ruff: noqa: E501  (the snippets are the source lines, verbatim)
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MAIN = Path(__file__).resolve().parents[1]  # the checkout whose HEAD is mutated
WORKTREE = Path(tempfile.gettempdir()) / "ojrs-mutation-worktree"
PYTHON = Path(sys.executable)  # the environment the project is installed in
TIMEOUT = 900  # s per mutant
# the test session's memory (RSS of all its processes) is capped: a mutant that reads /dev/zero
# (the regular-file check removed) would otherwise take the shared machine's memory
MEM_LIMIT = 8 * 2**30  # bytes
PAGE = os.sysconf("SC_PAGE_SIZE")
CACHE = Path(tempfile.gettempdir()) / "mutation_any_xla"
PYTEST = ["-m", "pytest", "-n", "0", "-x", "-q", "-p", "no:cacheprovider"]

# the test files (in the worktree); each mutant lists the likeliest killer first (with -x the
# first failure ends the run; the verdict does not depend on the order)
REF = "tests/test_any_reference.py"
DEP = "tests/test_any_deployment.py"
PINS = "tests/test_any_pins.py"
FAULTS = "tests/test_any_faults.py"
ENV = "tests/test_env.py"
RFAULTS = "tests/test_faults.py"
EVAL = "tests/test_evaluation.py"

ANY = [REF, DEP, PINS]  # the any-deployment model, policy and search


def _m(
    file: str,
    original: str,
    replacement: str,
    description: str,
    tests: list[str],
    later: bool = False,
) -> dict:
    return {
        "later": later,
        "file": file,
        "original": original,
        "replacement": replacement,
        "description": description,
        # the pins of this code (tests/test_any_pins.py) are among the tests of every mutant
        "tests": tests if PINS in tests else [*tests, PINS],
    }


# by area; run round-robin over the areas (ids in run order), so that a run cut short
# still covers every area
_AREAS: dict[str, list[dict]] = {
    "any deployment: environment": [
        _m(
            "env/distribution.py",
            "gen, dep, h = self.sampler.step(key, gen)",
            "_, dep, h = self.sampler.step(key, gen)",
            "the sampler's next state is dropped: a mobile deployment never walks nor renews",
            [PINS, ENV, REF, DEP],
        ),
        _m(
            "env/distribution.py",
            'self.iid = cfg.kind == "random"',
            'self.iid = cfg.kind != "fixed"',
            "a mobile distribution is taken for i.i.d. epochs",
            [PINS, ENV, REF, DEP],
        ),
    ],
    "any deployment: sampling": [
        _m(
            "system/deployment.py",
            "cfg.n_ue[0], cfg.n_ue[1] + 1)",
            "cfg.n_ue[0], cfg.n_ue[1])",
            "off-by-one: N drawn from n_lo..n_hi-1 (randint's high end is exclusive)",
            [DEP, REF, PINS],
        ),
        _m(
            "system/deployment.py",
            '"ue_mask": jnp.arange(n_max) < n,',
            '"ue_mask": jnp.arange(n_max) <= n,',
            "off-by-one UE mask: one padded UE counts as real",
            [DEP, REF, PINS],
            later=True,
        ),
        _m(
            "system/deployment.py",
            "mec_pos = table[jnp.asarray(m) - 1] * area",
            "mec_pos = table[jnp.asarray(m)] * area",
            "off-by-one row of the grid table: M real MECs placed as the grid of M + 1",
            [DEP, REF, PINS],
        ),
        _m(
            "system/deployment.py",
            "return dep.gain * jax.random.exponential(key, dep.gain.shape, dtype=dep.gain.dtype)",
            "return dep.gain * jnp.sqrt(jax.random.exponential(key, dep.gain.shape, dtype=dep.gain.dtype))",
            "amplitude for power: Rayleigh h = g sqrt(l) instead of g l, l ~ Exp(1)",
            [DEP, REF, PINS, ENV],
            later=True,
        ),
        _m(
            "system/deployment.py",
            "(cfg.n_max, cfg.m_max, 2)) * jnp.sqrt(0.5)",
            "(cfg.n_max, cfg.m_max, 2))",
            "a walk starts from non-stationary fading: parts N(0, 1) instead of N(0, 1/2)",
            [PINS, REF, DEP],
        ),
        _m(
            "system/deployment.py",
            "pos + d / jnp.maximum(dist, 1e-9) * step",
            "pos + d * step",
            "direction not normalised: a UE's step is proportional to its distance to the waypoint",
            [REF, DEP, PINS],
        ),
        _m(
            "system/deployment.py",
            "wp = jnp.where(arrive, new_wp, wp)",
            "wp = jnp.where(arrive, wp, new_wp)",
            "swapped branches: the waypoint is renewed on every step except on arrival",
            [REF, DEP, PINS],
            later=True,
        ),
        _m(
            "system/deployment.py",
            "fad = rho * st.fading + jnp.sqrt(1.0 - rho**2) * e",
            "fad = rho * st.fading + jnp.sqrt(1.0 - rho) * e",
            "Gauss-Markov innovation scaled by sqrt(1 - rho) instead of sqrt(1 - rho^2)",
            [REF, DEP, PINS],
        ),
        _m(
            "system/deployment.py",
            "x = 2 * math.pi * f_d * self.epoch_s",
            "x = math.pi * f_d * self.epoch_s",
            "Jakes' correlation without the 2: rho = J0(pi f_d T)",
            [DEP, REF, PINS],
        ),
        _m(
            "system/deployment.py",
            "gain=scn.beta0 / distances(scn) ** 2)",
            "gain=scn.beta0 / distances(st.dep.scn) ** 2)",
            "stale gains: a moved UE's g_ij computed from its previous position",
            [REF, DEP, PINS],
        ),
        _m(
            "system/deployment.py",
            "return st.dep.gain * jnp.sum(st.fading**2, axis=-1)",
            "return st.dep.gain * jnp.mean(st.fading**2, axis=-1)",
            "mean for sum: |l|^2 = (re^2 + im^2) / 2, half the channel power",
            [REF, DEP, PINS],
            later=True,
        ),
        _m(
            "system/deployment.py",
            "return nxt, (st.dep, mobile_channel(st))",
            "return nxt, (nxt.dep, mobile_channel(nxt))",
            "trajectory off by one epoch: the initial draw is skipped",
            [DEP, REF, PINS],
            later=True,
        ),
        _m(
            "system/deployment.py",
            "jnp.where(st.t >= cfg.episode, a, b)",
            "jnp.where(st.t > cfg.episode, a, b)",
            "episode boundary off by one: E + 1 epochs per mobile deployment",
            [REF, PINS, ENV, DEP],
        ),
    ],
    "any deployment: masked costs": [
        _m(
            "system/deployment.py",
            "upload = jnp.where(dep.mec_mask[None, :], c.per_option[:, 1:], PAD_COST)",
            "upload = c.per_option[:, 1:]",
            "dropped MEC mask in the costs: padded MECs become real options",
            ANY,
        ),
        _m(
            "system/deployment.py",
            "per = jnp.where(ue, jnp.concatenate([c.per_option[:, :1], upload], axis=1), 0.0)",
            "per = jnp.concatenate([c.per_option[:, :1], upload], axis=1)",
            "dropped UE mask in the costs: padded UEs add their local latency",
            ANY,
        ),
        _m(
            "system/deployment.py",
            "jnp.where(dep.ue_mask, c.sqrt_wf, 0.0)",
            "c.sqrt_wf",
            "dropped UE mask on the MEC load term sqrt(w F)",
            ANY,
        ),
        _m(
            "system/deployment.py",
            "on_real = dep.mec_mask[jnp.clip(a - 1, 0, dep.m_max - 1)]",
            "on_real = dep.mec_mask[jnp.clip(a, 0, dep.m_max - 1)]",
            "off-by-one option-to-MEC index in sanitize (option j is MEC j - 1)",
            ANY,
        ),
        _m(
            "system/deployment.py",
            "return masked_costs(p.dep, p.h) if p.dep.masked else option_costs(p.dep.scn, p.h)",
            "return option_costs(p.dep.scn, p.h)",
            "problem_costs ignores the masks of a padded deployment",
            ANY,
            later=True,
        ),
        _m(
            "system/deployment.py",
            "f_mec=s.f_mec[mec_idx],",
            "f_mec=s.f_mec[: mec_idx.size],",
            "unpad assumes the real MECs are a prefix (wrong F_MEC when the MEC mask has a gap)",
            [PINS, REF, DEP, EVAL],
        ),
    ],
    "any deployment: feature policy": [
        _m(
            "agent/feature_policy.py",
            "mean_log_loc = jnp.sum(jnp.where(um, jnp.log(loc), 0.0)) / n",
            "mean_log_loc = jnp.mean(jnp.log(loc))",
            "the UE feature's mean over all N_max UEs, padding included",
            ANY,
        ),
        _m(
            "agent/feature_policy.py",
            "sw = jnp.where(um, jnp.sqrt(scn.weights * scn.cycles), 0.0)",
            "sw = jnp.sqrt(scn.weights * scn.cycles)",
            "dropped UE mask: padded UEs' sqrt(w F) enter S and the expected load",
            ANY,
        ),
        _m(
            "agent/feature_policy.py",
            "m = jnp.maximum(jnp.sum(mm), 1)",
            "m = jnp.maximum(mm.shape[0], 1)",
            "the global feature log M uses the padded M_max instead of the real M",
            ANY,
            later=True,
        ),
        _m(
            "agent/feature_policy.py",
            "mec_ctx = _masked_mean(e, lm[..., None], axis=0)",
            "mec_ctx = jnp.mean(e, axis=0)",
            "dropped mask in the per-MEC context: padded UEs' embeddings pooled in",
            ANY,
        ),
        _m(
            "agent/feature_policy.py",
            "p = jax.nn.softmax(logits, axis=-1)[:, 1:]",
            "p = jax.nn.softmax(logits, axis=-1)[:, :-1]",
            "wrong slice: MEC j's expected load from the probability of option j - 1",
            ANY,
        ),
        _m(
            "agent/feature_policy.py",
            "return jnp.where(dep.ue_mask, a, 0)",
            "return a",
            "the policy's decision leaves padded UEs on the MEC of their argmax",
            ANY,
        ),
        _m(
            "agent/feature_policy.py",
            "ce = -jnp.sum(picked * w) / jnp.maximum(jnp.sum(w), 1.0)",
            "ce = -jnp.sum(picked * w) / jnp.maximum(jnp.sum(deps.ue_mask), 1.0)",
            "eq. 25 summed over the passes instead of averaged (divided by the real UEs alone)",
            ANY,
        ),
        _m(
            "agent/feature_policy.py",
            "w = jnp.broadcast_to(deps.ue_mask[:, None, :], picked.shape).astype(picked.dtype)",
            "w = jnp.ones_like(picked)",
            "dropped UE mask in the loss: padded UEs' labels are learned",
            ANY,
            later=True,
        ),
    ],
    "any deployment: asa": [
        _m(
            "search/asa.py",
            "hm = jnp.where(link_mask(dep), h, 0.0)",
            "hm = h",
            "dropped link mask in the h-mutation shares: padded MECs proposed",
            ANY,
        ),
        _m(
            "search/asa.py",
            "m_real = jnp.maximum(jnp.sum(dep.mec_mask), 1).astype(h.dtype)",
            "m_real = jnp.asarray(h.shape[1], h.dtype)",
            "the local option's weight uses M_max instead of the real M",
            ANY,
        ),
        _m(
            "search/asa.py",
            "return jnp.where(dep.ue_mask[:, None], q, local_only)",
            "return q",
            "padded UEs keep a mutation distribution (they may be moved)",
            ANY,
        ),
        _m(
            "search/asa.py",
            "n_real = jnp.maximum(jnp.sum(p.dep.ue_mask), 1).astype(jnp.float32)",
            "n_real = jnp.float32(p.dep.n_max)",
            "the moves cap divides by the padded N_max instead of the real N",
            [PINS, REF, DEP],
        ),
        _m(
            "search/asa.py",
            "params = params.replace(mut_scale=jnp.minimum(params.mut_scale, moves / n_real))",
            "params = params.replace(mut_scale=jnp.maximum(params.mut_scale, moves / n_real))",
            "the moves cap is a floor (maximum for minimum)",
            [PINS, REF, DEP],
            later=True,
        ),
    ],
    "any deployment: baselines": [
        _m(
            "search/baselines.py",
            "g = jnp.where(x.mec_mask[None, :], x.gain, -jnp.inf)",
            "g = x.gain",
            "masked Greedy may pick a padded MEC as the nearest",
            [REF, PINS, DEP, ENV],
        ),
        _m(
            "search/baselines.py",
            "a = jnp.where(x.ue_mask, jnp.argmax(g, axis=1).astype(jnp.int32) + 1, 0)",
            "a = jnp.argmax(g, axis=1).astype(jnp.int32) + 1",
            "padded UEs enter Greedy's capacity rule and push real UEs home",
            [REF, PINS, DEP, ENV],
        ),
        _m(
            "search/baselines.py",
            "real = jnp.concatenate([jnp.ones((1,), bool), x.mec_mask])",
            "real = jnp.concatenate([jnp.zeros((1,), bool), x.mec_mask])",
            "masked Random never draws the local option",
            [PINS, REF, DEP, ENV],
        ),
    ],
    "any deployment: certify": [
        _m(
            "system/certify.py",
            "pos[self.mec_idx + 1] = np.arange(1, self.mec_idx.size + 1)",
            "pos[self.mec_idx + 1] = np.arange(self.mec_idx.size)",
            "off-by-one remapping of padded MEC options to the real sub-problem's",
            [PINS, EVAL, DEP],
        ),
        _m(
            "system/certify.py",
            "one = dep if shared else jax.tree.map(lambda x, d=d: x[d], dep)",
            "one = dep if shared else jax.tree.map(lambda x, d=d: x[0], dep)",
            "wrong index: every problem of a batch scored on the first deployment",
            [PINS, EVAL, DEP],
        ),
        _m(
            "system/certify.py",
            "scn, h = unpad(one, H[d])",
            "scn, h = unpad(one, H[0])",
            "wrong index: every padded problem scored on the first channel",
            [PINS, EVAL, DEP],
        ),
    ],
    "any deployment: scheduler": [
        _m(
            "run/scheduler.py",
            "return jax.vmap(one, (0 if dep.gain.ndim == 3 else None, 0))(dep, h)",
            "return jax.vmap(one, (None, 0))(dep, h)",
            "a batch of deployments is not vmapped with its channels",
            [DEP, FAULTS, PINS],
        ),
        _m(
            "run/scheduler.py",
            "if vlo < lo * (1 - 1e-6) or vhi > hi * (1 + 1e-6):",
            "if vlo < lo * (1 - 1e-6) and vhi > hi * (1 + 1e-6):",
            "and for or: the training-range warning only when both ends are outside",
            [PINS, FAULTS, DEP],
        ),
        _m(
            "run/scheduler.py",
            'if t is None or t.kind == "fixed":',
            "if t is None:",
            "a policy trained on one fixed deployment warns against the default random ranges",
            [PINS, FAULTS, DEP],
        ),
        _m(
            "run/scheduler.py",
            "batch = dep.gain.shape[0] if dep.gain.ndim == 3 else None",
            "batch = None",
            "a batch of deployments is not checked against the channels' batch",
            [FAULTS, DEP, PINS],
        ),
        _m(
            "run/scheduler.py",
            "polish = POLISH_ANY if polish is None else polish",
            "polish = POLISH_ANY",
            "load_run ignores the polish a user asks for (a policy for any deployment)",
            [DEP, FAULTS, PINS],
            later=True,
        ),
        _m(
            "run/scheduler.py",
            "k=128, max_iter=refine, moves=5.0",
            "k=128, max_iter=refine, moves=0.0",
            "the refinement's ASA without its moves cap (mutation scale 0.1 at any N)",
            [DEP, FAULTS, PINS],
        ),
    ],
    "run directory: rundir": [
        _m(
            "run/rundir.py",
            "    if not _finite(model):\n        raise ConfigError(\n"
            '            f"{path} has NaN or infinite parameters (a diverged run?): it cannot decide"\n'
            "        )\n",
            "    if not _finite(model):\n        pass\n",
            "check removed: a model with NaN parameters loads",
            [FAULTS, RFAULTS, DEP],
        ),
        _m(
            "run/rundir.py",
            "return all(np.all(np.isfinite(x)) for x in leaves",
            "return all(np.any(np.isfinite(x)) for x in leaves",
            "any for all: a parameter array with some NaN entries counts as finite",
            [FAULTS, RFAULTS, DEP],
        ),
        _m(
            "run/rundir.py",
            'if "general" in cfg and "train" not in cfg:',
            'if "general" in cfg and "train" in cfg:',
            "an ojrs-train-any run of before is never recognised (no legacy conversion)",
            [FAULTS, RFAULTS, DEP],
        ),
        _m(
            "run/rundir.py",
            'train[new.split(".", 1)[1]] = value',
            'train[new.split(".", 1)[0]] = value',
            "wrong index in the legacy conversion: settings stored under the group's name",
            [FAULTS, RFAULTS, DEP],
            later=True,
        ),
        _m(
            "run/rundir.py",
            "        if (pid := _busy(fd, fcntl.LOCK_SH)) is not None:\n            raise ConfigError(\n"
            '                f"run directory {run_dir} is being written by another process{pid}; its files "\n'
            '                "may not belong together yet (read it when that process has ended)"\n'
            "            )\n",
            "        if (pid := _busy(fd, fcntl.LOCK_SH)) is not None:\n            pass\n",
            "check removed: a run directory being written is read",
            [FAULTS, RFAULTS, DEP],
        ),
        _m(
            "run/rundir.py",
            "if (pid := _busy(fd, fcntl.LOCK_EX)) is not None:",
            "if (pid := _busy(fd, fcntl.LOCK_SH)) is not None:",
            "a writer takes a shared lock: two writers may hold one run directory",
            [FAULTS, RFAULTS, DEP],
            later=True,
        ),
        _m(
            "run/rundir.py",
            'if part == "encoder" and train_cfg.any_deployment:',
            'if part == "encoder":',
            "the encoder's parameters are never checked against the configuration",
            [RFAULTS, FAULTS, DEP],
        ),
        _m(
            "run/rundir.py",
            "if not isinstance(policy, dict) or not _finite(policy):",
            "if not isinstance(policy, dict):",
            "train.init_from accepts a policy with NaN parameters",
            [FAULTS, RFAULTS, DEP],
        ),
        _m(
            "run/rundir.py",
            'need = [model_file, *(["scenario.json"] if fixed else [])]',
            "need = [model_file]",
            "a fixed run without scenario.json is not reported as unfinished",
            [RFAULTS, FAULTS, DEP],
            later=True,
        ),
    ],
    "run directory: inputs": [
        _m(
            "run/inputs.py",
            "if np.any(np.abs(a) > F32.max):",
            "if np.any(a > F32.max):",
            "dropped abs: a value below -3.4e38 passes the float32 range check",
            [PINS, FAULTS, DEP],
        ),
        _m(
            "run/inputs.py",
            "        if np.any(a < F32.tiny):\n            raise ConfigError(\n"
            '                f"{name} has values below float32\'s smallest normal number ({F32.tiny:.3g})"\n'
            "            )\n",
            "        if np.any(a < F32.tiny):\n            pass\n",
            "check removed: positive values that underflow float32 pass",
            [FAULTS, PINS, DEP],
        ),
        _m(
            "run/inputs.py",
            "sys.beta0 / np.maximum(d, 1.0) ** 2",
            "sys.beta0 / d**2",
            "the 1 m floor of eq. 1 dropped for given positions",
            [PINS, FAULTS, DEP],
        ),
        _m(
            "run/inputs.py",
            "    if not stat.S_ISREG(st.st_mode):\n"
            '        raise ConfigError(f"{what} {str(path)!r} is not a regular file")\n',
            "    if not stat.S_ISREG(st.st_mode):\n        pass\n",
            "check removed: a device, pipe or directory is opened as an input file",
            [FAULTS, PINS, DEP],
        ),
        _m(
            "run/inputs.py",
            "    if unknown:\n"
            '        raise ConfigError(f"deployment file has unknown field {unknown[0]!r}")\n',
            "    if unknown:\n        pass\n",
            "check removed: unknown deployment fields are ignored silently",
            [FAULTS, PINS, DEP],
            later=True,
        ),
        _m(
            "run/inputs.py",
            "        if a.shape[-1] != size:\n"
            '            what = "N" if size == n else "M"\n'
            '            raise ConfigError(f"{name} must have length {what} = {size}, got shape {a.shape}")\n',
            "        if a.shape[-1] != size:\n            pass\n",
            "check removed: a length-1 field is broadcast over every UE/MEC",
            [FAULTS, PINS, DEP],
        ),
        _m(
            "run/inputs.py",
            "if batch is not None and (h.ndim != 3 or h.shape[0] != batch):",
            "if batch is not None and h.ndim != 3:",
            "the channels' batch size is not compared with the deployments'",
            [FAULTS, PINS, DEP],
        ),
        _m(
            "run/inputs.py",
            'g = real_array("gain", gain, (2, 3), positive=True)',
            'g = real_array("gain", gain, (2, 3))',
            "zero or negative large-scale gains accepted",
            [FAULTS, PINS, DEP],
            later=True,
        ),
    ],
    "run directory: train and cli": [
        _m(
            "run/train.py",
            'RUN_FILES = ("config.yaml", "checkpoint/state.msgpack", "model.msgpack", "summary.json")',
            'RUN_FILES = ("model.msgpack", "summary.json")',
            "only a finished run is refused: a killed run is started again over its files",
            [PINS, FAULTS, RFAULTS],
        ),
        _m(
            "run/train.py",
            "if at is None or at < total:",
            "if at is None or at <= total:",
            "off-by-one: a finished run is never recognised on resume (trained again)",
            [FAULTS, RFAULTS, PINS],
            later=True,
        ),
        _m(
            "run/loop.py",
            "finite = _finite((new_state.policy, new_state.sae))",
            "finite = _finite(new_state.sae)",
            "divergence check forgets the policy's parameters",
            [PINS, FAULTS],
        ),
        _m(
            "cli/train.py",
            '        print(f"error: {e}", file=sys.stderr)\n        sys.exit(3)',
            '        print(f"error: {e}", file=sys.stderr)\n        sys.exit(2)',
            "a diverged run exits 2 (bad input) instead of 3",
            [FAULTS],
        ),
        _m(
            "cli/decide.py",
            "        if path is not None and _same_file(args.out, path):\n"
            '            raise ConfigError(f"--out {str(args.out)!r} is the {flag} file; write elsewhere")\n',
            "        if path is not None and _same_file(args.out, path):\n            pass\n",
            "check removed: --out may overwrite the channels or deployment file",
            [FAULTS, PINS, RFAULTS],
            later=True,
        ),
        _m(
            "cli/decide.py",
            "args.run.resolve() in args.out.resolve().parents",
            "args.run in args.out.parents",
            "unresolved paths: a relative or dotted --out into the run directory passes",
            [PINS, FAULTS, RFAULTS],
        ),
        _m(
            "cli/decide.py",
            'if not np.all(np.isfinite(out["latency"])):',
            'if not np.any(np.isfinite(out["latency"])):',
            "any for all: a batch with some non-finite latencies is written",
            [PINS, FAULTS, RFAULTS],
        ),
    ],
}


def _round_robin(areas: dict[str, list[dict]]) -> list[dict]:
    queues = {a: list(ms) for a, ms in areas.items()}
    order = []
    while any(queues.values()):
        for a, q in queues.items():
            if q:
                order.append({"area": a, **q.pop(0)})
    return order


def _tier(later: bool) -> dict[str, list[dict]]:
    return {a: [m for m in ms if m["later"] == later] for a, ms in _AREAS.items()}


# the second tier (`later`: more of a kind already in the first) runs after the whole first
MUTANTS = [
    {"id": f"A{i:02d}", **{k: v for k, v in m.items() if k != "later"}}
    for i, m in enumerate(_round_robin(_tier(False)) + _round_robin(_tier(True)), 1)
]


# --- helpers ------------------------------------------------------------------------------------


def git(*args: str, cwd: Path = MAIN, check: bool = True) -> str:
    p = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True)
    if check and p.returncode != 0:
        raise SystemExit(f"git {' '.join(args)} failed: {p.stderr.strip()}")
    return p.stdout.strip()


def bench_running() -> list[int]:
    """PIDs of running `ojrs-bench` processes (not this process nor its ancestors)."""
    mine, pid = set(), os.getpid()
    while pid > 1:
        mine.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) in mine:
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "ojrs-bench" in cmd:
            found.append(int(d.name))
    return found


def wait_for_bench() -> float:
    """Sleep while an `ojrs-bench` process runs; the seconds waited."""
    t0 = time.time()
    said = False
    while bench_running():
        if not said:
            print("  waiting: an ojrs-bench process is running", flush=True)
            said = True
        time.sleep(30)
    return time.time() - t0


def env() -> dict[str, str]:
    e = dict(os.environ)
    for k in ("PYTEST_ADDOPTS", "PYTHONHOME", "PYTHONSTARTUP"):
        e.pop(k, None)
    e["PYTHONPATH"] = str(WORKTREE / "src")
    e["PYTHONDONTWRITEBYTECODE"] = "1"  # no stale bytecode of a mutated file, ever
    e["OJRS_CACHE_DIR"] = str(CACHE)
    return e


def setup_worktree(commit: str) -> None:
    if not (WORKTREE / ".git").exists():
        git("worktree", "add", "--detach", str(WORKTREE), commit)
    git("checkout", "--", ".", cwd=WORKTREE)
    if git("rev-parse", "HEAD", cwd=WORKTREE) != commit:
        git("checkout", "--detach", commit, cwd=WORKTREE)
    for d in list((WORKTREE / "src").rglob("__pycache__")) + list(
        (WORKTREE / "tests").rglob("__pycache__")
    ):
        shutil.rmtree(d, ignore_errors=True)


def check_import() -> str:
    """Where `ojrs_jax` comes from with PYTHONPATH set, in the process and in a subprocess
    (as the tests' `python -m ojrs_jax.cli...`); stops unless both are the worktree's."""
    code = (
        "import subprocess, sys, ojrs_jax, ojrs_jax.cli.decide as d; print(ojrs_jax.__file__); "
        "print(d.__file__); print(subprocess.run([sys.executable, '-c', "
        "'import ojrs_jax.run.rundir as r; print(r.__file__)'], capture_output=True, "
        "text=True).stdout.strip())"
    )
    p = subprocess.run(
        [str(PYTHON), "-c", code], cwd=WORKTREE, env=env(), capture_output=True, text=True
    )
    paths = p.stdout.split()
    want = str(WORKTREE / "src") + os.sep
    if p.returncode != 0 or len(paths) != 3 or not all(x.startswith(want) for x in paths):
        raise SystemExit(
            f"ojrs_jax is not imported from {want} with PYTHONPATH set (got {paths}, "
            f"{p.stderr.strip()[-500:]}): the editable install shadows the worktree"
        )
    return paths[0]


def validate(mutants: list[dict], read) -> None:
    ids = [m["id"] for m in mutants]
    assert len(set(ids)) == len(ids), "duplicate ids"
    for m in mutants:
        text = read(m["file"])
        n = text.count(m["original"])
        if n != 1:
            raise SystemExit(f"{m['id']}: the original snippet occurs {n} times in {m['file']}")
        if m["original"] == m["replacement"]:
            raise SystemExit(f"{m['id']}: replacement equals the original")
        for t in m["tests"]:
            if not (MAIN / t).is_file():
                raise SystemExit(f"{m['id']}: no test file {t}")


def session_rss(sid: int) -> int:
    """Bytes resident in the processes of session `sid` (the test run and its subprocesses)."""
    total = 0
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            rest = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(rest[3]) == sid:  # field 6, session
            total += int(rest[21]) * PAGE  # field 24, rss (pages)
    return total


def run_pytest(tests: list[str], extra: list[str] = ()) -> dict:
    """Run pytest on `tests` in the worktree: rc, seconds, output, timed_out, over_memory
    (the session passed MEM_LIMIT and was killed)."""
    cmd = [str(PYTHON), *PYTEST, *extra, *tests]
    t0 = time.time()
    with tempfile.TemporaryFile("w+") as out:
        p = subprocess.Popen(
            cmd,
            cwd=WORKTREE,
            env=env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            text=True,
        )
        timed_out = over_memory = False
        try:
            while (rc := p.poll()) is None:
                if time.time() - t0 > TIMEOUT:
                    timed_out = True
                elif session_rss(p.pid) > MEM_LIMIT:
                    over_memory = True
                if timed_out or over_memory:
                    os.killpg(p.pid, signal.SIGKILL)
                    rc = p.wait()
                    break
                time.sleep(1.0)
        except BaseException:  # Ctrl-C or SIGTERM of this script: no orphaned test session
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            raise
        finally:
            try:  # whatever the tests left running in their session
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        out.seek(0)
        text = out.read()
    return {
        "rc": rc,
        "seconds": round(time.time() - t0, 1),
        "output": text,
        "timed_out": timed_out,
        "over_memory": over_memory,
    }


def first_failure(output: str) -> str | None:
    for line in output.splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            return line.strip()[:400]
    return None


def summary_line(output: str) -> str:
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    hits = [ln for ln in lines if re.search(r"\b(passed|failed|error|errors)\b.* in ", ln)]
    return (hits[-1] if hits else (lines[-1] if lines else ""))[:300]


def durations_by_file(output: str) -> dict[str, float]:
    per: dict[str, float] = {}
    for m in re.finditer(r"^([\d.]+)s (?:call|setup|teardown)\s+(tests/[^:\s]+)", output, re.M):
        per[m.group(2)] = round(per.get(m.group(2), 0.0) + float(m.group(1)), 1)
    return per


def write_json(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(record, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def totals(results: list[dict]) -> dict:
    n = len(results)
    count = {s: sum(r["status"] == s for r in results) for s in ("killed", "survived", "timeout")}
    return {
        "mutants": n,
        **count,
        "kill_rate": round(count["killed"] / n, 4) if n else None,
        "seconds": round(sum(r["seconds"] for r in results), 1),
    }


def run_baseline(files: list[str], waited: float, record: dict, out: Path) -> None:
    """The unmutated worktree on `files`; stops the script unless every test passes."""
    base = run_pytest(files, ["--durations=0"])
    record["baseline"] = {
        "tests": files,
        "rc": base["rc"],
        "seconds": base["seconds"],
        "waited_for_bench_s": round(waited, 1),
        "summary": summary_line(base["output"]),
        "seconds_by_file": durations_by_file(base["output"]),
    }
    print(f"  rc {base['rc']} in {base['seconds']} s", flush=True)
    if base["rc"] != 0 or base["timed_out"] or base["over_memory"]:
        write_json(out, record)
        print(base["output"][-3000:])
        raise SystemExit(
            "the unmutated worktree fails the selected tests: fix that first "
            f"(first failure: {first_failure(base['output'])})"
        )


def not_run(chosen: list[dict], results: list[dict]) -> list[str]:
    done = {r["id"] for r in results}
    return [m["id"] for m in chosen if m["id"] not in done]


def record_date() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def run_mutants(
    chosen: list[dict],
    to_run: list[dict],
    results: list[dict],
    record: dict,
    out: Path,
    t_start: float,
) -> None:
    """Apply, test and revert each mutant of `to_run` in turn; `results` and the record grow as
    they run (`chosen`: every selected mutant, for the list of those not run yet)."""
    for m in to_run:
        waited = wait_for_bench()
        git("checkout", "--", ".", cwd=WORKTREE)
        path = WORKTREE / "src" / "ojrs_jax" / m["file"]
        text = path.read_text()
        assert text.count(m["original"]) == 1, m["id"]
        path.write_text(text.replace(m["original"], m["replacement"]))
        print(f"{m['id']} {m['file']}: {m['description']} ...", flush=True)
        r = run_pytest(m["tests"])
        git("checkout", "--", ".", cwd=WORKTREE)
        why = None
        if r["timed_out"]:
            status = "timeout"
        elif r["over_memory"]:  # the tests would have exhausted the machine: not a pass
            status = "killed"
            why = f"the test session passed {MEM_LIMIT / 2**30:.0f} GiB of memory (killed)"
        elif r["rc"] == 0:
            status = "survived"
        elif r["rc"] in (1, 2, 3):  # failed, interrupted/collection error, internal error
            status = "killed"
        elif r["rc"] < 0:  # the test process died of a signal (e.g. the kernel's OOM killer)
            status = "killed"
            why = f"the test process died of signal {-r['rc']}"
        else:  # 4 usage error, 5 no tests: the script's fault, not a verdict
            raise SystemExit(f"{m['id']}: pytest exited {r['rc']}\n{r['output'][-2000:]}")
        results.append(
            {
                **m,
                "status": status,
                "killed_by": why
                or first_failure(r["output"])
                or (summary_line(r["output"]) if status == "killed" else None),
                "summary": summary_line(r["output"]),
                "rc": r["rc"],
                "seconds": r["seconds"],
                **({"waited_for_bench_s": round(waited, 1)} if waited > 1 else {}),
            }
        )
        record["totals"] = totals(results)
        record["survivors"] = [x["id"] for x in results if x["status"] == "survived"]
        record["not_run"] = not_run(chosen, results)
        record["wall_seconds"] = round(time.time() - t_start, 1)
        write_json(out, record)
        print(f"  {status} in {r['seconds']} s: {results[-1]['killed_by'] or ''}", flush=True)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


# --- main ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="+", metavar="ID", help="run these mutants only")
    ap.add_argument("--out", type=Path, default=MAIN / "tests" / "mutation_any.json")
    ap.add_argument("--check", action="store_true", help="validate the mutants and stop")
    ap.add_argument(
        "--resume",
        action="store_true",
        help="continue the record at --out (same commit): keep its results, run the rest",
    )
    ap.add_argument("--commit", default="HEAD", help="the commit to mutate (default HEAD)")
    args = ap.parse_args(argv)
    # SIGTERM (e.g. `kill PID`) as Ctrl-C: the test session is ended and the worktree removed
    signal.signal(signal.SIGTERM, _interrupt)

    commit = git("rev-parse", args.commit)
    chosen = MUTANTS
    if args.only:
        unknown = sorted(set(args.only) - {m["id"] for m in MUTANTS})
        if unknown:
            raise SystemExit(f"unknown mutant ids: {', '.join(unknown)}")
        chosen = [m for m in MUTANTS if m["id"] in set(args.only)]
    validate(chosen, lambda f: git("show", f"{commit}:src/ojrs_jax/{f}"))
    print(f"{len(chosen)} mutants validated against {commit[:10]}", flush=True)
    if args.check:
        return 0

    out = args.out if args.out.is_absolute() else Path.cwd() / args.out
    t_start = time.time()
    record: dict = {
        "date": record_date(),
        "commit": commit,
        "command": "python tests/mutation_any.py"
        + (f" --only {' '.join(args.only)}" if args.only else ""),
        "pytest": f"PYTHONPATH={WORKTREE}/src {PYTHON} {' '.join(PYTEST)} <tests> "
        f"(cwd {WORKTREE}, timeout {TIMEOUT} s, memory {MEM_LIMIT // 2**30} GiB, "
        f"OJRS_CACHE_DIR={CACHE})",
        "complete": False,
    }
    results: list[dict] = []
    if args.resume and out.exists():
        old = json.loads(out.read_text())
        if old.get("commit") != commit:
            raise SystemExit(f"--resume: {out} records commit {old.get('commit')}, not {commit}")
        wanted = {m["id"] for m in chosen}
        results = [r for r in old.get("mutants", []) if r["id"] in wanted]
        t_start -= old.get("wall_seconds", 0.0)  # the wall time of the earlier runs counts
        record = {**old, "complete": False}
        record.setdefault("resumed", []).append(record_date())
        print(f"resuming: {len(results)} of {len(chosen)} mutants recorded", flush=True)
    done = {r["id"] for r in results}
    to_run = [m for m in chosen if m["id"] not in done]
    try:
        setup_worktree(commit)
        record["imported_from"] = check_import()
        files = sorted({t for m in to_run for t in m["tests"]})
        base = record.get("baseline") or {}
        waited = wait_for_bench()
        if results and base.get("rc") == 0 and set(files) <= set(base.get("tests", [])):
            print("baseline: passed at the start of this record (same commit)", flush=True)
        else:
            print(f"baseline: unmutated worktree on {len(files)} test files ...", flush=True)
            run_baseline(files, waited, record, out)
        record["mutants"] = results
        try:
            run_mutants(chosen, to_run, results, record, out, t_start)
        except KeyboardInterrupt:  # the record keeps the finished mutants and names the rest
            record["not_run"] = not_run(chosen, results)
            record["stopped"] = f"interrupted after {len(results)} of {len(chosen)} mutants"
            record["wall_seconds"] = round(time.time() - t_start, 1)
            write_json(out, record)
            print(f"stopped: {record['stopped']}; record {out}", flush=True)
            return 130
        record["complete"] = True
        record.pop("stopped", None)
        record["totals"] = totals(results)
        record["survivors"] = [r["id"] for r in results if r["status"] == "survived"]
        record["not_run"] = []
        record["wall_seconds"] = round(time.time() - t_start, 1)
        record["finished"] = record_date()
        write_json(out, record)
        t = record["totals"]
        print(
            f"{t['mutants']} mutants: {t['killed']} killed, {t['survived']} survived, "
            f"{t['timeout']} timeout; kill rate {t['kill_rate']}; "
            f"wall {record['wall_seconds']} s; record {out}"
        )
        return 0
    finally:
        if (WORKTREE / ".git").exists():
            git("worktree", "remove", "--force", str(WORKTREE), check=False)


if __name__ == "__main__":
    sys.exit(main())
