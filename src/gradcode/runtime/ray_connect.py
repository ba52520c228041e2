"""Starting or joining a Ray instance for the Ray backend.

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

Authentication: a cluster started with token authentication (``ray start``
with ``RAY_AUTH_MODE=token``) needs the same token on every client; gradcode
passes on whatever the environment provides (``RAY_AUTH_TOKEN`` or the token
file) and, when the cluster still refuses, says which variable to set.
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
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(address="local", _node_ip_address="127.0.0.1", **kw)
    except Exception as exc:  # ConnectionError, ValueError, RuntimeError, ...
        where = f"at {address}" if address else "locally"
        msg = first_line(exc)
        if "auth" in msg.lower() or "token" in msg.lower():
            msg += _AUTH_HINT
        raise ValueError(f"cannot start/join a Ray cluster {where}: {msg}") from None
    return True


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
