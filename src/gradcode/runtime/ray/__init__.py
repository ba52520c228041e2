"""The Ray backend: worker actors on a Ray cluster, real time, real failures.

In: a scheme, a task (or any gradient oracle), a straggler schedule; out:
each round's :class:`~gradcode.runtime.cluster.RoundOutcome`, like the local
backend.  Modules, one job each:

* :mod:`~gradcode.runtime.ray.cluster` -- :class:`RayCluster`, the master
  side (plain and stateful rounds, failures, checkpoints);
* :mod:`~gradcode.runtime.ray.rounds` -- chunked and sequential rounds;
* :mod:`~gradcode.runtime.ray.worker` -- the actor and what it holds;
* :mod:`~gradcode.runtime.ray.connect` -- starting, joining and leaving Ray;
* :mod:`~gradcode.runtime.ray.pool` -- :class:`RayActorPool`, actors reused
  across the runs of one process.

Importing this package does not import ``ray``: it is imported when a
cluster or pool first connects (``pip install 'gradcode[ray]'``).
"""

from .cluster import DEFAULT_TIME_SCALE, RayCluster
from .connect import check_address
from .pool import EarlyWorkers, RayActorPool, start_early

__all__ = [
    "DEFAULT_TIME_SCALE",
    "EarlyWorkers",
    "RayActorPool",
    "RayCluster",
    "check_address",
    "start_early",
]
