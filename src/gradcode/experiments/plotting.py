"""Matplotlib set-up shared by experiments: headless, one style, PNG output."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless; never opens a window
import matplotlib.pyplot as plt  # noqa: E402

SCHEME_STYLE = {
    "dgd": dict(color="black", marker="o", label="naive (dgd)"),
    "is_sgd": dict(color="tab:gray", marker="x", label="ignore-s (is_sgd)"),
    "frc": dict(color="tab:blue", marker="s", label="FRC"),
    "crc": dict(color="tab:orange", marker="^", label="CRC"),
    "cyclic_mds": dict(color="tab:green", marker="v", label="cyclic MDS"),
    "pgc": dict(color="tab:red", marker="*", label="PGC"),
}


def style(name: str) -> dict:
    return SCHEME_STYLE.get(name, dict(label=name))


def save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


__all__ = ["plt", "save", "style"]
