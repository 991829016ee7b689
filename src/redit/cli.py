"""The ``redit`` command: each subcommand lives in its own module and registers itself here."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

from redit import __version__
from redit.atomic import describe_os_error

# subcommand -> module exposing `add_parser(subparsers)`; each parser sets `func(args) -> int`.
COMMANDS = {
    "train": "redit.train",
    "compare": "redit.experiments.compare",
    "report": "redit.experiments.report",
    "score": "redit.score",
}
# subcommands that train with TRL, which the `trl` extra installs
NEEDS_TRL = {"train", "compare"}
TRL_EXTRA = ("trl", "peft", "tensorboard")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="redit", description="Reward dithering (ReDit) for GRPO on TRL and verl.")
    parser.add_argument("--version", action="version", version=f"redit {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS.values():
        importlib.import_module(module).add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if extra and not getattr(args, "accepts_overrides", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.overrides = extra
    missing = [name for name in TRL_EXTRA if args.command in NEEDS_TRL and importlib.util.find_spec(name) is None]
    if missing:
        print(
            f"redit {args.command}: error: {', '.join(missing)} not installed: pip install 'redit[trl]'",
            file=sys.stderr,
        )
        return 2
    try:
        return int(args.func(args) or 0)
    except ValueError as error:
        print(f"redit {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # the environment: disk full, read-only, missing folder, a directory for a file ...
        print(f"redit {args.command}: error: {describe_os_error(error)}", file=sys.stderr)
        return 2 if error.errno is None else 1
    except KeyboardInterrupt:
        resume = {"train": "; continue with --resume", "compare": "; rerun the same command to resume"}
        print(f"redit {args.command}: interrupted{resume.get(args.command, '')}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
