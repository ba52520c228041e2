"""The master loop, engine-agnostic: broadcast, collect, decode, one optimizer step.

::

    for t in rounds:
        outcome = cluster.run_round(t, w)              # messages on time / late
        drop messages with NaN or Inf                  # logged
        master, update = scheme.master_update(master, t, on_time, late)
        if update.gradient is not None:
            w = optimizer.step(w, update.gradient)     # a torch optimizer on a flat vector
        log one JSON line; checkpoint every K rounds

When the scheme's stop rule can never be met (more than ``s`` workers dead),
``on_undecodable="fallback"`` decodes best-effort from everything that
arrived (logged as a fallback) and ``"stop"`` ends training with
:class:`TrainingStopped` after writing a checkpoint.  Nothing ever waits
forever.  ``resume`` continues from a checkpoint bit for bit on the local
backend.
"""

from __future__ import annotations

import json
import pickle
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..codes.protocol import Message
from .cluster import Cluster


class TrainingStopped(RuntimeError):
    """Training cannot continue (e.g. more than s workers dead with ``on_undecodable='stop'``)."""


@dataclass(frozen=True)
class OptimizerConfig:
    name: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.0
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        if self.name not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {self.name!r}")
        if not self.lr > 0:
            raise ValueError(f"learning rate must be positive, got {self.lr}")


class FlatOptimizer:
    """A torch optimizer over one flat parameter vector (weights stay NumPy outside)."""

    def __init__(self, cfg: OptimizerConfig, weights: np.ndarray) -> None:
        import torch

        self.torch = torch
        self.param = torch.nn.Parameter(torch.from_numpy(np.array(weights, dtype=np.float64)))
        kw = dict(lr=cfg.lr, weight_decay=cfg.weight_decay)
        if cfg.name == "sgd":
            self.opt = torch.optim.SGD([self.param], momentum=cfg.momentum, **kw)
        else:
            self.opt = torch.optim.Adam([self.param], **kw)

    def step(self, gradient: np.ndarray) -> np.ndarray:
        self.param.grad = self.torch.from_numpy(np.asarray(gradient, dtype=np.float64))
        self.opt.step()
        return self.param.detach().numpy().copy()

    def state(self) -> dict:
        return {"param": self.param.detach().clone(), "opt": self.opt.state_dict()}

    def restore(self, state: dict) -> None:
        with self.torch.no_grad():
            self.param.copy_(state["param"])
        self.opt.load_state_dict(state["opt"])


@dataclass(frozen=True)
class LoopConfig:
    rounds: int = 100
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    eval_every: int = 10
    checkpoint_every: int = 0  # 0 = never
    on_undecodable: str = "fallback"

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise ValueError(f"rounds must be >= 1, got {self.rounds}")
        if self.on_undecodable not in ("fallback", "stop"):
            raise ValueError(
                f"on_undecodable must be 'fallback' or 'stop', got {self.on_undecodable!r}"
            )


@dataclass(frozen=True)
class TrainResult:
    weights: np.ndarray
    rounds: int
    wall_clock: float  # virtual time on the local backend, seconds on Ray
    history: list[dict] = field(repr=False)
    stopped: str | None = None

    def final(self) -> dict:
        evals = [h for h in self.history if "test_accuracy" in h]
        return evals[-1] if evals else {}


def _finite(m: Message) -> bool:
    return bool(np.all(np.isfinite(m.vector)))


def train(
    scheme,
    cluster: Cluster,
    oracle,
    cfg: LoopConfig,
    log: Callable[[dict], None] | None = None,
    checkpoint_path: Path | None = None,
    resume: Path | None = None,
    progress: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Run ``cfg.rounds`` rounds; return the final weights and the per-round records."""
    w = oracle.initial_weights()
    opt = FlatOptimizer(cfg.optimizer, w)
    master = scheme.init_master()
    start, history, clock = 0, [], 0.0
    if resume is not None:
        ck = load_checkpoint(resume)
        w, start, master, clock, history = (
            ck["weights"],
            ck["round"],
            ck["master"],
            ck["clock"],
            ck["history"],
        )
        opt.restore(ck["optimizer"])
        cluster.restore(ck["cluster"])
    stopped = None
    for t in range(start, cfg.rounds):
        t0 = time.perf_counter()
        out = cluster.run_round(t, w)
        bad = [m.worker for m in out.on_time + out.late if not _finite(m)]
        on_time = [m for m in out.on_time if _finite(m)]
        late = [m for m in out.late if _finite(m)]
        notes = [f"dropped non-finite message from worker {b}" for b in bad] + out.dropped
        if not out.ready:
            notes.append("stop rule not met (deadline or too many failures)")
            if cfg.on_undecodable == "stop" and not out.decodable:
                stopped = f"round {t}: more than s={scheme.s} workers unavailable; stopping"
                if checkpoint_path is not None:
                    save_checkpoint(checkpoint_path, w, t, master, opt, cluster, clock, history)
                raise TrainingStopped(stopped)
        master, upd = scheme.master_update(master, t, on_time, late)
        if upd.gradient is not None:
            w = opt.step(upd.gradient[: w.size])  # chunked schemes may zero-pad
        else:
            notes.append("no usable gradient: step skipped")
        clock += out.duration
        rec: dict[str, Any] = {
            "round": t,
            "time": round(clock, 9),
            "duration": round(out.duration, 9),
            "arrived": [m.worker for m in out.on_time],
            "late": [m.worker for m in late],
            "ready": out.ready,
            **upd.log_fields(),
            "notes": notes + list(upd.fallbacks),
            "compute_seconds": round(time.perf_counter() - t0, 6),
        }
        rec.pop("fallbacks")
        if (t + 1) % cfg.eval_every == 0 or t == cfg.rounds - 1:
            ev = oracle.evaluate(w)
            rec.update(
                train_loss=oracle.train_loss(w), test_loss=ev["loss"], test_accuracy=ev["accuracy"]
            )
        history.append(rec)
        if log is not None:
            log(rec)
        if progress is not None:
            progress(rec)
        if (
            checkpoint_path is not None
            and cfg.checkpoint_every
            and (t + 1) % cfg.checkpoint_every == 0
        ):
            save_checkpoint(checkpoint_path, w, t + 1, master, opt, cluster, clock, history)
    return TrainResult(w, cfg.rounds, clock, history, stopped)


def save_checkpoint(path: Path, w, round_, master, opt, cluster, clock, history) -> None:
    """Atomically write everything needed to continue identically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    state = {
        "weights": np.array(w),
        "round": round_,
        "master": master,
        "optimizer": opt.state(),
        "cluster": cluster.state(),
        "clock": clock,
        "history": list(history),
    }
    with open(tmp, "wb") as f:
        pickle.dump(state, f)
    tmp.replace(path)


def load_checkpoint(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint not found: {path}")
    with open(path, "rb") as f:
        try:
            state = pickle.load(f)
        except Exception as exc:  # corrupt or foreign file
            raise ValueError(f"cannot read checkpoint {path}: {exc}") from None
    keys = {"weights", "round", "master", "optimizer", "cluster", "clock", "history"}
    if not isinstance(state, dict) or not keys <= set(state):
        raise ValueError(f"{path} is not a gradcode checkpoint")
    return state


class JsonLinesLog:
    """Append one JSON object per line (flushed, so a crash loses nothing written)."""

    def __init__(self, path: Path, mode: str = "w") -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.f = open(path, mode)

    def __call__(self, rec: dict) -> None:
        self.f.write(json.dumps(rec, default=_json_default) + "\n")
        self.f.flush()

    def close(self) -> None:
        self.f.close()


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if hasattr(o, "__dataclass_fields__"):
        return asdict(o)
    raise TypeError(type(o).__name__)
