"""Escaping text for Textual markup.

Textual's markup parser reads any ``[`` as a possible tag, so a range such as
``[0, 1)`` or an error message with brackets can swallow the closing tag after
it; a backslash before every ``[`` makes it literal.
"""

from __future__ import annotations


def esc(text: object) -> str:
    """``text`` made safe to embed in Textual markup."""
    return str(text).replace("[", "\\[")
