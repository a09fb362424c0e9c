//! A local plain→TLS forwarder for RTSPS cameras.
//!
//! ffmpeg builds differ in TLS support (some have none, some use a GnuTLS
//! that rejects the printers' handshake), so ffmpeg is always given
//! `rtsp://127.0.0.1:<proxy port>/…` and this proxy speaks TLS (rustls) to
//! the camera. One proxy per upstream; it serves one connection at a time.
//!
//! In the client→camera direction the URL of each RTSP request line is
//! rewritten (`rtsp://127.0.0.1:<proxy port>` → `rtsps://<host>:<port>`) so
//! the camera sees its own address. Headers are never touched: the Digest
//! `Authorization` header covers the URI the client used, and the server
//! checks it against that header's `uri` parameter. Interleaved RTP/RTCP
//! (`$`, channel, u16 length, payload) and request bodies pass untouched.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};

use crate::tls::Dialer;
use crate::urlguard::Target;

/// The longest RTSP request head (request line and headers) accepted.
pub const MAX_HEAD: usize = 16 * 1024;
use crate::source::CONNECT_TIMEOUT;
/// Every write.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Each TLS handshake attempt: two (one with TLS 1.2 only, for firmware that
/// never answers a TLS 1.3 hello) fit ffmpeg's 10 s RTSP timeout.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(4);
/// Reads wake up this often to notice a stop.
const POLL: Duration = Duration::from_millis(250);
/// How often an idle accept loop looks for a stop or a client.
const ACCEPT_POLL: Duration = Duration::from_millis(50);

/// Why the client→camera byte stream was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RewriteError {
    /// A request head longer than `MAX_HEAD` (not RTSP, or hostile).
    HeadTooLong,
    /// A Content-Length that is not a number.
    BadContentLength,
}

impl std::fmt::Display for RewriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RewriteError::HeadTooLong => "RTSP request head too long",
            RewriteError::BadContentLength => "RTSP request with a bad Content-Length",
        })
    }
}

impl std::error::Error for RewriteError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between messages: a `$` starts interleaved data, anything else a request.
    Start,
    /// Collecting a request head up to `\r\n\r\n`.
    Head,
    /// Inside the 4-byte interleaved header; `got` bytes of it seen.
    Interleaved {
        got: u8,
        len: [u8; 2],
    },
    /// Passing this many more bytes through untouched (payload or body).
    Pass(u64),
    Failed,
}

/// Incremental rewriter of the client→camera RTSP byte stream. Feed it any
/// chunking of the stream; the output is the same. Memory is bounded by
/// `MAX_HEAD`.
pub struct RequestRewriter {
    from: Vec<u8>,
    to: Vec<u8>,
    state: State,
    head: Vec<u8>,
}

impl RequestRewriter {
    /// Rewrites `rtsp://127.0.0.1:<proxy_port>` to `rtsps://<host>:<port>`.
    pub fn new(proxy_port: u16, host: &str, port: u16) -> Self {
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        RequestRewriter {
            from: format!("rtsp://127.0.0.1:{proxy_port}").into_bytes(),
            to: format!("rtsps://{host}:{port}").into_bytes(),
            state: State::Start,
            head: Vec::new(),
        }
    }

    /// Bytes held waiting for the end of a request head (at most `MAX_HEAD`).
    pub fn buffered(&self) -> usize {
        self.head.len()
    }

    /// Feeds a chunk of the client's stream, appending what should be sent
    /// to the camera to `out`. After an error the stream must be closed;
    /// later calls fail too.
    pub fn push(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), RewriteError> {
        while !input.is_empty() {
            let used = self.step(input, out)?;
            input = &input[used..];
        }
        match self.state {
            State::Failed => Err(self.fail_reason()),
            _ => Ok(()),
        }
    }

    fn fail_reason(&self) -> RewriteError {
        if self.head.len() >= MAX_HEAD {
            RewriteError::HeadTooLong
        } else {
            RewriteError::BadContentLength
        }
    }

    /// Consumes a non-empty prefix of `input`; returns its length.
    fn step(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, RewriteError> {
        match self.state {
            State::Failed => Err(self.fail_reason()),
            State::Start => {
                match input[0] {
                    b'$' => {
                        out.push(b'$');
                        self.state = State::Interleaved {
                            got: 1,
                            len: [0; 2],
                        };
                        return Ok(1);
                    }
                    // Stray line ends between messages are legal; pass them on.
                    b'\r' | b'\n' => {
                        out.push(input[0]);
                        return Ok(1);
                    }
                    _ => self.state = State::Head,
                }
                self.step_head(input, out)
            }
            State::Interleaved { got, mut len } => {
                let b = input[0];
                out.push(b);
                if got >= 2 {
                    len[usize::from(got) - 2] = b;
                }
                self.state = if got == 3 {
                    State::Pass(u64::from(u16::from_be_bytes(len)))
                } else {
                    State::Interleaved { got: got + 1, len }
                };
                self.finish_pass();
                Ok(1)
            }
            State::Pass(n) => {
                let take = usize::try_from(n).unwrap_or(usize::MAX).min(input.len());
                out.extend_from_slice(&input[..take]);
                self.state = State::Pass(n - take as u64);
                self.finish_pass();
                Ok(take)
            }
            State::Head => self.step_head(input, out),
        }
    }

    fn finish_pass(&mut self) {
        if self.state == State::Pass(0) {
            self.state = State::Start;
        }
    }

    fn step_head(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, RewriteError> {
        let before = self.head.len();
        let take = input.len().min(MAX_HEAD - before);
        self.head.extend_from_slice(&input[..take]);
        let search_from = before.saturating_sub(3);
        match memchr::memmem::find(&self.head[search_from..], b"\r\n\r\n") {
            Some(i) => {
                let end = search_from + i + 4;
                self.head.truncate(end);
                let body = self.emit_head(out);
                self.head.clear();
                match body {
                    Some(0) => self.state = State::Start,
                    Some(n) => self.state = State::Pass(n),
                    None => {
                        self.state = State::Failed;
                        return Err(RewriteError::BadContentLength);
                    }
                }
                Ok(end - before)
            }
            None if self.head.len() >= MAX_HEAD => {
                self.state = State::Failed;
                Err(RewriteError::HeadTooLong)
            }
            None => Ok(take),
        }
    }

    /// Writes the complete head in `self.head` with its request-line URL
    /// rewritten; returns the body length, or None if it is unreadable.
    fn emit_head(&self, out: &mut Vec<u8>) -> Option<u64> {
        let head = &self.head[..];
        let line_end = memchr::memmem::find(head, b"\r\n").unwrap_or(head.len());
        let (line, rest) = head.split_at(line_end);
        out.extend_from_slice(&self.rewrite_line(line));
        out.extend_from_slice(rest);
        content_length(rest)
    }

    fn rewrite_line(&self, line: &[u8]) -> Vec<u8> {
        let Some(sp) = memchr::memchr(b' ', line) else {
            return line.to_vec();
        };
        let url = &line[sp + 1..];
        let after = url.get(self.from.len()).copied();
        let prefix_ends_authority = matches!(after, None | Some(b'/' | b' ' | b'?'));
        if !url.starts_with(&self.from) || !prefix_ends_authority {
            return line.to_vec();
        }
        let mut rewritten = Vec::with_capacity(line.len() + self.to.len());
        rewritten.extend_from_slice(&line[..=sp]);
        rewritten.extend_from_slice(&self.to);
        rewritten.extend_from_slice(&url[self.from.len()..]);
        rewritten
    }
}

/// The Content-Length among `headers` (CRLF-separated), 0 if absent, None
/// if unreadable.
fn content_length(headers: &[u8]) -> Option<u64> {
    for line in headers.split(|&b| b == b'\n') {
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let (name, value) = line.split_at(colon);
        if name.trim_ascii().eq_ignore_ascii_case(b"content-length") {
            let value = std::str::from_utf8(&value[1..]).ok()?.trim();
            return value.parse().ok();
        }
    }
    Some(0)
}

/// The state shared by the proxy handle and its threads.
struct Shared {
    stop: AtomicBool,
    /// The current connection's sockets, so `stop` can unblock their reads.
    sockets: Mutex<Vec<TcpStream>>,
    last_error: Mutex<Option<(io::ErrorKind, String)>>,
    /// The TLS version of the last camera connection.
    tls_version: Mutex<Option<&'static str>>,
    /// Word-sized: 32-bit MIPS has no 64-bit atomics.
    connections: AtomicUsize,
}

impl Shared {
    fn record(&self, kind: io::ErrorKind, message: String) {
        log::debug!("rtsps proxy: {message}");
        *lock(&self.last_error) = Some((kind, message));
    }

    fn close_sockets(&self) {
        for s in lock(&self.sockets).drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

use crate::sync::lock;

/// Where the proxy connects, and how.
struct Upstream {
    /// Checked by urlguard; connected to by address, never resolved again.
    target: Target,
    dialer: Dialer,
    server_name: ServerName<'static>,
}

/// A running proxy; stopping or dropping it closes every socket and joins
/// every thread.
pub struct TlsProxy {
    port: u16,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl TlsProxy {
    /// Listens on 127.0.0.1 on an ephemeral port and forwards each client,
    /// one at a time, over TLS to `target`'s checked addresses.
    pub fn start(
        target: Target,
        tls: Arc<ClientConfig>,
        server_name: ServerName<'static>,
    ) -> io::Result<TlsProxy> {
        TlsProxy::start_with(target, Dialer::fixed(tls), server_name)
    }

    /// `start`, with TLS settings that may fall back to TLS 1.2 only.
    pub fn start_with(
        target: Target,
        dialer: Dialer,
        server_name: ServerName<'static>,
    ) -> io::Result<TlsProxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        // Non-blocking so the accept loop can notice a stop.
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            sockets: Mutex::new(Vec::new()),
            last_error: Mutex::new(None),
            tls_version: Mutex::new(None),
            connections: AtomicUsize::new(0),
        });
        let target = Upstream {
            target,
            dialer,
            server_name,
        };
        let thread_shared = Arc::clone(&shared);
        let accept = crate::sync::spawn(format!("rtsps-{port}"), None, move || {
            accept_loop(listener, port, &target, &thread_shared)
        })?;
        Ok(TlsProxy {
            port,
            shared,
            accept: Some(accept),
        })
    }

    /// The port ffmpeg should connect to on 127.0.0.1.
    pub fn local_port(&self) -> u16 {
        self.port
    }

    /// How many clients have been accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::Relaxed) as u64
    }

    /// The last failure reaching the camera (no secrets: host and port only).
    pub fn last_error(&self) -> Option<String> {
        lock(&self.shared.last_error)
            .as_ref()
            .map(|(_, m)| m.clone())
    }

    /// The TLS version of the last connection to the camera.
    pub fn tls_version(&self) -> Option<&'static str> {
        *lock(&self.shared.tls_version)
    }

    /// True if the last attempt to reach the camera was refused (a printer
    /// with LAN mode liveview off closes its port 322).
    pub fn refused(&self) -> bool {
        matches!(
            *lock(&self.shared.last_error),
            Some((io::ErrorKind::ConnectionRefused, _))
        )
    }

    /// Closes every socket and joins every thread. Idempotent.
    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.close_sockets();
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(listener: TcpListener, port: u16, target: &Upstream, shared: &Shared) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((plain, _)) => {
                shared.connections.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = serve(plain, port, target, shared) {
                    shared.record(e.kind(), e.to_string());
                }
                shared.close_sockets();
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => thread::sleep(ACCEPT_POLL),
            Err(e) => {
                log::debug!("rtsps proxy accept: {e}");
                thread::sleep(ACCEPT_POLL);
            }
        }
    }
}

/// Sockets are registered for `stop` before anything blocks on them.
fn register(shared: &Shared, s: &TcpStream) -> io::Result<()> {
    let clone = s.try_clone()?;
    lock(&shared.sockets).push(clone);
    if shared.stop.load(Ordering::SeqCst) {
        return Err(io::Error::new(io::ErrorKind::Interrupted, "proxy stopping"));
    }
    Ok(())
}

fn serve(plain: TcpStream, proxy_port: u16, target: &Upstream, shared: &Shared) -> io::Result<()> {
    plain.set_nonblocking(false)?;
    plain.set_nodelay(true)?;
    plain.set_read_timeout(Some(POLL))?;
    plain.set_write_timeout(Some(IO_TIMEOUT))?;
    register(shared, &plain)?;
    let (tcp, conn) = open_camera(target, shared)?;
    *lock(&shared.tls_version) = Some(crate::tls::version_name(&conn));
    tcp.set_read_timeout(Some(POLL))?;
    let tls = Mutex::new(TlsSide {
        conn,
        tcp: tcp.try_clone()?,
    });
    let done = AtomicBool::new(false);
    let rewriter = RequestRewriter::new(proxy_port, target.target.host(), target.target.port());
    // Two threads: this one reads ffmpeg and writes TLS, a scoped one reads
    // TLS and writes ffmpeg. Each blocks only on its own socket's read; the
    // rustls state is shared under a mutex that is never held across a read,
    // so neither direction can stall the other. (A single thread alternating
    // short reads would add latency to every RTP packet.)
    let plain_reader = plain.try_clone()?;
    thread::scope(|s| {
        let down = crate::sync::named(format!("rtsps-dn-{proxy_port}")).spawn_scoped(s, || {
            let r = camera_to_client(&tcp, &plain, &tls, shared, &done);
            end_connection(shared, &done);
            r
        });
        let up = match down {
            Ok(_) => client_to_camera(plain_reader, rewriter, &tls, shared, &done),
            Err(e) => Err(e),
        };
        // Best effort: tell the camera we are leaving.
        {
            let mut side = lock(&tls);
            side.conn.send_close_notify();
            let _ = side.flush();
        }
        end_connection(shared, &done);
        up
    })
}

fn end_connection(shared: &Shared, done: &AtomicBool) {
    done.store(true, Ordering::SeqCst);
    shared.close_sockets();
}

fn connect(target: &Target) -> io::Result<TcpStream> {
    let s = target.connect(CONNECT_TIMEOUT)?;
    s.set_nodelay(true)?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(s)
}

/// Connects to the camera and completes the TLS handshake, once more at
/// once with TLS 1.2 only if the dialer says so.
fn open_camera(target: &Upstream, shared: &Shared) -> io::Result<(TcpStream, ClientConnection)> {
    let where_ = target.target.label();
    let failed = |e: io::Error| io::Error::new(e.kind(), format!("TLS with {where_} failed: {e}"));
    let tcp = tcp_to_camera(target, shared)?;
    match handshake(&tcp, target) {
        Ok(conn) => Ok((tcp, conn)),
        Err(e) if target.dialer.fall_back(&e, &where_) => {
            let _ = tcp.shutdown(Shutdown::Both);
            let tcp = tcp_to_camera(target, shared)?;
            let conn = handshake(&tcp, target).map_err(failed)?;
            Ok((tcp, conn))
        }
        Err(e) => Err(failed(e)),
    }
}

fn tcp_to_camera(target: &Upstream, shared: &Shared) -> io::Result<TcpStream> {
    let tcp = connect(&target.target).map_err(|e| {
        let where_ = target.target.label();
        io::Error::new(e.kind(), format!("cannot connect to {where_}: {e}"))
    })?;
    register(shared, &tcp)?;
    Ok(tcp)
}

fn handshake(tcp: &TcpStream, target: &Upstream) -> io::Result<ClientConnection> {
    tcp.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
    let mut conn = ClientConnection::new(target.dialer.config(), target.server_name.clone())
        .map_err(io::Error::other)?;
    let mut stream = tcp;
    while conn.is_handshaking() {
        conn.complete_io(&mut stream)?;
    }
    Ok(conn)
}

struct TlsSide {
    conn: ClientConnection,
    /// The camera socket's writing handle.
    tcp: TcpStream,
}

impl TlsSide {
    fn flush(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            self.conn.write_tls(&mut self.tcp)?;
        }
        Ok(())
    }
}

fn keep_reading(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

fn client_to_camera(
    mut plain: TcpStream,
    mut rewriter: RequestRewriter,
    tls: &Mutex<TlsSide>,
    shared: &Shared,
    done: &AtomicBool,
) -> io::Result<()> {
    let mut buf = vec![0u8; 16 * 1024];
    let mut out = Vec::with_capacity(buf.len());
    while !done.load(Ordering::SeqCst) && !shared.stop.load(Ordering::SeqCst) {
        let n = match plain.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if keep_reading(&e) => continue,
            Err(_) if done.load(Ordering::SeqCst) => return Ok(()),
            Err(e) => return Err(e),
        };
        out.clear();
        rewriter
            .push(&buf[..n], &mut out)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let mut side = lock(tls);
        let mut rest = &out[..];
        while !rest.is_empty() {
            let written = side.conn.writer().write(rest)?;
            side.flush()?;
            if written == 0 && !side.conn.wants_write() {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "TLS send buffer full",
                ));
            }
            rest = &rest[written..];
        }
    }
    Ok(())
}

fn camera_to_client(
    mut tcp: &TcpStream,
    mut plain: &TcpStream,
    tls: &Mutex<TlsSide>,
    shared: &Shared,
    done: &AtomicBool,
) -> io::Result<()> {
    let mut buf = vec![0u8; 16 * 1024];
    let mut clear = Vec::with_capacity(64 * 1024);
    while !done.load(Ordering::SeqCst) && !shared.stop.load(Ordering::SeqCst) {
        let n = match tcp.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if keep_reading(&e) => continue,
            Err(_) if done.load(Ordering::SeqCst) => return Ok(()),
            Err(e) => return Err(e),
        };
        clear.clear();
        let closed = decrypt(&mut lock(tls), &buf[..n], &mut clear)?;
        plain.write_all(&clear)?;
        if closed {
            return Ok(());
        }
    }
    Ok(())
}

/// Feeds TLS bytes to rustls and collects the plaintext. Returns true once
/// the camera has closed the TLS session cleanly.
fn decrypt(side: &mut TlsSide, mut tls_bytes: &[u8], clear: &mut Vec<u8>) -> io::Result<bool> {
    let mut closed = false;
    while !tls_bytes.is_empty() {
        side.conn.read_tls(&mut tls_bytes)?;
        if let Err(e) = side.conn.process_new_packets() {
            // Send the alert rustls queued before giving up.
            let _ = side.flush();
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match side.conn.reader().read(&mut chunk) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(k) => clear.extend_from_slice(&chunk[..k]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
    }
    // Key updates and alerts rustls wants to answer.
    side.flush()?;
    Ok(closed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PORT: u16 = 40123;

    fn rewriter() -> RequestRewriter {
        RequestRewriter::new(PORT, "192.168.1.50", 322)
    }

    fn one_shot(input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        rewriter().push(input, &mut out).unwrap();
        out
    }

    fn interleaved(channel: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![b'$', channel];
        v.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    /// A realistic ffmpeg session toward the proxy, and what the camera must get.
    fn session() -> (Vec<u8>, Vec<u8>) {
        let auth = "Authorization: Digest username=\"bblp\", realm=\"LIVE555 Streaming Media\", \
                    nonce=\"a1b2c3\", uri=\"rtsp://127.0.0.1:40123/streaming/live/1\", \
                    response=\"0123456789abcdef0123456789abcdef\"\r\n";
        let msgs: Vec<(String, String)> = vec![
            (
                "OPTIONS rtsp://127.0.0.1:40123/streaming/live/1 RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: Lavf59.27.100\r\n\r\n".into(),
                "OPTIONS rtsps://192.168.1.50:322/streaming/live/1 RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: Lavf59.27.100\r\n\r\n".into(),
            ),
            (
                format!("DESCRIBE rtsp://127.0.0.1:40123/streaming/live/1 RTSP/1.0\r\nAccept: application/sdp\r\nCSeq: 3\r\n{auth}\r\n"),
                format!("DESCRIBE rtsps://192.168.1.50:322/streaming/live/1 RTSP/1.0\r\nAccept: application/sdp\r\nCSeq: 3\r\n{auth}\r\n"),
            ),
            (
                format!("SETUP rtsp://127.0.0.1:40123/streaming/live/1/track1 RTSP/1.0\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\nCSeq: 4\r\n{auth}\r\n"),
                format!("SETUP rtsps://192.168.1.50:322/streaming/live/1/track1 RTSP/1.0\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\nCSeq: 4\r\n{auth}\r\n"),
            ),
            (
                "PLAY rtsp://127.0.0.1:40123/streaming/live/1/ RTSP/1.0\r\nRange: npt=0.000-\r\nCSeq: 5\r\nSession: 1234\r\n\r\n".into(),
                "PLAY rtsps://192.168.1.50:322/streaming/live/1/ RTSP/1.0\r\nRange: npt=0.000-\r\nCSeq: 5\r\nSession: 1234\r\n\r\n".into(),
            ),
        ];
        let mut input = Vec::new();
        let mut want = Vec::new();
        for (i, o) in msgs {
            input.extend_from_slice(i.as_bytes());
            want.extend_from_slice(o.as_bytes());
        }
        // RTCP receiver reports interleaved with a keep-alive whose body and
        // frames contain things that look like requests and like `$`.
        let rtcp = interleaved(
            1,
            b"\x81\xc9\x00\x07GET_PARAMETER rtsp://127.0.0.1:40123/ RTSP/1.0\r\n\r\n$",
        );
        let big = interleaved(0, &vec![b'$'; 70_000 % 65_536]);
        let keepalive = "GET_PARAMETER rtsp://127.0.0.1:40123/streaming/live/1/ RTSP/1.0\r\nCSeq: 6\r\nContent-Type: text/parameters\r\nContent-Length: 30\r\n\r\nrtsp://127.0.0.1:40123/x\r\n$\x00\x00\x01";
        let keepalive_out = "GET_PARAMETER rtsps://192.168.1.50:322/streaming/live/1/ RTSP/1.0\r\nCSeq: 6\r\nContent-Type: text/parameters\r\nContent-Length: 30\r\n\r\nrtsp://127.0.0.1:40123/x\r\n$\x00\x00\x01";
        assert_eq!(keepalive.split("\r\n\r\n").nth(1).unwrap().len(), 30);
        for (i, o) in [
            (rtcp.clone(), rtcp.clone()),
            (
                keepalive.as_bytes().to_vec(),
                keepalive_out.as_bytes().to_vec(),
            ),
            (big.clone(), big.clone()),
            (b"\r\n".to_vec(), b"\r\n".to_vec()),
            (
                b"TEARDOWN rtsp://127.0.0.1:40123/streaming/live/1/ RTSP/1.0\r\nCSeq: 7\r\n\r\n"
                    .to_vec(),
                b"TEARDOWN rtsps://192.168.1.50:322/streaming/live/1/ RTSP/1.0\r\nCSeq: 7\r\n\r\n"
                    .to_vec(),
            ),
        ] {
            input.extend_from_slice(&i);
            want.extend_from_slice(&o);
        }
        (input, want)
    }

    #[test]
    fn real_session_rewritten() {
        let (input, want) = session();
        assert_eq!(one_shot(&input), want);
    }

    #[test]
    fn every_split_point_gives_the_same_output() {
        let (input, want) = session();
        // Every two-way split, plus byte-by-byte.
        for cut in (0..=input.len())
            .step_by(7)
            .chain(input.len().saturating_sub(300)..=input.len())
        {
            let mut r = rewriter();
            let mut out = Vec::new();
            r.push(&input[..cut], &mut out).unwrap();
            r.push(&input[cut..], &mut out).unwrap();
            assert_eq!(out, want, "split at {cut}");
        }
        let mut r = rewriter();
        let mut out = Vec::new();
        for b in &input {
            r.push(std::slice::from_ref(b), &mut out).unwrap();
        }
        assert_eq!(out, want);
    }

    #[test]
    fn headers_never_rewritten() {
        let input = b"DESCRIBE rtsp://127.0.0.1:40123/a RTSP/1.0\r\nX-Url: rtsp://127.0.0.1:40123/a\r\n\r\n";
        let out = one_shot(input);
        assert_eq!(
            out,
            b"DESCRIBE rtsps://192.168.1.50:322/a RTSP/1.0\r\nX-Url: rtsp://127.0.0.1:40123/a\r\n\r\n"
        );
    }

    #[test]
    fn other_urls_untouched() {
        for input in [
            &b"OPTIONS rtsp://127.0.0.1:401234/a RTSP/1.0\r\n\r\n"[..],
            b"OPTIONS rtsp://10.0.0.1:40123/a RTSP/1.0\r\n\r\n",
            b"OPTIONS * RTSP/1.0\r\n\r\n",
            b"RTSP/1.0 200 OK\r\nCSeq: 2\r\n\r\n",
            b"GARBAGE\r\n\r\n",
        ] {
            assert_eq!(one_shot(input), input);
        }
        assert_eq!(
            one_shot(b"OPTIONS rtsp://127.0.0.1:40123 RTSP/1.0\r\n\r\n"),
            b"OPTIONS rtsps://192.168.1.50:322 RTSP/1.0\r\n\r\n"
        );
    }

    #[test]
    fn ipv6_target_bracketed() {
        let mut out = Vec::new();
        RequestRewriter::new(1, "fd00::5", 322)
            .push(b"PLAY rtsp://127.0.0.1:1/x RTSP/1.0\r\n\r\n", &mut out)
            .unwrap();
        assert_eq!(out, b"PLAY rtsps://[fd00::5]:322/x RTSP/1.0\r\n\r\n");
    }

    #[test]
    fn long_head_is_refused() {
        let mut r = rewriter();
        let mut out = Vec::new();
        let junk = vec![b'A'; MAX_HEAD + 10];
        assert_eq!(r.push(&junk, &mut out), Err(RewriteError::HeadTooLong));
        assert!(r.buffered() <= MAX_HEAD);
        assert!(r.push(b"\r\n\r\n", &mut out).is_err());
    }

    #[test]
    fn bad_content_length_is_refused() {
        let mut out = Vec::new();
        assert_eq!(
            rewriter().push(
                b"SET_PARAMETER rtsp://127.0.0.1:40123/ RTSP/1.0\r\nContent-Length: x\r\n\r\n",
                &mut out
            ),
            Err(RewriteError::BadContentLength)
        );
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn random_chunking_equals_one_shot(cuts in proptest::collection::vec(0usize..2000, 0..40)) {
                let (input, want) = session();
                let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c * input.len() / 2000).collect();
                cuts.sort_unstable();
                let mut r = rewriter();
                let mut out = Vec::new();
                let mut at = 0;
                for c in cuts.into_iter().chain([input.len()]) {
                    r.push(&input[at..c], &mut out).unwrap();
                    at = c;
                }
                prop_assert_eq!(out, want);
            }

            #[test]
            fn random_bytes_never_panic_and_stay_bounded(
                chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..4096), 0..40),
                seed in proptest::collection::vec(prop_oneof![Just(b'$'), Just(b'\r'), Just(b'\n'), Just(b' ')], 0..8),
            ) {
                let mut r = rewriter();
                let mut out = Vec::new();
                let mut one = rewriter();
                let mut one_out = Vec::new();
                let mut all = seed.clone();
                let _ = r.push(&seed, &mut out);
                for c in &chunks {
                    let _ = r.push(c, &mut out);
                    prop_assert!(r.buffered() <= MAX_HEAD);
                    all.extend_from_slice(c);
                }
                let _ = one.push(&all, &mut one_out);
                prop_assert_eq!(out, one_out);
            }
        }
    }
}
