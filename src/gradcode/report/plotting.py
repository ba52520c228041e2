"""Matplotlib set-up shared by the report and the reproductions: headless, one style, PNG out.

Figure modules import matplotlib through this one; table modules never import it.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless; never opens a window
import matplotlib.pyplot as plt  # noqa: E402

#: One colour, marker and line style per scheme, all distinct, so curves that coincide
#: (DGD under FRC, PGC on pgc_reference) stay visible: DGD is drawn wide and pale underneath.
#: Keys in :data:`gradcode.report.tables.SCHEME_ORDER` (tests/report/test_tables.py checks).
SCHEME_STYLE = {
    "dgd": dict(color="black", marker="o", label="naive (dgd)", ls="-", lw=3.2, alpha=0.45),
    "is_sgd": dict(color="tab:gray", marker="x", label="ignore-s (is_sgd)", ls=(0, (1, 1))),
    "frc": dict(color="tab:blue", marker="s", label="FRC", ls=(0, (5, 2))),
    "crc": dict(color="tab:orange", marker="^", label="CRC", ls=(0, (3, 1, 1, 1))),
    "cyclic_mds": dict(
        color="tab:green", marker="v", label="cyclic MDS", ls=(0, (3, 1, 1, 1, 1, 1))
    ),
    "pgc": dict(color="tab:red", marker="*", label="PGC", ls="-", lw=1.8),
    "pgc_reference": dict(color="tab:pink", marker="+", label="pgc_reference", ls=(0, (7, 3))),
    "pgc_memory": dict(color="tab:purple", marker="d", label="pgc_memory", ls=(0, (2, 2, 6, 2))),
    "is_latefold": dict(color="tab:brown", marker=".", label="is_latefold", ls=(0, (1, 3))),
    "erasurehead": dict(
        color="tab:cyan", marker="<", label="ErasureHead", ls=(0, (4, 1, 1, 1, 1, 1, 1, 1))
    ),
    "sgc": dict(color="tab:olive", marker=">", label="SGC", ls=(0, (8, 2, 1, 2))),
    "partial": dict(
        color="darkblue", marker="p", label="partial-straggler GC", ls=(0, (5, 1, 1, 1, 1, 1))
    ),
    "sr_sgc": dict(color="goldenrod", marker="h", label="SR-SGC", ls=(0, (1, 1, 4, 1))),
    "lstsq": dict(color="teal", marker="1", label="lstsq", ls=(0, (2, 1))),
}


def style(name: str) -> dict:
    """Matplotlib keyword arguments for a scheme's line (``ls``, ``lw``, ``marker``, ...)."""
    return dict(SCHEME_STYLE.get(name, dict(label=name, ls=(0, (3, 3)))))


def save(fig, path: Path, tight: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if tight:  # figures with a figure-level legend lay themselves out
        fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


__all__ = ["SCHEME_STYLE", "plt", "save", "style"]
