"""The `tunesmith` command line: a table of subcommands, each a module with `add_parser` and `run`.

Only this package prints or exits. Library errors (`TunesmithError`) become one line on stderr
and DESIGN.md's exit codes: 0 success, 1 the work ran and found problems, 2 unusable input.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import sys
from collections.abc import Callable
from types import ModuleType

from tunesmith import __version__
from tunesmith.cli import (
    compare,
    cost,
    curve,
    data,
    demo,
    eval,
    export,
    migrate,
    serve,
    train,
    worker,
)
from tunesmith.errors import TunesmithError

COMMANDS: dict[str, ModuleType] = {
    "data": data,
    "train": train,
    "eval": eval,
    "compare": compare,
    "curve": curve,
    "cost": cost,
    "demo": demo,
    "serve": serve,
    "worker": worker,
    "export": export,
    "migrate": migrate,
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
    for name in ("httpx", "httpx2", "matplotlib", "filelock", "openai"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # bitsandbytes (imported by PEFT when installed) warns at import on AVX512-BF16 CPUs that
    # it cannot fetch an optional kernel from the hub; it uses its own kernel then
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
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
        return _fail(args, type(e).__name__, str(e), e.exit_code)
    except OSError as e:  # the file system refused: a path under a file, permissions, disk full
        where = f"{e.filename}: " if e.filename else ""
        code = 2 if e.errno in _PATH_ERRORS else 1
        return _fail(args, type(e).__name__, f"{where}{e.strerror or e}", code)
    except KeyboardInterrupt:
        print("tunesmith: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug; -v shows the traceback
        if args.verbose:
            raise
        return _fail(args, type(e).__name__, f"internal error ({type(e).__name__}: {e}); rerun "
                     "with -v for the traceback, and please report it", 1)


_PATH_ERRORS = {errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EPERM,
                errno.EEXIST, errno.ENAMETOOLONG, errno.EROFS, errno.ELOOP}
"""File-system errors caused by the paths given (exit 2); others (disk full, I/O) exit 1."""


def _fail(args: argparse.Namespace, kind: str, message: str, code: int) -> int:
    if getattr(args, "json", False):
        print(json.dumps({"error": {"type": kind, "message": message, "exit_code": code}}))
    print(f"tunesmith: error: {message}", file=sys.stderr)
    return code
