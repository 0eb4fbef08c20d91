"""Plots of a stage's results beside its JSON: the search's Pareto front."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from edgekd.files import atomic_save

if TYPE_CHECKING:
    from edgekd.stages.search import SearchResult


def plot_pareto(result: SearchResult, path: Path) -> Path:
    """Validation cosine to the teacher against RAM and against flash, one point per candidate: trained (each
    panel's Pareto front joined), stopped early (at its last cosine), never trained because it cannot fit (along the bottom); the
    device's budgets drawn, the chosen student starred."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    trained = [t for t in result.trials if t.state == "trained"]
    stopped = [t for t in result.trials if t.state == "stopped early"]
    unfit = [t for t in result.trials if t.state == "does not fit" and t.ram_bytes is not None]
    scored = [t.val_cosine for t in trained + stopped if t.val_cosine is not None]
    floor = min(scored, default=0.0) - 0.05
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, key, label in ((axes[0], "ram_bytes", "RAM"), (axes[1], "flash_bytes", "flash")):
        def kb(trials):
            return [getattr(t, key) / 1e3 for t in trials]

        front, best = [], float("-inf")  # this panel's front: each point more faithful than any smaller one
        for trial in sorted(trained, key=lambda t: (getattr(t, key), -t.val_cosine)):
            if trial.val_cosine > best:
                front.append(trial)
                best = trial.val_cosine
        ax.plot(kb(front), [t.val_cosine for t in front], color="tab:blue", alpha=0.5, drawstyle="steps-post",
                label="Pareto front")
        ax.scatter(kb(trained), [t.val_cosine for t in trained], color="tab:blue", label="trained")
        ax.scatter(kb(stopped), [t.val_cosine for t in stopped], facecolors="none", edgecolors="tab:blue",
                   label="stopped early")
        ax.scatter(kb(unfit), [floor] * len(unfit), marker="x", color="grey", label="does not fit: not trained")
        chosen = [t for t in trained if t.number == result.chosen]
        ax.scatter(kb(chosen), [t.val_cosine for t in chosen], marker="*", s=250, color="tab:orange",
                   edgecolors="black", zorder=3, label="chosen")
        if label.lower() in result.budgets:
            ax.axvline(result.budgets[label.lower()] / 1e3, color="tab:red", linestyle="--",
                       label=f"{result.device} {label} budget")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set(xlabel=f"{label} at {result.precision} (kB, log scale)", title=f"fidelity against {label}")
    axes[0].set_ylabel("validation cosine to the teacher")
    axes[1].legend(loc="lower right", fontsize=8)
    fig.suptitle(f"edgekd search: {result.recipe} for {result.device}")
    fig.tight_layout()
    atomic_save(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)
    return path
