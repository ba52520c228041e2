"""``gradcode advise --figure``: mean time per round vs ``s`` for the top schemes.

One line per scheme (the best few by time to target), DGD as a horizontal
line, the recommendation circled.  Matplotlib is imported here only, through
its object-oriented API (no pyplot state, no backend switch).
"""

from __future__ import annotations

from pathlib import Path

#: Schemes drawn (the best ones by their best time to target).
TOP = 5


def draw(advice, path: str | Path, top: int = TOP) -> Path:
    """Save the figure of ``advice`` (an :class:`~gradcode.advisor.Advice`) to ``path``."""
    from matplotlib.figure import Figure

    path = Path(path)
    order: list[str] = []
    for c in advice.candidates:
        if c.scheme != "dgd" and c.scheme not in order and c.time_to_target is not None:
            order.append(c.scheme)
    order = order[:top]
    dgd = next(c for c in advice.candidates if c.scheme == "dgd")
    fig = Figure(figsize=(6.0, 3.8))
    ax = fig.add_subplot()
    ax.axhline(dgd.round_time, color="black", lw=1.2, ls="--", label="dgd (waits for all)")
    for name in order:
        pts = [(0, dgd.round_time)]  # s = 0 is DGD for every scheme
        pts += sorted((c.s, c.round_time) for c in advice.candidates if c.scheme == name and c.s)
        ax.plot(*zip(*pts, strict=True), marker="o", lw=1.6, label=name)
    rec = advice.recommendation
    ax.scatter([rec.s], [rec.round_time], s=160, facecolors="none", edgecolors="red", lw=1.5,
               label=f"recommended: {rec.scheme}, s={rec.s}", zorder=5)  # fmt: skip
    ax.set_xlabel("s (stragglers tolerated)")
    ax.set_ylabel("mean time per round (s)")
    ax.set_title(f"{Path(advice.source).name}: n = {advice.n}", fontsize=10)
    ax.set_xticks(sorted({c.s for c in advice.candidates} | {0}))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path
