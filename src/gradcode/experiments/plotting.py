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
    "pgc_reference": dict(color="tab:pink", marker="+", label="pgc_reference", linestyle="--"),
    "pgc_memory": dict(color="tab:purple", marker="d", label="pgc_memory"),
    "is_latefold": dict(color="tab:brown", marker=".", label="is_latefold", linestyle=":"),
    "erasurehead": dict(color="tab:cyan", marker="<", label="ErasureHead"),
    "sgc": dict(color="tab:olive", marker=">", label="SGC"),
    "partial": dict(color="darkblue", marker="p", label="partial-straggler GC", linestyle="-."),
    "sr_sgc": dict(color="goldenrod", marker="h", label="SR-SGC", linestyle="-."),
    "lstsq": dict(color="teal", marker="1", label="lstsq"),
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
