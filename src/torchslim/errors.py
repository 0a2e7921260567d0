"""Errors a user can cause. The CLI prints them as one line and exits with code 2."""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input (file, recipe field, model name, shape).

    The message is one line naming the bad thing; internal bugs raise anything else
    and keep their traceback.
    """


class ConfigError(UserError, ValueError):
    """A config field with a bad value (raised by a config's own checks on construction).

    A ``ValueError`` too, so :func:`torchslim.core.config.from_mapping` prefixes it with the step
    and the field it came from.
    """
