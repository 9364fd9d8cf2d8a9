"""Scale-out: the served models as a Triton model repository and a KServe InferenceService.

``OUT/<model>/1/model.onnx`` and ``OUT/<model>/config.pbtxt`` (platform ``onnxruntime_onnx``,
inputs and outputs read from the ONNX graph, dynamic batching, an instance group), plus
``OUT/inferenceservice.yaml`` for KServe (``modelFormat: onnx``, ``protocolVersion: v2``, the
Triton runtime; with ``grpc``, ``grpc-v2`` on Triton's gRPC port 9000 instead). Triton reads
only the folders, so the manifest can sit beside them. Clients written against ``onnxparity
serve`` (REST, or gRPC with ``--grpc-port``) work unchanged against either: same names, same V2.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from onnxparity.errors import InputError

MANIFEST = "inferenceservice.yaml"


@dataclass(frozen=True)
class ExportedModel:
    name: str
    config_path: Path
    model_path: Path


def _tensor_block(kind: str, tensors: list[dict]) -> str:
    parts = []
    for t in tensors:
        data_type = "TYPE_STRING" if t["data_type"] == "TYPE_BYTES" else t["data_type"]
        parts.append(f"  {{\n    name: {json.dumps(t['name'])}\n    data_type: {data_type}\n"
                     f"    dims: [ {', '.join(str(d) for d in t['dims'])} ]\n  }}")
    return f"{kind} [\n" + ",\n".join(parts) + "\n]\n"


def model_config(name: str, model_path: str | os.PathLike, max_batch_size: int = 64, max_queue_delay_us: int = 100,
                 instances: int = 1, gpu: bool = False) -> str:
    """The ``config.pbtxt`` (Triton's ModelConfig, protobuf text format) for one ONNX file:
    :func:`onnxparity.serve.protocol.triton_config`, which the server reports too."""
    from onnxparity.onnx_model import OnnxModel
    from onnxparity.serve.protocol import triton_config

    config = triton_config(name, OnnxModel(model_path).signature, max_batch_size)
    batched = config["max_batch_size"] > 0
    text = f"name: {json.dumps(name)}\nplatform: \"onnxruntime_onnx\"\nmax_batch_size: {config['max_batch_size']}\n"
    text += _tensor_block("input", config["input"]) + _tensor_block("output", config["output"])
    if batched:
        text += f"dynamic_batching {{\n  max_queue_delay_microseconds: {max_queue_delay_us}\n}}\n"
    text += (f"instance_group [\n  {{\n    count: {instances}\n    kind: {'KIND_GPU' if gpu else 'KIND_CPU'}\n"
             f"  }}\n]\n")
    return text


GRPC_PORT = 9000  # kserve-tritonserver runs tritonserver --grpc-port=9000 (HTTP on 8080)


def inference_service(name: str, storage_uri: str, gpu: bool = False, grpc: bool = False) -> str:
    """A KServe InferenceService that serves the whole repository with Triton over V2 (REST, or gRPC)."""
    lines = [
        "apiVersion: serving.kserve.io/v1beta1",
        "kind: InferenceService",
        "metadata:",
        f"  name: {name}",
        "spec:",
        "  predictor:",
        "    model:",
        "      modelFormat:",
        "        name: onnx",
        f"      protocolVersion: {'grpc-v2' if grpc else 'v2'}",
        "      runtime: kserve-tritonserver",
        f"      storageUri: {json.dumps(storage_uri)}",
    ]
    # KServe exposes one port: REST (8080) by default, or Triton's gRPC port named h2c (Knative's name for it).
    ports = ["      ports:", f"      - containerPort: {GRPC_PORT}", "        name: h2c", "        protocol: TCP"]
    if grpc:
        lines += ports
    else:
        lines += ["      # For V2 over gRPC instead of REST (export-triton --grpc): protocolVersion: grpc-v2, and",
                  *(f"      # {line[6:]}" for line in ports)]
    if gpu:
        lines += ["      resources:", "        limits:", '          nvidia.com/gpu: "1"']
    return "\n".join(lines) + "\n"


def export_triton(folder: str | os.PathLike, out: str | os.PathLike, max_batch_size: int = 64,
                  max_queue_delay_us: int = 100, instances: int = 1, gpu: bool = False,
                  storage_uri: str = "pvc://onnxparity-models/", service_name: str = "onnxparity",
                  force: bool = False, grpc: bool = False) -> list[ExportedModel]:
    """Write the repository for every ONNX file under ``folder`` into ``out``, atomically."""
    from onnxparity._io import atomic_dir
    from onnxparity.serve.repository import find_models

    if max_batch_size < 1 or instances < 1 or max_queue_delay_us < 0:
        raise InputError("max batch size and instances must be at least 1, the queue delay 0 or more")
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", service_name):
        raise InputError(f"service name {service_name!r} is not a DNS label (lowercase letters, digits, '-')")
    models = find_models(folder)
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MANIFEST).is_file() and not force)):
        raise InputError(f"{out}: exists and is not a repository written by export-triton (use --force to replace it)")
    src, dst = Path(folder).resolve(), out.resolve()
    # Inside the input, a later export would serve its own copies; around it, --force would delete it.
    if dst == src or src.is_relative_to(dst) or (src.is_dir() and dst.is_relative_to(src)):
        raise InputError(f"{out}: the output folder must be outside the input {folder} (and not contain it)")
    written = []
    with atomic_dir(out) as tmp:
        for name, path in models.items():
            config = model_config(name, path, max_batch_size, max_queue_delay_us, instances, gpu)
            (tmp / name / "1").mkdir(parents=True)
            shutil.copyfile(path, tmp / name / "1" / "model.onnx")
            (tmp / name / "config.pbtxt").write_text(config)
            written.append(ExportedModel(name, out / name / "config.pbtxt", out / name / "1" / "model.onnx"))
        (tmp / MANIFEST).write_text(inference_service(service_name, storage_uri, gpu, grpc))
    return written
