"""Private native core of barque (Rust, via PyO3). Not a public API: use barque.Engine.

Every call that does I/O or waits releases the GIL. I/O failures raise OSError(errno, msg, path).
"""

from typing import Literal, TypedDict

Compression = Literal["gzip", "zstd", "none", "auto"]

class LayerError(ValueError):
    """A layer is malformed or hostile (path escape, forged xattr, corrupt stream, bomb...).

    The message names the offending tar entry where there is one.
    """

class DigestError(ValueError):
    """Content did not match its expected sha256 digest or size."""

class IngestResult(TypedDict):
    digest: str          # "sha256:<hex>" of the compressed blob as received
    size: int            # bytes of the compressed blob
    diff_id: str | None  # "sha256:<hex>" of the uncompressed tar, None when not unpacked
    unpacked_bytes: int  # sum of regular file sizes written (0 when not unpacked)
    entries: int         # tar entries processed (0 when not unpacked)

class BlobIngest:
    """One blob streamed once: sha256 -> append to an ingest file -> (decompress -> sha256 -> untar).

    If ``partial_path`` already holds bytes (an interrupted earlier pull), they are hashed and
    fed through the unpacker first, so ``offset`` is where an HTTP Range request resumes (a file
    longer than ``expected_size`` is emptied instead). The ingest file is created mode 0600.
    Unpacking runs on a background thread; its errors surface from ``write`` (OS errors) or
    ``finish`` (bad layers, see ``write``).

    ``max_bytes`` bounds the uncompressed tar stream and ``max_entries`` its entries (bomb guards).
    An unknown ``compression`` raises ValueError; a malformed ``expected_digest`` or
    ``expected_diff_id`` raises DigestError. After ``finish``, ``abort`` or any error the object is
    closed: further ``write``/``finish`` calls raise ValueError. A LayerError or DigestError deletes
    the partial file (those bytes can never become valid); an OSError keeps it for a resume.
    """

    def __init__(
        self,
        partial_path: str,
        expected_digest: str,
        expected_size: int | None = None,
        *,
        unpack_dir: str | None = None,
        compression: Compression = "auto",
        expected_diff_id: str | None = None,
        max_bytes: int = 64 << 30,
        max_entries: int = 2_000_000,
    ) -> None: ...
    @property
    def offset(self) -> int:
        """Bytes of the blob already received (persisted in ``partial_path``)."""
    def write(self, data: bytes) -> None:
        """Append a chunk. Raises DigestError past ``expected_size``, OSError if the unpacker hit one.

        A layer found bad while unpacking is reported by ``finish`` once every byte is in: as
        DigestError when they do not match the digest (damaged in transit), else LayerError. So a
        corrupt download is never mistaken for a hostile layer (the unpacker stops at once).
        """
    def finish(self, blob_path: str) -> IngestResult:
        """Verify size and digest, wait for the unpacker, verify the DiffID, fsync the unpacked tree
        (one syncfs) and the blob, then rename ``partial_path`` to ``blob_path`` atomically.

        On a digest, size or DiffID mismatch (DigestError) or a bad layer (LayerError) the partial
        file is deleted (it can never become valid).
        """
    def abort(self) -> None:
        """Stop the unpacker and close files; the partial file is kept for a later resume."""

def unpack_blob(
    blob_path: str,
    unpack_dir: str,
    *,
    compression: Compression = "auto",
    expected_diff_id: str | None = None,
    max_bytes: int = 64 << 30,
    max_entries: int = 2_000_000,
) -> IngestResult:
    """Unpack a blob already in the store into ``unpack_dir`` (which must exist and be empty,
    else OSError ENOTEMPTY), verifying the DiffID; ``digest``/``size`` in the result describe the
    blob file."""

def sha256_file(path: str) -> str:
    """"sha256:<hex>" of a file's content."""
