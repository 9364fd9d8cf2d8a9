"""The ``onnxparity`` command line: a thin layer that parses arguments and calls the API.

Each command is one module here with ``add_arguments(parser)`` and ``run(args) -> int``; its
docstring's first line is its help. Errors the user can act on print one line and exit 2
(1 when parity fails); frameworks are imported only by the command that needs them.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from onnxparity import __version__
from onnxparity.errors import OnnxParityError

# command name -> module (one line per command).
COMMANDS = {
    "train": "onnxparity.cli.train",
    "evaluate": "onnxparity.cli.evaluate",
    "predict": "onnxparity.cli.predict",
    "check": "onnxparity.cli.check",
    "run": "onnxparity.cli.run",
    "compare": "onnxparity.cli.compare",
    "locate": "onnxparity.cli.locate",
    "convert": "onnxparity.cli.convert",
    "migrate": "onnxparity.cli.migrate",
    "serve": "onnxparity.cli.serve",
    "export-triton": "onnxparity.cli.export_triton",
    "bench": "onnxparity.cli.bench",
    "quantize": "onnxparity.cli.quantize",
    "zoo": "onnxparity.cli.zoo",
}


class _Parser(argparse.ArgumentParser):
    """argparse, with the toolkit's one-line errors (the usage is one ``--help`` away)."""

    def error(self, message: str):
        self.exit(2, f"onnxparity: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="onnxparity", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"onnxparity {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what each step does")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        doc = (module.__doc__ or "").strip()
        p = sub.add_parser(name, help=doc.splitlines()[0] if doc else None, description=doc)
        p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                       help="log what each step does (also accepted before the command)")
        p.add_argument("--import", dest="imports", action="append", metavar="MODULE",
                       help="import MODULE before any model loads, here and in every worker (repeatable): the module "
                            "that registers a Keras model's custom layers or an ExportedProgram's output classes; "
                            "found from the current folder as well as the installed packages")
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    import os

    from onnxparity import _process, _quiet, _signals

    if os.getcwd() not in sys.path and "" not in sys.path:  # as `python -m` and `uvicorn main:app` find the user's code
        sys.path.insert(0, os.getcwd())
    args = build_parser().parse_args(argv)
    _signals.install()
    if not args.verbose:
        _quiet.install()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="onnxparity: %(levelname)s: %(message)s")
    if getattr(args, "json", None) or args.verbose:  # machine-read output, or log lines instead
        from onnxparity import progress

        progress.configure(False)
    try:
        _process.request_imports(args.imports)
        return int(args._run(args) or 0)
    except OnnxParityError as exc:
        print(f"onnxparity: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # a full disk outside the atomic writers (temporary files): one line too
        from onnxparity._io import no_room

        reason = no_room(exc)
        if reason is None:
            raise
        print(f"onnxparity: error: cannot write {exc.filename or 'a file'}: {reason}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM as _signals.Terminated: the clean-up has run
        what = "terminated" if isinstance(exc, _signals.Terminated) else "interrupted"
        print(f"onnxparity: {what}" + (f" {exc}" if str(exc) else ""), file=sys.stderr)
        return getattr(exc, "exit_code", 130)


if __name__ == "__main__":
    sys.exit(main())
