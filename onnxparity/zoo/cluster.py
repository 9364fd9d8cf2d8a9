"""The Ray the zoo runs on: the one this process is connected to, a new one on this machine's cores
(``local``), the cluster this machine belongs to (``auto``), or one at an address."""

from __future__ import annotations

import contextlib
import logging
from typing import Iterator

from onnxparity.errors import InputError, first_line

LOCAL = "local"


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
