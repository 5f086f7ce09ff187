"""barque's exceptions: one root, with leaves that also inherit the matching builtin.

Code that catches ``ValueError`` or ``LookupError`` keeps working; code that wants every barque
failure catches :class:`BarqueError`. The CLI maps these to a message and an exit code in one
place (``barque.cli.errors``).
"""

from __future__ import annotations


class BarqueError(Exception):
    """Root of every error barque raises on purpose."""


class InvalidReferenceError(BarqueError, ValueError):
    """An image reference does not follow Docker's reference grammar."""


class ImageNotFoundError(BarqueError, LookupError):
    """No local image matches the reference or ID."""


class AmbiguousImageError(BarqueError, LookupError):
    """A short ID prefix matches more than one image."""


class ImageInUseError(BarqueError, RuntimeError):
    """An image cannot be removed because something still needs it."""


class ConflictError(BarqueError, RuntimeError):
    """The request conflicts with the store's current state."""


class RegistryError(BarqueError, ConnectionError):
    """The registry could not be reached or answered with an error."""

    #: True when the host could not be reached at all (a mirror failing so is skipped for a
    #: while); set by the registry client.
    unreachable: bool = False


class ManifestUnknownError(RegistryError, LookupError):
    """The registry has no manifest for the reference (HTTP 404 / MANIFEST_UNKNOWN)."""


class AuthenticationError(RegistryError, PermissionError):
    """The registry refused our credentials or asked for ones we do not have."""


class InvalidManifestError(BarqueError, ValueError):
    """A manifest, index or image config is malformed, too large or ambiguous."""


class PlatformNotFoundError(BarqueError, LookupError):
    """A manifest list/index has no entry for the requested platform."""


class DigestMismatchError(BarqueError, ValueError):
    """Content did not hash to (or was not the size of) what its descriptor promised."""


class InvalidLayerError(BarqueError, ValueError):
    """A layer is malformed or hostile; the message names the offending entry."""


class StoreError(BarqueError, OSError):
    """The store on disk is unusable (permissions, corruption, full disk)."""


class InvalidPlatformError(BarqueError, ValueError):
    """A platform string is not ``os[/arch[/variant]]`` (e.g. ``--platform linux/arm64/v8``)."""


class ContainerNotFoundError(BarqueError, LookupError):
    """No container has that name or ID (prefix)."""


class ContainerStartError(BarqueError, RuntimeError):
    """The container's process could not be set up or exec'd.

    ``exit_code`` follows Docker: 127 when the command was not found, 126 when it could not be
    executed, 125 for any other failure of the engine.
    """

    def __init__(self, message: str, exit_code: int = 125) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class InvalidArgumentError(BarqueError, ValueError):
    """A ``run``/``create`` option or the image config cannot make a valid container (exit 125)."""


class InvalidArgumentTypeError(BarqueError, TypeError):
    """An argument of the Python API has the wrong type (``images.get(None)``); the message
    names the argument. Its value, not its type, being wrong is an InvalidArgumentError."""


class ContainerPathNotFoundError(BarqueError, FileNotFoundError):
    """``cp``: the path does not exist in the container (Docker's "Could not find the file")."""


class InvalidArchiveError(BarqueError, ValueError):
    """An image archive (save/load, import) is malformed, truncated or tampered with."""


class VolumeNotFoundError(BarqueError, LookupError):
    """No volume has that name."""


class VolumeInUseError(ConflictError):
    """A volume cannot be removed while a container uses it; the message names them."""


class TemplateError(BarqueError, ValueError):
    """A ``--format``/``-f`` Go template does not parse or cannot be executed on the data;
    the message is the docker CLI's (``template parsing error: template: :1: ...``)."""


class OperationCancelledError(BarqueError, RuntimeError):
    """A long call (pull, push, save, load, import, commit) was cancelled through its
    ``cancel`` event; what it had begun is undone or left resumable, as after a kill."""
