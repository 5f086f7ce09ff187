//! The one-pass pipeline: hash the compressed blob and append it to the ingest file while a
//! background thread decompresses it, hashes the tar (the DiffID) and unpacks it safely.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use crate::archive::Archive;
use crate::compression::{self, Compression, CompressionError, SourceError, SourceReader};
use crate::digest::{Digest, DigestError, Hasher, HashingReader};
use crate::error::{os_class, stream_error_class, ErrorClass};
use crate::kernel::{Kernel, Linux};
use crate::limits::{LimitedReader, Limits};
use crate::unpack::{UnpackError, Unpacker};

/// Chunks in flight to the unpack thread: enough to ride out bursts, small enough to bound
/// memory and push back on the network reader.
const CHANNEL_DEPTH: usize = 16;
/// Decompressed data goes from the decompression thread to the extraction in chunks of this
/// size (at most), with this many in flight.
const DECODED_CHUNK: usize = 1 << 20;
const DECODED_DEPTH: usize = 8;
/// The ingest file's writeback is started every this many bytes, as they arrive.
const WRITEBACK_CHUNK: u64 = 8 << 20;
/// Read size when replaying an interrupted ingest file.
const REPLAY_CHUNK: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Digest(#[from] DigestError),
    #[error(transparent)]
    Unpack(#[from] UnpackError),
    #[error(transparent)]
    Compression(#[from] CompressionError),
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("layer stream unpacked into {}: {source}", path.display())]
    Stream {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("ingest into {} is already finished, aborted or failed", path.display())]
    Closed { path: PathBuf },
    #[error("the unpack thread for {} stopped unexpectedly", path.display())]
    WorkerLost { path: PathBuf },
}

impl IngestError {
    pub fn class(&self) -> ErrorClass<'_> {
        match self {
            IngestError::Digest(e) => e.class(),
            IngestError::Unpack(e) => e.class(),
            IngestError::Compression(e) => e.class(),
            IngestError::Io { path, source, .. } => os_class(source, path),
            IngestError::Stream { path, source } => stream_error_class(source, Some(path)),
            IngestError::Closed { .. } => ErrorClass::Usage,
            IngestError::WorkerLost { path } => ErrorClass::Os {
                errno: libc::EIO,
                path: Some(path),
            },
        }
    }

    /// The bytes themselves are bad: retrying with the same bytes cannot succeed.
    pub fn is_content_error(&self) -> bool {
        matches!(self.class(), ErrorClass::Layer | ErrorClass::Digest)
    }
}

/// Where and how to unpack a layer.
#[derive(Debug, Clone)]
pub struct UnpackOptions {
    pub dir: PathBuf,
    pub compression: Compression,
    pub expected_diff_id: Option<Digest>,
    pub limits: Limits,
    /// Start the writeback of large files as they are written: only worth it when the tree is
    /// synced right after (see [`Unpacker::with_writeback`]).
    pub writeback: bool,
}

impl UnpackOptions {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        UnpackOptions {
            dir: dir.into(),
            compression: Compression::Auto,
            expected_diff_id: None,
            limits: Limits::default(),
            writeback: false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub expected_digest: Digest,
    pub expected_size: Option<u64>,
    /// Unpack while receiving; `None` only stores the blob.
    pub unpack: Option<UnpackOptions>,
    /// Start the ingest file's writeback as its bytes arrive: only worth it when `finish` will
    /// sync. Without it the kernel's flusher writes the blob in the background.
    pub writeback: bool,
}

/// What an ingest or unpack produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestResult {
    /// Digest of the compressed blob.
    pub digest: Digest,
    /// Size of the compressed blob.
    pub size: u64,
    /// Digest of the uncompressed tar, when unpacked.
    pub diff_id: Option<Digest>,
    /// Sum of regular file sizes written.
    pub unpacked_bytes: u64,
    /// Tar entries processed.
    pub entries: u64,
}

/// What the unpack side of the pipeline produced.
#[derive(Debug, Clone, Copy)]
struct Unpacked {
    diff_id: Digest,
    entries: u64,
    unpacked_bytes: u64,
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// raw -> decompress -> bomb guard -> DiffID hash -> tar -> safe extraction, then the rest of
/// the stream is drained so the DiffID covers the whole tar.
///
/// Decompression and hashing run on their own thread, handing decoded chunks to the
/// extraction (this thread) over a bounded channel: on a single large layer the two halves
/// take comparable CPU time. A decoding error (corrupt stream, bomb guard, failing source)
/// travels down the channel in stream order, so it is reported exactly as a direct read
/// would report it, naming the entry being read.
fn unpack_stream<R: Read + Send>(
    raw: R,
    root: OwnedFd,
    opts: &UnpackOptions,
) -> Result<Unpacked, IngestError> {
    let stream_err = |source| IngestError::Stream {
        path: opts.dir.clone(),
        source,
    };
    let (_, decoded) = compression::decoder(opts.compression, raw).map_err(stream_err)?;
    let tar = HashingReader::new(LimitedReader::new(decoded, opts.limits.max_bytes));
    let (tx, rx) = mpsc::sync_channel::<io::Result<Vec<u8>>>(DECODED_DEPTH);
    let (free_tx, free_rx) = mpsc::channel::<Vec<u8>>();
    thread::scope(|scope| {
        let decoder = thread::Builder::new()
            .name("barque-inflate".into())
            .spawn_scoped(scope, move || decode_chunks(tar, &tx, &free_rx))
            .map_err(|source| IngestError::Io {
                op: "start decompression thread for",
                path: opts.dir.clone(),
                source,
            })?;
        let chunks = DecodedReader {
            rx,
            free: free_tx,
            chunk: Vec::new(),
            pos: 0,
        };
        let extracted = extract(chunks, root, opts);
        // Dropping the reader (inside `extract`) unblocks the decoder if extraction stopped early.
        let diff_id = decoder.join().ok().flatten();
        let summary = extracted?;
        let diff_id = diff_id.ok_or_else(|| IngestError::WorkerLost {
            path: opts.dir.clone(),
        })?;
        Ok(Unpacked {
            diff_id,
            entries: summary.entries,
            unpacked_bytes: summary.unpacked_bytes,
        })
    })
}

/// The extraction half of [`unpack_stream`]: consumes (and then drops) `chunks`.
fn extract(
    chunks: DecodedReader,
    root: OwnedFd,
    opts: &UnpackOptions,
) -> Result<crate::unpack::UnpackSummary, IngestError> {
    let mut archive = Archive::new(chunks);
    let mut unpacker = Unpacker::new(Linux, root, &opts.dir, opts.limits, is_root())
        .with_writeback(opts.writeback);
    unpacker.unpack(&mut archive)?;
    let summary = unpacker.finish()?;
    let mut rest = archive.into_inner();
    rest.drain().map_err(|source| IngestError::Stream {
        path: opts.dir.clone(),
        source,
    })?;
    Ok(summary)
}

/// The decompression half of [`unpack_stream`]: reads the decoded, hashed tar stream into
/// chunks until its end or an error (which is sent on as the last item). Returns the DiffID
/// when the whole stream was read and handed over.
fn decode_chunks<R: Read>(
    mut tar: HashingReader<R>,
    tx: &SyncSender<io::Result<Vec<u8>>>,
    free: &Receiver<Vec<u8>>,
) -> Option<Digest> {
    loop {
        let mut chunk = free.try_recv().unwrap_or_default();
        chunk.resize(DECODED_CHUNK, 0);
        let mut filled = 0;
        // Fill most of the chunk: fewer, larger hand-overs.
        let read = loop {
            match tar.read(&mut chunk[filled..]) {
                Ok(0) => break Ok(true),
                Ok(n) => {
                    filled += n;
                    if filled >= DECODED_CHUNK / 2 {
                        break Ok(false);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        chunk.truncate(filled);
        if filled > 0 && tx.send(Ok(chunk)).is_err() {
            return None;
        }
        match read {
            Ok(false) => {}
            Ok(true) => return Some(tar.finish().1),
            Err(e) => {
                let _ = tx.send(Err(e));
                return None;
            }
        }
    }
}

/// Reads the decoded chunks on the extraction side, returning emptied ones for reuse.
struct DecodedReader {
    rx: Receiver<io::Result<Vec<u8>>>,
    free: mpsc::Sender<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl DecodedReader {
    /// Reads to the end of the stream.
    fn drain(&mut self) -> io::Result<()> {
        loop {
            self.pos = self.chunk.len();
            if !self.next_chunk()? {
                return Ok(());
            }
        }
    }

    /// Moves to the next chunk; `false` at the end of the stream.
    fn next_chunk(&mut self) -> io::Result<bool> {
        match self.rx.recv() {
            Ok(Ok(chunk)) => {
                let old = std::mem::replace(&mut self.chunk, chunk);
                if old.capacity() > 0 {
                    let _ = self.free.send(old);
                }
                self.pos = 0;
                Ok(true)
            }
            Ok(Err(e)) => Err(e),
            // The decoder is done and everything it sent was read.
            Err(_) => Ok(false),
        }
    }
}

impl Read for DecodedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.chunk.len() {
            if !self.next_chunk()? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn check_diff_id(opts: &UnpackOptions, unpacked: &Unpacked) -> Result<(), IngestError> {
    match opts.expected_diff_id {
        Some(expected) if expected != unpacked.diff_id => Err(DigestError::Mismatch {
            what: "DiffID",
            path: opts.dir.clone(),
            expected,
            actual: unpacked.diff_id,
        }
        .into()),
        _ => Ok(()),
    }
}

fn open_root(dir: &Path) -> Result<(OwnedFd, OwnedFd), IngestError> {
    let io_err = |source| IngestError::Io {
        op: "open unpack directory",
        path: dir.to_owned(),
        source,
    };
    let root = Linux.open_root(dir).map_err(io_err)?;
    // A second handle for the final syncfs: the first one moves into the unpacker.
    let sync = root.try_clone().map_err(io_err)?;
    Ok((root, sync))
}

/// `syncfs(2)` on the filesystem holding `path` (a file or a directory): makes everything
/// written there durable in one call.
pub fn syncfs(path: &Path) -> Result<(), IngestError> {
    let io_err = |op| {
        move |source: io::Error| IngestError::Io {
            op,
            path: path.to_owned(),
            source,
        }
    };
    // O_NONBLOCK: opening a fifo must not hang; O_PATH handles are refused by syncfs.
    let fd = rustix::fs::openat(
        rustix::fs::CWD,
        path,
        rustix::fs::OFlags::RDONLY
            | rustix::fs::OFlags::NONBLOCK
            | rustix::fs::OFlags::NOCTTY
            | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| io_err("open")(e.into()))?;
    Linux.sync_fs(&fd).map_err(io_err("syncfs"))
}

/// Unpacks a blob already in the store into `opts.dir`, which must exist and be empty.
/// With `sync` the unpacked tree is made durable (one syncfs) before returning; without it
/// the caller must syncfs before relying on the tree.
pub fn unpack_blob(
    blob_path: &Path,
    opts: &UnpackOptions,
    sync: bool,
) -> Result<IngestResult, IngestError> {
    let (root, sync_root) = open_root(&opts.dir)?;
    let listed = Linux
        .list_dir(&sync_root)
        .map_err(|source| IngestError::Io {
            op: "list",
            path: opts.dir.clone(),
            source,
        })?;
    if !listed.is_empty() {
        return Err(IngestError::Io {
            op: "unpack into non-empty directory",
            path: opts.dir.clone(),
            source: io::Error::from_raw_os_error(libc::ENOTEMPTY),
        });
    }
    let file = File::open(blob_path).map_err(|source| IngestError::Io {
        op: "open",
        path: blob_path.to_owned(),
        source,
    })?;
    let mut raw = HashingReader::new(SourceReader::new(file, blob_path));
    let unpacked = unpack_stream(&mut raw, root, opts)?;
    // Normally at EOF already; whatever follows is still part of the blob's digest.
    io::copy(&mut raw, &mut io::sink()).map_err(|source| IngestError::Stream {
        path: opts.dir.clone(),
        source,
    })?;
    let (_, digest, size) = raw.finish();
    check_diff_id(opts, &unpacked)?;
    if sync {
        Linux
            .sync_fs(&sync_root)
            .map_err(|source| IngestError::Io {
                op: "syncfs",
                path: opts.dir.clone(),
                source,
            })?;
    }
    Ok(IngestResult {
        digest,
        size,
        diff_id: Some(unpacked.diff_id),
        unpacked_bytes: unpacked.unpacked_bytes,
        entries: unpacked.entries,
    })
}

/// Feeds channel chunks to the decoder on the unpack thread.
struct ChannelReader {
    rx: Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
    abort: Arc<AtomicBool>,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.abort.load(Ordering::Relaxed) {
                return Err(io::Error::other(SourceError::Aborted));
            }
            if self.pos < self.chunk.len() {
                let n = buf.len().min(self.chunk.len() - self.pos);
                buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            match self.rx.recv() {
                Ok(chunk) => {
                    self.chunk = chunk;
                    self.pos = 0;
                }
                // The sender is gone: the blob is complete.
                Err(_) => return Ok(0),
            }
        }
    }
}

/// The unpack thread and its input channel.
struct Worker {
    tx: Option<SyncSender<Vec<u8>>>,
    abort: Arc<AtomicBool>,
    handle: Option<JoinHandle<Result<Unpacked, IngestError>>>,
    dir: PathBuf,
}

impl Worker {
    fn spawn(root: OwnedFd, opts: UnpackOptions) -> Result<Self, IngestError> {
        let (tx, rx) = mpsc::sync_channel(CHANNEL_DEPTH);
        let abort = Arc::new(AtomicBool::new(false));
        let reader = ChannelReader {
            rx,
            chunk: Vec::new(),
            pos: 0,
            abort: abort.clone(),
        };
        let dir = opts.dir.clone();
        let handle = thread::Builder::new()
            .name("barque-unpack".into())
            .spawn(move || unpack_stream(reader, root, &opts))
            .map_err(|source| IngestError::Io {
                op: "start unpack thread for",
                path: dir.clone(),
                source,
            })?;
        Ok(Worker {
            tx: Some(tx),
            abort,
            handle: Some(handle),
            dir,
        })
    }

    /// The thread only returns early on failure: surface it.
    fn check(&mut self) -> Result<(), IngestError> {
        match &self.handle {
            Some(h) if h.is_finished() => Err(self.failure()),
            _ => Ok(()),
        }
    }

    fn send(&mut self, chunk: Vec<u8>) -> Result<(), IngestError> {
        let Some(tx) = &self.tx else {
            return Err(IngestError::Closed {
                path: self.dir.clone(),
            });
        };
        // Blocks while the channel is full: back-pressure on the caller.
        match tx.send(chunk) {
            Ok(()) => Ok(()),
            Err(_) => Err(self.failure()),
        }
    }

    fn failure(&mut self) -> IngestError {
        match self.join() {
            Err(e) => e,
            Ok(_) => IngestError::WorkerLost {
                path: self.dir.clone(),
            },
        }
    }

    /// Closes the channel (end of blob) and waits for the result.
    fn join(&mut self) -> Result<Unpacked, IngestError> {
        self.tx = None;
        match self.handle.take() {
            Some(h) => h.join().unwrap_or_else(|_| {
                Err(IngestError::WorkerLost {
                    path: self.dir.clone(),
                })
            }),
            None => Err(IngestError::Closed {
                path: self.dir.clone(),
            }),
        }
    }

    /// Stops the thread and discards its result.
    fn stop(&mut self) {
        self.abort.store(true, Ordering::Relaxed);
        self.tx = None;
        if let Some(h) = self.handle.take() {
            // The thread wakes on the closed channel or the abort flag; it never waits on us.
            let _ = h.join();
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One blob streamed once. See the module docs.
pub struct BlobIngest {
    partial_path: PathBuf,
    file: Option<File>,
    hasher: Hasher,
    options: IngestOptions,
    worker: Option<Worker>,
    sync_root: Option<OwnedFd>,
    /// Where the ingest file's writeback was last started up to.
    written_back: u64,
    /// A bad layer found before all bytes arrived: reported by `finish` once the digest says
    /// whether the bytes were damaged in transit (DigestError) or really hostile (LayerError).
    deferred: Option<IngestError>,
    closed: bool,
}

impl BlobIngest {
    /// Opens (or resumes) the ingest file. Bytes already in it are hashed and fed to the
    /// unpacker, so [`BlobIngest::offset`] is where a ranged download resumes; a file longer
    /// than the expected size is emptied first.
    pub fn new(partial_path: &Path, options: IngestOptions) -> Result<Self, IngestError> {
        let io_err = |op| {
            move |source| IngestError::Io {
                op,
                path: partial_path.to_owned(),
                source,
            }
        };
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(partial_path)
            .map_err(io_err("open"))?;
        let mut existing = file.metadata().map_err(io_err("stat"))?.len();
        if options.expected_size.is_some_and(|max| existing > max) {
            file.set_len(0).map_err(io_err("truncate"))?;
            existing = 0;
        }
        let (worker, sync_root) = match &options.unpack {
            Some(unpack) => {
                let (root, sync) = open_root(&unpack.dir)?;
                (Some(Worker::spawn(root, unpack.clone())?), Some(sync))
            }
            None => (None, None),
        };
        let mut ingest = BlobIngest {
            partial_path: partial_path.to_owned(),
            file: Some(file),
            hasher: Hasher::new(),
            options,
            worker,
            sync_root,
            written_back: 0,
            deferred: None,
            closed: false,
        };
        if existing > 0 {
            ingest.replay(existing)?;
        }
        Ok(ingest)
    }

    /// Bytes received so far (all of them persisted in the ingest file).
    pub fn offset(&self) -> u64 {
        self.hasher.len()
    }

    pub fn partial_path(&self) -> &Path {
        &self.partial_path
    }

    fn replay(&mut self, len: u64) -> Result<(), IngestError> {
        let mut buf = vec![0u8; REPLAY_CHUNK];
        let mut pos = 0u64;
        while pos < len {
            let want = buf
                .len()
                .min(usize::try_from(len - pos).unwrap_or(usize::MAX));
            let read = match &self.file {
                Some(f) => f.read_at(&mut buf[..want], pos),
                None => {
                    return Err(IngestError::Closed {
                        path: self.partial_path.clone(),
                    })
                }
            };
            let n = match read {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    let e = IngestError::Io {
                        op: "read",
                        path: self.partial_path.clone(),
                        source,
                    };
                    return Err(self.fail(e));
                }
            };
            self.hasher.update(&buf[..n]);
            pos += n as u64;
            if let Some(w) = &mut self.worker {
                if let Err(e) = w.send(buf[..n].to_vec()) {
                    self.unpack_failed(e)?;
                }
            }
        }
        Ok(())
    }

    /// The unpack thread stopped with `e`. A bad layer may just be a damaged download, so the
    /// bytes keep being received and hashed and the verdict waits for the digest; any other
    /// failure (disk full...) ends the ingest now.
    fn unpack_failed(&mut self, e: IngestError) -> Result<(), IngestError> {
        self.worker = None;
        if matches!(e.class(), ErrorClass::Layer) {
            self.deferred = Some(e);
            Ok(())
        } else {
            Err(self.fail(e))
        }
    }

    /// Starts writing back each completed [`WRITEBACK_CHUNK`] of the ingest file.
    fn start_writeback(&mut self) {
        if !self.options.writeback {
            return;
        }
        let end = self.hasher.len() / WRITEBACK_CHUNK * WRITEBACK_CHUNK;
        if end > self.written_back {
            if let Some(f) = &self.file {
                // Only a hint: durability comes from the final fsync or syncfs.
                let _ = Linux.start_writeback(f, self.written_back, end - self.written_back);
            }
            self.written_back = end;
        }
    }

    /// Appends a chunk.
    pub fn write(&mut self, data: &[u8]) -> Result<(), IngestError> {
        if self.closed {
            return Err(IngestError::Closed {
                path: self.partial_path.clone(),
            });
        }
        let total = self.hasher.len() + data.len() as u64;
        if let Some(expected) = self.options.expected_size {
            if total > expected {
                let e = DigestError::SizeMismatch {
                    path: self.partial_path.clone(),
                    expected,
                    actual: total,
                };
                return Err(self.fail(e.into()));
            }
        }
        if let Some(w) = &mut self.worker {
            if let Err(e) = w.check() {
                self.unpack_failed(e)?;
            }
        }
        let written = match &mut self.file {
            Some(f) => f.write_all(data),
            None => {
                return Err(IngestError::Closed {
                    path: self.partial_path.clone(),
                })
            }
        };
        if let Err(source) = written {
            let e = IngestError::Io {
                op: "write",
                path: self.partial_path.clone(),
                source,
            };
            return Err(self.fail(e));
        }
        self.hasher.update(data);
        self.start_writeback();
        if let Some(w) = &mut self.worker {
            if let Err(e) = w.send(data.to_vec()) {
                self.unpack_failed(e)?;
            }
        }
        Ok(())
    }

    /// Verifies size and digest, waits for the unpacker and verifies the DiffID.
    ///
    /// With `sync`, then makes the unpacked tree (one syncfs) and the blob durable and renames
    /// the ingest file to `blob_path`. Without it nothing is flushed or renamed: the complete,
    /// verified blob stays at the partial path (`blob_path` is unused) and the caller makes it
    /// durable (syncfs), renames it and fsyncs the directory. A crash before that leaves a
    /// complete ingest file that the next ingest re-verifies.
    pub fn finish(&mut self, blob_path: &Path, sync: bool) -> Result<IngestResult, IngestError> {
        if self.closed {
            return Err(IngestError::Closed {
                path: self.partial_path.clone(),
            });
        }
        let size = self.hasher.len();
        if let Some(expected) = self.options.expected_size {
            if size != expected {
                let e = DigestError::SizeMismatch {
                    path: self.partial_path.clone(),
                    expected,
                    actual: size,
                };
                return Err(self.fail(e.into()));
            }
        }
        let digest = self.hasher.clone().finish();
        let expected = self.options.expected_digest;
        if digest != expected {
            let e = DigestError::Mismatch {
                what: "digest",
                path: self.partial_path.clone(),
                expected,
                actual: digest,
            };
            return Err(self.fail(e.into()));
        }
        if let Some(e) = self.deferred.take() {
            return Err(self.fail(e));
        }
        let unpacked = match self.worker.take() {
            Some(mut w) => match w.join() {
                Ok(u) => Some(u),
                Err(e) => return Err(self.fail(e)),
            },
            None => None,
        };
        if let (Some(u), Some(opts)) = (&unpacked, &self.options.unpack) {
            if let Err(e) = check_diff_id(opts, u) {
                return Err(self.fail(e));
            }
        }
        if sync {
            if let Err(e) = self.persist(blob_path) {
                return Err(self.fail(e));
            }
        } else {
            self.file = None;
        }
        self.closed = true;
        Ok(IngestResult {
            digest,
            size,
            diff_id: unpacked.map(|u| u.diff_id),
            unpacked_bytes: unpacked.map_or(0, |u| u.unpacked_bytes),
            entries: unpacked.map_or(0, |u| u.entries),
        })
    }

    fn persist(&mut self, blob_path: &Path) -> Result<(), IngestError> {
        if let (Some(root), Some(opts)) = (&self.sync_root, &self.options.unpack) {
            Linux.sync_fs(root).map_err(|source| IngestError::Io {
                op: "syncfs",
                path: opts.dir.clone(),
                source,
            })?;
        }
        let partial = &self.partial_path;
        if let Some(file) = self.file.take() {
            file.sync_all().map_err(|source| IngestError::Io {
                op: "fsync",
                path: partial.clone(),
                source,
            })?;
        }
        fs::rename(partial, blob_path).map_err(|source| IngestError::Io {
            op: "rename to blob",
            path: blob_path.to_owned(),
            source,
        })?;
        let parent = match blob_path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let sync_dir = |source| IngestError::Io {
            op: "fsync",
            path: parent.to_owned(),
            source,
        };
        File::open(parent)
            .map_err(sync_dir)?
            .sync_all()
            .map_err(sync_dir)?;
        Ok(())
    }

    /// Stops the unpacker and closes the file; the ingest file stays for a later resume.
    pub fn abort(&mut self) {
        self.closed = true;
        if let Some(mut w) = self.worker.take() {
            w.stop();
        }
        self.file = None;
    }

    /// Closes the ingest after an error; bytes that can never become valid are deleted so a
    /// retry starts over.
    fn fail(&mut self, e: IngestError) -> IngestError {
        self.abort();
        if e.is_content_error() {
            let _ = fs::remove_file(&self.partial_path);
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{gzip, raw_header, raw_link, raw_tar, zstd_compress, TarBuilder};
    use std::os::unix::fs::MetadataExt;

    fn sample_tar() -> Vec<u8> {
        let mut b = TarBuilder::new();
        b.dir("etc", 0o755);
        b.file("etc/hosts", 0o644, b"127.0.0.1 localhost\n");
        b.file("bin/tool", 0o4755, &vec![0xabu8; 300_000]);
        b.symlink("bin/alias", "tool");
        b.hardlink("bin/hard", "bin/tool");
        b.file("srv/.wh..wh..opq", 0o644, b"");
        b.finish()
    }

    fn sha(data: &[u8]) -> Digest {
        let mut h = Hasher::new();
        h.update(data);
        h.finish()
    }

    struct Setup {
        _tmp: tempfile::TempDir,
        partial: PathBuf,
        blob: PathBuf,
        dir: PathBuf,
    }

    fn setup() -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("rootfs");
        fs::create_dir(&dir).unwrap();
        Setup {
            partial: tmp.path().join("blob.partial"),
            blob: tmp.path().join("blob"),
            dir,
            _tmp: tmp,
        }
    }

    fn options(blob: &[u8], tar: &[u8], dir: &Path) -> IngestOptions {
        let mut unpack = UnpackOptions::new(dir);
        unpack.expected_diff_id = Some(sha(tar));
        IngestOptions {
            expected_digest: sha(blob),
            expected_size: Some(blob.len() as u64),
            unpack: Some(unpack),
            // Exercised here on the real kernel; pulls leave it off.
            writeback: true,
        }
    }

    fn check_tree(dir: &Path) {
        assert_eq!(
            fs::read(dir.join("etc/hosts")).unwrap(),
            b"127.0.0.1 localhost\n"
        );
        let tool = fs::metadata(dir.join("bin/tool")).unwrap();
        assert_eq!(tool.mode() & 0o7777, 0o4755);
        assert_eq!(tool.len(), 300_000);
        assert_eq!(
            fs::metadata(dir.join("bin/hard")).unwrap().ino(),
            tool.ino()
        );
        assert_eq!(
            fs::read_link(dir.join("bin/alias")).unwrap(),
            Path::new("tool")
        );
        assert_eq!(tool.mtime(), crate::test_support::MTIME as i64);
    }

    fn opaque_supported(dir: &Path) -> bool {
        rustix::fs::lgetxattr(dir.join("srv"), "trusted.overlay.opaque", &mut [0u8; 4]).is_ok()
    }

    #[test]
    fn ingest_unpacks_gzip_and_zstd_in_one_pass() {
        let tar = sample_tar();
        for blob in [gzip(&tar), zstd_compress(&tar), tar.clone()] {
            let s = setup();
            let mut ingest = BlobIngest::new(&s.partial, options(&blob, &tar, &s.dir)).unwrap();
            for chunk in blob.chunks(777) {
                ingest.write(chunk).unwrap();
            }
            let result = ingest.finish(&s.blob, true).unwrap();
            assert_eq!(result.digest, sha(&blob));
            assert_eq!(result.size, blob.len() as u64);
            assert_eq!(result.diff_id, Some(sha(&tar)));
            assert_eq!(result.entries, 6);
            assert_eq!(result.unpacked_bytes, 300_000 + 20);
            assert_eq!(fs::read(&s.blob).unwrap(), blob);
            assert!(!s.partial.exists());
            assert_eq!(fs::metadata(&s.blob).unwrap().mode() & 0o777, 0o600);
            check_tree(&s.dir);
            if is_root() {
                assert!(opaque_supported(&s.dir));
            }
        }
    }

    #[test]
    fn unpack_blob_verifies_and_reports() {
        let tar = sample_tar();
        let blob = zstd_compress(&tar);
        let s = setup();
        fs::write(&s.blob, &blob).unwrap();
        let mut opts = UnpackOptions::new(&s.dir);
        opts.expected_diff_id = Some(sha(&tar));
        let r = unpack_blob(&s.blob, &opts, true).unwrap();
        assert_eq!(
            (r.digest, r.size, r.diff_id),
            (sha(&blob), blob.len() as u64, Some(sha(&tar)))
        );
        check_tree(&s.dir);
        // The directory must be empty.
        let err = unpack_blob(&s.blob, &opts, true).unwrap_err();
        assert_eq!(
            err.class(),
            ErrorClass::Os {
                errno: libc::ENOTEMPTY,
                path: Some(&s.dir)
            }
        );
    }

    #[test]
    fn unsynced_finish_keeps_the_verified_blob_at_the_partial_path() {
        let tar = sample_tar();
        let blob = gzip(&tar);
        let s = setup();
        let mut ingest = BlobIngest::new(&s.partial, options(&blob, &tar, &s.dir)).unwrap();
        ingest.write(&blob).unwrap();
        let r = ingest.finish(&s.blob, false).unwrap();
        assert_eq!((r.digest, r.diff_id), (sha(&blob), Some(sha(&tar))));
        check_tree(&s.dir);
        assert!(!s.blob.exists());
        assert_eq!(fs::read(&s.partial).unwrap(), blob);
        assert!(matches!(
            ingest.finish(&s.blob, false),
            Err(IngestError::Closed { .. })
        ));
        // A later ingest re-verifies the complete file and can persist it.
        let mut opts = options(&blob, &tar, &s.dir);
        opts.unpack = None;
        let mut again = BlobIngest::new(&s.partial, opts).unwrap();
        assert_eq!(again.offset(), blob.len() as u64);
        again.finish(&s.blob, true).unwrap();
        assert_eq!(fs::read(&s.blob).unwrap(), blob);
        assert!(!s.partial.exists());
        syncfs(&s.blob).unwrap();
        syncfs(s.dir.parent().unwrap()).unwrap();
        let missing = s.dir.join("missing");
        let err = syncfs(&missing).unwrap_err();
        assert_eq!(
            err.class(),
            ErrorClass::Os {
                errno: libc::ENOENT,
                path: Some(&missing)
            }
        );
    }

    #[test]
    fn unsynced_mismatch_still_fails_and_deletes() {
        let tar = sample_tar();
        let blob = gzip(&tar);
        let s = setup();
        let mut opts = options(&blob, &tar, &s.dir);
        if let Some(u) = &mut opts.unpack {
            u.expected_diff_id = Some(sha(b"other"));
        }
        let mut ingest = BlobIngest::new(&s.partial, opts).unwrap();
        ingest.write(&blob).unwrap();
        let err = ingest.finish(&s.blob, false).unwrap_err();
        assert_eq!(err.class(), ErrorClass::Digest);
        assert!(!s.partial.exists() && !s.blob.exists());
    }

    #[test]
    fn store_only_ingest_has_no_diff_id() {
        let s = setup();
        let blob = b"just some bytes".to_vec();
        let opts = IngestOptions {
            expected_digest: sha(&blob),
            expected_size: None,
            unpack: None,
            writeback: false,
        };
        let mut ingest = BlobIngest::new(&s.partial, opts).unwrap();
        ingest.write(&blob).unwrap();
        let r = ingest.finish(&s.blob, true).unwrap();
        assert_eq!((r.diff_id, r.entries, r.unpacked_bytes), (None, 0, 0));
        assert!(matches!(
            ingest.write(b"x"),
            Err(IngestError::Closed { .. })
        ));
    }

    #[test]
    fn resumes_from_the_partial_file() {
        let tar = sample_tar();
        let blob = gzip(&tar);
        let s = setup();
        let half = blob.len() / 2;
        let mut first = BlobIngest::new(&s.partial, options(&blob, &tar, &s.dir)).unwrap();
        first.write(&blob[..half]).unwrap();
        first.abort();
        drop(first);
        assert_eq!(fs::metadata(&s.partial).unwrap().len(), half as u64);
        let mut second = BlobIngest::new(&s.partial, options(&blob, &tar, &s.dir)).unwrap();
        assert_eq!(second.offset(), half as u64);
        second.write(&blob[half..]).unwrap();
        second.finish(&s.blob, true).unwrap();
        check_tree(&s.dir);
    }

    #[test]
    fn oversized_partial_file_starts_over() {
        let tar = sample_tar();
        let blob = gzip(&tar);
        let s = setup();
        fs::write(&s.partial, vec![0u8; blob.len() + 10]).unwrap();
        let mut ingest = BlobIngest::new(&s.partial, options(&blob, &tar, &s.dir)).unwrap();
        assert_eq!(ingest.offset(), 0);
        ingest.write(&blob).unwrap();
        ingest.finish(&s.blob, true).unwrap();
    }

    #[test]
    fn digest_and_size_mismatches_delete_the_partial_file() {
        let tar = sample_tar();
        let blob = gzip(&tar);
        let s = setup();
        let mut opts = options(&blob, &tar, &s.dir);
        opts.expected_digest = sha(b"something else");
        let mut ingest = BlobIngest::new(&s.partial, opts).unwrap();
        ingest.write(&blob).unwrap();
        let err = ingest.finish(&s.blob, true).unwrap_err();
        assert_eq!(err.class(), ErrorClass::Digest);
        let msg = err.to_string();
        assert!(
            msg.contains(&sha(&blob).to_string())
                && msg.contains(&sha(b"something else").to_string()),
            "{msg}"
        );
        assert!(!s.partial.exists() && !s.blob.exists());

        // Too many bytes: refused by write.
        let mut opts = options(&blob, &tar, &s.dir);
        opts.expected_size = Some(10);
        let mut ingest = BlobIngest::new(&s.partial, opts).unwrap();
        let err = ingest.write(&blob).unwrap_err();
        assert_eq!(err.class(), ErrorClass::Digest);
        assert!(!s.partial.exists());

        // Too few: refused by finish.
        let mut ingest = BlobIngest::new(&s.partial, options(&blob, &tar, &s.dir)).unwrap();
        ingest.write(&blob[..100]).unwrap();
        let err = ingest.finish(&s.blob, true).unwrap_err();
        assert!(
            matches!(err, IngestError::Digest(DigestError::SizeMismatch { .. })),
            "{err}"
        );
        assert!(!s.partial.exists());
    }

    #[test]
    fn diff_id_mismatch_is_a_digest_error() {
        let tar = sample_tar();
        let blob = gzip(&tar);
        let s = setup();
        let mut opts = options(&blob, &tar, &s.dir);
        if let Some(u) = &mut opts.unpack {
            u.expected_diff_id = Some(sha(b"other"));
        }
        let mut ingest = BlobIngest::new(&s.partial, opts).unwrap();
        ingest.write(&blob).unwrap();
        let err = ingest.finish(&s.blob, true).unwrap_err();
        assert_eq!(err.class(), ErrorClass::Digest);
        assert!(err.to_string().contains("DiffID"), "{err}");
        assert!(!s.blob.exists());
    }

    #[test]
    fn hostile_layer_fails_and_touches_nothing_outside() {
        let s = setup();
        let outside = s.dir.parent().unwrap().join("outside");
        fs::create_dir(&outside).unwrap();
        let tar = raw_tar(&[
            &raw_link("evil", b'2', outside.to_str().unwrap()),
            &raw_header("evil/file", b'0', 0, 0o644),
        ]);
        let blob = gzip(&tar);
        let mut ingest = BlobIngest::new(&s.partial, options(&blob, &tar, &s.dir)).unwrap();
        let res = ingest
            .write(&blob)
            .and_then(|()| ingest.finish(&s.blob, true).map(|_| ()));
        let err = res.unwrap_err();
        assert_eq!(err.class(), ErrorClass::Layer);
        assert!(err.to_string().contains("evil/file"), "{err}");
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
        assert!(
            !s.partial.exists(),
            "a hostile blob is not kept for resuming"
        );
    }

    #[test]
    fn damaged_download_is_a_digest_error_not_a_layer_error() {
        let tar = sample_tar();
        let blob = gzip(&tar);
        let mut damaged = blob.clone();
        damaged[100..356].fill(0);
        let s = setup();
        let mut ingest = BlobIngest::new(&s.partial, options(&blob, &tar, &s.dir)).unwrap();
        for chunk in damaged.chunks(1000) {
            // The unpacker fails early; writes keep going so the digest can decide.
            ingest.write(chunk).unwrap();
        }
        assert_eq!(ingest.offset(), blob.len() as u64);
        let err = ingest.finish(&s.blob, true).unwrap_err();
        assert_eq!(err.class(), ErrorClass::Digest, "{err}");
        assert!(!s.partial.exists() && !s.blob.exists());
    }

    #[test]
    fn bombs_and_broken_streams_are_layer_errors() {
        let s = setup();
        let mut b = TarBuilder::new();
        b.file("zeros", 0o644, &vec![0u8; 4 << 20]);
        let tar = b.finish();
        let blob = gzip(&tar);
        fs::write(&s.blob, &blob).unwrap();
        let mut opts = UnpackOptions::new(&s.dir);
        opts.limits.max_bytes = 1 << 20;
        let err = unpack_blob(&s.blob, &opts, true).unwrap_err();
        assert_eq!(err.class(), ErrorClass::Layer);
        assert!(
            err.to_string().contains("zeros") && err.to_string().contains("max_bytes"),
            "{err}"
        );

        for (name, bad) in [
            ("truncated", blob[..blob.len() / 2].to_vec()),
            ("trailer cut", blob[..blob.len() - 4].to_vec()),
            ("garbage", {
                let mut g = blob.clone();
                let mid = g.len() / 2;
                g[mid..mid + 16].fill(0x55);
                g
            }),
        ] {
            let dir = s.dir.parent().unwrap().join(name);
            fs::create_dir(&dir).unwrap();
            fs::write(&s.blob, &bad).unwrap();
            let err = unpack_blob(&s.blob, &UnpackOptions::new(&dir), true).unwrap_err();
            assert_eq!(err.class(), ErrorClass::Layer, "{name}: {err}");
        }
    }

    #[test]
    fn dropping_mid_stream_does_not_hang() {
        let tar = sample_tar();
        let blob = gzip(&tar);
        let s = setup();
        let mut ingest = BlobIngest::new(&s.partial, options(&blob, &tar, &s.dir)).unwrap();
        ingest.write(&blob[..blob.len() / 3]).unwrap();
        drop(ingest);
        assert!(s.partial.exists());
    }

    #[test]
    fn missing_unpack_dir_is_an_os_error() {
        let s = setup();
        let tar = sample_tar();
        let missing = s.dir.join("nope");
        let err = BlobIngest::new(&s.partial, options(&tar, &tar, &missing))
            .err()
            .unwrap();
        assert_eq!(
            err.class(),
            ErrorClass::Os {
                errno: libc::ENOENT,
                path: Some(&missing)
            }
        );
    }
}
