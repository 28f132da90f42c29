"""The run options' command-line flags, generated from their one declaration in :mod:`engine.options`.

Every flag is read as text and handed to :class:`~engine.options.RunOptions`
unchanged, so a wrong value gets the engine's message (the same as the TUI's
form and its worker give), not Click's.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.markup import escape

from toysup.engine.options import OPTION, OPTIONS, RECORDED, Option

Command = TypeVar("Command", bound=Callable[..., Any])
GIVEN = "given"  # the parameter of a command that receives the flags the user gave


def help_text(option: Option, resume: bool = False) -> str:
    """The declaration's help, valid values and default (resume: the run's own backend settings)."""
    default = "the run's own" if resume and option.name in RECORDED else option.default_text()
    valid = "" if option.kind == "choice" else f"; {option.range_text()}"
    return escape(f"{option.help[:1].upper()}{option.help[1:]}{valid} [default: {default}]")


def with_run_options(*names: str, resume: bool = False) -> Callable[[Command], Command]:
    """Give a Typer command one flag per run option (all, or those ``names``).

    The flags take the place of the command's ``given`` parameter, which
    receives the values the user set, as text, by option name (flags left out
    are absent): ``RunOptions.from_dict(given)`` then checks them.
    """
    chosen = [OPTION[name] for name in names] if names else list(OPTIONS)

    def decorate(command: Command) -> Command:
        signature = inspect.signature(command, eval_str=True)
        flags = [inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[
            str | None, typer.Option(o.flag, help=help_text(o, resume), metavar=o.metavar, show_default=False)])
            for o in chosen]
        parameters: list[inspect.Parameter] = []
        for parameter in signature.parameters.values():
            if parameter.name == GIVEN:
                parameters += flags
            else:
                parameters.append(parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY))

        @functools.wraps(command)
        def wrapper(**kwargs: Any) -> Any:
            flags_given = {o.name: kwargs.pop(o.name) for o in chosen}
            return command(**kwargs, given={k: v for k, v in flags_given.items() if v is not None})

        wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
        return wrapper  # type: ignore[return-value]

    return decorate
