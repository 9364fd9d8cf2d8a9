"""The Ray the zoo runs on: the one this process is connected to, a new one on this machine's cores
(``local``), the cluster this machine belongs to (``auto``), or one at an address."""

from __future__ import annotations

import contextlib
import logging
import socket
from typing import Iterator

from onnxparity.errors import InputError, first_line

LOCAL = "local"
CONNECT_TIMEOUT_S = 5


@contextlib.contextmanager
def connected(address: str = LOCAL) -> Iterator[dict]:
    """Connect to Ray for the block and yield what the cluster has (:func:`describe`). A connection
    this process already has is used as it is (``address`` is then ignored) and left open; one made
    here is closed at the end, and a local Ray started here is shut down with it."""
    import ray

    if ray.is_initialized():
        yield describe()
        return
    local = address == LOCAL
    if address not in (LOCAL, "auto"):
        _answers(address)
    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR,
                 **({"include_dashboard": False} if local else {}))
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise InputError(f"--ray {address}: cannot connect to Ray ({first_line(exc, with_type=False)})") from None
    from onnxparity import _signals

    _signals.install()  # ray.init took SIGTERM over: make it end the zoo as Ctrl-C does again
    try:
        yield describe()
    finally:
        ray.shutdown()


def _answers(address: str) -> None:
    """Something listens at HOST:PORT (Ray itself would retry a dead address for minutes)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # not an address this can try: Ray says what it makes of it
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise InputError(f"--ray {address}: nothing answers there ({exc.strerror or exc})") from None


def describe() -> dict:
    """The live nodes (id, address, resources) and the cluster's resources in all."""
    import ray

    nodes = [{"id": n["NodeID"], "address": n.get("NodeManagerAddress"),
              "resources": {k: v for k, v in n["Resources"].items() if not k.startswith("node:")}}
             for n in ray.nodes() if n.get("Alive")]
    total = {k: v for k, v in ray.cluster_resources().items() if not k.startswith("node:")}
    return {"nodes": nodes, "resources": total}


def gpu_nodes() -> list[str]:
    """The ids of the live nodes that offer GPUs."""
    import ray

    return [n["NodeID"] for n in ray.nodes() if n.get("Alive") and n["Resources"].get("GPU", 0) > 0]
