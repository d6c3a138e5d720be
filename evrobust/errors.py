"""Error types shared by the library, the preprocessing package and the CLI.

This module imports nothing heavy (no torch, no numpy) so that ``evrobust.preprocess`` may use it.
"""

from __future__ import annotations


class UserInputError(ValueError):
    """A problem with what the user asked for (a bad option, a missing file, an unknown name).

    The message is one line that names the problem and the fix or the valid choices. The CLI prints it on
    stderr and exits with code 2; library callers can catch it as a ``ValueError``.
    """
