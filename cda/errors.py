"""The one base class of every error a user can cause.

Library code raises a subclass of :class:`CdaError` (``ConfigError``, ``DataError``,
``TemplateError`` ...) whose message says what was wrong, where (file:line, config key)
and what is allowed. The ``cda`` command catches this one type, prints the message on one
line and exits with code 2; anything else is a bug and prints one line too (exit 1), with
the traceback only under ``-v``.

Examples:
    >>> from cda.config import ConfigError
    >>> issubclass(ConfigError, CdaError) and issubclass(ConfigError, ValueError)
    True
"""

from __future__ import annotations


class CdaError(Exception):
    """Bad input or an unusable environment: the message is meant for the user, as it is."""
