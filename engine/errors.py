"""toysup's errors, by kind.

- :class:`UserError`: something the user got wrong (a preset, parameter, sweep
  expression, option, run name or output path). Front ends print its message as
  one line and exit with code 2; nothing is written. ``SpecError`` is its old name.
- :class:`RunDataError`: a run folder whose files are missing, unreadable or
  inconsistent (a truncated CSV, a corrupt weights file). A report prints one line
  for the part it cannot draw and goes on with the rest.

Anything else escaping the engine is a bug (or a failed run, which the runner
records): it is never caught to be shown as "cannot be drawn".
"""


class ToysupError(Exception):
    """Base of the errors toysup reports as one line of text."""


class UserError(ToysupError, ValueError):
    """A preset, parameter, sweep expression or option the user got wrong (a ValueError, as it always was)."""


SpecError = UserError  # the name most of the engine raises it by


class RunDataError(ToysupError):
    """A run folder's files are missing, unreadable or inconsistent."""
