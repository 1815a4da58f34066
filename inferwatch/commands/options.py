"""Flags derived from config dataclasses, so `serve` and `engine` share one set of engine flags
and no default is written twice: a field `max_num_seqs` becomes `--max-num-seqs`, documented
with its default and its INFERWATCH_ variable."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from inference.settings import base_type, env_name, is_list

OptionFields = list[tuple[dataclasses.Field[Any], type]]


def add_options(parser: argparse.ArgumentParser, options: OptionFields) -> None:
    """Every flag defaults to None, so "not given" falls through to the environment."""
    for f, type_ in options:
        kind, _ = base_type(type_)
        default = f.default if f.default is not dataclasses.MISSING else None
        text = f.metadata.get("help", f.name.replace("_", " "))
        flag = "--" + f.name.replace("_", "-")
        if kind is bool:
            if default:
                parser.add_argument(
                    "--no-" + f.name.replace("_", "-"),
                    dest=f.name,
                    action="store_false",
                    default=None,
                    help=f"turn off: {text} ({env_name(f.name)}=0)",
                )
            else:
                parser.add_argument(
                    flag, action="store_true", default=None, help=f"{text} ({env_name(f.name)}=1)"
                )
            continue
        if is_list(type_):
            parser.add_argument(
                flag, action="append", default=None, help=f"{text} ({env_name(f.name)})"
            )
            continue
        shown = "" if default is None else f"default {default}; "
        parser.add_argument(
            flag,
            type=kind,
            choices=f.metadata.get("choices"),
            default=None,
            help=f"{text} ({shown}{env_name(f.name)})",
        )


def given(args: argparse.Namespace, options: OptionFields) -> dict[str, Any]:
    """The options given on the command line, by field name."""
    names = {f.name for f, _ in options}
    return {k: v for k, v in vars(args).items() if k in names and v is not None}
