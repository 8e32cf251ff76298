"""Figures drawn from report tables (the numbers are computed in ``tables``)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: reports are written to files
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402


def depth_figure(trials: pd.DataFrame, path: Path) -> Path:
    """CV accuracy against depth, coloured by block, marker by skip on/off."""
    done = trials[trials["state"] == "COMPLETE"].copy()
    done["skip"] = done["skip"].map({True: "skip on", False: "skip off"})
    fig, ax = plt.subplots(figsize=(7, 4.5))
    sns.scatterplot(data=done, x="depth", y="cv_mean", hue="block", style="skip", s=70, ax=ax)
    ax.errorbar(done["depth"], done["cv_mean"], yerr=done["cv_std"].fillna(0), fmt="none",
                ecolor="grey", alpha=0.5)
    ax.set(title="Cross-validated accuracy against depth", xlabel="depth (blocks)",
           ylabel="CV accuracy (mean ± std over folds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
