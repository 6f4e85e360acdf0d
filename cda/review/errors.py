"""The errors of ``cda review``: each says what was wrong, where, and what is allowed.

Examples:
    >>> from cda.errors import CdaError
    >>> issubclass(ReviewError, CdaError) and issubclass(LabelStudioError, CdaError)
    True
"""

from __future__ import annotations

from cda.errors import CdaError


class ReviewError(CdaError, ValueError):
    """Bad input to a review command: no build there, no audit split, an unknown ``--which``."""


class LabelStudioError(CdaError, RuntimeError):
    """Label Studio could not be installed, started or reached, or refused a request.

    Messages never hold the API token.
    """
