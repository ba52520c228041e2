"""Train every distinct weight trajectory of a grid once; re-time the cells that share it.

With minibatches keyed by (partition, round), the weights of a run depend on
its straggler schedule only through *which* partition gradients, from which
rounds, its master applies -- and for many cells that is provably the same
sequence: every exact code (DGD, FRC, CRC, cyclic MDS, exact partial-straggler
GC) applies the full minibatch gradient every round it decodes exactly, under
any schedule; IS-SGD sees the same arrival order under two delay models that
are monotone transforms of the same draws; DGD ignores ``s``.  Such cells
differ only in their clock.

:mod:`gradcode.runtime.signature` decides this per cell without training: it
replays the cell on the real in-process cluster and master loop with sketch
gradients and records the update of every round (the *signature*) and every
timing field of the cell's log.  Here the cells of one phase (tuning runs, or
the reported cells) are grouped into classes of equal
:func:`~gradcode.runtime.signature.trajectory_key` and equal signature; one
cell per class trains for real (DGD when the class has it), and every other
cell is *re-timed*: its ``rounds.jsonl`` is its own replay (its clock,
arrivals, decoder, residual, staleness, every worker's time and load) with the
metrics of the trained run at the same rounds, and its ``summary.json`` says
``retimed_from``.  A run that stops at its accuracy target stops its class at
the same round.

Nothing is assumed about any scheme: a class is only what the replay shows.
``tests/grid/test_reuse.py`` checks that re-timed cells match cells
trained for real.  Ray cells (wall clock) always run for real.
``reuse = false`` in a grid turns all this off.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..report.tables import BASELINE
from ..runtime.checkpoint import atomic_write_text, dumps_strict, strict
from ..runtime.config import RunConfig
from ..runtime.loop import read_json_lines
from ..runtime.run import build_scheme, summarize
from ..runtime.signature import (
    METRIC_FIELDS,
    coarse_hash,
    same_trajectory,
    sketch_run,
    trajectory_key,
)

#: RunConfig fields a cell's replay depends on (a stored sketch is reused when they agree).
SKETCH_FIELDS = ("scheme", "workers", "stragglers", "delay", "rounds", "deadline", "seed",
                 "eval_every", "on_undecodable", "scheme_options")  # fmt: skip


#: What a stored replay's records hold; a sketch of another version is replayed again
#: (2: records carry ``worker_times`` and ``worker_load``).
RECORDS_VERSION = 2


def _sketch_id(rc: RunConfig) -> str:
    d = asdict(rc)
    keys = {k: d[k] for k in SKETCH_FIELDS}
    return json.dumps({**keys, "records": RECORDS_VERSION}, sort_keys=True, default=str)


def sketch_path(sketch_dir: Path, cell_id: str) -> Path:
    """Where a cell's sketch is stored."""
    return Path(sketch_dir) / f"{cell_id}.npz"


def write_sketch(rc: RunConfig, path: Path) -> tuple[str, str, float]:
    """Replay ``rc`` and store its signature and records in ``path``; never raises.
    Builds the cell's scheme once (the replay and ``k`` share it)."""
    t0 = time.perf_counter()
    try:
        scheme = build_scheme(rc)
        k = scheme.k
        sig, records = sketch_run(rc, scheme)
    except Exception as exc:  # the cell will simply run for real
        return "error", f"{type(exc).__name__}: {exc}", time.perf_counter() - t0
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez_compressed(
        tmp,
        signature=sig,
        records=np.array("\n".join(dumps_strict(strict(r)) for r in records)),
        sketch_id=np.array(_sketch_id(rc)),
        k=np.array(k),
    )
    tmp.replace(path)
    return "ok", "", time.perf_counter() - t0


def read_sketch(rc: RunConfig, path: Path) -> dict | None:
    """A stored sketch of ``rc`` (``None`` when missing, torn or for other settings)."""
    try:
        with np.load(path) as z:
            if str(z["sketch_id"]) != _sketch_id(rc):
                return None
            return {"signature": z["signature"], "records": str(z["records"]), "k": int(z["k"])}
    except (OSError, ValueError, KeyError):
        return None


def classes(cells: list[tuple], sketches: dict, first: set[str] = frozenset()) -> dict:
    """cell_id -> the cell whose trained run it reuses (itself for representatives).

    ``cells``: ``(cell, RunConfig)`` pairs; ``sketches``: cell_id -> its sketch
    (:func:`read_sketch`; ``None`` or absent: no usable sketch -- Ray backend, replay
    failed -- and the cell maps to itself).  Representatives are taken from
    ``first`` (cells already trained), then the baseline (DGD), then in grid order.
    """
    rep: dict[str, object] = {}
    buckets: dict[tuple[str, str], list[tuple[object, np.ndarray]]] = {}

    def rank(i: int) -> tuple:
        cell = cells[i][0]
        return cell.cell_id not in first, cell.scheme != BASELINE, i

    for c, rc in (cells[i] for i in sorted(range(len(cells)), key=rank)):
        sk = sketches.get(c.cell_id)
        if sk is None:
            rep[c.cell_id] = c
            continue
        sig = sk["signature"]
        members = buckets.setdefault((trajectory_key(rc, sk["k"]), coarse_hash(sig)), [])
        match = next((r for r, rs in members if same_trajectory(rs, sig)), None)
        if match is None:
            members.append((c, sig))
            rep[c.cell_id] = c
        else:
            rep[c.cell_id] = match
    return rep


def retime(rc: RunConfig, run_dir: Path, ref_dir: Path, ref_id: str, sketch: dict) -> None:
    """Write a re-timed cell into ``run_dir`` from its sketch and the trained run in
    ``ref_dir``: config.json, rounds.jsonl, summary.json (``retimed_from = ref_id``).
    Every round takes the trained run's :data:`~gradcode.runtime.signature.METRIC_FIELDS`
    (metrics, ``lr``, ``epoch``, ``compute_seconds``) over its own replayed record."""
    ref = read_json_lines(ref_dir / "rounds.jsonl")
    own = [json.loads(ln) for ln in sketch["records"].splitlines()]
    if len(own) < len(ref) or any(r["round"] != i for i, r in enumerate(ref)):
        raise ValueError(f"cannot re-time from {ref_id}: its log does not match the replay")
    recs = []
    for mine, theirs in zip(own, ref, strict=False):
        rec = dict(mine)
        rec.update({k: theirs[k] for k in METRIC_FIELDS if k in theirs})
        recs.append(rec)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.json", json.dumps(asdict(rc), indent=2, default=str))
    atomic_write_text(
        run_dir / "rounds.jsonl", "".join(dumps_strict(strict(r)) + "\n" for r in recs)
    )
    summary = {**summarize(rc, recs, float(recs[-1]["time"])), "retimed_from": ref_id}
    atomic_write_text(run_dir / "summary.json", dumps_strict(strict(summary), indent=2))


__all__ = [
    "SKETCH_FIELDS",
    "classes",
    "read_sketch",
    "retime",
    "sketch_path",
    "write_sketch",
]
