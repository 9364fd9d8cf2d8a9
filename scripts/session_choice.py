"""The session `serve` would choose for each ONNX file here, with every candidate's speed beside it.

    python scripts/session_choice.py runs/latest/keras.onnx runs/latest/torch.onnx --batch-sizes 1,64,1024

For each file: plain ONNX Runtime, the toolkit's session options, those with the exact CPU graph
rewrites (where one applies) and OpenVINO, checked against plain ORT on the file and timed in
interleaved rounds for ``--budget`` seconds (onnxparity.runners.fastest.choose, what `serve` runs at
start-up), then one line per candidate: images/s per batch size, its speed over plain ORT (median
of the same-round ratios) and why it was or was not chosen. ``--threads`` as `serve --threads`
(default 0: ONNX Runtime's own choice, as the bench's sessions; serve's default is 1).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this tree's onnxparity, not an installed one


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+", help=".onnx files")
    p.add_argument("--batch-sizes", default="1,64", help="comma-separated (default: 1,64)")
    p.add_argument("--budget", type=float, default=10.0, help="seconds of timing per file (default: 10)")
    p.add_argument("--threads", type=int, default=0, help="intra-op threads (default: 0, ORT's choice)")
    p.add_argument("--input-shape", action="append", default=[], metavar="NAME=SHAPE",
                   help="sizes of dynamic axes other than the batch, as `onnxparity bench --input-shape`")
    p.add_argument("--json", help="also write every choice to this file")
    args = p.parse_args()

    from onnxparity.signature import parse_input_shapes
    from onnxparity.inputs import fixed_batch
    from onnxparity.machine import kernel_flags
    from onnxparity.onnx_model import OnnxModel
    from onnxparity.runners.fastest import choose, cpu_candidates

    sizes = [int(b) for b in args.batch_sizes.split(",")]
    shapes = parse_input_shapes(args.input_shape) or None
    print(f"CPU flags {' '.join(kernel_flags())}; load average {os.getloadavg()[0]:.1f}", flush=True)
    found = {}
    for path in args.models:
        model = OnnxModel(path)
        feeds = {b: fixed_batch(model.spec, model.signature, b, input_shapes=shapes)
                 for b in (sizes if model.batched else [1])}
        choice = choose(cpu_candidates(path, args.threads), feeds, args.budget)
        found[path] = choice.to_dict()
        print(f"\n{path}: {choice.why}")
        for name, c in choice.candidates.items():
            if "images_per_second" not in c:
                print(f"  {name:9} {c['reason']}")
                continue
            speeds = ", ".join(f"batch {b}: {ips:,.0f}/s ({c['vs_baseline'][b]:.2f}x)" for b, ips in
                               c["images_per_second"].items())
            mark = "  <- chosen" if name == choice.chosen else ""
            print(f"  {name:9} {c['score']:.2f}x plain; {speeds}{mark}")
    if args.json:
        Path(args.json).write_text(json.dumps(found, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
