//! printcam's own connection handling: one accept loop on a std listener,
//! one small named thread per connection, one request per connection (every
//! response says `Connection: close`).
//!
//! Not tiny_http: its task pool queued new connections behind threads that
//! open streams never gave back, its accept thread ended at the first
//! accept() error, and it gave no access to the accepted sockets, so idle
//! clients could not be cut off.

use super::reply::Reply;
use super::request::{self, Head, Request};
use super::{Full, Limits, Shared, HANDLER_STACK};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Pause after a failed accept(): EMFILE and the like last until some
/// connection closes, and retrying at once would spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);
/// Longest single wait for request bytes, so a connection that has sent
/// nothing yet notices a shutdown.
const POLL: Duration = Duration::from_secs(1);
/// Write timeout of a refusal sent from the accept thread, which must not
/// be held up by a client that does not read.
const REFUSE_WRITE: Duration = Duration::from_secs(1);
/// How long, and how many bytes, a closing connection reads what the client
/// still sends (see `linger`).
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 256 * 1024;
const READ_CHUNK: usize = 4096;
/// How long `wake` tries to connect.
const WAKE_TIMEOUT: Duration = Duration::from_secs(2);

/// Accepts until the server stops. accept() errors are never fatal: they
/// are logged and retried.
pub(super) fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut failing = false;
    loop {
        let accepted = listener.accept();
        if shared.stopping.load(Ordering::SeqCst) {
            // The connection from `wake`, or a client arriving as we stop.
            if let Ok((stream, _)) = accepted {
                refuse(stream, Reply::detail(503, "printcam is shutting down"));
            }
            return;
        }
        match accepted {
            Ok((stream, peer)) => {
                failing = false;
                admit(&shared, stream, peer);
            }
            Err(e) => {
                // One line per spell of failures, not ten a second.
                if failing {
                    log::debug!("http: accept failed again: {e}");
                } else {
                    log::warn!("http: accept failed ({e}); retrying");
                }
                failing = true;
                thread::sleep(ACCEPT_RETRY);
            }
        }
    }
}

/// Wakes the accept loop out of accept() by connecting to it; false when
/// that failed. A blocking accept then costs nothing while the server is
/// idle, where polling a non-blocking listener would wake an idle router
/// several times a second and delay every new client by up to the period.
pub(super) fn wake(addr: SocketAddr) -> bool {
    let mut target = addr;
    if target.ip().is_unspecified() {
        target.set_ip(match target.ip() {
            IpAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
            IpAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
        });
    }
    match TcpStream::connect_timeout(&target, WAKE_TIMEOUT) {
        Ok(_) => true,
        Err(e) => {
            log::warn!("http: could not wake the accept loop ({e})");
            false
        }
    }
}

/// Gives the connection a thread within `max_handlers` and the client's
/// share of them; beyond, a 503.
fn admit(shared: &Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    let slot = match shared.handlers.enter(shared.clone(), peer.ip()) {
        Ok(slot) => slot,
        Err(full) => {
            let (why, count) = match full {
                Full::Server => (
                    "too many requests at once; try again later",
                    &shared.refusals.connections,
                ),
                Full::Client => (
                    "too many connections from your address at once; close some and try again",
                    &shared.refusals.client,
                ),
            };
            count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            log::debug!("http: {peer} refused: {why}");
            refuse(
                stream,
                Reply::detail(503, why).with_header("Retry-After", "5".into()),
            );
            return;
        }
    };
    let spawned = crate::sync::spawn("http-conn".into(), Some(HANDLER_STACK), move || {
        serve(&slot.shared, stream, peer);
        drop(slot);
    });
    if let Err(e) = spawned {
        // The connection, dropped with the closure, is closed unanswered.
        log::error!("http: could not start a connection thread: {e}");
    }
}

/// Answers without reading the request, from the accept thread.
fn refuse(mut stream: TcpStream, reply: Reply) {
    if stream.set_write_timeout(Some(REFUSE_WRITE)).is_ok() {
        let _ = reply.write_to(&mut stream);
    }
    linger(&mut stream, Duration::ZERO);
}

/// Reads one request and has it answered.
fn serve(shared: &Shared, mut stream: TcpStream, peer: SocketAddr) {
    if let Err(e) = configure(&stream, &shared.limits) {
        log::debug!("http: {peer}: cannot set up the connection: {e}");
        return;
    }
    match read_request(&mut stream, shared) {
        Ok((head, body, unread)) => {
            let mut request = Request::new(head, body, peer, stream);
            super::dispatch(shared, &mut request);
            if unread {
                linger(request.stream(), LINGER);
            }
        }
        Err(Failure::Quiet(why)) => log::debug!("http: {peer}: {why}; closed"),
        Err(Failure::Answer(reply)) => {
            log::info!("http: {peer}: unfit request, {}", reply.status);
            if let Err(e) = reply.write_to(&mut stream) {
                log::debug!("response not delivered: {e}");
            }
            linger(&mut stream, LINGER);
        }
    }
}

fn configure(stream: &TcpStream, limits: &Limits) -> io::Result<()> {
    // A zero timeout means none to the socket; every write needs one.
    stream.set_write_timeout(Some(limits.write_timeout.max(Duration::from_millis(1))))?;
    // A reply goes out as head then body, a frame as part header then JPEG:
    // Nagle would hold the second write until the first is acknowledged,
    // which a delayed ACK can make 40 ms.
    stream.set_nodelay(true)
}

/// Why no request came of a connection.
enum Failure {
    /// Nothing worth answering: the client left, sent nothing in time, or
    /// the server is stopping.
    Quiet(String),
    /// A malformed, oversized or too slow request, told so.
    Answer(Reply),
}

/// Reads the head within `head_timeout`, then the body (at most
/// `max_body`) within `head_timeout` again. Also says whether bytes beyond
/// the body (a pipelined request) were left unread.
fn read_request(stream: &mut TcpStream, shared: &Shared) -> Result<(Head, Vec<u8>, bool), Failure> {
    let limits = &shared.limits;
    let mut buf = Vec::new();
    let mut chunk = [0u8; READ_CHUNK];
    let start = Instant::now();
    let first_byte_by = start + limits.first_byte_timeout.min(limits.head_timeout);
    let deadline = start + limits.head_timeout;
    let end = loop {
        let (by, waited) = if buf.is_empty() {
            (first_byte_by, limits.first_byte_timeout)
        } else {
            (deadline, limits.head_timeout)
        };
        let n = read_before(stream, &mut chunk, by, &shared.stopping)
            .map_err(|e| cut_off(e, buf.is_empty(), waited))?;
        if n == 0 {
            return Err(Failure::Quiet(
                "closed before a complete request head".into(),
            ));
        }
        let from = buf.len();
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = request::head_end(&buf, from).map_err(Failure::Answer)? {
            break end;
        }
    };
    let head = request::parse_head(&buf[..end]).map_err(Failure::Answer)?;
    let len = head.body_length(limits.max_body).map_err(Failure::Answer)?;
    let mut body = buf.split_off(end);
    // The head is parsed: its bytes need not wait with the body.
    drop(buf);
    let unread = body.len() > len;
    body.truncate(len);
    if body.len() < len {
        if head.expects_continue() {
            stream
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .map_err(|e| Failure::Quiet(e.to_string()))?;
        }
        read_body(stream, &mut body, len, shared)?;
    }
    Ok((head, body, unread))
}

/// Reads the rest of a `len`-byte body whose start is in `body`. The
/// buffer grows as bytes arrive, not as announced: a client announcing
/// 64 KB and sending nothing costs nothing.
fn read_body(
    stream: &mut TcpStream,
    body: &mut Vec<u8>,
    len: usize,
    shared: &Shared,
) -> Result<(), Failure> {
    let timeout = shared.limits.head_timeout;
    let deadline = Instant::now() + timeout;
    let mut chunk = [0u8; READ_CHUNK];
    while body.len() < len {
        let want = (len - body.len()).min(READ_CHUNK);
        let n = read_before(stream, &mut chunk[..want], deadline, &shared.stopping)
            .map_err(|e| cut_off(e, false, timeout))?;
        if n == 0 {
            return Err(Failure::Quiet("closed before the whole body".into()));
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(())
}

/// One read that gives up at `deadline` (TimedOut) or when the server
/// stops, waiting at most `POLL` at a time.
fn read_before(
    stream: &mut TcpStream,
    buf: &mut [u8],
    deadline: Instant,
    stopping: &AtomicBool,
) -> io::Result<usize> {
    loop {
        if stopping.load(Ordering::Relaxed) {
            return Err(io::Error::other("printcam is stopping"));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_read_timeout(Some(left.min(POLL)))?;
        match stream.read(buf) {
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            done => return done,
        }
    }
}

/// A client that sent nothing in time is just closed (slowloris, or a
/// browser's spare connection); one that sent part of a request gets 408.
fn cut_off(e: io::Error, nothing_yet: bool, timeout: Duration) -> Failure {
    if e.kind() != io::ErrorKind::TimedOut {
        return Failure::Quiet(e.to_string());
    }
    if nothing_yet {
        return Failure::Quiet(format!("no request within {timeout:?}"));
    }
    Failure::Answer(Reply::detail(
        408,
        &format!("the request was not sent within {timeout:?}"),
    ))
}

/// Stops sending, then reads and drops what the client still sends, for up
/// to `bound` (zero: only what has arrived) and `LINGER_BYTES`. Closing a
/// socket with unread input makes the kernel reset the connection, and the
/// reset can destroy the response before the client has read it.
fn linger(stream: &mut TcpStream, bound: Duration) {
    let _ = stream.shutdown(Shutdown::Write);
    let deadline = Instant::now() + bound;
    let mut left = LINGER_BYTES;
    let mut buf = [0u8; READ_CHUNK];
    while left > 0 {
        let wait = deadline.saturating_duration_since(Instant::now());
        let set = if wait.is_zero() {
            stream.set_nonblocking(true)
        } else {
            stream.set_read_timeout(Some(wait))
        };
        if set.is_err() {
            return;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
}
