"""The ``torchslim`` command: thin; parses, calls the library, prints.

A user error prints one line and exits with code 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from torchslim.errors import UserError


def _print_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                   file: object = None, line: str | None = None) -> None:
    """A warning printed as ``torchslim: warning: ...``, like errors (no source location and line)."""
    print(f"torchslim: warning: {message}", file=sys.stderr)


def _parse_shape(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(d) for d in text.replace("x", ",").split(",") if d.strip())
    except ValueError:
        raise UserError(f"--input-shape '{text}': expected integers like 1,3,32,32") from None
    if not dims or any(d <= 0 for d in dims):
        raise UserError(f"--input-shape '{text}': expected positive integers like 1,3,32,32")
    return dims


_IMPORT_PATH = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")


def _looks_like_path(text: str) -> bool:
    return "/" in text or text.startswith(("~", ".")) or bool(Path(text).suffix)


def _model_from_arg(args: argparse.Namespace):  # noqa: ANN202 - (nn.Module, shape), imported lazily
    """(model, its (C, H, W) input shape or None) from a zoo name, a builder import path, a saved
    model directory (the shape ``torchslim run`` recorded in its metadata) or a ``.tsc`` file.

    Bare names that the zoo knows are zoo models, whatever the current directory holds (the
    rule of built-in recipe names); ``zoo:NAME`` says so explicitly.
    """
    from torchslim.zoo import create_model, list_models

    text = args.model
    kwargs = _parse_kwargs(args.kwargs)
    path = Path(text).expanduser()
    if text.startswith("zoo:") or (not _looks_like_path(text) and ":" not in text and text in list_models()):
        model = create_model(text, **kwargs)
    elif path.is_dir():
        from torchslim.serialize import load, read_spec

        try:
            model = load(path, trust_code=args.trust_code)
        except UserError as exc:
            if args.trust_code or "trust_code" not in str(exc):
                raise
            raise UserError(f"{exc}; on the command line: torchslim profile {text} --trust-code") from None
        shape = read_spec(path)["metadata"].get("input_shape")
        return model, shape or _origin_shape(model)
    elif path.is_file():
        if path.suffix != ".tsc":
            raise UserError(f"{path}: not a saved model directory or a compressed .tsc file")
        from torchslim.codec import decode_model

        model = decode_model(path)
    elif _IMPORT_PATH.fullmatch(text):
        from torchslim.zoo.user import build_user_model

        model = build_user_model(text, kwargs)
    elif _looks_like_path(text):
        raise UserError(f"{text}: no such file or directory")
    else:
        model = create_model(text, **kwargs)  # an unknown zoo name: the error lists the known ones
    return model, _origin_shape(model)


def _origin_shape(model) -> list[int] | None:  # noqa: ANN001 - nn.Module, imported lazily
    return (getattr(model, "_torchslim_origin", None) or {}).get("input_shape")


def _parse_kwargs(text: str | None) -> dict:
    if text is None:
        return {}
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = None
    if not isinstance(value, dict):
        raise UserError(f"--kwargs '{text}': expected a mapping like '{{width: 16}}'")
    return value


def cmd_profile(args: argparse.Namespace) -> int:
    import torch

    from torchslim.profiler import profile_model

    model, known = _model_from_arg(args)
    if not args.input_shape and not known:
        raise UserError(f"{args.model}: its input shape is unknown; pass --input-shape with the batch, "
                        "e.g. 1,3,32,32")
    shape = _parse_shape(args.input_shape) if args.input_shape else tuple(known)
    if known and len(shape) == len(known):
        shape = (1, *shape)
    stats = profile_model(model, (torch.randn(*shape),))
    print(json.dumps(stats.to_dict(), indent=2) if args.json else stats.table())
    return 0


def _summary(report) -> str:  # noqa: ANN001 - RunReport, imported lazily
    from torchslim.report.markdown import render_markdown

    md = render_markdown(report).split("## Steps")[0]
    table = [line for line in md.splitlines() if line.startswith("|")]
    return "\n".join(table)


def cmd_run(args: argparse.Namespace) -> int:
    from torchslim.recipes.runner import run_recipe
    from torchslim.recipes.schema import load_recipe
    from torchslim.report.summary import headline

    recipe = load_recipe(args.recipe, tuple(args.overrides))
    report = run_recipe(recipe, args.out, progress=not args.quiet)
    if not args.quiet:
        print(_summary(report))
        print(f"\nwrote {args.out}/report.json, report.md, report.html, plots, model/, model.onnx")
    print(headline(report))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from torchslim.recipes.schema import load_recipe

    recipe = load_recipe(args.recipe, tuple(args.overrides))
    names = ", ".join(s.name for s in recipe.steps) or "no steps"
    print(f"{recipe.source}: ok ({len(recipe.steps)} step(s): {names})")
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    what = args.what
    if what in ("techniques", "all"):
        from torchslim.core.registry import techniques

        registry = techniques()
        print("techniques:")
        for name in registry.names():
            print(f"  {name:<16} {registry.get(name).summary}")
    if what in ("models", "all"):
        from torchslim.zoo import list_models, model_info

        print("models:")
        for name in list_models():
            info = model_info(name)
            print(f"  zoo:{name:<14} input {tuple(info.input_shape)}, {info.num_classes} classes. {info.description}")
    if what in ("datasets", "all"):
        from torchslim.data import list_datasets

        print("datasets:")
        for name in list_datasets():
            print(f"  {name}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    args.recipe = "builtin:demo"
    return cmd_run(args)


def _quiet_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress or notes on stderr; print only the one-line summary")
    p.add_argument("--no-progress", dest="quiet", action="store_true", help=argparse.SUPPRESS)  # old name


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="torchslim", description="Make trained PyTorch models smaller and faster.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    # --debug is accepted after the subcommand too (SUPPRESS keeps the top-level value otherwise).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("profile", parents=[common], help="params, MACs, FLOPs, memory and size of a model")
    p.add_argument("model", help="zoo model (zoo:resnet20), builder import path (my_pkg.models:make_net), "
                                 "saved model directory or compressed .tsc file")
    p.add_argument("--input-shape", help="e.g. 1,3,32,32 (batch optional when the model's own shape is known); "
                                         "default: the model's own")
    p.add_argument("--kwargs", help="arguments of a zoo model or builder as a YAML mapping, e.g. '{width: 16}'")
    p.add_argument("--trust-code", action="store_true",
                   help="let a saved model import the user classes its spec names")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_profile)

    for name, func, help_text in (("run", cmd_run, "run a recipe"), ("validate", cmd_validate, "check a recipe")):
        p = sub.add_parser(name, parents=[common], help=help_text)
        p.add_argument("recipe", help="recipe YAML file or built-in recipe name")
        p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.epochs=1")
        if name == "run":
            p.add_argument("--out", required=True, help="output directory")
            _quiet_flag(p)
        p.set_defaults(func=func)

    p = sub.add_parser("ls", parents=[common], help="list techniques, models or datasets")
    p.add_argument("what", nargs="?", default="all", choices=("techniques", "models", "datasets", "all"))
    p.set_defaults(func=cmd_ls)

    p = sub.add_parser("demo", parents=[common], help="train a small VGG-11 on bundled MNIST-5k and run the demo recipe")
    p.add_argument("--out", default="runs/demo", help="output directory (default runs/demo)")
    _quiet_flag(p)
    p.set_defaults(func=cmd_demo, overrides=[])
    return parser


def one_line(exc: BaseException) -> str:
    """The error message on one line (a message quoting a multi-line value keeps its lines, joined)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return "; ".join(lines) or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Builders and user classes are named by import path from the current directory, as with
    # `python -m` (a console script's sys.path starts at its own bin/ folder instead).
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    warnings.showwarning = _print_warning  # this process is the command
    try:
        return args.func(args)
    except UserError as exc:
        if args.debug:
            raise
        print(f"torchslim: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("torchslim: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
