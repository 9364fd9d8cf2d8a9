"""Train a reference model natively (the article's Keras CNN or PyTorch Net), or continue any checkpoint folder."""

from __future__ import annotations

import argparse
import json

from onnxparity.cli import _args


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("framework", nargs="?", choices=["keras", "torch"], help="the reference model to train")
    p.add_argument("--from", dest="from_dir", metavar="DIR",
                   help="continue training this checkpoint folder (a migrated one too) in its own framework")
    p.add_argument("--data", help="dataset: an IDX folder, mnist.npz, 'mnist' (full, cached) or the bundled sample (default)")
    p.add_argument("--epochs", type=_args.positive_int,
                   help="epochs to train (default: the preset's, Keras 10, PyTorch 40 or 3 for 'article'); "
                        "with --resume, this many more (default: finish an interrupted run); 1 with --from")
    p.add_argument("--preset", default="default", choices=["default", "article"],
                   help="hyperparameters: 'article' is the article's exactly")
    p.add_argument("--out", type=_args.out_dir, help="checkpoint folder (default: runs/<framework>; with --from, DIR itself)")
    p.add_argument("--resume", action="store_true", help="continue training the checkpoint in --out")
    p.add_argument("--h5", action="store_true", help="Keras: also save the article's model.h5")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--trust-recorded", action="store_true",
                   help="with --from: build the PyTorch class the folder's spec.json records even when it is not the "
                        "toolkit's, a migrated model.py or a trusted zoo's (only for folders you trust)")


def run(args: argparse.Namespace) -> int:
    from onnxparity.errors import InputError
    from onnxparity.models import train, train_from

    if args.from_dir:
        if args.framework or args.resume or args.h5:
            raise InputError("--from takes the framework from the folder; drop the framework, --resume and --h5")
        out = args.out or args.from_dir
        from onnxparity.trust import Trust

        summary = train_from(args.from_dir, out, data=args.data, epochs=args.epochs, preset_name=args.preset,
                             trust=Trust(recorded=args.trust_recorded))
        framework = summary["framework"]
    else:
        if not args.framework:
            raise InputError("say which reference model to train (keras or torch), or continue one with --from DIR")
        framework = args.framework
        out = args.out or f"runs/{args.framework}"
        options = dict(data=args.data, epochs=args.epochs, preset_name=args.preset, resume=args.resume)
        if args.h5:
            if args.framework != "keras":
                raise InputError("--h5 is for Keras models")
            options["save_h5"] = True
        summary = train(args.framework, out, **options)
    if args.json:
        print(json.dumps(summary))
    else:
        n = summary["epochs_done"]
        print(f"{framework}: {n} epoch{'' if n == 1 else 's'}, test accuracy {summary['test_accuracy']:.4f} "
              f"on {summary['test_digits']} test images, {summary['train_seconds']:.1f} s; saved {out}")
    return 0
