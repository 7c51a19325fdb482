"""The `tunesmith` command line: a table of subcommands, each a module with `add_parser` and `run`.

Only this package prints or exits. Library errors (`TunesmithError`) become one line on stderr
and DESIGN.md's exit codes: 0 success, 1 the work ran and found problems, 2 unusable input.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from types import ModuleType

from tunesmith import __version__
from tunesmith.cli import compare, cost, data, demo, eval, export, serve, train
from tunesmith.errors import TunesmithError

COMMANDS: dict[str, ModuleType] = {
    "data": data,
    "train": train,
    "eval": eval,
    "compare": compare,
    "cost": cost,
    "demo": demo,
    "serve": serve,
    "export": export,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tunesmith",
        description="Prompt it or fine-tune it? Measure both on your own data, then do the winning "
        "thing.",
    )
    parser.add_argument("--version", action="version", version=f"tunesmith {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details to stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS.values():
        module.add_parser(sub)
    return parser


def _quiet_libraries(verbose: bool) -> None:
    """transformers' per-file progress bars and deprecation chatter drown our own output."""
    if verbose:
        return
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="peft")
    for name in ("httpx", "matplotlib", "filelock"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(message)s", stream=sys.stderr)
    _quiet_libraries(args.verbose)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except TunesmithError as e:
        if getattr(args, "json", False):
            print(json.dumps({"error": {"type": type(e).__name__, "message": str(e),
                                        "exit_code": e.exit_code}}))
        print(f"tunesmith: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("tunesmith: interrupted", file=sys.stderr)
        return 130
