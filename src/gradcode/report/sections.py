"""Sections of ``report.html`` about how the experiment ran: its parameters and tuned lrs."""

from __future__ import annotations

import html
import json
from pathlib import Path

from .analysis import read_checked_csv
from .tables import fmt, html_table


def experiment(results_dir: Path) -> dict:
    """The run's ``experiment.json`` (``{}`` when missing or unreadable)."""
    path = results_dir / "experiment.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:
        return {}


def params_html(exp: dict, rows: list[dict]) -> str:
    """The run parameters: workers, rounds, optimizer, lr (or tuning), straggler specs."""
    if not exp:
        return ""
    tune = exp.get("tune")
    lr = (
        f"tuned per scheme and group from {tune['lr']} (tuning seed {tune['seed']})"
        if tune
        else f"{exp.get('lr')} for every scheme (task overrides: see lr column)"
    )
    items = [
        ("workers", exp.get("workers")),
        ("rounds", exp.get("rounds")),
        ("optimizer", f"{exp.get('optimizer')}, momentum {exp.get('momentum')}"),
        ("learning rate", lr),
        ("evaluation every", f"{exp.get('eval_every')} rounds"),
        ("deadline", exp.get("deadline") or "none"),
        ("backend", exp.get("backend")),
        ("seeds (reported)", sorted({r["seed"] for r in rows})),
    ]
    for name, spec in (exp.get("stragglers") or {}).items():
        text = " + ".join(f"{k} {v}" for k, v in spec.items() if v is not None)
        items.append((f"stragglers '{name}'", text))
    lis = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(str(v))}</li>" for k, v in items)
    return f"<h2>Run parameters</h2><ul>{lis}</ul>"


def tuning_html(exp: dict, results_dir: Path) -> str:
    """The chosen learning rates of a ``[tune]`` run (from ``tuning.csv``)."""
    path = results_dir / "tuning.csv"
    if not exp.get("tune") or not path.is_file():
        return ""
    columns = ("group", "scheme", "lr", "momentum", "time to target (tuning seed)",
               "rounds to target", "final accuracy")  # fmt: skip
    cells = [
        (
            r["group"],
            r["scheme"],
            r["lr"],
            r["momentum"],
            fmt(r["time_to_target"], 2),
            fmt(r["rounds_to_target"], 0),
            fmt(r["final_accuracy"]),
        )  # fmt: skip
        for r in read_checked_csv(path)
        if r["chosen"]
    ]
    return (
        "<h2>Tuned learning rates</h2><p>Each scheme's lr (and momentum) per group, chosen on "
        f"tuning seed {exp['tune']['seed']} (not reported) by time to target, ties by final "
        "accuracy; every candidate is in tuning.csv.</p>" + html_table(columns, cells)
    )


__all__ = ["experiment", "params_html", "tuning_html"]
