"""Check that an ONNX file predicts what its original does, on every backend and device here.

The original (Keras on TensorFlow, PyTorch eager; on CPU) is the reference; the candidates are the
original on GPU, the Keras file under Keras 3's torch backend, and the ONNX file in ONNX Runtime
on each execution provider, tuned and at batch size 1; one comparison per output. An ONNX file
alone is checked against outputs saved elsewhere: `check MODEL.onnx --reference DIR`; any two models
are compared directly (`check A B`: Keras against PyTorch, ONNX against ONNX), A's CPU run the
reference. Exit status 0
when all agree within tolerance, 1 when parity fails, 2 for usage or input errors, 3 when the check
is incomplete: a backend's worker crashed, was killed (the kernel's OOM killer: "killed (signal 9:
out of memory?)" with its peak memory) or timed out, and every comparison that ran agreed.
"""

from __future__ import annotations

import argparse

from onnxparity.cli import _args


def add_parity_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by ``check`` and ``run``."""
    p.add_argument("--data", help="digits to compare on: the test split of an IDX folder or mnist.npz "
                                  "(default: the bundled held-out digits)")
    p.add_argument("--n", type=_args.positive_int, help="only the first N digits (or N synthesized samples)")
    p.add_argument("--inputs", metavar="FILE|FOLDER",
                   help="inputs to compare on: an .npz with one array per input name (.npy for one input), or a "
                        "folder of PNG/JPEG images (resized to the model's input)")
    add_input_arguments(p)
    p.add_argument("--no-synthetic", action="store_true", help="leave out the seeded synthetic edge cases")
    p.add_argument("--axis-sizes", action="append", metavar="AXIS=SIZE[,SIZE]",
                   help="run a named dynamic axis (such as sequence) at these sizes too, on samples synthesized "
                        "at each (default: every named axis at twice the example's size)")
    p.add_argument("--providers", default="all", type=_args.providers,
                   help="ONNX Runtime execution providers, comma-separated (cpu,cuda,tensorrt or full names; "
                        "default: all, those not available listed with the reason)")
    p.add_argument("--cpu-only", action="store_true", help="no GPU backends")
    p.add_argument("--atol", type=_args.finite_nonneg, help="absolute tolerance for every comparison (default: per device, see docs)")
    p.add_argument("--rtol", type=_args.finite_nonneg, help="relative tolerance for every comparison (default: per device)")
    p.add_argument("--min-agreement", type=_args.fraction, help="least top-1 agreement, 0..1, near ties excepted (default 1)")
    p.add_argument("--batch-size", type=_args.positive_int, default=256, help="batch size of the large-batch runs (default 256)")
    p.add_argument("--batch1-n", type=_args.nonneg_int, default=1000,
                   help="inputs run at batch size 1 (default 1000; 0: all)")
    p.add_argument("--jobs", type=_args.positive_int, help="worker processes at once, one per framework (default: all)")
    p.add_argument("--timeout", type=_args.positive_float, default=600,
                   help="seconds a backend may run before its worker is stopped (default 600)")
    p.add_argument("--max-memory", type=_args.memory_size, metavar="SIZE",
                   help="resident memory a worker process may hold, such as 4G or 512M: one holding more is "
                        "stopped and the backend it was running reported, the others go on (default: no limit)")
    p.add_argument("--require-devices", metavar="DEVICE,...",
                   help="devices that must have run (cuda): where a model's original or its ONNX file did not run "
                        "on one, parity fails (exit 1) instead of listing those backends as not run")
    p.add_argument("--strict-probes", action="store_true",
                   help="let the out-of-domain probes (far-out values) decide the verdict too; by default they "
                        "are reported apart")
    p.add_argument("--save-outputs", metavar="PATH", type=_args.out_file,
                   help="write the raw outputs (.npz) for `onnxparity compare`")


def add_input_arguments(p: argparse.ArgumentParser) -> None:
    """How samples are synthesized from a model's signature (shared by check, bench and serve)."""
    p.add_argument("--input-shape", action="append", metavar="[NAME=]SHAPE",
                   help="one sample's shape for an input with dynamic axes, such as 3,32,32 or seq=16 "
                        "(repeat per input as NAME=SHAPE)")
    p.add_argument("--int-range", metavar="LOW,HIGH",
                   help="integer inputs are drawn from [LOW, HIGH) (default: the embedding table they index, else 0,10)")
    p.add_argument("--input-role", action="append", metavar="NAME=ROLE",
                   help="what an input means, so samples stay in its domain: token_ids, type_ids, mask (ones then "
                        "padding), position_ids, image or values (default: read from the graph and the input's name)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from onnxparity.backends import help_text

    p.epilog = "backends:\n" + help_text()
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("original", help="the original: checkpoint folder, .keras/.h5, or model.pth beside spec.json; "
                                    "or the ONNX file itself, with --reference")
    p.add_argument("onnx", nargs="?", help="its ONNX file, from `onnxparity convert` or any exporter (torch.onnx, "
                                           "Optimum, tf2onnx, Keras' export: the original is then fed as the file's "
                                           "signature says, tensors matched by name, else by order); or any other "
                                           "model to compare with directly (Keras, PyTorch or ONNX), each fed in its "
                                           "own layout")
    p.add_argument("--reference", metavar="DIR|FILE.npz",
                   help="saved inputs and outputs to check an ONNX file alone against: a folder in the ONNX "
                        "test-data layout (input_0.pb, output_0.pb...) or an .npz named by input and output")
    add_parity_arguments(p)
    _args.add_model_class_arguments(p, spec=True)
    p.add_argument("--json", metavar="PATH", type=_args.out_file, help="write the result as JSON (schema in docs/parity.md)")
    p.add_argument("--html", metavar="PATH", type=_args.out_file, help="write a self-contained HTML report")
    p.add_argument("--locate", action="store_true", help="when parity fails, name the first layer where the ONNX file "
                                                        "departs from the original (`onnxparity locate`)")


def parity_options(args: argparse.Namespace) -> dict:
    from onnxparity.errors import InputError

    if args.batch_size < 1:
        raise InputError("--batch-size must be at least 1")
    if args.min_agreement is not None and not 0 <= args.min_agreement <= 1:
        raise InputError("--min-agreement must lie in 0..1")
    from onnxparity.signature import parse_axis_sizes, parse_input_roles, parse_input_shapes, parse_int_range

    return dict(data=args.data, n=args.n, synthetic=not args.no_synthetic, providers=args.providers,
                inputs=getattr(args, "inputs", None), input_shapes=parse_input_shapes(args.input_shape),
                axis_sizes=parse_axis_sizes(args.axis_sizes),
                int_range=parse_int_range(args.int_range), input_roles=parse_input_roles(args.input_role),
                gpu=not args.cpu_only, atol=args.atol, rtol=args.rtol, min_agreement=args.min_agreement,
                batch_size=args.batch_size, batch1_limit=args.batch1_n or None, jobs=args.jobs,
                timeout=args.timeout, max_memory=args.max_memory, save_outputs_path=args.save_outputs, require_devices=args.require_devices,
                strict_probes=args.strict_probes)


def finish(result) -> int:
    """Print the table; parity failures end in ParityFailure (exit 1), a check that backends did not
    finish in CheckIncomplete (exit 3)."""
    from onnxparity.errors import CheckIncomplete, ParityFailure
    from onnxparity.parity.report import table

    print(table(result))
    if not result.passed:
        failures = result.failed()
        if result.incomplete:
            gone = [b.reason for b in result.backends if b.status == "failed" and b.gone]
            raise CheckIncomplete(f"incomplete: {gone[0]}" + (f" (and {len(gone) - 1} more)" if len(gone) > 1 else "")
                                  + "; every comparison that ran agreed")
        raise ParityFailure(failures[0] + (f" (and {len(failures) - 1} more)" if len(failures) > 1 else "")
                            if failures else "parity failed: nothing could be compared")
    return 0


def run(args: argparse.Namespace) -> int:
    from onnxparity.parity import check
    from onnxparity.signature import parse_axis_names

    original, onnx = _args.original_and_onnx(args, "--reference", "DIR")

    result = check(original, onnx, reference=args.reference, json_path=args.json, html_path=args.html,
                   torch_class=args.torch_class, torch_kwargs=args.torch_kwargs, trust_recorded=args.trust_recorded,
                   axis_names=parse_axis_names(args.input_shape), spec=args.spec, **parity_options(args))
    try:
        return finish(result)
    finally:
        if args.locate and not result.passed and original is not None:  # after check's table, before its verdict
            from onnxparity.locate.run import locate_failures

            locate_failures(result, original, onnx, data=args.data)
