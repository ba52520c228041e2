"""Runtime: the master loop over a ``Cluster`` (in-process ``local`` or ``ray``)."""

from .cluster import Cluster, LocalCluster, RoundOutcome, Schedule
from .loop import (
    FlatOptimizer,
    JsonLinesLog,
    LoopConfig,
    OptimizerConfig,
    TrainingStopped,
    TrainResult,
    load_checkpoint,
    train,
)
from .oracle import GradientOracle, LogisticOracle

__all__ = [
    "Cluster",
    "FlatOptimizer",
    "GradientOracle",
    "JsonLinesLog",
    "LocalCluster",
    "LogisticOracle",
    "LoopConfig",
    "OptimizerConfig",
    "RoundOutcome",
    "Schedule",
    "TrainResult",
    "TrainingStopped",
    "load_checkpoint",
    "train",
]
