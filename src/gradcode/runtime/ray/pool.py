"""Worker actors kept alive between the Ray runs of one process.

Starting 24 actors costs tens of seconds on a small machine (each imports
torch).  A grid of Ray runs passes one :class:`RayActorPool` to every
:func:`gradcode.runtime.run.run`, which takes running actors for its ``n``
workers when the pool has them (the cluster reloads them with the run's scheme,
data and schedule, :class:`~gradcode.runtime.ray.cluster.RayCluster` with
``actors=``) and gives them back afterwards.
"""

from __future__ import annotations

from .connect import connect, disconnect, kill_actors


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
