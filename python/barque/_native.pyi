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
    fed through the unpacker first, so ``offset`` is where an HTTP Range request resumes.
    Unpacking runs on a background thread; its errors surface from the next ``write``/``finish``.
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
        """Append a chunk. Raises DigestError past ``expected_size``, LayerError if unpacking failed."""
    def finish(self, blob_path: str) -> IngestResult:
        """Verify size and digest, wait for the unpacker, verify the DiffID, fsync the unpacked tree
        (one syncfs) and the blob, then rename ``partial_path`` to ``blob_path`` atomically.

        On a digest or size mismatch the partial file is deleted (it can never become valid).
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
    """Unpack a blob already in the store into ``unpack_dir`` (which must exist and be empty),
    verifying the DiffID; ``digest``/``size`` in the result describe the blob file."""

def sha256_file(path: str) -> str:
    """"sha256:<hex>" of a file's content."""
