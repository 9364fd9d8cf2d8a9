"""Compare two saved parity runs (`--save-outputs` files), e.g. a GPU machine's against a CPU laptop's.

Every backend of B is compared with A's reference for the same model, on the same inputs.
"""

from __future__ import annotations

import argparse

from onnxparity.cli import _args


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("a", help="the run to compare against (its reference backend is the reference)")
    p.add_argument("b", help="the run whose backends are checked")
    p.add_argument("--reference", help="which backend of A is the reference (default: A's reference per model)")
    p.add_argument("--atol", type=_args.finite_nonneg,
                   help="absolute tolerance for every comparison (default: per device, as in check)")
    p.add_argument("--rtol", type=_args.finite_nonneg, help="relative tolerance (default: per device)")
    p.add_argument("--min-agreement", type=_args.fraction,
                   help="least top-1 agreement, 0..1, near ties excepted (default 1)")
    p.add_argument("--json", metavar="PATH", type=_args.out_file, help="write the result as JSON")
    p.add_argument("--html", metavar="PATH", type=_args.out_file, help="write an HTML report")


def run(args: argparse.Namespace) -> int:
    from onnxparity.cli.check import finish
    from onnxparity.parity import compare_runs

    result = compare_runs(args.a, args.b, reference=args.reference, atol=args.atol, rtol=args.rtol,
                          min_agreement=args.min_agreement)
    if args.json:
        result.save(args.json)
    if args.html:
        from onnxparity.parity.page import write_html

        write_html(args.html, result)
    return finish(result)
