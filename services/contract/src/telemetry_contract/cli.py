"""One command-line style for every console script: ``--version``, defaults in ``--help``,
and a bad setting or argument as one line on stderr with a non-zero exit, never a traceback.

It lives in the contract package because every service image contains it (as
``graceful_exit`` does); it needs only the standard library.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable
from importlib import metadata
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T")
Settings = TypeVar("Settings", bound="DataclassInstance")

#: Exit code for a bad setting or argument (argparse's own usage-error code).
USAGE_ERROR = 2


def version_of(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows every option's default and keeps the description's line breaks.

    A default of ``None``/``False`` means "unset" (the help text says what happens then),
    so it is not printed as ``(default: None)``.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False) or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error: ``prog: error: message (see prog --help)``."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def new_parser(prog: str, description: str, distribution: str, epilog: str = "") -> Parser:
    """A parser in the project's help style, with ``--version`` from the installed package."""
    parser = Parser(
        prog=prog,
        description=description,
        epilog=epilog or None,
        formatter_class=HelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"{prog} {version_of(distribution)}")
    return parser


def argument_type(check: Callable[[str], T]) -> Callable[[str], T]:
    """A settings parser (``settings_source.port`` ...) as an argparse ``type``: a flag is
    held to the same rule as its variable, and the rule's reason is the usage error."""

    def parse(text: str) -> T:
        try:
            return check(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = getattr(check, "__name__", "value")
    return parse


def load_or_exit(load: Callable[[], T], prog: str) -> T:
    """Run a settings loader; a bad value (``ValueError``) is one line and exit 2."""
    try:
        return load()
    except ValueError as exc:
        print(f"{prog}: bad setting: {exc}", file=sys.stderr)
        raise SystemExit(USAGE_ERROR) from None


def overlay(settings: Settings, args: argparse.Namespace) -> Settings:
    """``settings`` with every parsed option whose ``dest`` names one of its fields.

    Options take the loaded settings as their defaults, so an option not given keeps the
    environment's value; ``dataclasses.replace`` keeps every other field, so a setting
    without a flag is never dropped on the way from the environment to the service.
    """
    fields = {field.name for field in dataclasses.fields(settings)}
    given: dict[str, Any] = {k: v for k, v in vars(args).items() if k in fields}
    return dataclasses.replace(settings, **given)
