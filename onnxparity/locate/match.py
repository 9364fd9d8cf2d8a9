"""Matching the original's layer calls with the ONNX nodes that compute them.

Ownership of a node (exact names, never substrings):

- Keras (tf2onnx): the node's name is ``<scope>/<op>``; its owner is the call whose recorded
  name scope is the longest ``/``-prefix of the name. Nodes tf2onnx added without a scope (layout
  transposes) belong to no layer.
- PyTorch (dynamo exporter): the node's ``pkg.torch.onnx.name_scopes`` metadata lists the module
  path down to the FX node; the owner is the innermost module. A module called several times (a
  block's shared ReLU) owns one connected group of nodes per call, in graph order.
- Another ONNX file (:mod:`.capture_onnx`): the node that writes the tensor of the same name.

A call's ONNX tensor (its *anchor*) is where the nodes of the call and the calls inside it hand
their result to the rest of the graph. Calls that share an anchor (a container and its last
layer) become one row with aliases. A call with no nodes of its own is an identity (Dropout at
inference; decided from the data) or was fused into the row that reads its output: a Conv the
exporter folded into the BatchNorm after it is reported as covered by that BatchNorm's row.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

import numpy as np

from onnxparity.locate.graph import Graph, exits

SCOPES_KEY = "pkg.torch.onnx.name_scopes"


@dataclass
class Row:
    """One compared layer: the original call(s) and the ONNX nodes and tensor matched with them."""

    call: int  # record index (execution order) of the call compared
    name: str
    path: str
    kind: str
    anchor: str  # the ONNX tensor compared with the call's output
    nodes: list[int]  # ONNX node indices owned by the call and the calls inside it
    aliases: list[str] = field(default_factory=list)  # other calls with the same output (containers)
    covers: list[int] = field(default_factory=list)  # calls with no nodes fused into this row
    compare: int | None = None  # the call whose output the anchor holds (a later call fused into this one)

    @property
    def target(self) -> int:
        return self.call if self.compare is None else self.compare


def owners(g: Graph, records: list[dict]) -> list[int | None]:
    """For each ONNX node, the record index of the call that owns it (None: no layer's)."""
    if records and records[0].get("tensor") is not None:  # another ONNX file's nodes: by output tensor name
        by_tensor = {r["tensor"]: r["index"] for r in records}
        return [next((by_tensor[t] for t in node.output if t in by_tensor), None) for node in g.nodes]
    if records and records[0].get("scope") is not None:
        return _keras_owners(g, records)
    return _torch_owners(g, records)


def _keras_owners(g: Graph, records: list[dict]) -> list[int | None]:
    by_scope = {r["scope"]: r["index"] for r in records if r.get("scope")}
    out = []
    for node in g.nodes:
        parts = node.name.split("/")
        owner = None
        for k in range(len(parts) - 1, 0, -1):
            owner = by_scope.get("/".join(parts[:k]))
            if owner is not None:
                break
        out.append(owner)
    return out


def _module_path(node) -> str | None:
    for prop in node.metadata_props:
        if prop.key == SCOPES_KEY:
            try:
                scopes = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                return None
            return scopes[-2] if len(scopes) >= 2 else ""
    return None


def _torch_owners(g: Graph, records: list[dict]) -> list[int | None]:
    calls: dict[str, list[int]] = {}
    for r in records:
        calls.setdefault(r["path"], []).append(r["index"])
    paths = [_module_path(n) for n in g.nodes]
    if all(p is None for p in paths):
        return _torchscript_owners(g, records, calls)
    out: list[int | None] = [None] * len(paths)
    for path, indices in calls.items():
        mine = [i for i, p in enumerate(paths) if p == path]
        if not mine:
            continue
        groups = _components(g, mine) if len(indices) > 1 else [mine]
        by_call = sorted(indices, key=lambda i: records[i].get("call", 0))
        for k, group in enumerate(groups):
            for i in group:
                out[i] = by_call[min(k, len(by_call) - 1)]
    return out


def _torchscript_owners(g: Graph, records: list[dict], calls: dict[str, list[int]]) -> list[int | None]:
    """Files from the TorchScript exporter carry no metadata; their node names are scopes, such as
    ``/layer4/layer4.0/downsample/downsample.0/Conv`` or ``/layer1/layer1.0/relu_1/Relu`` (the
    module ``layer1.0.relu``, second call). Each component is resolved against the real module
    paths, so a name that does not resolve exactly belongs to no module. A file exported through a
    wrapper (``/model/bert/...``, a module holding the original as ``model``) has its wrapper's scopes
    skipped: the first components are dropped while no name resolves."""
    by_call = {(records[i]["path"], records[i].get("call", 0)): i for indices in calls.values() for i in indices}
    for skip in range(3):
        out = [_torchscript_owner(node, calls, by_call, skip) for node in g.nodes]
        if any(o is not None and records[o]["path"] for o in out):
            return out
    return [_torchscript_owner(node, calls, by_call, 0) for node in g.nodes]


def _torchscript_owner(node, calls, by_call, skip: int) -> int | None:
    parts = node.name.split("/")
    parts = parts[:1] + parts[1 + skip:]
    if not node.name.startswith("/") or len(parts) < 3:
        return by_call.get(("", 0)) if node.name.startswith("/") else None
    prefix, call = "", 0
    for comp in parts[1:-1]:
        step = _resolve(prefix, comp, calls)
        if step is None:
            return None
        prefix, call = step
    return by_call.get((prefix, call))


def _resolve(prefix: str, comp: str, calls: dict[str, list[int]]) -> tuple[str, int] | None:
    join = (lambda name: f"{prefix}.{name}" if prefix else name)
    options = [join(comp)]
    last = prefix.rsplit(".", 1)[-1]
    if prefix and comp.startswith(last + "."):  # Sequential children are named "layer1.0" under "layer1"
        options.append(join(comp[len(last) + 1:]))
    for path in options:
        if path in calls:
            return path, 0
        match = re.fullmatch(r"(.+)_(\d+)", path)
        if match and match.group(1) in calls:
            return match.group(1), int(match.group(2))
    return None


def _components(g: Graph, nodes: list[int]) -> list[list[int]]:
    """Connected groups of ``nodes`` (edges: a tensor one writes and another reads), in graph order."""
    member = set(nodes)
    parent = {i: i for i in nodes}

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in nodes:
        for t in g.nodes[i].output:
            for c in g.consumers.get(t, []):
                if c in member:
                    parent[find(c)] = find(i)
    groups: dict[int, list[int]] = {}
    for i in nodes:
        groups.setdefault(find(i), []).append(i)
    return sorted(groups.values(), key=lambda grp: min(grp))


def rows(g: Graph, records: list[dict], owner: list[int | None]) -> tuple[list[Row], list[int]]:
    """The compared rows in execution order, and the calls with no ONNX node of their own or inside."""
    children: dict[int, list[int]] = {}
    for r in records:
        if r["parent"] is not None:
            children.setdefault(r["parent"], []).append(r["index"])
    owned: dict[int, set[int]] = {}
    for i, o in enumerate(owner):
        if o is not None:
            owned.setdefault(o, set()).add(i)

    def subtree(c: int) -> set[int]:
        nodes = set(owned.get(c, ()))
        for child in children.get(c, []):
            nodes |= subtree(child)
        return nodes

    by_anchor: dict[str, Row] = {}
    result, empty, claimed = [], [], set()
    for r in records:  # in exit order: inner calls come before the containers that hold them
        nodes = subtree(r["index"])
        anchor = _anchor(g, nodes, r) if nodes and r["n_outputs"] >= 1 else None  # several: the first compared
        if anchor is None:
            if not nodes:
                empty.append(r["index"])
            continue
        if anchor in by_anchor:
            by_anchor[anchor].aliases.append(r["name"])
            continue
        own = nodes - claimed  # a container lists only the nodes no inner row already shows
        claimed |= nodes
        row = Row(call=r["index"], name=r["name"], path=r["path"], kind=r["kind"], anchor=anchor, nodes=sorted(own))
        by_anchor[anchor] = row
        result.append(row)
    return result, empty


def _anchor(g: Graph, nodes: set[int], record: dict) -> str | None:
    """The last exit of ``nodes`` whose static size per input fits the call's output (else the last exit)."""
    candidates = exits(g, nodes)
    if not candidates:
        return None
    want = _size(record["shape"])
    for t in candidates:
        have = _size(g.shapes.get(t, [None])[1:]) if t in g.shapes else None
        if want is not None and have == want:
            return t
    return candidates[0]


def _size(dims) -> int | None:
    if dims is None or any(d is None for d in dims):
        return None
    return int(np.prod(dims)) if dims else 1


def assign_covered(result: list[Row], records: list[dict], empty: list[int], identity: set[int]) -> list[dict]:
    """Attach each call with no ONNX node to the row that reads its output (it was fused there).

    Returns what is left: ``{"call", "reason"}`` for identities and calls no row reads.
    """
    row_of = {row.call: row for row in result}
    alias_row = {}
    for row in result:
        for r in records:
            if r["name"] in row.aliases:
                alias_row[r["index"]] = row
    consumers: dict[int, list[int]] = {}
    for r in records:
        for p in r["inputs"]:
            if p is not None and p >= 0:
                consumers.setdefault(p, []).append(r["index"])
    left = []
    for c in empty:
        if c in identity:
            left.append({"call": c, "reason": "identity at inference (no ONNX node)"})
            continue
        target, todo, seen = None, list(consumers.get(c, [])), set()
        while todo and target is None:
            d = todo.pop(0)
            if d in seen:
                continue
            seen.add(d)
            target = row_of.get(d) or alias_row.get(d)
            if target is None and (d in empty):
                todo.extend(consumers.get(d, []))
        if target is None:
            left.append({"call": c, "reason": "no ONNX node, and no compared layer reads its output"})
        else:
            target.covers.append(c)
    return left
