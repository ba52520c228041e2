"""The clock model with parts: where a worker's round goes.

A worker ``i`` that computes ``L`` partitions in round ``r`` reports after

    T[r, i] = latency[r, i] + common[r] + L * compute[r, i]
              + message_bytes / bandwidth[r, i] + stall[r, i]      (clipped at 0)

* ``latency`` -- the fixed cost of taking part in a round whatever the load:
  invocation, start-up, the weights' download, per-message latency;
* ``compute`` -- seconds per partition (one partition's gradient);
* ``message_bytes / bandwidth`` -- sending the message (the model's gradient
  size in bytes, which the cluster or simulator passes in via
  :meth:`ClockModel.with_message_bytes`; ``bandwidth`` in bytes per second);
* ``common`` -- a shift shared by every worker of a round (a slow network
  moment, the master's own jitter);
* ``stall`` -- rare long pauses clustered in rounds (:class:`Stall`): the
  heavy tail of real clusters (AWS Lambda: ~28 s retries, Krishnan et al.,
  ICLR 2023);

plus ``master``, the master's receive and decode time, added once per round.

Each part is its own distribution or a measured table
(:mod:`gradcode.stragglers.distributions`).  Every part turns one uniform number per
cell into a value (its
quantile function), and all uniforms are drawn whatever the load, so the same
seed gives every scheme the same schedule at its own load -- the model is
*load-aware*: redundancy costs only the compute part.  Persistence, bursts and
crashes are the wrappers of :mod:`gradcode.stragglers.models`.

Written by hand as a ``--delay`` spec (one ``key=value`` per part; a part is a
number or ``exp/SHIFT/MEAN``, ``lognormal/SHIFT/MEDIAN/SIGMA``,
``normal/MEAN/SD``, ``pareto/XM/ALPHA``, ``trace/FILE.csv``)::

    >>> m = ClockModel.from_spec("latency=2,compute=0.5,bandwidth=1e6,message_bytes=5e5")
    >>> m.sample(np.random.default_rng(0), 1, 2, load=4).tolist()
    [[4.5, 4.5]]

or fitted to a trace (:mod:`gradcode.stragglers.fit`) and saved as JSON
(:func:`write_model`; ``--delay model:path=fit.json`` reads it back).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .distributions import Constant, Part, finite_number, parse_part, part_from_dict
from .models import DelayModel, check_shape
from .traces import load_increments


@dataclass(frozen=True)
class Stall:
    """Rare pauses that hit many workers of one round together.

    In each round a *stall wave* happens with probability ``prob_at(load)``
    (``prob`` measured at ``loads``, linearly interpolated, constant beyond);
    in a wave each worker is caught with probability ``share`` (a part drawn
    once per wave: waves differ in reach) and then waits ``size`` seconds more.
    The wave's uniform is drawn once per round, so a round stalled at a low
    load is also stalled at every load whose probability is higher.
    """

    prob: tuple[float, ...] = (0.0,)
    loads: tuple[float, ...] = (0.0,)
    share: Part = field(default_factory=lambda: Constant(1.0))
    size: Part = field(default_factory=Constant)

    def __post_init__(self):
        prob = tuple(float(p) for p in np.atleast_1d(self.prob))
        loads = tuple(float(x) for x in np.atleast_1d(self.loads))
        if len(prob) != len(loads) or not all(0 <= p <= 1 for p in prob):
            raise ValueError("stall prob must be probabilities in [0, 1], one per load")
        if any(b <= a for a, b in zip(loads, loads[1:], strict=False)):
            raise ValueError("stall loads must be increasing")
        if isinstance(self.share, int | float):
            object.__setattr__(self, "share", Constant(float(self.share)))
        if not 0 <= float(self.share.quantile(0.0)) <= float(self.share.quantile(1.0)) <= 1:
            raise ValueError(f"stall share must lie in [0, 1], got {self.share.describe()}")
        object.__setattr__(self, "prob", prob)
        object.__setattr__(self, "loads", loads)

    def prob_at(self, load) -> np.ndarray:
        return np.interp(load, self.loads, self.prob)

    def to_dict(self) -> dict:
        return {
            "prob": list(self.prob),
            "loads": list(self.loads),
            "share": self.share.to_dict(),
            "size": self.size.to_dict(),
        }


@dataclass(frozen=True)
class ClockModel(DelayModel):
    """``latency + common + load x compute + message_bytes / bandwidth + stall`` (module doc).

    ``bandwidth=None`` or ``message_bytes=None`` makes sending free (the
    latency part then holds all communication, as in a trace that never
    varied the message size); ``master`` is the master's receive and decode
    time per round, in seconds.
    """

    latency: Part = field(default_factory=Constant)
    compute: Part = field(default_factory=lambda: Constant(1.0))
    bandwidth: Part | None = None
    message_bytes: float | None = None
    common: Part = field(default_factory=Constant)
    stall: Stall | None = None
    master: float = 0.0

    load_aware = True

    def __post_init__(self):
        if self.message_bytes is not None:
            finite_number("message_bytes", self.message_bytes)
        finite_number("master", self.master)

    # -- building ------------------------------------------------------------
    @classmethod
    def from_spec(cls, text: str) -> ClockModel:
        """From ``key=value`` pairs (module docstring); unknown keys list the valid ones."""
        parts, stall = {}, {}
        for item in filter(None, (x.strip() for x in text.split(","))):
            key, eq, value = (x.strip() for x in item.partition("="))
            if not eq:
                raise ValueError(f"delay 'parts': expected key=value, got {item!r}")
            what = f"delay 'parts': {key}"
            if key in ("latency", "compute", "bandwidth", "common"):
                parts[key] = parse_part(value, what)
            elif key in ("message_bytes", "master"):
                parts[key] = finite_number(key, _float(value, what))
            elif key == "stall":
                stall["size"] = parse_part(value, what)
            elif key in ("stall_prob", "stall_share"):
                stall[key.removeprefix("stall_")] = _float(value, what)
            else:
                raise ValueError(
                    f"delay 'parts': unknown key {key!r}; valid keys: bandwidth, common, "
                    "compute, latency, master, message_bytes, stall, stall_prob, stall_share"
                )
        if stall:
            if "size" not in stall:
                raise ValueError("delay 'parts': stall_prob/stall_share need stall=PART (its size)")
            share = Constant(stall.get("share", 1.0))
            parts["stall"] = Stall(stall.get("prob", 1.0), (0.0,), share, stall["size"])
        return cls(**parts)

    def with_message_bytes(self, nbytes: float) -> ClockModel:
        """This model for ``nbytes``-byte messages; a size set in the spec wins."""
        if self.message_bytes is not None or self.bandwidth is None:
            return self
        return replace(self, message_bytes=float(nbytes))

    @property
    def master_time(self) -> float:
        return self.master

    # -- sampling ------------------------------------------------------------
    def _draws(self, rng, rounds: int, n: int):
        check_shape(rounds, n)
        return rng.random((5, rounds, n)), rng.random((3, rounds))

    def _times(self, draws, load) -> np.ndarray:
        u, v = draws
        L = np.asarray(load, dtype=float)
        t = self.latency.draw(u[0]) + self.common.draw(v[0])[:, None]
        t = t + L * self.compute.draw(u[1])
        if self.bandwidth is not None and self.message_bytes:
            t = t + self.message_bytes / self.bandwidth.draw(u[2])
        if self.stall is not None:
            share = self.stall.share.draw(v[2])[:, None]
            hit = (v[1][:, None] < self.stall.prob_at(L)) & (u[3] < share)
            t = t + np.where(hit, self.stall.size.draw(u[4]), 0.0)
        return np.maximum(t, 0.0)

    def sample(self, rng, rounds, n, load=1.0):
        return self._times(self._draws(rng, rounds, n), load)

    def sample_chunks(self, rng, rounds, n, chunks):
        return self.chunk_times(rng, rounds, n, chunks)

    def chunk_times(self, rng, rounds, n, chunks, chunk_load=1.0):
        if chunks < 1:
            raise ValueError(f"chunks must be >= 1, got {chunks}")
        d = self._draws(rng, rounds, n)
        finish = np.stack([self._times(d, c * chunk_load) for c in range(1, chunks + 1)], -1)
        return load_increments(finish)

    # -- files ---------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "latency": self.latency.to_dict(),
            "compute": self.compute.to_dict(),
            "bandwidth": None if self.bandwidth is None else self.bandwidth.to_dict(),
            "message_bytes": self.message_bytes,
            "common": self.common.to_dict(),
            "stall": None if self.stall is None else self.stall.to_dict(),
            "master": self.master,
        }

    @classmethod
    def from_dict(cls, d: dict, what: str = "clock model") -> ClockModel:
        known = {"latency", "compute", "bandwidth", "message_bytes", "common", "stall", "master"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"{what}: unknown field(s) {', '.join(unknown)}")
        kw: dict = {}
        for key in ("latency", "compute", "bandwidth", "common"):
            if d.get(key) is not None:
                kw[key] = part_from_dict(d[key], f"{what}: {key}")
        for key in ("message_bytes", "master"):
            if d.get(key) is not None:
                kw[key] = float(d[key])
        if d.get("stall") is not None:
            s = dict(d["stall"])
            kw["stall"] = Stall(
                tuple(s.get("prob", (1.0,))),
                tuple(s.get("loads", (0.0,))),
                part_from_dict(s.get("share", {"kind": "constant", "value": 1.0}), what),
                part_from_dict(s.get("size", {"kind": "constant"}), f"{what}: stall size"),
            )
        return cls(**kw)


def _float(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{what}: needs a number, got {text!r}") from None


#: The ``format`` field of a saved model.
MODEL_FORMAT = "gradcode-clock/1"


def write_model(path: str | Path, model: ClockModel, extra: dict | None = None) -> Path:
    """Save ``model`` (and ``extra`` facts, e.g. the fit's diagnostics) as JSON."""
    path = Path(path)
    record = {"format": MODEL_FORMAT, "model": model.to_dict(), **(extra or {})}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def read_model(path: str | Path) -> ClockModel:
    """The model saved by :func:`write_model` (``--delay model:path=FILE.json``)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"model file not found: {path}")
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read model {path}: {exc}") from None
    if not isinstance(record, dict) or record.get("format") != MODEL_FORMAT:
        raise ValueError(f"{path} is not a gradcode clock model (format {MODEL_FORMAT!r})")
    return ClockModel.from_dict(record["model"], str(path))
