"""Exact graph rewrites that let ONNX Runtime's CPU provider run more of a CNN in its fast kernels.

On x86, ORT rewrites ``Conv``/``MaxPool`` into MLAS's blocked NCHWc kernels, but only for a Conv
whose input channels are fewer than the block (8 floats with AVX2, 16 with AVX-512) or a multiple
of it; anything else falls back to im2col + GEMM. The article's PyTorch Net feeds 10 channels to
its second Conv, which then ran at a third of the blocked kernel's speed. Two rewrites, each
leaving every output value unchanged, fix what such models trip on:

- :func:`pad_conv_channels`: give the producing Conv zero filters (and zero bias) up to the next
  multiple of the block, and the consuming Conv zero weights for them. The padded channels hold
  zeros, or a finite per-channel function of zeros, that meet only zero weights: every output is
  the same sum as before.
- :func:`activation_before_pool`: ``MaxPool -> Relu`` becomes ``Relu -> MaxPool`` (a monotonic
  activation commutes with max), so ORT fuses the Relu into the Conv before it.

:func:`rewrite_for_cpu` applies both; ``make_session`` calls it for CPU sessions (the file on disk
is never changed). Measured side by side in docs/bench.md.
"""

from __future__ import annotations

import numpy as np

from onnxparity.machine import nchwc_block

# Per-channel ops that map a channel of zeros to finite values and never mix channels.
_CHANNELWISE = {"Relu", "LeakyRelu", "Clip", "Sigmoid", "Tanh", "HardSigmoid", "MaxPool", "AveragePool"}
# Activations that commute with MaxPool (monotonic non-decreasing) and that ORT fuses into a Conv.
_FUSABLE_ACTIVATIONS = {"Relu"}


def rewrite_for_cpu(model, block: int | None = None) -> list[str]:
    """Apply both rewrites to ``model`` in place; returns what was done, one line each."""
    block = nchwc_block() if block is None else block
    if not block or any(a.g.node or a.graphs for n in model.graph.node for a in n.attribute):
        return []  # no NCHWc here; or subgraphs (If, Loop), whose reads of outer values we do not track
    return pad_conv_channels(model, block) + activation_before_pool(model)


def pad_conv_channels(model, block: int) -> list[str]:
    """Pad Conv -> [channel-wise ops] -> Conv chains whose middle channel count ORT cannot block."""
    from onnx import numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    consumers = _consumers(graph)
    outputs = {o.name for o in graph.output}
    done = []
    for producer in graph.node:
        weights = inits.get(producer.input[1]) if producer.op_type == "Conv" and len(producer.input) > 1 else None
        if weights is None or _attr(producer, "group", 1) != 1 or len(weights.dims) < 3:
            continue
        channels = int(weights.dims[0])
        if channels <= block or channels % block == 0:
            continue  # ORT's blocked kernels already take it
        consumer = _channelwise_path_to_conv(producer.output[0], consumers, outputs)
        if consumer is None or consumer.input[1] not in inits or _attr(consumer, "group", 1) != 1:
            continue
        mine = [producer.input[1], consumer.input[1]] + list(producer.input[2:3])
        if any(len(consumers.get(name, [])) != 1 for name in mine):
            continue  # a weight shared with another node must not change
        padded = -(-channels // block) * block
        extra = padded - channels
        w = numpy_helper.to_array(weights)
        inits[producer.input[1]].CopyFrom(numpy_helper.from_array(
            np.concatenate([w, np.zeros((extra, *w.shape[1:]), w.dtype)]), producer.input[1]))
        if len(producer.input) > 2 and producer.input[2]:
            b = numpy_helper.to_array(inits[producer.input[2]])
            inits[producer.input[2]].CopyFrom(numpy_helper.from_array(
                np.concatenate([b, np.zeros(extra, b.dtype)]), producer.input[2]))
        wc = numpy_helper.to_array(inits[consumer.input[1]])
        inits[consumer.input[1]].CopyFrom(numpy_helper.from_array(
            np.concatenate([wc, np.zeros((wc.shape[0], extra, *wc.shape[2:]), wc.dtype)], axis=1), consumer.input[1]))
        done.append(f"{producer.name or producer.output[0]}: {channels} -> {padded} channels (zero filters) "
                    f"for {consumer.name or consumer.output[0]}")
    if done:
        _forget_shapes(graph)
    return done


def activation_before_pool(model) -> list[str]:
    """Swap ``MaxPool -> Relu`` into ``Relu -> MaxPool`` where the MaxPool's output feeds only the Relu."""
    graph = model.graph
    consumers = _consumers(graph)
    outputs = {o.name for o in graph.output}
    nodes = list(graph.node)
    position = {id(n): i for i, n in enumerate(nodes)}
    names = {v for n in nodes for v in (*n.input, *n.output)} | {i.name for i in graph.input}
    done = []
    for pool in list(nodes):
        if pool.op_type != "MaxPool" or len(pool.output) != 1 or pool.output[0] in outputs:
            continue
        readers = consumers.get(pool.output[0], [])
        if len(readers) != 1 or readers[0].op_type not in _FUSABLE_ACTIVATIONS:
            continue
        act = readers[0]
        source, result = pool.input[0], act.output[0]
        middle = f"{source}__{act.op_type.lower()}"  # the activated value, before pooling
        while middle in names:
            middle += "_"
        names.add(middle)
        act.input[0], act.output[0] = source, middle
        pool.input[0], pool.output[0] = middle, result
        # The activation takes the pool's place in the node order (its input exists there) and
        # the pool the activation's (still before every reader of ``result``).
        i, j = position[id(pool)], position[id(act)]
        nodes[i], nodes[j] = act, pool
        position[id(act)], position[id(pool)] = i, j
        done.append(f"{pool.name or result}: {act.op_type} moved before MaxPool")
    if done:
        del graph.node[:]
        graph.node.extend(nodes)
        _forget_shapes(graph)
    return done


def _consumers(graph) -> dict[str, list]:
    readers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    return readers


def _channelwise_path_to_conv(value: str, consumers, outputs):
    """The Conv that ``value`` reaches through single-reader channel-wise ops, else None."""
    while value not in outputs:
        readers = consumers.get(value, [])
        if len(readers) != 1:
            return None
        node = readers[0]
        if node.op_type == "Conv":
            return node if node.input[0] == value else None
        if node.op_type not in _CHANNELWISE or len(node.output) != 1:
            return None
        value = node.output[0]
    return None


def _attr(node, name: str, default):
    from onnx import helper

    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def _forget_shapes(graph) -> None:
    """Drop intermediate shape annotations the rewrite made stale; ORT infers them again."""
    del graph.value_info[:]
