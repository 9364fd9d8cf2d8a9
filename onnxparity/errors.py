"""The toolkit's exceptions, each tied to the CLI exit status it maps to.

Library code raises these with a message that is fit to print on one line; the CLI prints
``onnxparity: error: <message>`` and exits with ``exit_code``, never a traceback. :func:`first_line`
quotes a library's own exception inside such a message.
"""

import re


class OnnxParityError(Exception):
    """Base class: a problem the user can act on, described in one line."""

    exit_code = 2


class InputError(OnnxParityError):
    """Bad input: a missing or corrupt file, a wrong kind of file, a bad argument (exit 2)."""


class OutputError(InputError):
    """A file could not be written: the disk is full, a file-size limit was reached (exit 2)."""


class WorkerError(OnnxParityError):
    """A backend's worker process crashed, timed out or raised (exit 2 when fatal). ``raised``: the
    worker answered with an error of its framework (it finished, and failed), rather than dying."""

    def __init__(self, message: str, output_tail: str = "", raised: bool = False):
        super().__init__(message)
        self.output_tail = output_tail
        self.raised = raised


class ParityFailure(OnnxParityError):
    """Outputs differ beyond tolerance (exit 1)."""

    exit_code = 1


class CheckIncomplete(OnnxParityError):
    """A backend did not finish (crashed, killed, timed out) and everything that ran agreed (exit 3):
    neither a pass nor a parity failure."""

    exit_code = 3


class BackendUnavailable(OnnxParityError):
    """This backend cannot run on this machine (no GPU, a provider missing from the build...)."""


def first_line(exc: BaseException, limit: int = 200, with_type: bool = True) -> str:
    """``Type: first line of the message`` (colour codes dropped, cut at ``limit`` characters), to
    quote a library's exception in a one-line error; ``with_type=False``: the line alone, or the
    type's name where the message is empty."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip().splitlines()
    line = text[0][:limit] if text else ""
    if with_type:
        return f"{type(exc).__name__}: {line}"
    return line or type(exc).__name__
