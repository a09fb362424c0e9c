//! Socket calls that never wait, whatever mode the socket is in: the hub
//! writes to viewers' sockets while their own threads may block on them.

use std::io::{self, IoSlice};
use std::net::TcpStream;
use std::os::fd::AsRawFd;

/// Sends what the socket takes now of `bufs`; `WouldBlock` when nothing.
/// A peer that has gone is an error, never a SIGPIPE.
pub fn send(stream: &TcpStream, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    // SAFETY: an all-zero msghdr is valid (no name, no control data).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    // IoSlice is guaranteed ABI-compatible with iovec on Unix.
    msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = bufs.len() as _;
    let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
    // SAFETY: msg points at `bufs`, which outlive the call; the fd is open.
    let n = unsafe { libc::sendmsg(stream.as_raw_fd(), &msg, flags) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Receives what has arrived into `buf`: `Ok(0)` when the peer has closed
/// its end, `WouldBlock` when nothing is there.
pub fn recv(stream: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for buf.len() bytes of writes; the fd is open.
    let n = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// A counter another thread can poke to wake a thread waiting in
/// `wait_either` (Linux's eventfd: one fd, and a poke never blocks).
pub struct Wake(std::os::fd::OwnedFd);

impl Wake {
    pub fn new() -> io::Result<Wake> {
        // SAFETY: plain syscall; a non-negative result is a new fd we own.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is open and owned by nobody else.
        Ok(Wake(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) }))
    }

    /// Wakes the waiter (now or at its next wait). Never blocks.
    pub fn poke(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64 to our open eventfd. A
        // full counter (EAGAIN) already means "wake up".
        let _ = unsafe { libc::write(self.0.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// Clears the pokes so far.
    fn drain(&self) {
        let mut n: u64 = 0;
        // SAFETY: reads 8 bytes into a valid u64 from our open eventfd.
        let _ = unsafe { libc::read(self.0.as_raw_fd(), (&mut n as *mut u64).cast(), 8) };
    }
}

/// What ended a `wait_either`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woken {
    /// The socket has input, a hang-up or an error to look at.
    Socket,
    /// Someone poked.
    Poked,
    TimedOut,
}

/// Waits until `stream` is readable (input or hang-up), `wake` is poked,
/// or `timeout` passes, and clears the pokes. A viewer's thread waits here,
/// so a hang-up is seen at once, even while the camera sends nothing.
pub fn wait_either(stream: &TcpStream, wake: &Wake, timeout: std::time::Duration) -> Woken {
    let mut fds = [
        libc::pollfd {
            fd: stream.as_raw_fd(),
            events: libc::POLLIN | libc::POLLRDHUP,
            revents: 0,
        },
        libc::pollfd {
            fd: wake.0.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: fds is a valid array of two pollfd for the call's duration.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
    if fds[1].revents != 0 {
        wake.drain();
    }
    match n {
        // An interrupted wait is treated as a poke: the caller looks again.
        n if n < 0 => Woken::Poked,
        0 => Woken::TimedOut,
        _ if fds[0].revents != 0 => Woken::Socket,
        _ => Woken::Poked,
    }
}

/// A connected (client, server) pair on loopback, for tests; the client's
/// reads give up after 5 s.
#[cfg(test)]
pub(super) fn pair() -> (TcpStream, TcpStream) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    let timeout = Some(std::time::Duration::from_secs(5));
    client.set_read_timeout(timeout).unwrap();
    (client, server)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::ErrorKind;

    #[test]
    fn send_never_waits_and_fills_the_socket() {
        let (client, server) = pair();
        let block = vec![7u8; 1 << 20];
        let mut sent = 0;
        let err = loop {
            match send(&server, &[IoSlice::new(&block)]) {
                Ok(n) => sent += n,
                Err(e) => break e,
            }
            assert!(sent < 1 << 30, "a socket nobody reads took 1 GB");
        };
        assert_eq!(err.kind(), ErrorKind::WouldBlock);
        assert!(sent > 0);
        drop(client);
    }

    #[test]
    fn send_to_a_closed_peer_is_an_error_not_a_signal() {
        let (client, server) = pair();
        drop(client);
        let data = [1u8; 4096];
        let failed = (0..100).any(|_| send(&server, &[IoSlice::new(&data)]).is_err());
        assert!(failed);
    }

    #[test]
    fn a_wait_ends_at_a_poke_or_a_hang_up() {
        let (client, server) = pair();
        let wake = Wake::new().unwrap();
        let short = std::time::Duration::from_millis(10);
        assert_eq!(wait_either(&server, &wake, short), Woken::TimedOut);
        wake.poke();
        wake.poke();
        let long = std::time::Duration::from_secs(20);
        assert_eq!(wait_either(&server, &wake, long), Woken::Poked);
        // Both pokes were cleared.
        assert_eq!(wait_either(&server, &wake, short), Woken::TimedOut);
        drop(client);
        assert_eq!(wait_either(&server, &wake, long), Woken::Socket);
    }

    #[test]
    fn recv_tells_nothing_yet_from_closed() {
        let (client, server) = pair();
        let mut buf = [0u8; 16];
        let e = recv(&server, &mut buf).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WouldBlock);
        drop(client);
        server
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        // Wait until the FIN is there, then recv must see it without waiting.
        let mut peek = [0u8; 1];
        assert_eq!(server.peek(&mut peek).unwrap(), 0);
        assert_eq!(recv(&server, &mut buf).unwrap(), 0);
    }
}
