"""The ecosystem's conventions: per-command --help, launcher hints, progress settings, the
TensorBoard extra, and the warning when JAX's backend started before `import ojrs_jax`."""

from __future__ import annotations

import importlib
import importlib.util
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

import ojrs_jax
from ojrs_jax.app.compose import compose_config
from ojrs_jax.app.hydra import hydra_error_line
from ojrs_jax.core.progress import progress_enabled, summary_line
from ojrs_jax.core.settings import ConfigError
from ojrs_jax.run.tracking import INSTALL, tensorboard_setting

CONF = Path(ojrs_jax.__file__).parent / "conf"
if not CONF.is_dir():  # editable install: conf/ lives at the repository root
    CONF = Path(__file__).resolve().parents[1] / "conf"
IN_PROCESS = ["hydra/job_logging=none", "hydra/hydra_logging=none"]
# (CLI module, its config, command name)
COMMANDS = [
    ("train", "train", "ojrs-train"),
    ("baselines", "baselines", "ojrs-baselines"),
    ("fig7", "fig7", "ojrs-fig7"),
    ("sae", "sae_train", "ojrs-sae"),
    ("reproduce", "reproduce", "ojrs-reproduce"),
    ("train_any", "train_any", "ojrs-train-any"),
]


def run_main(module: str, argv: list[str], monkeypatch, capsys) -> tuple[int, str, str]:
    main = importlib.import_module(f"ojrs_jax.cli.{module}").main
    monkeypatch.setattr(sys, "argv", [module, *argv])
    with pytest.raises(SystemExit) as exc:
        main()
    out = capsys.readouterr()
    return exc.value.code or 0, out.out, out.err


def config_groups(config: str) -> dict[str, tuple[str, list[str]]]:
    """group -> (default option, every option) from the defaults list of conf/<config>.yaml
    (an entry naming another config of conf/ includes its groups; `override g: o` changes
    the default of an included group)."""
    groups = {}
    for entry in yaml.safe_load((CONF / f"{config}.yaml").read_text())["defaults"]:
        if isinstance(entry, str) and (CONF / f"{entry}.yaml").is_file():
            groups.update(config_groups(entry))
        elif isinstance(entry, dict):
            ((group, default),) = entry.items()
            if group.startswith("override "):
                group = group.removeprefix("override ")
                if group in groups:
                    groups[group] = (default, groups[group][1])
            else:
                options = sorted(p.stem for p in (CONF / group).glob("*.yaml"))
                groups[group] = (default, options)
    return groups


@pytest.mark.parametrize("module,config,command", COMMANDS)
def test_help_names_the_command_its_groups_and_valid_examples(
    module, config, command, monkeypatch, capsys
):
    code, out, _ = run_main(module, ["--help", *IN_PROCESS], monkeypatch, capsys)
    assert code == 0
    assert out.startswith(f"{command}: ")
    listed = {
        m.group(1): (m.group(2), m.group(3).split(", "))
        for m in re.finditer(r"^  (\S+) \(default (\S+)\): (.+)$", out, re.M)
    }
    want = config_groups(config)
    if module == "reproduce":  # the sweeps' launchers: Hydra's basic one and conf's presets
        presets = sorted(p.stem for p in (CONF / "hydra" / "launcher").glob("*.yaml"))
        want["hydra/launcher"] = ("basic", presets)
    assert listed == want
    examples = re.findall(rf"^  ({re.escape(command)}\b.*?)(?:\s+#.*)?$", out, re.M)
    assert len(examples) == 2
    for ex in examples:  # each example composes (Hydra's own settings and -m left aside)
        overrides = [a for a in ex.split()[1:] if a != "-m" and not a.startswith("hydra")]
        compose_config(overrides, config)


def test_missing_launcher_plugin_names_the_extra(monkeypatch, capsys):
    # (preset of conf/hydra/launcher, its plugin, the plugin's config it loads, the extra)
    cases = [
        ("ray_local", "hydra_ray_launcher", "ray", "ray"),
        ("local_submitit", "hydra_submitit_launcher", "submitit_local", "submitit"),
    ]
    for preset, plugin, option, extra in cases:
        if importlib.util.find_spec(f"hydra_plugins.{plugin}") is not None:
            continue  # installed here: nothing is missing
        argv = ["-m", f"hydra/launcher={preset}", *IN_PROCESS]
        code, _, err = run_main("fig7", argv, monkeypatch, capsys)
        assert code == 2
        assert err.strip().splitlines() == [
            f"error: launcher {option!r} needs its Hydra plugin, which is not installed: "
            f'pip install "ojrs-jax[{extra}]"'
        ]


def test_hydra_keys_keep_the_plus_hint(monkeypatch, capsys, tmp_path):
    argv = ["hydra.launcher.foo=1", *IN_PROCESS, f"hydra.run.dir={tmp_path}"]
    code, _, err = run_main("fig7", argv, monkeypatch, capsys)
    assert code == 2
    assert err.strip().splitlines() == [
        "error: unknown setting 'hydra.launcher.foo' (to add it, use +hydra.launcher.foo=1)"
    ]


def test_hydra_error_line_hints_on_a_plugin_config_only():
    from hydra.errors import MissingConfigException

    e = MissingConfigException("Could not load 'hydra/launcher/joblib'.", "hydra/launcher/joblib")
    assert hydra_error_line(e).endswith('pip install "ojrs-jax[joblib]"')
    e = MissingConfigException("no", "scale/nope", options=["tiny"])
    assert hydra_error_line(e) == "no option 'nope' in config group 'scale' (available: tiny)"


def test_progress_setting(monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    monkeypatch.delenv("OJRS_PROGRESS", raising=False)
    assert progress_enabled()
    monkeypatch.setenv("OJRS_PROGRESS", "0")
    assert not progress_enabled() and progress_enabled(force=True)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    monkeypatch.setenv("OJRS_PROGRESS", "1")
    assert progress_enabled()
    monkeypatch.delenv("OJRS_PROGRESS")
    assert not progress_enabled()
    assert summary_line({"NRR": 0.998765, "skip": None, "epochs": 3}) == "NRR 0.9988, epochs 3"


# (CLI module, a value of the right type that the command's own checks refuse, the message)
REFUSED = [
    ("train", "train.distill=-1", "train.distill must be an integer >= 0, got -1"),
    ("train_any", "train.rounds=0", "train.rounds must be a positive integer, got 0"),
    ("baselines", "methods=[greedy,magic]", "unknown method 'magic'"),
    ("fig7", "draws=0", "draws must be a positive integer, got 0"),
    ("sae", "sae.steps=-1", "sae.steps must be a positive integer, got -1"),
    # refused by the job after its first log line
    ("reproduce", "train.epochs=-5", "must be a multiple of train.phi (10) and divide"),
]


@pytest.mark.parametrize("module,override,message", REFUSED)
def test_a_refused_start_writes_nothing(module, override, message, tmp_path):
    """Hydra makes the run directory and its log before the task's checks run; a start refused
    by them leaves no directory (nor Hydra's record, nor the log) behind, and a directory that
    was there (a finished run's) keeps its record as it was (tests/test_any_faults.py)."""
    d = tmp_path / "run"
    argv = [override, f"hydra.run.dir={d}"]
    if module == "reproduce":
        argv = ["experiment=table3_m2", *argv]
    p = subprocess.run(
        [sys.executable, "-m", f"ojrs_jax.cli.{module}", *argv],
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and lines[-1].startswith("error: ") and message in lines[-1], p.stderr
    assert not d.exists(), sorted(str(f.relative_to(d)) for f in d.rglob("*"))


def test_a_failed_start_removes_only_a_directory_it_wrote_nothing_into(tmp_path):
    """A directory holding Hydra's record, the lock file and the log alone is removed; one file
    more (here config.yaml, written by a run that started) keeps every file where it was."""
    from ojrs_jax.app.hydra import _discard_if_untouched

    def make(d: Path, *extra: str) -> Path:
        (d / ".hydra").mkdir(parents=True)
        for name in (".hydra/config.yaml", ".hydra/overrides.yaml", ".lock", "train.log", *extra):
            (d / name).write_text("x")
        return d

    _discard_if_untouched(make(tmp_path / "refused"))
    assert not (tmp_path / "refused").exists()
    kept = make(tmp_path / "started", "config.yaml")
    (kept / "checkpoint").mkdir()
    before = sorted(str(f.relative_to(kept)) for f in kept.rglob("*"))
    _discard_if_untouched(kept)
    assert sorted(str(f.relative_to(kept)) for f in kept.rglob("*")) == before
    only_dir = make(tmp_path / "with_a_folder")
    (only_dir / "tensorboard").mkdir()
    _discard_if_untouched(only_dir)
    assert (only_dir / ".hydra" / "overrides.yaml").exists() and (only_dir / "tensorboard").is_dir()


def test_tensorboard_without_the_extra_is_one_error_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # import fails as if not installed
    with pytest.raises(ConfigError, match=re.escape(INSTALL)):
        tensorboard_setting(True)
    assert tensorboard_setting(False) is False
    with pytest.raises(ConfigError, match="must be true or false"):
        tensorboard_setting("yes")
    argv = ["scale=tiny", "tensorboard=true", *IN_PROCESS, f"hydra.run.dir={tmp_path}"]
    code, out, err = run_main("train", argv, monkeypatch, capsys)
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        "error: tensorboard=true needs the tensorboardX package, which is not installed: "
        'pip install "ojrs-jax[tracking]"'
    ]
    assert list(tmp_path.iterdir()) == []  # nothing written, not even Hydra's record


def _python(code: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in __import__("os").environ.items() if k != "XLA_FLAGS"}
    env.pop("OJRS_KEEP_XLA_FLAGS", None)
    return subprocess.run(
        [sys.executable, "-W", "default", "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


# jaxlib 0.10.2 is the version with the miscompile; the pinned install has 0.10.1, so the
# subprocesses report 0.10.2 to reach the warning's branch.
AS_AFFECTED = "import jaxlib.version; jaxlib.version.__version__ = '0.10.2'\n"


def test_warning_when_the_backend_started_before_import():
    p = _python(
        "import jax.numpy as jnp\nfloat(jnp.ones(3).sum())  # starts the backend\n"
        + AS_AFFECTED
        + "import ojrs_jax\n"
    )
    assert p.returncode == 0, p.stderr
    assert "RuntimeWarning: JAX had started its backend before `import ojrs_jax`" in p.stderr
    assert "jaxlib 0.10.2's CPU miscompile" in p.stderr


def test_no_warning_when_imported_first():
    p = _python(
        AS_AFFECTED + "import ojrs_jax\nimport jax.numpy as jnp\nfloat(jnp.ones(3).sum())\n"
    )
    assert p.returncode == 0, p.stderr
    assert "RuntimeWarning" not in p.stderr


def test_affected_jaxlib_versions():
    affected = ojrs_jax._jaxlib_affected
    assert not affected("0.10.1") and not affected("0.10.0") and not affected("0.9.2")
    assert affected("0.10.2") and affected("0.10.3") and affected("0.11.0.dev1")
