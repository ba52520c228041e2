"""Plots and a self-contained HTML report for a results directory of the harness.

:func:`render_report` reads ``results.csv`` and ``rounds.csv`` (written by
:func:`gradcode.experiments.harness.run_experiment`) and writes into
``RESULTS_DIR/report/``:

* ``group_<group>.png`` per comparison group (dataset/model, partitioning,
  straggler model, s): loss and accuracy vs simulated wall-clock time and vs
  rounds (mean over seeds, std band; the x position on the time axis is the
  mean time at that round), time per iteration, time to target and final
  accuracy (bars: mean, error bar: std over seeds), and a histogram of the
  per-round maximum staleness of the schemes with stale gradients (pgc family, SR-SGC);
* ``headline.png`` -- time-to-target ratio vs DGD per scheme over all groups;
* ``headline.csv`` / ``headline.md`` -- the headline table;
* ``report.html`` -- everything above, images embedded as base64.

Time to target.  For each (group, seed) the target is the training loss
(``[report] metric``) DGD reaches at ``target_at`` of its rounds (the last
evaluation at or before that round; ``target_at = 1`` is DGD's final loss),
or the absolute ``[report] target``.  A run's time to target is the simulated
time of its first evaluation at or below the target (``inf`` if never); the
ratio vs DGD is taken per seed (both runs saw the same straggler schedule),
then averaged over the seeds where the scheme reached the target.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from .harness import read_csv
from .plotting import plt, save, style
from .tuning import rounds_to_target, target_of, time_to_target

PGC_FAMILY = ("pgc", "pgc_reference", "pgc_memory", "is_latefold", "sr_sgc")  # stale gradients
BASELINE = "dgd"


def _settings(results_dir: Path, **override) -> dict:
    rep = {"metric": "train_loss", "target_at": 1.0, "target": None}
    exp = results_dir / "experiment.json"
    if exp.is_file():
        rep.update(json.loads(exp.read_text()).get("report", {}))
    rep.update({k: v for k, v in override.items() if v is not None})
    return rep


def _curves(round_rows: list[dict]) -> dict[str, dict[int, dict[str, np.ndarray]]]:
    """cell_id -> arrays over evaluation rounds (round, time, losses, accuracy)."""
    by_cell: dict[str, list[dict]] = defaultdict(list)
    for r in round_rows:
        by_cell[r["cell_id"]].append(r)
    out = {}
    for cid, rows in by_cell.items():
        rows.sort(key=lambda r: r["round"])
        ev = [r for r in rows if r.get("train_loss") is not None]
        out[cid] = {
            "round": np.array([r["round"] + 1 for r in ev], dtype=float),
            "time": np.array([r["time"] for r in ev], dtype=float),
            "train_loss": np.array([r["train_loss"] for r in ev], dtype=float),
            "test_loss": np.array([r["test_loss"] for r in ev], dtype=float),
            "test_accuracy": np.array([r["test_accuracy"] for r in ev], dtype=float),
            "staleness_max": np.array([r["staleness_max"] or 0 for r in rows], dtype=int),
            "rounds": len(rows),
        }
    return out


def analyse(results_dir: str | Path, **settings) -> dict:
    """Per-(group, scheme, seed) time to target and ratios vs DGD; the headline rows."""
    results_dir = Path(results_dir)
    rep = _settings(results_dir, **settings)
    rows = [r for r in read_csv(results_dir / "results.csv") if r["status"] == "ok"]
    curves = _curves(read_csv(results_dir / "rounds.csv"))
    metric = rep["metric"]
    per_run = []
    by_gs: dict[tuple[str, int], dict[str, dict]] = defaultdict(dict)
    for r in rows:
        if r["cell_id"] in curves:
            by_gs[r["group"], r["seed"]][r["scheme"]] = r
    for (group, seed), schemes in sorted(by_gs.items()):
        base = schemes.get(BASELINE)
        if rep.get("target") is not None:
            target = float(rep["target"])
        elif base is not None:
            target = target_of(curves[base["cell_id"]], metric, float(rep["target_at"]))
        else:
            target = None
        has_base = base is not None and target is not None
        t_base = time_to_target(curves[base["cell_id"]], metric, target) if has_base else math.nan
        r_base = rounds_to_target(curves[base["cell_id"]], metric, target) if has_base else math.nan
        for scheme, r in schemes.items():
            c = curves[r["cell_id"]]
            ttt = time_to_target(c, metric, target) if target is not None else math.nan
            rtt = rounds_to_target(c, metric, target) if target is not None else math.nan
            ratio = ttt / t_base if np.isfinite(t_base) and t_base > 0 else math.nan
            r_ratio = rtt / r_base if np.isfinite(r_base) and r_base > 0 else math.nan
            per_run.append(
                {
                    "group": group,
                    "task": f"{r['dataset']}/{r['model']}",
                    "seed": seed,
                    "scheme": scheme,
                    "straggler": r["straggler"],
                    "target": target,
                    "time_to_target": ttt,
                    "ratio_vs_dgd": ratio,
                    "rounds_to_target": rtt,
                    "rounds_ratio_vs_dgd": r_ratio,
                    "test_accuracy": r["test_accuracy"],
                    "time_per_round": r["time_per_round"],
                    "lr": r.get("lr"),
                    "momentum": r.get("momentum"),
                    "tuned": bool(r.get("tuned")),
                }
            )
    return {"settings": rep, "per_run": per_run, "headline": _headline(per_run)}


def _mean_std(xs) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof=1``; nan for fewer than 2 values)."""
    xs = np.asarray([x for x in xs if x is not None and np.isfinite(x)], dtype=float)
    if xs.size == 0:
        return math.nan, math.nan
    return float(xs.mean()), float(xs.std(ddof=1)) if xs.size > 1 else math.nan


def _scheme_order(names) -> list[str]:
    from .plotting import SCHEME_STYLE

    known = [s for s in SCHEME_STYLE if s in names]
    return known + sorted(set(names) - set(known))


def _headline(per_run: list[dict], key: str | None = None) -> list[dict]:
    """One row per scheme (or per (key, scheme)): ratio vs DGD and final accuracy."""
    buckets: dict[tuple, list[dict]] = defaultdict(list)
    for p in per_run:
        buckets[(p[key] if key else "", p["scheme"])].append(p)
    out = []
    keys = sorted({k for k, _ in buckets})
    for k in keys:
        for scheme in _scheme_order([s for kk, s in buckets if kk == k]):
            ps = buckets[k, scheme]
            ratios = [p["ratio_vs_dgd"] for p in ps]
            reached = sum(np.isfinite(p["time_to_target"]) for p in ps)
            r_mean, r_std = _mean_std(ratios)
            rr_mean, rr_std = _mean_std([p["rounds_ratio_vs_dgd"] for p in ps])
            a_mean, a_std = _mean_std([p["test_accuracy"] for p in ps])
            t_mean, _ = _mean_std([p["time_per_round"] for p in ps])
            row = {key: k} if key else {}
            row.update(
                scheme=scheme,
                runs=len(ps),
                reached=int(reached),
                ratio_mean=r_mean,
                ratio_std=r_std,
                ratio_median=float(np.nanmedian(ratios)) if np.isfinite(ratios).any() else math.nan,
                rounds_ratio_mean=rr_mean,
                rounds_ratio_std=rr_std,
                lr=_lr_text(ps),
                accuracy_mean=a_mean,
                accuracy_std=a_std,
                time_per_round=t_mean,
            )
            out.append(row)
    return out


def _lr_text(ps: list[dict]) -> str:
    """The learning rates used (``"0.5"``, or ``"0.1-1"`` when they differ by group)."""
    lrs = sorted({float(p["lr"]) for p in ps if p.get("lr") is not None})
    mark = " (tuned)" if any(p.get("tuned") for p in ps) else ""
    if not lrs:
        return ""
    return (f"{lrs[0]:g}" if len(lrs) == 1 else f"{lrs[0]:g}-{lrs[-1]:g}") + mark


def _lr_line(rows: list[dict], schemes: list[str]) -> str:
    """Which learning rates the group's runs used (tuned per scheme, or one fixed value)."""
    by = {s: sorted({float(r["lr"]) for r in rows if r["scheme"] == s}) for s in schemes}
    if any(r.get("tuned") for r in rows):
        seed = next((r.get("tune_seed") for r in rows if r.get("tuned")), "?")
        vals = ", ".join(f"{s} {'/'.join(f'{x:g}' for x in v)}" for s, v in by.items())
        return f"learning rate tuned per scheme on seed {seed}: {vals}"
    lrs = sorted({x for v in by.values() for x in v})
    return "learning rate " + "/".join(f"{x:g}" for x in lrs) + " for every scheme (not tuned)"


# ---------------------------------------------------------------- plotting

TIME_UNITS = "simulated time units"


def group_title(rows: list[dict]) -> str:
    """A readable title for a comparison group from its results rows."""
    r = rows[0]
    delay = r.get("delay") or r["straggler"]
    return (
        f"{r['dataset']}/{r['model']}, {str(r['partitioning']).replace('_', '-')} partitions, "
        f"s = {r['s']}; stragglers '{r['straggler']}': {delay}"
    )


def _group_figure(group: str, rows: list[dict], curves: dict, per_run: list[dict], out: Path):
    return save(group_figure(group, rows, curves, per_run), out, tight=False)


def group_figure(group: str, rows: list[dict], curves: dict, per_run: list[dict]):
    """The group's figure (not saved): curves, bars, staleness; one legend for all panels."""
    schemes = _scheme_order({r["scheme"] for r in rows})
    fig, axes = plt.subplots(2, 4, figsize=(15, 7))
    fig.suptitle(group_title(rows) + "\n" + _lr_line(rows, schemes), fontsize=10)
    panels = [
        (axes[0, 0], "time", "train_loss"),
        (axes[0, 1], "round", "train_loss"),
        (axes[1, 0], "time", "test_accuracy"),
        (axes[1, 1], "round", "test_accuracy"),
    ]
    handles = {}
    for scheme in schemes:
        cs = [curves[r["cell_id"]] for r in rows if r["scheme"] == scheme]
        m = min(len(c["round"]) for c in cs)
        if m == 0:
            continue
        st = style(scheme)
        for ax, xk, yk in panels:
            x = np.mean([c[xk][:m] for c in cs], axis=0)
            ys = np.array([c[yk][:m] for c in cs])
            mu = ys.mean(axis=0)
            sd = ys.std(axis=0, ddof=1) if len(ys) > 1 else np.zeros_like(mu)
            (line,) = ax.plot(x, mu, markevery=max(1, m // 6), markersize=5, **st)
            ax.fill_between(x, mu - sd, mu + sd, color=st.get("color"), alpha=0.12, lw=0)
            handles[scheme] = line
    for ax, xk, yk in panels:
        ax.set_xlabel(TIME_UNITS if xk == "time" else "round")
        ax.set_ylabel(yk.replace("_", " ") + (" (fraction)" if yk.endswith("accuracy") else ""))
        if yk.endswith("loss"):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    runs = [p for p in per_run if p["group"] == group]
    _bars(
        axes[0, 2], schemes, runs, "time_per_round", "time per iteration", f"{TIME_UNITS} per round"
    )
    _bars(axes[0, 3], schemes, runs, "time_to_target", "time to target", TIME_UNITS)
    _bars(
        axes[1, 3],
        schemes,
        runs,
        "test_accuracy",
        "final test accuracy",
        "test accuracy (fraction)",
    )
    _staleness(axes[1, 2], schemes, rows, curves)
    fig.legend(
        list(handles.values()),
        [style(s).get("label", s) for s in handles],
        loc="lower center",
        ncol=min(len(handles), 7),
        fontsize=8,
        frameon=False,
    )
    fig.tight_layout(rect=(0, 0.06, 1, 0.96))
    return fig


def _bars(ax, schemes, runs, key, title, ylabel):
    xs, mus, sds, colors, notes = [], [], [], [], []
    for i, s in enumerate(schemes):
        vals = [p[key] for p in runs if p["scheme"] == s]
        mu, sd = _mean_std(vals)
        xs.append(i)
        mus.append(0.0 if not np.isfinite(mu) else mu)
        sds.append(0.0 if not np.isfinite(sd) else sd)
        colors.append(style(s).get("color", "gray"))
        finite = sum(v is not None and np.isfinite(v) for v in vals)
        notes.append("" if finite == len(vals) else f"{finite}/{len(vals)}")
    ax.bar(xs, mus, yerr=sds, color=colors, capsize=3)
    for x, mu, note in zip(xs, mus, notes, strict=True):
        if note:
            ax.annotate(note, (x, mu), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(xs, [style(s).get("label", s) for s in schemes], rotation=45, ha="right",
                  fontsize=7)  # fmt: skip
    ax.set_title(title + (" (reached/runs)" if key == "time_to_target" else ""), fontsize=9)
    ax.set_ylabel(ylabel)


def _staleness(ax, schemes, rows, curves):
    fam = [s for s in schemes if s in PGC_FAMILY]
    ax.set_title("max staleness per round (stale schemes)", fontsize=9)
    ax.set_ylabel("fraction of rounds")
    if not fam:
        ax.text(0.5, 0.5, "no scheme with stale gradients", ha="center", va="center")
        return
    vals = {s: np.concatenate([curves[r["cell_id"]]["staleness_max"] for r in rows
                               if r["scheme"] == s]) for s in fam}  # fmt: skip
    top = max(int(v.max()) if v.size else 0 for v in vals.values())
    width = 0.8 / len(fam)
    for i, s in enumerate(fam):
        counts = np.bincount(vals[s], minlength=top + 1) / max(len(vals[s]), 1)
        ax.bar(np.arange(top + 1) + i * width, counts, width=width,
               color=style(s).get("color"), label=style(s).get("label", s))  # fmt: skip
    ax.set_xlabel("staleness (rounds)")
    ax.set_ylabel("fraction of rounds")


def _headline_figure(head: list[dict], out: Path) -> Path:
    rows = [h for h in head if h["scheme"] != BASELINE]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    xs = np.arange(len(rows))
    ax.bar(xs, [0 if not np.isfinite(h["ratio_mean"]) else h["ratio_mean"] for h in rows],
           yerr=[0 if not np.isfinite(h["ratio_std"]) else h["ratio_std"] for h in rows],
           color=[style(h["scheme"]).get("color", "gray") for h in rows], capsize=3)  # fmt: skip
    ax.axhline(1.0, color="black", lw=1, ls="--")
    ax.set_xticks(xs, [style(h["scheme"]).get("label", h["scheme"]) for h in rows], rotation=30,
                  ha="right")  # fmt: skip
    ax.set_ylabel("time to target / DGD's")
    ax.set_title("time-to-target ratio vs DGD (mean ± std over groups and seeds; < 1 is faster)")
    ax.title.set_fontsize(9)
    return save(fig, out)


# ---------------------------------------------------------------- tables and HTML


def _fmt(x, digits=3) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "–"
    return f"{x:.{digits}f}"


def _table_rows(head: list[dict], key: str | None = None) -> tuple[list[str], list[list[str]]]:
    cols = ([key] if key else []) + [
        "scheme",
        "lr",
        "time-to-target ratio vs DGD (mean ± std)",
        "median ratio",
        "rounds-to-target ratio vs DGD (mean ± std)",
        "reached/runs",
        "final test accuracy",
        "time/round",
    ]
    body = []
    for h in head:
        body.append(
            ([str(h[key])] if key else [])
            + [
                h["scheme"],
                h.get("lr", ""),
                f"{_fmt(h['ratio_mean'])} ± {_fmt(h['ratio_std'])}",
                _fmt(h["ratio_median"]),
                f"{_fmt(h['rounds_ratio_mean'])} ± {_fmt(h['rounds_ratio_std'])}",
                f"{h['reached']}/{h['runs']}",
                f"{_fmt(h['accuracy_mean'])} ± {_fmt(h['accuracy_std'])}",
                _fmt(h["time_per_round"], 2),
            ]
        )
    return cols, body


def markdown_table(head: list[dict], key: str | None = None) -> str:
    cols, body = _table_rows(head, key)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines) + "\n"


def _html_table(head: list[dict], key: str | None = None) -> str:
    cols, body = _table_rows(head, key)
    th = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    trs = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in body)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'


CSS = """body{font-family:sans-serif;max-width:1400px;margin:2em auto;padding:0 1em}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;
font-size:13px;text-align:right}th{background:#eee}img{max-width:100%}"""


def render_report(results_dir: str | Path, **settings) -> Path:
    """Write the plots, headline table and ``report.html``; return the HTML path.

    ``settings`` override the experiment's ``[report]`` table (``metric``,
    ``target_at``, ``target``).
    """
    results_dir = Path(results_dir)
    out = results_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    an = analyse(results_dir, **settings)
    per_run, head = an["per_run"], an["headline"]
    all_rows = read_csv(results_dir / "results.csv")
    ok_rows = [r for r in all_rows if r["status"] == "ok"]
    curves = _curves(read_csv(results_dir / "rounds.csv"))
    ok_rows = [r for r in ok_rows if r["cell_id"] in curves]

    by_straggler = _headline(per_run, key="straggler")
    by_task = _headline(per_run, key="task")
    _write_headline_csv(out / "headline.csv", head)
    (out / "headline.md").write_text(
        markdown_table(head)
        + "\nBy straggler model:\n\n"
        + markdown_table(by_straggler, "straggler")
        + "\nBy dataset/model:\n\n"
        + markdown_table(by_task, "task")
    )
    (out / "per_run.csv").write_text(_csv_text(per_run))

    images = [_headline_figure(head, out / "headline.png")] if head else []
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in ok_rows:
        groups[r["group"]].append(r)
    for g in sorted(groups):
        images.append(_group_figure(g, groups[g], curves, per_run, out / f"group_{g}.png"))

    rep = an["settings"]
    target_txt = (
        f"absolute target {rep['target']}"
        if rep.get("target") is not None
        else f"the {rep['metric']} DGD reaches at {rep['target_at']:g} of its rounds (per seed)"
    )
    failed = [r for r in all_rows if r["status"] != "ok"]
    skipped = _read_skipped(results_dir / "skipped.csv")
    exp = _experiment(results_dir)
    name = html.escape(str(exp.get("name") or results_dir.name))
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{name}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>{name}</h1>",
        f"<p>Results directory {html.escape(str(results_dir))}.</p>",
        _params_html(exp, all_rows),
        _tuning_html(exp, results_dir),
        f"<p>{len(ok_rows)} finished cells, {len(failed)} failed or missing, "
        f"{len(skipped)} skipped, {len(groups)} groups. Target: {html.escape(target_txt)}; "
        "ratio = scheme's simulated time to target / DGD's, per seed (same straggler schedule), "
        "mean ± sample std (ddof = 1) over the runs that reached it; the rounds-to-target ratio "
        "separates fewer rounds from cheaper rounds.</p>",
        "<h2>Headline</h2>",
        _html_table(head),
        "<h3>By straggler model</h3>",
        _html_table(by_straggler, "straggler"),
        "<h3>By dataset/model</h3>",
        _html_table(by_task, "task"),
    ]
    if skipped:
        notes = sorted({f"{r['scheme']} at s={r['s']}: {r['reason']}" for r in skipped})
        parts.append("<h3>Skipped</h3><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes))
        parts.append("</ul>")
    if failed:
        parts.append("<h3>Failed or missing cells</h3><ul>")
        parts += [f"<li>{html.escape(r['cell_id'])}: {html.escape(str(r['error']))}</li>"
                  for r in failed]  # fmt: skip
        parts.append("</ul>")
    parts.append("<h2>Figures</h2>")
    titles = {f"group_{g}": group_title(groups[g]) for g in groups}
    titles["headline"] = "Time-to-target ratio vs DGD, all groups"
    for p in images:
        parts.append(f"<h3>{html.escape(titles.get(p.stem, p.stem))}</h3>{_img(p)}")
    parts.append("</body></html>")
    path = out / "report.html"
    path.write_text("\n".join(parts))
    return path


def _experiment(results_dir: Path) -> dict:
    path = results_dir / "experiment.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:
        return {}


def _params_html(exp: dict, rows: list[dict]) -> str:
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


def _tuning_html(exp: dict, results_dir: Path) -> str:
    path = results_dir / "tuning.csv"
    if not exp.get("tune") or not path.is_file():
        return ""
    chosen = [r for r in read_csv(path) if r["chosen"]]
    th = "".join(
        f"<th>{c}</th>"
        for c in (
            "group",
            "scheme",
            "lr",
            "momentum",
            "time to target (tuning seed)",
            "rounds to target",
            "final accuracy",
        )
    )
    trs = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(v))}</td>"
            for v in (
                r["group"],
                r["scheme"],
                r["lr"],
                r["momentum"],
                _fmt(r["time_to_target"], 2),
                _fmt(r["rounds_to_target"], 0),
                _fmt(r["final_accuracy"]),
            )
        )
        + "</tr>"
        for r in chosen
    )
    return (
        "<h2>Tuned learning rates</h2><p>Each scheme's lr (and momentum) per group, chosen on "
        f"tuning seed {exp['tune']['seed']} (not reported) by time to target, ties by final "
        "accuracy; every candidate is in tuning.csv.</p>"
        f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"
    )


def _csv_text(rows: list[dict]) -> str:
    import io

    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return buf.getvalue()


def _write_headline_csv(path: Path, head: list[dict]) -> None:
    path.write_text(_csv_text(head))


def _read_skipped(path: Path) -> list[dict]:
    return read_csv(path) if path.is_file() else []


__all__ = ["analyse", "markdown_table", "render_report", "time_to_target"]
