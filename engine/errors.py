"""The one exception type for user mistakes.

Front ends catch :class:`SpecError` and print its message as one line with exit
code 2; anything else escaping the engine is a bug or a failed run.
"""


class SpecError(ValueError):
    """A preset, parameter, sweep expression or option the user got wrong."""
