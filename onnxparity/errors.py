"""The toolkit's exceptions, each tied to the CLI exit status it maps to.

Library code raises these with a message that is fit to print on one line; the CLI prints
``onnxparity: error: <message>`` and exits with ``exit_code``, never a traceback.
"""


class OnnxParityError(Exception):
    """Base class: a problem the user can act on, described in one line."""

    exit_code = 2


class InputError(OnnxParityError):
    """Bad input: a missing or corrupt file, a wrong kind of file, a bad argument (exit 2)."""


class WorkerError(OnnxParityError):
    """A backend's worker process crashed, timed out or raised (exit 2 when fatal)."""

    def __init__(self, message: str, output_tail: str = ""):
        super().__init__(message)
        self.output_tail = output_tail


class ParityFailure(OnnxParityError):
    """Outputs differ beyond tolerance (exit 1)."""

    exit_code = 1


class BackendUnavailable(OnnxParityError):
    """This backend cannot run on this machine (no GPU, a provider missing from the build...)."""
