"""The master loop, engine-agnostic: broadcast, collect, decode, one optimizer step.

::

    for t in rounds:
        outcome = cluster.run_round(t, w)              # messages on time / late
                                                       # (w extrapolated by a stale correction)
        drop messages with NaN or Inf                  # logged
        master, update = scheme.master_update(master, t, on_time, late)
        if update.gradient is not None:
            p.grad <- update.gradient; optimizer.step() # the model's own parameters
        log one JSON line; checkpoint every K rounds

Weights, messages and updates are torch tensors (the oracle's dtype and
device); ``w`` is the flat tensor the model's parameters are views of (see
:class:`~gradcode.runtime.optim.FlatParams`).  The optimizer is any
``torch.optim`` optimizer built by ``LoopConfig.optimizer(params)``, with an
optional LR scheduler (stepped once per round) and gradient clipping.

When the scheme's stop rule can never be met (more than ``s`` workers dead),
``on_undecodable="fallback"`` decodes best-effort from everything that
arrived (logged as a fallback) and ``"stop"`` ends training with
:class:`TrainingStopped` after writing a checkpoint.  A non-finite decoded
gradient, weights or training loss also stops training, with a checkpoint
holding the last finite weights.  Nothing ever waits forever.  ``resume``
continues from a checkpoint bit for bit on the local backend.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .checkpoint import dumps_strict, load_checkpoint, save_checkpoint, strict
from .cluster import Cluster, all_finite
from .optim import FlatParams, OptimizerConfig, OptimizerFactory
from .oracle import oracle_methods
from .stale import build as build_correction

__all__ = [
    "JsonLinesLog",
    "LoopConfig",
    "OptimizerConfig",
    "TrainResult",
    "TrainingStopped",
    "load_checkpoint",
    "train",
]


class TrainingStopped(RuntimeError):
    """Training cannot continue (more than s workers dead with ``on_undecodable='stop'``,
    or a non-finite gradient, weight or loss)."""


@dataclass(frozen=True)
class LoopConfig:
    """How the master trains.  ``optimizer(params)`` builds a ``torch.optim`` optimizer
    (an :class:`OptimizerConfig` or any callable); ``scheduler(optimizer)`` an optional
    LR scheduler stepped once per round; ``clip_grad_norm`` clips the decoded gradient."""

    rounds: int = 100
    optimizer: OptimizerFactory = field(default_factory=OptimizerConfig)
    eval_every: int = 10
    checkpoint_every: int = 0  # 0 = never
    on_undecodable: str = "fallback"
    scheduler: Callable | None = None
    clip_grad_norm: float | None = None
    #: End training at the first evaluation with ``test_accuracy >= target_accuracy``.
    target_accuracy: float | None = None
    #: Correction for stale gradients (:mod:`gradcode.runtime.stale`): none, auto, a method.
    stale_correction: str = "none"

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise ValueError(f"rounds must be >= 1, got {self.rounds}")
        if self.on_undecodable not in ("fallback", "stop"):
            raise ValueError(
                f"on_undecodable must be 'fallback' or 'stop', got {self.on_undecodable!r}"
            )
        if self.clip_grad_norm is not None and not self.clip_grad_norm > 0:
            raise ValueError(f"clip_grad_norm must be positive, got {self.clip_grad_norm}")


@dataclass(frozen=True)
class TrainResult:
    weights: torch.Tensor
    rounds: int
    wall_clock: float  # virtual time on the local backend, seconds on Ray
    history: list[dict] = field(repr=False)
    stopped: str | None = None
    state_dict: dict | None = field(default=None, repr=False)

    def final(self) -> dict:
        evals = [h for h in self.history if "train_loss" in h]
        return evals[-1] if evals else {}


def train(
    scheme,
    cluster: Cluster,
    oracle,
    cfg: LoopConfig,
    log: Callable[[dict], None] | None = None,
    checkpoint_path: Path | None = None,
    resume: Path | dict | None = None,
    progress: Callable[[dict], None] | None = None,
    auto=None,
) -> TrainResult:
    """Run ``cfg.rounds`` rounds; return the final weights and the per-round records.

    ``resume``: a checkpoint file, or a checkpoint already read (and checked, see
    :mod:`gradcode.runtime.resume`) by the caller.  ``auto``: an
    :class:`~gradcode.runtime.auto.AutoSwitch` (``--scheme auto``), which owns the
    scheme and cluster in force and may switch them at the start of a round (the
    weights and the optimizer are kept, the master state starts afresh)."""
    calls = oracle_methods(oracle)  # its optional methods, or their defaults
    fp = FlatParams(list(calls.parameters()))
    fp.load(oracle.initial_weights())
    opt = cfg.optimizer(fp.params)
    correction = build_correction(cfg.stale_correction, scheme, opt, oracle, fp.flat)
    sched = cfg.scheduler(opt) if cfg.scheduler is not None else None
    master = scheme.init_master()
    stale = correction.init(fp.flat)
    start, history, clock = 0, [], 0.0
    if resume is not None:
        ck = resume if isinstance(resume, dict) else load_checkpoint(resume, fp.flat.device)
        if auto is not None:  # the scheme in force when the checkpoint was written
            auto.restore(ck["auto"])
            scheme, cluster = auto.scheme, auto.cluster
        fp.load(ck["weights"])
        start, master, clock, history = ck["round"], ck["master"], ck["clock"], ck["history"]
        opt.load_state_dict(ck["optimizer"])
        if sched is not None and ck.get("scheduler") is not None:
            sched.load_state_dict(ck["scheduler"])
        if ck.get("oracle"):
            calls.restore(ck["oracle"])
        cluster.restore(ck["cluster"])
        stale = ck.get("stale", stale)
    w = fp.flat
    last_good = torch.empty_like(w)

    def checkpoint(round_: int, weights=None) -> None:
        if checkpoint_path is None:
            return
        state = {
            "weights": w if weights is None else weights,
            "round": round_,
            "master": master,
            "optimizer": opt.state_dict(),
            "scheduler": None if sched is None else sched.state_dict(),
            "oracle": calls.state(),
            "cluster": cluster.state(),
            "clock": clock,
            "history": [strict(h) for h in history],
            "stale": stale,
        }
        if auto is not None:
            state["auto"] = auto.state()
        save_checkpoint(checkpoint_path, state)

    def stop(msg: str, weights=None, round_: int | None = None) -> None:
        checkpoint(t if round_ is None else round_, weights)
        where = f" (checkpoint in {checkpoint_path})" if checkpoint_path is not None else ""
        raise TrainingStopped(msg + where)

    stopped = None
    for t in range(start, cfg.rounds):
        t0 = time.perf_counter()
        chosen = {} if auto is None else auto.step(t, history)
        if "switch" in chosen:  # a new scheme from this round on (stale_correction: none)
            scheme, cluster, master = auto.scheme, auto.cluster, auto.scheme.init_master()
        stale, w_send = correction.broadcast(stale, t, w)
        out = cluster.run_round(t, w_send)
        ok = {id(m): all_finite(m.vector) for m in out.on_time + out.late}
        bad = [m.worker for m in out.on_time + out.late if not ok[id(m)]]
        on_time = [m for m in out.on_time if ok[id(m)]]
        late = [m for m in out.late if ok[id(m)]]
        notes = [f"dropped non-finite message from worker {b}" for b in bad] + out.dropped
        if not out.ready:
            notes.append("stop rule not met (deadline or too many failures)")
            if cfg.on_undecodable == "stop" and not out.decodable:
                stop(f"round {t}: more than s={scheme.s} workers unavailable; stopping")
        master, upd = scheme.master_update(master, t, on_time, late)
        calls.observe_round(w, t)
        if upd.gradient is not None:
            stale, gradient = correction.correct(stale, t, w, upd)
            fp.set_grad(gradient)
            if not all_finite(fp.grad):
                stop(f"round {t}: the decoded gradient is not finite; stopping")
            last_good.copy_(w)
            fp.step(opt, cfg.clip_grad_norm)
            if sched is not None:
                sched.step()
            if not all_finite(w):
                stop(
                    f"round {t}: the weights became non-finite after the optimizer step "
                    "(learning rate too large?); stopping",
                    weights=last_good,
                )
        else:
            notes.append("no usable gradient: step skipped")
        clock += out.duration
        rec: dict[str, Any] = {
            "round": t,
            **chosen,
            "time": round(clock, 9),
            "duration": round(out.duration, 9),
            "arrived": [m.worker for m in out.on_time],
            "late": [m.worker for m in late],
            "ready": out.ready,
            **upd.log_fields(),
            "notes": notes + list(upd.fallbacks),
            "compute_seconds": round(time.perf_counter() - t0, 6),
        }
        epoch = calls.epoch(t)
        if epoch is not None:
            rec["epoch"] = round(epoch, 6)
        rec["lr"] = float(opt.param_groups[0]["lr"])  # for the next round's step
        if t == 0 and cfg.stale_correction != "none":
            rec["stale_correction"] = correction.label
        rec.pop("fallbacks")
        if out.predicted is not None:  # Ray: measured duration next to the predicted one
            rec["predicted_duration"] = round(out.predicted, 9)
        rec.update(out.log)  # per-worker times and loads, backend extras (cluster.worker_fields)
        if (t + 1) % cfg.eval_every == 0 or t == cfg.rounds - 1:
            ev = oracle.evaluate(w)
            rec["train_loss"] = oracle.train_loss(w)
            rec.update({f"test_{k}": v for k, v in ev.items()})
        history.append(rec)
        if log is not None:
            log(rec)
        if progress is not None:
            progress(rec)
        if "train_loss" in rec and not math.isfinite(rec["train_loss"]):
            stop(f"round {t}: the training loss is {rec['train_loss']}; stopping", round_=t + 1)
        if reached_target(rec, cfg.target_accuracy):
            break
        if (
            checkpoint_path is not None
            and cfg.checkpoint_every
            and (t + 1) % cfg.checkpoint_every == 0
        ):
            checkpoint(t + 1)
    state_dict = calls.state_dict(w)
    done = history[-1]["round"] + 1 if history else start
    return TrainResult(w.detach().clone(), done, clock, history, stopped, state_dict)


def reached_target(rec: dict, target: float | None) -> bool:
    """Did this round's evaluation reach the test-accuracy ``target``?

    >>> reached_target({"test_accuracy": 0.9}, 0.85), reached_target({"round": 3}, 0.85)
    (True, False)
    """
    acc = rec.get("test_accuracy")
    return target is not None and acc is not None and acc >= target


class JsonLinesLog:
    """Append one strict-JSON object per line (flushed, so a crash loses nothing written;
    NaN/Infinity are written as ``null`` and listed under ``"nonfinite"``)."""

    def __init__(self, path: Path, mode: str = "w") -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.f = open(path, mode)

    def __call__(self, rec: dict) -> None:
        self.f.write(dumps_strict(strict(rec)) + "\n")
        self.f.flush()

    def close(self) -> None:
        self.f.close()


def read_json_lines(path: Path) -> list[dict]:
    """Records of a ``rounds.jsonl`` (a torn last line, from a kill mid-write, is skipped)."""
    out = []
    lines = Path(path).read_text().splitlines()
    for i, ln in enumerate(lines):
        if not ln.strip():
            continue
        try:
            out.append(json.loads(ln))
        except json.JSONDecodeError:
            if i < len(lines) - 1:
                raise ValueError(f"{path}: line {i + 1} is not JSON; cannot resume") from None
            if i == len(lines) - 1:
                warnings.warn(
                    f"{path}: dropped a torn last line (a run killed mid-write)", stacklevel=2
                )
                break
            raise
    return out
