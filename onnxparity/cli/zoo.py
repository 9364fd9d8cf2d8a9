"""Check a whole model zoo at once on Ray (this machine's cores, or a cluster), with reports that CI systems read.

MANIFEST (TOML or YAML, docs/zoo.md) lists the models, each with check's options under their own
names and shared defaults at the top; every entry is checked before any work, and a bad one is
named with its line. Each model's matrix runs as one Ray task, its backends on warm workers (one
process per framework, device and node, reused from model to model). --out receives results.json,
junit.xml, summary.md and index.html, which links each model's own parity page. Exit status 0 when
every model passed, 1 when any failed, crashed or timed out, 2 for a bad manifest or bad arguments.
"""

from __future__ import annotations

import argparse
import json
import re

from onnxparity.cli import _args

# check's options that the zoo sets for all its models (its own --jobs), or that it writes itself
NOT_PER_MODEL = {"jobs": "--jobs is the zoo's (models at once)", "save_outputs": "the zoo writes its own results"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("manifest", help="the models: a TOML or YAML file (docs/zoo.md)")
    p.add_argument("--ray", default="local", metavar="local|auto|ADDRESS",
                   help="local: start Ray on this machine's cores (default); auto: the cluster this machine belongs "
                        "to (RAY_ADDRESS, or a `ray start` here); or a cluster's HOST:PORT or ray://HOST:PORT")
    p.add_argument("--out", default="zoo-results", type=_args.out_dir,
                   help="folder for results.json, junit.xml, summary.md, index.html and models/ (default zoo-results)")
    p.add_argument("--baseline", metavar="PREVIOUS.json",
                   help="an earlier run's results.json: models that passed there and fail now, or whose error grew "
                        "more than --regression-factor times, are flagged as regressions")
    p.add_argument("--regression-factor", type=_args.positive_float, default=10.0,
                   help="how much a comparison's max abs error may grow against the baseline (default 10)")
    p.add_argument("--jobs", type=_args.positive_int, help="models checked at once (default: the cluster's CPUs)")
    p.add_argument("--worker-models", type=_args.positive_int, default=50,
                   help="models a warm framework process serves before a fresh one replaces it (default 50)")
    p.add_argument("--json", action="store_true", help="print the results (results.json) instead of the table")


class _Refused(argparse.ArgumentParser):
    def error(self, message: str):
        from onnxparity.errors import InputError

        raise InputError(re.sub(r"argument --([\w-]+)(/-[\w-]+)?:", lambda m: m[1].replace("-", "_") + ":", message))


def _options_parser() -> argparse.ArgumentParser:
    from onnxparity.cli.check import add_parity_arguments

    p = _Refused(prog="manifest", add_help=False, allow_abbrev=False)
    add_parity_arguments(p)
    _args.add_model_class_arguments(p)
    return p


def check_options(fields: dict) -> dict:
    """A manifest entry's keys, parsed by check's own parser (the same checks, the same defaults)
    into :func:`onnxparity.parity.check`'s keyword arguments. Values are written as on check's
    command line (``providers = "cpu,cuda"``); a list repeats an option that takes several
    (``input_shape = ["ids=12", "mask=12"]``); ``true`` sets a flag."""
    from onnxparity.cli.check import parity_options
    from onnxparity.errors import InputError
    from onnxparity.signature import parse_axis_names

    for key in fields:
        if key in NOT_PER_MODEL:
            raise InputError(f"{key}: not a per-model key ({NOT_PER_MODEL[key]})")
    parser = _options_parser()
    argv = []
    for key, value in fields.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool) and parser.get_default(key) is False:
            argv += [flag] if value else []
        elif isinstance(value, list):
            argv += [f"{flag}={item}" for item in value]
        else:
            argv.append(f"{flag}={json.dumps(value) if isinstance(value, dict) else value}")
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        key = unknown[0].split("=", 1)[0].lstrip("-").replace("-", "_")
        raise InputError(f"unknown key {key!r} (the keys are check's options: `onnxparity check --help`)")
    for key, value in fields.items():
        if isinstance(value, list) and len(value) > 1 and not isinstance(getattr(args, key), list):
            raise InputError(f"{key}: takes one value, not a list")
    options = parity_options(args)
    for key in ("jobs", "save_outputs_path"):
        options.pop(key)
    return {**options, "torch_class": args.torch_class, "torch_kwargs": args.torch_kwargs,
            "trust_recorded": args.trust_recorded, "axis_names": parse_axis_names(args.input_shape)}


def run(args: argparse.Namespace) -> int:
    from onnxparity import views
    from onnxparity.errors import ParityFailure
    from onnxparity.zoo import check_zoo, load_manifest
    from onnxparity.zoo.reports import table

    entries = load_manifest(args.manifest, check_options)
    result = check_zoo(entries, args.out, address=args.ray, baseline=args.baseline, jobs=args.jobs,
                       factor=args.regression_factor, worker_models=args.worker_models)
    print(views.to_json(result.to_dict()).rstrip() if args.json else f"{table(result)}\nreports: {args.out}/index.html")
    if not result.passed:
        bad = [m.name for m in result.models if m.status != "passed"]
        raise ParityFailure(f"{len(bad)} of {len(result.models)} models did not pass ({', '.join(bad[:5])}"
                            + (", ..." if len(bad) > 5 else "") + f"); reports in {args.out}")
    return 0
