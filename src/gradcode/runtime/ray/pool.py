"""Worker actors started early, and kept alive between the Ray runs of one process.

Starting 24 actors costs tens of seconds on a small machine (each imports
torch).  Two ways to pay less:

* :func:`start_early` creates a run's ``n`` actors *before* its task is built:
  they boot and import torch (``preload``) while the master loads the data and
  builds the task; :class:`~gradcode.runtime.ray.cluster.RayCluster` with
  ``actors=`` that :class:`EarlyWorkers` then only ships each actor its
  partitions.  :func:`gradcode.runtime.run.run` does this for every Ray run
  that does not take actors from a pool.
* A grid of Ray runs (or :func:`gradcode.fit` with ``actor_pool=``) passes one
  :class:`RayActorPool` to every :func:`gradcode.runtime.run.run`, which takes
  running actors for its ``n`` workers when the pool has them (the cluster
  reloads them with the run's scheme, data and schedule) and gives them back
  afterwards.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .connect import connect, disconnect, import_ray, kill_actors
from .worker import ACTOR_OPTIONS, WorkerActor

#: What an early worker imports while the master builds the task.
PRELOAD = ("torch", "gradcode.task")


@dataclass
class EarlyWorkers:
    """``n`` worker actors created before their task exists (:func:`start_early`).

    ``owns_ray``: :func:`start_early` started the Ray instance (the cluster that
    takes these actors shuts it down); ``created``: ``time.perf_counter()`` at
    their creation; ``connect_seconds``: how long connecting took.
    """

    actors: list
    owns_ray: bool
    created: float
    connect_seconds: float

    def close(self) -> None:
        """Give up on them (the run failed before its cluster took them)."""
        kill_actors(self.actors)
        self.actors = []
        if self.owns_ray:
            disconnect()
            self.owns_ray = False


def start_early(n: int, address: str | None = None, preload=PRELOAD) -> EarlyWorkers:
    """Connect to Ray and create ``n`` bare worker actors that import ``preload`` at once
    (without waiting for them); configure them later with ``RayCluster(actors=...)``."""
    t0 = time.perf_counter()
    owns = connect(address)
    created = time.perf_counter()
    Actor = import_ray().remote(WorkerActor).options(**ACTOR_OPTIONS)
    actors = [Actor.remote(w, preload=tuple(preload)) for w in range(n)]
    return EarlyWorkers(actors, owns, created, created - t0)


class RayActorPool:
    """Worker actors by ``(n, address)``, and whether the pool started Ray (explicit state).

    :meth:`close` kills every actor and stops the Ray instance the pool started.

    >>> pool = RayActorPool()
    >>> pool.take(4) is None
    True
    """

    def __init__(self) -> None:
        self.actors: dict[tuple[int, str | None], list] = {}
        self.owns_ray = False

    def connect(self, address: str | None) -> None:
        self.owns_ray = connect(address) or self.owns_ray

    def take(self, n: int, address: str | None = None) -> list | None:
        return self.actors.pop((n, address), None)

    def give(self, n: int, actors: list, address: str | None = None) -> None:
        if len(actors) != n:  # some died: a later run starts afresh
            kill_actors(actors)
            return
        kill_actors(self.actors.pop((n, address), []))
        self.actors[n, address] = actors

    def close(self) -> None:
        for actors in self.actors.values():
            kill_actors(actors)
        self.actors = {}
        if self.owns_ray:
            disconnect()
            self.owns_ray = False
