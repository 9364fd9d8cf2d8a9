"""Write the ONNX models in a folder as a Triton model repository and a KServe InferenceService.

OUT/<model>/1/model.onnx and OUT/<model>/config.pbtxt for each model, OUT/inferenceservice.yaml
for KServe. Upload OUT to the storage the manifest names (--storage-uri) and `kubectl apply` it,
or run `tritonserver --model-repository OUT` (V2 over HTTP on 8000, over gRPC on 8001); clients of
`onnxparity serve` (and of its --grpc-port) work unchanged.
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("folder", help="folder of .onnx files (e.g. the `onnxparity run` output), or one .onnx file")
    p.add_argument("out", help="repository folder to write (replaced whole if export-triton wrote it before)")
    p.add_argument("--max-batch-size", type=int, default=64, help="Triton max_batch_size (default: 64)")
    p.add_argument("--max-queue-delay-us", type=int, default=100,
                   help="dynamic batching's max_queue_delay_microseconds (default: 100)")
    p.add_argument("--instances", type=int, default=1, help="instance_group count (default: 1)")
    p.add_argument("--gpu", action="store_true", help="KIND_GPU instances and a GPU in the manifest (default: CPU)")
    p.add_argument("--storage-uri", default="pvc://onnxparity-models/",
                   help="where KServe will find the repository (default: pvc://onnxparity-models/)")
    p.add_argument("--name", default="onnxparity", help="the InferenceService's name (default: onnxparity)")
    p.add_argument("--grpc", action="store_true",
                   help="the manifest exposes V2 over gRPC (protocolVersion grpc-v2, Triton's gRPC port 9000) "
                        "instead of REST; KServe exposes one of the two")
    p.add_argument("--force", action="store_true", help="replace OUT even if export-triton did not write it")


def run(args: argparse.Namespace) -> int:
    from onnxparity.serve.triton import MANIFEST, export_triton

    written = export_triton(args.folder, args.out, max_batch_size=args.max_batch_size,
                            max_queue_delay_us=args.max_queue_delay_us, instances=args.instances, gpu=args.gpu,
                            storage_uri=args.storage_uri, service_name=args.name, force=args.force,
                            grpc=args.grpc)
    for model in written:
        print(f"{model.name}: {model.config_path}")
    print(f"KServe manifest: {args.out}/{MANIFEST}")
    return 0
