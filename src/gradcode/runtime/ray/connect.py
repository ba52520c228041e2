"""Starting, joining and leaving a Ray instance for the Ray backend.

* ``address=None``: a **private** instance on this machine (``ray.init(
  address="local")``, bound to 127.0.0.1, no dashboard), shut down when the run
  ends.  It never joins a cluster that happens to run on the machine (nor one
  named by ``RAY_ADDRESS``).
* ``address="auto"``: join the cluster started on this machine with
  ``ray start``.
* ``address="HOST:PORT"``: join that cluster (checked with a plain TCP connect
  first, so a wrong address fails in seconds, not minutes of retries).
* If Ray is already initialised in this process (a test, a notebook), it is
  used as is and left running.

Leaving: :func:`disconnect` shuts down an instance :func:`connect` started, and
:func:`kill_actors` ends worker actors; neither ever raises (a failing clean-up
must not hide the run's result or its real error).

Authentication (Ray >= 2.5x token auth).  Since Ray 2.60 a ``ray start --head``
cluster enables token authentication as soon as a token exists on the machine
(``~/.ray/auth_token``, which any local ``ray.init()`` creates), and
``ray.init(address=...)`` with an explicit address does not send it, so the
connection fails with "Authentication token is missing".  gradcode therefore
turns on token mode for any ``address`` whenever a token is available
(``RAY_AUTH_TOKEN``, the file named by ``RAY_AUTH_TOKEN_PATH``, or
``~/.ray/auth_token``); ``"auto"`` included, because Ray does so itself only
when it finds the cluster from its own record, not from ``RAY_ADDRESS``.  On another
machine, copy the head's token first (``ray get-auth-token`` on the head, then
``export RAY_AUTH_TOKEN=...``); when no token is found the error names that
variable.  ``RAY_AUTH_MODE`` set explicitly is always respected.
"""

from __future__ import annotations


def import_ray():
    try:
        import ray
    except ImportError:
        raise ValueError(
            "backend 'ray' needs the ray package: pip install 'gradcode[ray]'"
        ) from None
    return ray


def check_address(address: str, timeout: float = 5.0) -> None:
    """Fail fast (``ValueError``) when ``HOST:PORT`` does not accept connections.

    ``ray.init(address=...)`` keeps retrying an unreachable head for minutes;
    a plain TCP connect answers in at most ``timeout`` seconds.  ``"auto"``
    and addresses without a port are left to Ray.
    """
    import socket

    hostport = address.split("://", 1)[-1]
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit() or address in ("auto", "local"):
        return
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise ValueError(
            f"cannot reach the Ray cluster at {address}: {exc.strerror or exc} "
            "(is 'ray start --head' running there?)"
        ) from None


_AUTH_HINT = (
    " (the cluster uses token authentication: export RAY_AUTH_TOKEN=<the head's token>, "
    "see docs/ray.md)"
)


def connect(address: str | None) -> bool:
    """Start or join Ray as described in the module docstring; True if we own it."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    if address:
        check_address(address)
    kw = dict(include_dashboard=False, log_to_driver=False)
    try:
        if address:
            _token_auth_if_available()  # also for "auto": Ray skips it when RAY_ADDRESS is set
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(address="local", _node_ip_address="127.0.0.1", **kw)
    except Exception as exc:  # ConnectionError, ValueError, RuntimeError, ...
        where = f"at {address}" if address else "locally"
        msg = first_line(exc)
        if address and (
            "auth" in msg.lower() or "token" in msg.lower() or "connect" in msg.lower()
        ):
            msg += _AUTH_HINT
        raise ValueError(f"cannot start/join a Ray cluster {where}: {msg}") from None
    return True


def disconnect() -> None:
    """``ray.shutdown()``, never raising: every clean-up path of the backend uses it."""
    try:
        import_ray().shutdown()
    except Exception:  # noqa: BLE001 - a failing shutdown must not lose finished runs
        pass


def kill_actors(actors) -> None:
    """Kill every actor in ``actors`` (no restart); ones already gone are skipped."""
    if not actors:
        return
    ray = import_ray()
    for actor in actors:
        try:
            ray.kill(actor, no_restart=True)
        except Exception:  # noqa: BLE001 - already gone
            pass


def cluster_lost_errors() -> tuple[type[BaseException], ...]:
    """The Ray errors that mean the cluster itself is gone -- this process's node (raylet
    and object store), the head, or the connection to them -- not one worker."""
    ex = import_ray().exceptions
    names = ("LocalRayletDiedError", "NodeDiedError", "RaySystemError", "RpcError")
    return (ConnectionError, *(getattr(ex, n) for n in names if hasattr(ex, n)))


def local_node_alive() -> bool:
    """Does this process's Ray node still accept connections on its object-store socket?

    Ray terminates a driver whose node died at its next object-store call, with no
    Python exception to catch, so the backend asks this when a worker dies (each
    probe adds one line to the raylet's log: not every round).  ``True`` when it
    cannot tell.
    """
    try:
        from ray._private.worker import global_worker

        path = global_worker.node.plasma_store_socket_name
    except Exception:  # noqa: BLE001 - a Ray without this attribute: cannot tell
        return True
    return socket_listening(path) if path else True


def socket_listening(path: str) -> bool:
    """Does a process accept connections on the Unix socket ``path``?  A busy socket (full
    backlog, timeout) counts as listening; a refused connection or a missing file not."""
    import socket

    with socket.socket(socket.AF_UNIX) as probe:
        probe.settimeout(5.0)
        try:
            probe.connect(path)
        except (ConnectionRefusedError, FileNotFoundError):  # nobody listens there any more
            return False
        except OSError:
            return True
    return True


def _token_auth_if_available() -> None:
    """Send the local auth token to the cluster being joined, when one is available."""
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError:  # a Ray without token authentication
        return
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
