//! The one datagram that hands a command line to the forkserver: argv, environment and umask,
//! with stdin, stdout, stderr and the working directory attached as descriptors (the format is
//! described in python/barque/cli/forkserver.py).

use std::ffi::OsString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

use crate::error::Error;

const MAGIC: &[u8] = b"BRQ1";
/// The server reads at most 1 MiB; leave room for its own framing.
const MAX_REQUEST: usize = (1 << 20) - 4096;

/// The request datagram for `args` (without argv[0]), `env` and `umask`.
pub fn encode(args: &[OsString], env: &[OsString], umask: u32) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(4096);
    out.extend_from_slice(MAGIC);
    for list in [args, env] {
        out.extend_from_slice(&(list.len() as u32).to_le_bytes());
        for item in list {
            let bytes = item.as_bytes();
            out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            out.extend_from_slice(bytes);
        }
    }
    out.extend_from_slice(&umask.to_le_bytes());
    if out.len() > MAX_REQUEST {
        return Err(Error::TooLarge { size: out.len() });
    }
    Ok(out)
}

/// This process's environment as `KEY=VALUE` entries.
pub fn environment() -> Vec<OsString> {
    std::env::vars_os()
        .map(|(k, v)| {
            let mut entry = k;
            entry.push("=");
            entry.push(v);
            entry
        })
        .collect()
}

/// This process's umask (read by setting it and setting it back: the process is
/// single-threaded, so nothing creates a file in between).
pub fn umask() -> u32 {
    // SAFETY: umask cannot fail.
    unsafe {
        let mask = libc::umask(0o022);
        libc::umask(mask);
        mask as u32
    }
}

/// Send the request on `conn` with this process's stdin, stdout, stderr and working directory.
pub fn send(conn: &OwnedFd, payload: &[u8]) -> Result<(), Error> {
    for fd in 0..3 {
        // SAFETY: F_GETFD only queries the descriptor.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(Error::ClosedStream { fd });
        }
    }
    let cwd = open_cwd()?;
    let fds: [RawFd; 4] = [0, 1, 2, cwd.as_raw_fd()];
    let fds_len = std::mem::size_of_val(&fds) as u32;
    // SAFETY: CMSG_SPACE is a pure computation.
    let space = unsafe { libc::CMSG_SPACE(fds_len) } as usize;
    let mut control = vec![0u8; space];
    let mut iov = libc::iovec {
        iov_base: payload.as_ptr() as *mut libc::c_void,
        iov_len: payload.len(),
    };
    // SAFETY: an all-zero msghdr is valid; the fields set below point at live buffers.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: msg_control holds room for one header with four descriptors.
    unsafe {
        let header = libc::CMSG_FIRSTHDR(&msg);
        (*header).cmsg_level = libc::SOL_SOCKET;
        (*header).cmsg_type = libc::SCM_RIGHTS;
        (*header).cmsg_len = libc::CMSG_LEN(fds_len) as _;
        std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(header).cast::<RawFd>(), 4);
    }
    // SAFETY: msg is fully initialised; MSG_NOSIGNAL keeps a dead server from killing us.
    let sent = unsafe { libc::sendmsg(conn.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
    if sent < 0 {
        return Err(Error::last("sendmsg"));
    }
    Ok(())
}

fn open_cwd() -> Result<OwnedFd, Error> {
    // SAFETY: a constant C string.
    let fd = unsafe {
        libc::open(
            c".".as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(Error::at(".")(std::io::Error::last_os_error()));
    }
    // SAFETY: fd was just opened and is ours.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_counts_lengths_and_umask_little_endian() {
        let args = [OsString::from("run"), OsString::from("")];
        let env = [OsString::from("A=b")];
        let data = encode(&args, &env, 0o027).unwrap();
        let mut want = b"BRQ1".to_vec();
        want.extend_from_slice(&[2, 0, 0, 0, 3, 0, 0, 0]);
        want.extend_from_slice(b"run");
        want.extend_from_slice(&[0, 0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0]);
        want.extend_from_slice(b"A=b");
        want.extend_from_slice(&0o027u32.to_le_bytes());
        assert_eq!(data, want);
    }

    #[test]
    fn refuses_a_request_above_the_servers_limit() {
        let env = [OsString::from("X=".to_string() + &"y".repeat(MAX_REQUEST))];
        assert!(matches!(encode(&[], &env, 0), Err(Error::TooLarge { .. })));
    }
}
