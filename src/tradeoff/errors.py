"""The one exception type of faults a user can fix: a bad config value, a missing or corrupt artifact, a bad
argument value.

``tradeoff`` (:func:`tradeoff.cli.main`) reports it as one line ``tradeoff: error: <message>`` on stderr and
exits with :data:`EXIT_USER_ERROR`; any other exception is a bug and keeps its traceback (exit status 1).
The message names the file or the config key to fix. This module imports nothing heavy, so that config
checks and record readers can raise it without loading torch.
"""

from __future__ import annotations

EXIT_USER_ERROR = 3
"""Exit status of ``tradeoff`` when a :class:`TradeoffError` ends the command."""


class TradeoffError(Exception):
    """A fault the user can fix; the message is one line naming the file or the config key."""
