"""Figures of a training run: reward, loss and adaptive T_SA over epochs (paper Figs. 8-10).

Matplotlib's object API (`Figure`, no pyplot), so importing this module never changes the
backend of a notebook or an application; every PNG is written atomically.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ojrs_jax.core.io import atomic_write_bytes


def moving_average(x: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average (the first values average what exists so far)."""
    x = np.asarray(x, np.float64)
    c = np.cumsum(np.insert(x, 0, 0.0))
    n = np.minimum(np.arange(1, x.size + 1), window)
    return (c[1:] - c[np.arange(1, x.size + 1) - n]) / n


def save_figure(fig: Figure, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    return atomic_write_bytes(path, buf.getvalue())


def _axes() -> tuple[Figure, Axes]:
    fig = Figure(figsize=(7, 4))
    return fig, fig.subplots()


def _mark_change(ax: Axes, change_epoch: int, n: int) -> None:
    if 0 < change_epoch < n:
        ax.axvline(change_epoch, color="grey", ls="--", lw=1, label="weights change")


def plot_training(
    m: dict[str, np.ndarray],
    out: Path,
    change_epoch: int = 0,
    window: int = 200,
    adaptive: bool = True,
) -> list[Path]:
    """reward.png, loss.png and t_sa.png for one run's per-epoch metrics (`adaptive`: T_SA
    follows eq. 30, else it stays at asa.t_sa0 and the figure says so)."""
    out = Path(out)
    n = len(m["reward"])
    ep = np.arange(n)
    paths = []

    fig, ax = _axes()
    ax.plot(ep, m["reward"], color="tab:blue", alpha=0.15, lw=0.5)
    ax.plot(
        ep,
        moving_average(m["reward"], window),
        color="tab:blue",
        label=f"policy action, {window}-epoch average",
    )
    ax.plot(
        ep,
        moving_average(1.0 / m["latency_search"], window),
        color="tab:orange",
        label="after ASA search",
    )
    _mark_change(ax, change_epoch, n)
    ax.set(xlabel="epoch", ylabel="reward 1/L (1/s)", title="Reward during online training")
    ax.legend()
    paths.append(save_figure(fig, out / "reward.png"))

    for key, color, label, ylabel, title, name in (
        (
            "loss",
            "tab:red",
            "policy loss (eq. 25) after each update",
            "loss",
            "Training loss of the policy DNN",
            "loss.png",
        ),
        (
            "t_sa",
            "tab:green",
            "T_SA (eq. 30)" if adaptive else "T_SA (fixed, train.adaptive=false)",
            "ASA iterations",
            "Adaptive ASA iteration count" if adaptive else "ASA iteration count (fixed)",
            "t_sa.png",
        ),
    ):
        fig, ax = _axes()
        ax.plot(ep, m[key], color=color, label=label)
        _mark_change(ax, change_epoch, n)
        ax.set(xlabel="epoch", ylabel=ylabel, title=title)
        ax.legend()
        paths.append(save_figure(fig, out / name))
    return paths
