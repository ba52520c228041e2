"""Runtime: the master loop over a ``Cluster`` (in-process ``local`` or ``ray``)."""

from .checkpoint import load_checkpoint, save_checkpoint
from .cluster import Cluster, LocalCluster, RoundOutcome, Schedule
from .loop import JsonLinesLog, LoopConfig, TrainingStopped, TrainResult, train
from .optim import FlatParams, OptimizerConfig
from .oracle import GradientOracle, LogisticOracle, partition_gradients

__all__ = [
    "Cluster",
    "FlatParams",
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
    "partition_gradients",
    "save_checkpoint",
    "train",
]
