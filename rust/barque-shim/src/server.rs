//! The shim's single-threaded poll loop: container output to the log and to attach clients,
//! client input to the container, the container's exit; then the exit record and the exit
//! frame. Nothing a client or the container does may end the loop early: client errors drop
//! that client, EINTR and EAGAIN are retried.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::attach::{self, Client, CLIENT_BACKLOG};
use crate::frame;
use crate::json;
use crate::jsonlog::{self, Lines, LogTime, Stream};
use crate::os;
use crate::rotate::LogFile;

/// What `--hold-output` keeps for the first client.
pub const HOLD_CAP: usize = 1 << 20;
/// How long an exited container's backlog waits for its first client.
pub const HOLD_WAIT: Duration = Duration::from_secs(30);
/// How long clients get to read the end of the output and the exit frame.
const FLUSH_WAIT: Duration = Duration::from_secs(5);
/// After the init exited, output that stays silent this long is not waited for (processes
/// outside a pid namespace may keep the pipes open forever).
const DRAIN_IDLE_MS: i32 = 1000;

struct Source {
    fd: OwnedFd,
    stream: Stream,
}

struct StdinSink {
    fd: OwnedFd,
    pending: Vec<u8>,
    close_when_flushed: bool,
    tty: bool,
}

/// Output kept for the first client (whole chunks, the oldest dropped beyond the cap).
#[derive(Default)]
struct Hold {
    chunks: VecDeque<(Stream, Vec<u8>)>,
    size: usize,
}

impl Hold {
    fn push(&mut self, stream: Stream, data: &[u8]) {
        self.chunks.push_back((stream, data.to_vec()));
        self.size += data.len();
        while self.size > HOLD_CAP {
            let Some((_, front)) = self.chunks.front_mut() else {
                break;
            };
            let excess = (self.size - HOLD_CAP).min(front.len());
            front.drain(..excess);
            self.size -= excess;
            if front.is_empty() {
                self.chunks.pop_front();
            }
        }
    }
}

struct Logger {
    file: LogFile,
    lines: [Lines; 2],
    /// The entries of one read, written with one system call rather than one per line (a
    /// chatty container's lines are short).
    pending: Vec<u8>,
}

impl Logger {
    fn write(&mut self, stream: Stream, data: &[u8], eof: bool) {
        let time = LogTime::at(now());
        let Logger {
            file,
            lines,
            pending,
        } = self;
        pending.clear();
        let mut emit = |text: &[u8]| {
            let before = pending.len();
            jsonlog::encode_entry(pending, text, stream, &time);
            // Rotation stays decided entry by entry, as Docker's: what precedes an entry
            // that rotates the file goes into the file before it.
            if before > 0 && file.would_rotate(before, pending.len() - before) {
                // A full disk must not stop the container's output from being served.
                let _ = file.write(&pending[..before]);
                pending.drain(..before);
            }
        };
        let lines = &mut lines[stream as usize];
        lines.feed(data, &mut emit);
        if eof {
            lines.finish(&mut emit);
        }
        if !pending.is_empty() {
            let _ = file.write(pending);
        }
    }
}

fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

fn frame_type(stream: Stream) -> u8 {
    match stream {
        Stream::Stdout => frame::STDOUT,
        Stream::Stderr => frame::STDERR,
    }
}

pub struct Server {
    pub state_dir: PathBuf,
    listener: OwnedFd,
    signals: OwnedFd,
    init_pid: libc::pid_t,
    sources: Vec<Source>,
    stdin: Option<StdinSink>,
    master: Option<OwnedFd>,
    clients: Vec<Client>,
    hold: Option<Hold>,
    log: Option<Logger>,
    exit_code: Option<i32>,
}

pub struct Setup {
    pub state_dir: PathBuf,
    pub listener: OwnedFd,
    pub signals: OwnedFd,
    pub init_pid: libc::pid_t,
    pub io: crate::spawn::ContainerIo,
    pub log: Option<LogFile>,
    pub hold_output: bool,
}

enum Slot {
    Signals,
    Listener,
    Source(usize),
    Stdin,
    Client(usize),
}

impl Server {
    pub fn new(s: Setup) -> std::io::Result<Server> {
        use crate::spawn::ContainerIo;
        let (sources, stdin, master) = match s.io {
            ContainerIo::Tty { master } => {
                os::set_nonblocking(master.as_raw_fd())?;
                let sources = vec![Source {
                    fd: master.try_clone()?,
                    stream: Stream::Stdout,
                }];
                let stdin = StdinSink {
                    fd: master.try_clone()?,
                    pending: Vec::new(),
                    close_when_flushed: false,
                    tty: true,
                };
                (sources, Some(stdin), Some(master))
            }
            ContainerIo::Pipes {
                stdin,
                stdout,
                stderr,
            } => {
                for fd in [&stdout, &stderr].into_iter().chain(stdin.as_ref()) {
                    os::set_nonblocking(fd.as_raw_fd())?;
                }
                let sources = vec![
                    Source {
                        fd: stdout,
                        stream: Stream::Stdout,
                    },
                    Source {
                        fd: stderr,
                        stream: Stream::Stderr,
                    },
                ];
                let stdin = stdin.map(|fd| StdinSink {
                    fd,
                    pending: Vec::new(),
                    close_when_flushed: false,
                    tty: false,
                });
                (sources, stdin, None)
            }
        };
        Ok(Server {
            state_dir: s.state_dir,
            listener: s.listener,
            signals: s.signals,
            init_pid: s.init_pid,
            sources,
            stdin,
            master,
            clients: Vec::new(),
            hold: s.hold_output.then(Hold::default),
            log: s.log.map(|file| Logger {
                file,
                lines: Default::default(),
                pending: Vec::new(),
            }),
            exit_code: None,
        })
    }

    /// Disables stdin forwarding (a terminal without `--stdin`).
    pub fn without_stdin(mut self) -> Server {
        self.stdin = None;
        self
    }

    /// Serves until the container has exited and its output is drained; returns its exit code
    /// once the exit is recorded and every client has been told.
    pub fn run(mut self) -> i32 {
        let mut buf = vec![0u8; 32 * 1024];
        self.reap();
        loop {
            if self.exit_code.is_some() && self.sources.is_empty() {
                break;
            }
            let mut pfds: Vec<libc::pollfd> = Vec::new();
            let mut slots: Vec<Slot> = Vec::new();
            let mut add = |fd: RawFd, events: libc::c_short, slot: Slot| {
                pfds.push(libc::pollfd {
                    fd,
                    events,
                    revents: 0,
                });
                slots.push(slot);
            };
            add(self.signals.as_raw_fd(), libc::POLLIN, Slot::Signals);
            add(self.listener.as_raw_fd(), libc::POLLIN, Slot::Listener);
            let congested = self.clients.iter().any(|c| c.queued() > CLIENT_BACKLOG);
            if !congested {
                for (i, s) in self.sources.iter().enumerate() {
                    add(s.fd.as_raw_fd(), libc::POLLIN, Slot::Source(i));
                }
            }
            let stdin_full = match &self.stdin {
                Some(s) if !s.pending.is_empty() => {
                    add(s.fd.as_raw_fd(), libc::POLLOUT, Slot::Stdin);
                    s.pending.len() > CLIENT_BACKLOG
                }
                _ => false,
            };
            for (i, c) in self.clients.iter().enumerate() {
                let mut events = 0;
                if !stdin_full {
                    events |= libc::POLLIN;
                }
                if c.queued() > 0 {
                    events |= libc::POLLOUT;
                }
                add(c.fd.as_raw_fd(), events, Slot::Client(i));
            }
            let timeout = if self.exit_code.is_some() {
                DRAIN_IDLE_MS
            } else {
                -1
            };
            // SAFETY: pfds is a valid array of its length.
            let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout) };
            if n < 0 {
                if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                    std::thread::sleep(Duration::from_millis(50));
                }
                continue;
            }
            if n == 0 && self.exit_code.is_some() {
                break;
            }
            let mut gone_sources = Vec::new();
            let mut gone_clients = Vec::new();
            for (pfd, slot) in pfds.iter().zip(&slots) {
                if pfd.revents == 0 {
                    continue;
                }
                match *slot {
                    Slot::Signals => self.reap(),
                    Slot::Listener => self.accept_all(),
                    Slot::Source(i) => {
                        if !self.read_source(i, &mut buf) {
                            gone_sources.push(i);
                        }
                    }
                    Slot::Stdin => self.write_stdin(),
                    Slot::Client(i) => {
                        let ok = self.serve_client(i, pfd.revents, &mut buf);
                        if !ok {
                            gone_clients.push(i);
                        }
                    }
                }
            }
            for i in gone_sources.into_iter().rev() {
                let s = self.sources.remove(i);
                if let Some(log) = &mut self.log {
                    log.write(s.stream, &[], true);
                }
            }
            for i in gone_clients.into_iter().rev() {
                self.clients.remove(i);
            }
        }
        // Silent sources left after the exit: what they still hold is logged as is.
        for s in std::mem::take(&mut self.sources) {
            if let Some(log) = &mut self.log {
                log.write(s.stream, &[], true);
            }
        }
        let code = self.exit_code.unwrap_or(crate::EXIT_UNKNOWN);
        self.finish(code);
        code
    }

    /// Reaps every exited child (the shim is a subreaper: orphans of the container land
    /// here); the init's status becomes the exit code.
    fn reap(&mut self) {
        let mut info = [0u8; 128 * 8];
        while matches!(os::read(self.signals.as_raw_fd(), &mut info), Ok(n) if n > 0) {}
        loop {
            let mut status = 0;
            // SAFETY: valid out-pointer.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                break;
            }
            if pid == self.init_pid {
                self.exit_code = Some(os::exit_code(status));
            }
        }
    }

    fn accept_all(&mut self) {
        while let Some(mut client) = attach::accept(&self.listener) {
            if let Some(hold) = self.hold.take() {
                let mut frames = Vec::with_capacity(hold.size + hold.chunks.len() * 8);
                for (stream, data) in &hold.chunks {
                    frame::encode(&mut frames, frame_type(*stream), data);
                }
                client.queue(&frames);
            }
            self.clients.push(client);
        }
    }

    /// Reads one chunk of output; `false` at EOF (EIO from a hung-up pty) or error.
    fn read_source(&mut self, i: usize, buf: &mut [u8]) -> bool {
        let s = &self.sources[i];
        let n = match os::read(s.fd.as_raw_fd(), buf) {
            Ok(0) => return false,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        };
        let (stream, data) = (s.stream, &buf[..n]);
        if let Some(log) = &mut self.log {
            log.write(stream, data, false);
        }
        if let Some(hold) = &mut self.hold {
            hold.push(stream, data);
        } else if !self.clients.is_empty() {
            let mut f = Vec::with_capacity(n + frame::HEADER_LEN);
            frame::encode(&mut f, frame_type(stream), data);
            for c in &mut self.clients {
                c.queue(&f);
            }
        }
        true
    }

    fn write_stdin(&mut self) {
        let Some(sink) = &mut self.stdin else {
            return;
        };
        let mut closed = false;
        while !sink.pending.is_empty() {
            match os::write(sink.fd.as_raw_fd(), &sink.pending) {
                Ok(n) => {
                    sink.pending.drain(..n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // The container closed its stdin (EPIPE) or the pty hung up.
                Err(_) => {
                    closed = true;
                    break;
                }
            }
        }
        if closed || (sink.close_when_flushed && sink.pending.is_empty()) {
            self.stdin = None;
        }
    }

    /// Reads and writes for client `i`; `false` when it is gone or broke the protocol.
    fn serve_client(&mut self, i: usize, revents: libc::c_short, buf: &mut [u8]) -> bool {
        if revents & libc::POLLOUT != 0 && self.clients[i].flush().is_err() {
            return false;
        }
        if revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) == 0 {
            return true;
        }
        let n = match os::read(self.clients[i].fd.as_raw_fd(), buf) {
            Ok(0) => return false,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        };
        self.clients[i].decoder.feed(&buf[..n]);
        loop {
            match self.clients[i].decoder.next_frame() {
                Ok(Some((kind, payload))) => self.handle_frame(kind, &payload),
                Ok(None) => return true,
                Err(_) => return false,
            }
        }
    }

    fn handle_frame(&mut self, kind: u8, payload: &[u8]) {
        match kind {
            frame::STDIN => {
                let Some(sink) = &mut self.stdin else {
                    return;
                };
                if payload.is_empty() {
                    // A terminal has no end of input short of hanging up: nothing to do.
                    if !sink.tty {
                        sink.close_when_flushed = true;
                        if sink.pending.is_empty() {
                            self.stdin = None;
                        }
                    }
                } else if !sink.close_when_flushed {
                    sink.pending.extend_from_slice(payload);
                    self.write_stdin();
                }
            }
            frame::RESIZE => {
                if let (Some(master), Some((rows, cols))) = (&self.master, frame::resize(payload)) {
                    let _ = os::set_window_size(master.as_raw_fd(), rows, cols);
                }
            }
            // Unknown types are ignored so newer clients can talk to an older shim.
            _ => {}
        }
    }

    /// exit.json, the exit frame to every client (and to a late first client when output is
    /// held), then the connections close.
    fn finish(&mut self, code: i32) {
        self.stdin = None;
        let _ = write_exit_record(&self.state_dir, code);
        let mut exit_frame = Vec::new();
        frame::encode(&mut exit_frame, frame::EXIT, &code.to_be_bytes());
        for c in &mut self.clients {
            c.queue(&exit_frame);
        }
        if self.hold.is_some() {
            let deadline = Instant::now() + HOLD_WAIT;
            while self.hold.is_some() && Instant::now() < deadline {
                let left = deadline.saturating_duration_since(Instant::now());
                let mut pfd = libc::pollfd {
                    fd: self.listener.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd.
                unsafe { libc::poll(&mut pfd, 1, left.as_millis().max(1) as i32) };
                let before = self.clients.len();
                self.accept_all();
                for c in &mut self.clients[before..] {
                    c.queue(&exit_frame);
                }
            }
        }
        let deadline = Instant::now() + FLUSH_WAIT;
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            self.clients
                .retain_mut(|c| c.flush().is_ok() && c.queued() > 0);
            if self.clients.is_empty() {
                break;
            }
            let mut pfds: Vec<libc::pollfd> = self
                .clients
                .iter()
                .map(|c| libc::pollfd {
                    fd: c.fd.as_raw_fd(),
                    events: libc::POLLOUT | libc::POLLIN,
                    revents: 0,
                })
                .collect();
            // SAFETY: pfds is a valid array of its length.
            unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, 100) };
            // Input is no longer wanted; reading it notices clients that hung up.
            let mut gone = Vec::new();
            for (i, p) in pfds.iter().enumerate() {
                if p.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
                    match os::read(p.fd, &mut buf) {
                        Ok(0) => gone.push(i),
                        Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => gone.push(i),
                        _ => {}
                    }
                }
            }
            for i in gone.into_iter().rev() {
                self.clients.remove(i);
            }
        }
        self.clients.clear();
        let _ = std::fs::remove_file(self.state_dir.join(attach::SOCKET_NAME));
    }
}

#[derive(serde::Serialize)]
struct ExitRecord {
    exit_code: i32,
    /// Seconds since the epoch, to the microsecond.
    finished_at: f64,
}

/// `exit.json`, atomically (temp file + rename).
pub fn write_exit_record(state_dir: &std::path::Path, code: i32) -> std::io::Result<()> {
    let finished = now();
    // The double nearest the decimal `secs.micros`: what Python read from the record when it
    // was written as that text, so the recorded time stays the same to the microsecond.
    let finished_at = format!("{}.{:06}", finished.as_secs(), finished.subsec_micros())
        .parse()
        .unwrap_or(finished.as_secs_f64());
    let text = json::record_line(&ExitRecord {
        exit_code: code,
        finished_at,
    });
    let tmp = state_dir.join(".exit.json.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, state_dir.join("exit.json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hold_drops_the_oldest_bytes() {
        let mut h = Hold::default();
        h.push(Stream::Stdout, &vec![b'a'; HOLD_CAP - 10]);
        h.push(Stream::Stderr, &[b'b'; 30]);
        assert_eq!(h.size, HOLD_CAP);
        assert_eq!(h.chunks[0].1.len(), HOLD_CAP - 30);
        assert_eq!(h.chunks[1], (Stream::Stderr, vec![b'b'; 30]));
        h.push(Stream::Stdout, &vec![b'c'; HOLD_CAP + 5]);
        assert_eq!(h.chunks.len(), 1);
        assert_eq!(h.chunks[0].1.len(), HOLD_CAP);
    }

    #[test]
    fn one_read_is_one_write_yet_rotates_entry_by_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let mut probe = Vec::new();
        jsonlog::encode_entry(&mut probe, b"1\n", Stream::Stdout, &LogTime::at(now()));
        // Room for two entries per file.
        let max = probe.len() as u64 * 5 / 2;
        let mut log = Logger {
            file: LogFile::open(&path, Some(max), 5).unwrap(),
            lines: Default::default(),
            pending: Vec::new(),
        };
        log.write(Stream::Stdout, b"1\n2\n3\n4\n5", false);
        log.write(Stream::Stdout, b"\n", true);
        let logged = |n| {
            let text = std::fs::read_to_string(crate::rotate::numbered(&path, n)).unwrap();
            text.lines()
                .map(|l| l[8..9].to_owned())
                .collect::<Vec<_>>()
                .join(",")
        };
        assert_eq!(
            [logged(2), logged(1), logged(0)],
            ["1,2".to_owned(), "3,4".to_owned(), "5".to_owned()]
        );
    }

    #[test]
    fn exit_record() {
        let dir = tempfile::tempdir().unwrap();
        write_exit_record(dir.path(), 3).unwrap();
        let text = std::fs::read_to_string(dir.path().join("exit.json")).unwrap();
        assert!(
            text.starts_with("{\"exit_code\": 3, \"finished_at\": "),
            "{text}"
        );
        assert!(!dir.path().join(".exit.json.tmp").exists());
    }
}
