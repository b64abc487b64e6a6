"""The engine's input errors: bad user input (unknown study, bad spec, bad run directory).

The CLI turns an :class:`InputError` into one red sentence and exit code 2; any other exception
raised by a study is a bug in that study (exit code 1).
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input from the user; the message is one sentence naming the argument or field."""


class SpecError(InputError):
    """A study spec (preset or TOML config) that does not validate."""


class StudyNotFoundError(InputError):
    """A study name that no registered experiment carries."""
