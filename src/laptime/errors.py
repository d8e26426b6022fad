"""laptime's error base: what the command line prints as one line instead of a traceback.

Every error laptime raises for bad input or an unusable environment (an unknown name, a bad file,
a dataset that is not ready, an unavailable device, a store of another version, …) derives from
:class:`LaptimeError`; the CLI catches that class alone and prints ``error: <message>`` with the
error's :attr:`~LaptimeError.exit_code` (2 for usage errors). Anything else is a bug and keeps its
traceback. Most subclasses also derive from the built-in type they refine (``ValueError``,
``KeyError``), so code that caught those keeps working. This module imports nothing.
"""

from __future__ import annotations


class LaptimeError(Exception):
    """Bad input or an unusable environment; the CLI prints the message as one line."""

    #: The exit status of the command line for this error.
    exit_code: int = 2

    def __str__(self) -> str:
        # KeyError subclasses would otherwise print their message in quotes
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class UsageError(LaptimeError, ValueError):
    """A value given by the user (an option, a setting) is out of range or of the wrong kind."""
