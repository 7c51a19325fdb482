"""Command-line flags built from a typed config dataclass (as litgpt builds its CLI from
`TrainArgs`): the field's name is the flag, its type the parser, its docstring the help, its
default the default. The dataclass's `__post_init__` checks the values, so a flag and the same
key in a config file or an API request are checked by one piece of code.

    max_seq_len: int = 1024
    \"\"\"Tokens per example; longer examples are truncated ...\"\"\"
      -> --max-seq-len N   Tokens per example; longer examples are truncated ... (default: 1024)

A field's `metadata` (see `config.flag`) refines its flag: `parse` (a function of the text;
a `UsageError` it raises becomes argparse's message), `low`/`high` (bounds checked at parse
time), `flag` (another flag name), `metavar`, `required`, `append` (a repeatable flag that collects a list).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import itertools
import textwrap
import types as types_module
import typing
from collections.abc import Callable

from tunesmith.cli import args as types
from tunesmith.errors import UsageError


@functools.cache
def attribute_docs(cls: type) -> dict[str, str]:
    """The docstring under each annotated attribute of `cls` and its bases (read once per
    class: the parser is built on every call of `main`)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        body = ast.parse(source).body[0].body  # type: ignore[attr-defined]
        for node, after in itertools.pairwise(body):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                    and isinstance(after.value.value, str)):
                docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def _parser(hint) -> tuple[Callable[[str], object] | None, list | None]:
    """(type function, choices) for a field's type hint."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return None, list(args)
    if origin is list:  # `--report-to tensorboard,mlflow` -> ["tensorboard", "mlflow"]
        item, choices = _parser(args[0])

        def parse_list(text: str, item=item, choices=choices) -> list:
            values = [v.strip() for v in text.split(",") if v.strip()]
            wrong = [v for v in values if choices and v not in choices]
            if wrong:
                raise argparse.ArgumentTypeError(
                    f"{wrong[0]!r} is not one of {', '.join(map(str, choices))}")
            return [item(v) if item else v for v in values]

        return parse_list, None
    if origin in (typing.Union, types_module.UnionType):
        literals = [a for a in args if typing.get_origin(a) is typing.Literal]
        plain = [a for a in args if a not in literals and a is not type(None)]
        words = [v for lit in literals for v in typing.get_args(lit)]
        base = plain[0] if plain else str

        def parse(text: str, base=base, words=words):
            if text in words:
                return text
            try:
                return base(text)
            except ValueError:
                expected = " or ".join([*map(repr, words), base.__name__])
                raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None

        return parse, None
    return hint, None


@functools.cache
def _type_hints(cls: type) -> dict:
    return typing.get_type_hints(cls)


def _from_metadata(meta, hint) -> Callable[[str], object] | None:
    """The parse function a field's metadata asks for, if any."""
    if "parse" in meta:
        given = meta["parse"]

        def parse(text: str, given=given):
            try:
                return given(text)
            except UsageError as e:
                raise argparse.ArgumentTypeError(str(e).removesuffix(".")) from None

        return parse
    if "low" in meta or "high" in meta:
        plain = typing.get_args(hint) or (hint,)  # int, int | None, int | Literal["auto"]
        kind = int if int in plain else float
        bounded = (types.int_range(meta.get("low"), meta.get("high")) if kind is int else
                   types.float_range(meta.get("low"), meta.get("high"),
                                     low_open=meta.get("low_open", False),
                                     high_open=meta.get("high_open", False)))
        if typing.get_origin(hint) in (typing.Union, types_module.UnionType) and any(
                typing.get_origin(a) is typing.Literal for a in typing.get_args(hint)):
            return types.auto_or(bounded)  # int | Literal["auto"]
        return bounded
    return None


def add_fields(group, cls: type, names: list[str], *,
               flags: dict[str, str] | None = None) -> None:
    """Add a flag per field in `names` of the dataclass `cls` to `group`.

    Args:
        flags: field -> flag, where the flag is not `--field-name` (or the field's
            `metadata["flag"]`).
    """
    flags = flags or {}
    hints = _type_hints(cls)
    docs = attribute_docs(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name in names:
        f = fields[name]
        meta = f.metadata
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        help_text = docs.get(name, "").replace("%", "%%")
        flag = flags.get(name) or meta.get("flag") or "--" + name.replace("_", "-")
        if meta.get("append"):  # repeatable: --prompt-model A --prompt-model B
            group.add_argument(flag, dest=name, action="append", default=None,
                               metavar=meta.get("metavar"), help=help_text)
            continue
        if hints[name] is bool:
            if default:
                group.add_argument(flags.get(name) or meta.get("flag")
                                   or "--no-" + name.replace("_", "-"), dest=name,
                                   action="store_false", help=help_text)
            else:
                group.add_argument(flag, dest=name, action="store_true", help=help_text)
            continue
        parse, choices = _parser(hints[name])
        parse = _from_metadata(meta, hints[name]) or parse
        shown = f" (default: {_show(default)})" if default not in (None, "", []) else ""
        group.add_argument(flag, dest=name, type=parse, choices=choices, default=default,
                           required=meta.get("required", False),
                           metavar=meta.get("metavar") or (None if choices else
                                                           _metavar(name, hints[name])),
                           help=help_text + ("" if meta.get("required") else
                                             shown.replace("%", "%%")))


def _metavar(name: str, hint) -> str:
    """`--lr LR`; a list of choices shows them: `--report-to {tensorboard,mlflow,wandb}[,...]`."""
    if typing.get_origin(hint) is list:
        words = typing.get_args(typing.get_args(hint)[0])
        return ("{" + ",".join(words) + "}" if words else name.upper().split("_")[-1]) + "[,...]"
    return name.upper().split("_")[-1]


def _show(default) -> str:
    """A default as a user would type it: `0,5,auto` for a list."""
    return ",".join(map(str, default)) if isinstance(default, list) else str(default)


def field_values(args: argparse.Namespace, names: list[str]) -> dict:
    return {name: getattr(args, name) for name in names}


def config_from_args(cls: type, args: argparse.Namespace, names: list[str], **given):
    """`cls(**given, **each field in names from args)`: a flag's value and the same key in a
    config file or an API request are one field, checked by one `__post_init__`. A field a
    repeatable flag left unset keeps its default."""
    values = {name: getattr(args, name) for name in names}
    defaults = {f.name: f for f in dataclasses.fields(cls)}
    for name, value in list(values.items()):
        if value is None and defaults[name].metadata.get("append"):
            del values[name]
    return cls(**given, **values)
