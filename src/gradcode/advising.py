"""``gradcode.advise``: which scheme, and which ``s``, for *your* cluster.

::

    import gradcode
    advice = gradcode.advise(24, trace="../shared/traces/aws_lambda_sydney_256w_20r.csv")
    advice.recommendation.scheme, advice.recommendation.s, advice.reason
    advice.to_dict()          # what `gradcode advise --json` prints

Exactly one input describes the cluster:

* ``trace=FILE.csv`` -- measured worker times, long format
  ``round,worker,load,seconds`` (time at each measured load) or the wide
  rounds x workers table (time ∝ load), as ``--delay trace:path=`` reads them;
* ``run=DIR`` -- the folder of an earlier ``gradcode train`` / ``gradcode.fit``
  run (local or Ray).  Where its ``rounds.jsonl`` records carry each worker's
  finishing time (``worker_times``: one number per worker, ``null`` = never
  reported; optional ``worker_compute``, computing time in the same units, and ``worker_load``
  partitions) those are replayed.  Runs of today log only the arrivals and
  the round's duration, so the advisor then draws from the run's own delay
  model (``config.json``), plus, on Ray, the measured per-round overhead
  (median of ``duration - predicted_duration``); all in the run's clock units;
* ``delay=SPEC`` -- a delay model as ``gradcode train --delay`` takes it
  (``shifted-exp:a=1,mu=1``, ``parts:...``, ``model:path=`` from
  ``gradcode trace fit``), optionally with ``persistent=``, ``bursty=``,
  ``crash=`` wrappers; or a :class:`~gradcode.stragglers.DelayModel`;
* ``times=`` -- an array of measured times (:func:`gradcode.advisor.as_measured`).

``target``: DGD's rounds to the target (a number > 1), or a test accuracy in
``(0, 1]``, read from ``run``: the rounds that run took to reach it, divided by
its scheme's convergence factor (1 for an exact scheme: the same trajectory
as DGD).  Without a target, ``time_to_target`` is the time per DGD-equivalent
round, which ranks the candidates the same way.

The work is done by :func:`gradcode.advisor.advise` (pure, no files); this
module only resolves the inputs (it needs :mod:`gradcode.runtime`'s delay
specs, so it sits beside :mod:`gradcode.fitting`).
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from .advisor import Advice, read_factors
from .advisor import advise as advise_times
from .advisor.factors import factor_for
from .clock import merge_late_times
from .codes import make_code
from .stragglers import DelayModel, read_trace

#: Bytes per parameter of a message (float32 gradients), for ``model_size``.
BYTES_PER_PARAM = 4


def advise(
    n: int | None = None,
    *,
    trace: str | Path | None = None,
    run: str | Path | None = None,
    delay: str | DelayModel | None = None,
    persistent: str | None = None,
    bursty: str | None = None,
    crash: str | None = None,
    times=None,
    loads=None,
    compute=None,
    max_s: int | None = None,
    schemes=None,
    factors: str | Path | dict | None = None,
    target: float | None = None,
    rounds: int | None = None,
    model_size: float | None = None,
    seed: int = 0,
) -> Advice:
    """Rank every scheme and ``s`` for the cluster one input describes (module docstring).

    ``n`` defaults to the run's workers, the trace's workers, or 12 (as
    ``gradcode train``) for a delay model.  ``model_size``: parameters of the
    model (message bytes = 4 x parameters), used by a delay model with a
    communication part.  Other arguments: :func:`gradcode.advisor.advise`.
    """
    given = [k for k, v in (("trace", trace), ("run", run), ("delay", delay), ("times", times))
             if v is not None]  # fmt: skip
    if len(given) > 1:
        raise ValueError(f"give one input, not {' and '.join(given)}")
    if (persistent or bursty or crash) and given and given != ["delay"]:
        raise ValueError("persistent/bursty/crash wrap a delay model; they do not apply to "
                         f"{given[0]}")  # fmt: skip
    notes: list[str] = []
    if model_size is not None and not (math.isfinite(model_size) and 0 < model_size <= 1e13):
        raise ValueError(
            f"model_size must be a number of parameters in (0, 1e13], got {model_size}"
        )
    message_bytes = None if model_size is None else model_size * BYTES_PER_PARAM
    master, target_rounds, source = 0.0, None, None
    if target is not None:
        if not (math.isfinite(target) and target > 0):
            raise ValueError(
                f"target must be DGD's rounds (> 1) or an accuracy in (0, 1], got {target}"
            )
        if target > 1:
            target_rounds = float(target)
        elif run is None:
            raise ValueError(
                f"an accuracy target ({target:g}) needs run=DIR, a run that logged test accuracy "
                "(its rounds to that accuracy give DGD's); or give DGD's rounds (> 1)"
            )
    if run is not None:
        cfg, recs = read_run(run)
        n = int(cfg["workers"]) if n is None else n
        times, loads, compute, model, master, source, why = run_times(cfg, recs, n, run)
        notes.append(why)
        if target is not None and target <= 1:
            target_rounds = rounds_to_accuracy(cfg, recs, target, run)
            notes.append(f"target: DGD needs {target_rounds:.4g} rounds to accuracy {target:g} "
                         f"(from {Path(run) / 'rounds.jsonl'})")  # fmt: skip
        subject = times if times is not None else model
    elif trace is not None:
        subject = read_trace(trace)
        n = _workers(subject) if n is None else n
        source = str(trace)
    elif times is not None:
        subject = times
        if n is None:
            raise ValueError("give n with times=")
    else:
        if delay is None:
            delay = "shifted-exp"
            notes.append("no input: the default delay model of gradcode train (shifted-exp)")
        subject = delay
        if isinstance(delay, str):
            from .runtime.config import DelaySpec  # imports torch: only for a spec

            subject = DelaySpec(delay, persistent, bursty, crash).build()
            source = f"delay {DelaySpec(delay, persistent, bursty, crash).label()}"
        n = 12 if n is None else n
    if model_size is not None and (
        not isinstance(subject, DelayModel) or subject.with_message_bytes(1.0) is subject
    ):
        notes.append("model size has no effect: the input has no communication part "
                     "(message cost is inside the measured or modelled times)")  # fmt: skip
    user = None
    if isinstance(factors, dict):
        user = factors
    elif factors is not None:
        user = read_factors(factors)
    advice = advise_times(
        subject, n, loads=loads, compute=compute, max_s=max_s, schemes=schemes, factors=user,
        target_rounds=target_rounds, rounds=rounds, message_bytes=message_bytes,
        master=master, seed=seed, source=source,
    )  # fmt: skip
    if factors is not None:
        origin = "the given factors" if isinstance(factors, dict) else str(factors)
        advice = replace(
            advice, rounds_factor_source=f"{origin}; else {advice.rounds_factor_source}"
        )
    return replace(advice, notes=tuple(notes) + advice.notes)


def _workers(trace) -> int:
    return trace.workers if hasattr(trace, "workers") else trace.trace.shape[1]


def read_run(path: str | Path) -> tuple[dict, list[dict]]:
    """``config.json`` and the records of ``rounds.jsonl`` of a run folder (one-line errors)."""
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"run folder not found: {path}")
    cfg_path, log_path = path / "config.json", path / "rounds.jsonl"
    for p in (cfg_path, log_path):
        if not p.is_file():
            raise ValueError(f"{path} is not a run folder: {p.name} is missing")
    try:
        cfg = json.loads(cfg_path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{cfg_path}: not JSON ({exc})") from None
    if not isinstance(cfg, dict) or "workers" not in cfg or "scheme" not in cfg:
        raise ValueError(f"{cfg_path}: not a gradcode run configuration (no workers/scheme)")
    recs = []
    lines = log_path.read_text(errors="replace").splitlines()
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            if i == len(lines):  # a torn last line (a run killed mid-write)
                break
            raise ValueError(f"{log_path} line {i}: not JSON") from None
        if not isinstance(rec, dict):
            raise ValueError(f"{log_path} line {i}: not a round record")
        recs.append(rec)
    if not recs:
        raise ValueError(f"{log_path}: no rounds")
    return cfg, recs


def run_times(cfg: dict, recs: list[dict], n: int, path):
    """What a run folder tells about its cluster: measured times if logged, else its delay model.

    Returns ``(times, loads, compute, model, master, source, note)``.
    """
    workers = int(cfg["workers"])
    if n != workers:
        raise ValueError(f"the run in {path} had n={workers} workers; -n {n} cannot replay it")
    log = Path(path) / "rounds.jsonl"
    recs = merge_late_times(recs)  # Ray: stragglers' times, logged after their round
    if all("worker_times" in r for r in recs):
        rows = []
        for i, r in enumerate(recs, start=1):
            row = r["worker_times"]
            if not isinstance(row, list) or len(row) != workers:
                raise ValueError(f"{log} record {i}: worker_times must list {workers} numbers")
            try:
                rows.append([math.inf if x is None else float(x) for x in row])
            except (TypeError, ValueError):
                raise ValueError(
                    f"{log} record {i}: worker_times must be numbers or null"
                ) from None
        t = np.array(rows)
        if np.isnan(t).any() or (t < 0).any():
            raise ValueError(f"{log}: worker_times must be numbers >= 0 (null = never reported)")
        load = recs[0].get("worker_load")
        load = float(np.median(load)) if load else _load(cfg)
        compute = None
        if all("worker_compute" in r for r in recs):
            compute = np.array([[0.0 if x is None else float(x) for x in r["worker_compute"]]
                                for r in recs])  # fmt: skip
        note = f"replayed the per-worker times logged in {log} ({len(recs)} rounds, load {load:g})"
        return t, load, compute, None, 0.0, str(log), note
    delay = cfg.get("delay") or {}
    if not isinstance(delay, dict) or "base" not in delay:
        raise ValueError(f"{Path(path) / 'config.json'}: no delay model and no per-worker times")
    from .runtime.config import DelaySpec  # imports torch: only for a run's delay spec

    spec = DelaySpec(
        delay["base"], delay.get("persistent"), delay.get("bursty"), delay.get("crash")
    )
    model = spec.build()
    over = [r["duration"] - r["predicted_duration"] for r in recs[1:]
            if isinstance(r.get("predicted_duration"), int | float)
            and isinstance(r.get("duration"), int | float)]  # fmt: skip
    master = max(float(np.median(over)), 0.0) if over else 0.0
    note = (f"{log} has no per-worker times (log RoundOutcome.times as worker_times to replay "
            f"them): drew from the run's delay model {spec.label()}")  # fmt: skip
    if over:
        note += f" plus its measured overhead {master:.4g} per round (duration - predicted)"
    return None, None, None, model, master, f"run {path}: delay {spec.label()}", note


def _load(cfg: dict) -> float:
    s = int(cfg.get("stragglers", 0))
    try:
        return float(make_code(cfg["scheme"], int(cfg["workers"]), s).load)
    except (ValueError, TypeError):
        return 1.0


def rounds_to_accuracy(cfg: dict, recs: list[dict], target: float, path) -> float:
    """DGD's rounds to test accuracy ``target``: the run's rounds to it over its scheme's factor."""
    acc = [(r.get("round"), r.get("test_accuracy")) for r in recs]
    acc = [(t, a) for t, a in acc if isinstance(t, int) and isinstance(a, int | float)]
    hit = [t + 1 for t, a in acc if a >= target]
    if not hit:
        best = max((a for _, a in acc), default=None)
        got = "logged no test accuracy" if best is None else f"reached at best {best:.4g}"
        raise ValueError(f"the run in {path} never reached accuracy {target:g} ({got})")
    f = factor_for(str(cfg["scheme"]), int(cfg.get("stragglers", 0))).value
    if f is None:
        raise ValueError(f"the run's scheme {cfg['scheme']!r} has no convergence factor to "
                         "convert its rounds to DGD's")  # fmt: skip
    return min(hit) / f
