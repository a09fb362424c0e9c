//! A native RTSP client (RFC 2326) for H.264 cameras: the printers'
//! `rtsps://` port 322 over printcam's own TLS (with its pinning) and
//! external `rtsp://`/`rtsps://` cameras. Blocking, one connection, every
//! read and write under a timeout:
//! OPTIONS, DESCRIBE (the SDP's H.264 track), SETUP with TCP interleaved
//! transport, PLAY; then RTP packets from channel 0 (RTCP ignored), with a
//! keep-alive at half the session timeout and TEARDOWN on close. Digest
//! and Basic authentication (`auth`). It knows nothing of HTTP or the hub;
//! its packets go to `crate::media::rtp_h264::Depacketizer`.

pub mod auth;
pub mod sdp;
pub mod wire;

use std::fmt;
use std::io;
use std::time::{Duration, Instant};

use url::Url;

use auth::Authenticator;
pub use auth::Credentials;
use wire::{Conn, Incoming, Response, Wire, WireError};

use crate::tls::{self, ConnectErrorKind, Dialer};
use crate::urlguard::Target;

/// How the connection is made: `rtsp://` is plain TCP, `rtsps://` TLS with
/// the given settings (for a printer, `Tofu::check`'s, so the pin holds and
/// firmware that never answers a TLS 1.3 hello gets TLS 1.2).
#[derive(Clone)]
pub enum Transport {
    Plain,
    Tls(Dialer),
}

/// The time limits of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connect and TLS handshake.
    pub connect: Duration,
    /// Each read and write on the socket; while playing, this long without
    /// a byte from the camera ends the session.
    pub io: Duration,
    /// OPTIONS to PLAY, all of it.
    pub setup: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            io: Duration::from_secs(10),
            setup: Duration::from_secs(20),
        }
    }
}

/// Why a session could not be opened or went on no longer, sorted by what
/// the user can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No TCP connection: camera off or wrong address.
    Unreachable,
    /// TLS failed (not TLS, bad signature, …).
    Tls,
    /// The pinned certificate does not match: retrying cannot help.
    CertificateChanged,
    /// 401 with the credentials given, or none given.
    Unauthorized,
    /// 404: no stream at that path.
    NotFound,
    /// The camera has no H.264 track printcam can take (the ffmpeg path
    /// may still read it).
    Unsupported,
    /// The camera closed the connection.
    Closed,
    /// Nothing arrived in time.
    Timeout,
    /// An answer that is not RTSP, an error status, or too large.
    Protocol,
}

/// A session error with a message fit to show a user (it never holds a
/// password: request URIs carry no user information).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

impl Error {
    fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<Error> for crate::error::Error {
    fn from(e: Error) -> Self {
        crate::error::Error::Unavailable(e.message)
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// What the session plays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    pub payload_type: u8,
    pub clock_rate: u32,
    /// The URL the track was set up with.
    pub control: String,
    /// SPS and PPS from the SDP, possibly none.
    pub parameter_sets: Vec<Vec<u8>>,
    /// The first RTP sequence number (`RTP-Info`), for
    /// `Depacketizer::expect_sequence`.
    pub first_sequence: Option<u16>,
    /// The session timeout the server gave (60 s when it gave none).
    pub session_timeout: Duration,
    /// The TLS version of an rtsps session ("TLS 1.3"), for the figures.
    pub tls_version: Option<&'static str>,
}

/// The session timeout RFC 2326 (12.37) assumes when the server names none.
const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(60);
/// TEARDOWN's answer is waited for this long at most.
const TEARDOWN_WAIT: Duration = Duration::from_secs(2);

/// One playing RTSP session.
pub struct Session {
    wire: Wire,
    /// The presentation URL (no user information), for PLAY, keep-alives
    /// and TEARDOWN.
    uri: String,
    auth: Authenticator,
    cseq: u32,
    session_id: String,
    rtp_channel: u8,
    info: StreamInfo,
    keepalive: Keepalive,
    io_timeout: Duration,
    torn_down: bool,
}

struct Keepalive {
    method: &'static str,
    every: Duration,
    next: Instant,
    /// The CSeq of the keep-alive awaiting its answer.
    pending: Option<u32>,
}

impl Session {
    /// Connects to `target` (checked by urlguard for `url`), then OPTIONS,
    /// DESCRIBE, SETUP and PLAY. `credentials` are used when given, else the
    /// URL's user and password, if any.
    pub fn open(
        target: &Target,
        url: &Url,
        credentials: Option<Credentials>,
        transport: Transport,
        timeouts: Timeouts,
    ) -> Result<Session> {
        let credentials = match credentials {
            Some(c) => Some(c),
            None => url_credentials(url)?,
        };
        let (conn, tls_version) = connect(target, url, transport, timeouts)?;
        let mut session = Session::start(
            conn,
            &request_uri(url),
            Authenticator::new(credentials),
            timeouts,
            Instant::now(),
        )?;
        session.info.tls_version = tls_version;
        Ok(session)
    }

    /// The exchange up to PLAY on an open connection (tests replay it).
    fn start(
        conn: Box<dyn Conn>,
        uri: &str,
        auth: Authenticator,
        timeouts: Timeouts,
        now: Instant,
    ) -> Result<Session> {
        let mut wire = Wire::new(conn);
        wire.deadline = Some(now + timeouts.setup);
        let mut s = Session {
            wire,
            uri: uri.to_string(),
            auth,
            cseq: 0,
            session_id: String::new(),
            rtp_channel: 0,
            info: StreamInfo {
                payload_type: 0,
                clock_rate: 0,
                control: String::new(),
                parameter_sets: Vec::new(),
                first_sequence: None,
                session_timeout: DEFAULT_SESSION_TIMEOUT,
                tls_version: None,
            },
            keepalive: Keepalive {
                method: "OPTIONS",
                every: DEFAULT_SESSION_TIMEOUT / 2,
                next: now,
                pending: None,
            },
            io_timeout: timeouts.io,
            torn_down: true,
        };
        s.play_from_options()?;
        s.wire.deadline = None;
        s.keepalive.next = Instant::now() + s.keepalive.every;
        Ok(s)
    }

    fn play_from_options(&mut self) -> Result<()> {
        let uri = self.uri.clone();
        let options = self.exchange("OPTIONS", &uri, &[])?;
        if options
            .header("Public")
            .is_some_and(|p| p.split(',').any(|m| m.trim() == "GET_PARAMETER"))
        {
            self.keepalive.method = "GET_PARAMETER";
        }
        let described = self.exchange("DESCRIBE", &uri, &[("Accept", "application/sdp".into())])?;
        let base = content_base(&described).unwrap_or(&uri).to_string();
        let sdp = std::str::from_utf8(&described.body)
            .map_err(|_| Error::new(ErrorKind::Protocol, "the camera's SDP is not text"))?;
        let description = sdp::parse(sdp).map_err(|m| Error::new(ErrorKind::Unsupported, m))?;
        let control = sdp::resolve(&base, description.track.control.as_deref());
        check_uri(&control)?;
        self.info.payload_type = description.track.payload_type;
        self.info.clock_rate = description.track.clock_rate;
        self.info.parameter_sets = description.track.parameter_sets;
        self.setup(&control)?;
        self.info.control = control;
        // The aggregate URL: the SDP's session-level control when absolute.
        if let Some(aggregate) = description
            .session_control
            .filter(|c| c.starts_with("rtsp://") || c.starts_with("rtsps://"))
        {
            check_uri(&aggregate)?;
            self.uri = aggregate;
        }
        self.play()
    }

    fn setup(&mut self, control: &str) -> Result<()> {
        let transport = "RTP/AVP/TCP;unicast;interleaved=0-1".to_string();
        let r = self.exchange("SETUP", control, &[("Transport", transport)])?;
        let session = r.header("Session").ok_or_else(|| {
            Error::new(
                ErrorKind::Protocol,
                "the camera's SETUP answer has no Session",
            )
        })?;
        let (id, timeout) = session_header(session);
        check_header_value(&id)?;
        self.session_id = id;
        if let Some(t) = timeout {
            self.info.session_timeout = t;
        }
        self.keepalive.every = keepalive_interval(self.info.session_timeout);
        let t = r.header("Transport").unwrap_or("");
        if !t.to_ascii_uppercase().contains("TCP") {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("the camera does not take TCP interleaved transport (it answered {t:.80})"),
            ));
        }
        self.rtp_channel = interleaved_channel(t).unwrap_or(0);
        self.torn_down = false;
        Ok(())
    }

    fn play(&mut self) -> Result<()> {
        let uri = self.uri.clone();
        let headers = [
            ("Session", self.session_id.clone()),
            ("Range", "npt=0.000-".to_string()),
        ];
        let r = self.exchange("PLAY", &uri, &headers)?;
        self.info.first_sequence = r
            .header("RTP-Info")
            .and_then(|v| rtp_info_seq(v, &self.info.control));
        Ok(())
    }

    pub fn info(&self) -> &StreamInfo {
        &self.info
    }

    /// The next RTP packet of the H.264 track. Keep-alives are sent when
    /// due; their answers, RTCP and the server's own requests are handled
    /// on the way.
    pub fn next_packet(&mut self) -> Result<&[u8]> {
        loop {
            self.keep_alive_at(Instant::now())?;
            match self.wire.read().map_err(|e| self.read_error(e))? {
                Incoming::Frame { channel } if channel == self.rtp_channel => {
                    return Ok(&self.wire.frame)
                }
                Incoming::Frame { .. } => {}
                Incoming::Response(r) => self.on_response(&r),
                Incoming::Request { method, cseq } => {
                    let answer = wire::answer(&method, cseq);
                    self.wire.send(&answer).map_err(|e| self.write_error(&e))?;
                }
            }
        }
    }

    /// Sends the keep-alive if it is due at `now`.
    fn keep_alive_at(&mut self, now: Instant) -> Result<()> {
        if now < self.keepalive.next {
            return Ok(());
        }
        self.keepalive.next = now + self.keepalive.every;
        let uri = self.uri.clone();
        let session = [("Session", self.session_id.clone())];
        let cseq = self.send_request(self.keepalive.method, &uri, &session)?;
        self.keepalive.pending = Some(cseq);
        Ok(())
    }

    /// A keep-alive's answer. A 401 (a new nonce) is taken for the next
    /// one, which is sent at once; a server that does not know
    /// GET_PARAMETER gets OPTIONS instead.
    fn on_response(&mut self, r: &Response) {
        if r.cseq().is_none() || r.cseq() != self.keepalive.pending {
            return;
        }
        self.keepalive.pending = None;
        match r.status {
            200..=299 => {}
            401 => {
                if let Ok(c) = auth::choose(r.headers("WWW-Authenticate")) {
                    self.auth.challenged(c);
                    self.keepalive.next = Instant::now();
                }
            }
            405 | 451 | 501 if self.keepalive.method == "GET_PARAMETER" => {
                self.keepalive.method = "OPTIONS";
                self.keepalive.next = Instant::now();
            }
            status => log::debug!(
                "rtsp keep-alive {} answered {status}",
                self.keepalive.method
            ),
        }
    }

    /// Sends TEARDOWN, waits briefly for its answer and closes the
    /// connection.
    pub fn close(mut self) -> Result<()> {
        self.teardown(TEARDOWN_WAIT)
    }

    fn teardown(&mut self, wait: Duration) -> Result<()> {
        if std::mem::replace(&mut self.torn_down, true) {
            return Ok(());
        }
        let uri = self.uri.clone();
        let session = [("Session", self.session_id.clone())];
        let sent = self.send_request("TEARDOWN", &uri, &session);
        let answered = sent.and_then(|cseq| {
            if wait.is_zero() {
                return Ok(());
            }
            self.wire.deadline = Some(Instant::now() + wait);
            self.await_response(cseq, "TEARDOWN").map(|_| ())
        });
        self.wire.shutdown();
        answered
    }

    /// Sends a request with the next CSeq (authorized once a challenge
    /// came); returns the CSeq.
    fn send_request(&mut self, method: &str, uri: &str, headers: &[(&str, String)]) -> Result<u32> {
        self.cseq += 1;
        let mut all = headers.to_vec();
        if let Some(a) = self.auth.authorization(method, uri) {
            all.push(("Authorization", a));
        }
        let bytes = wire::request(method, uri, self.cseq, &all);
        self.wire.send(&bytes).map_err(|e| self.write_error(&e))?;
        Ok(self.cseq)
    }

    /// Reads until the response to `cseq`, passing over frames and other
    /// messages (the server's requests are answered).
    fn await_response(&mut self, cseq: u32, method: &str) -> Result<Response> {
        loop {
            match self.wire.read().map_err(|e| self.read_error(e))? {
                Incoming::Response(r) if r.cseq() == Some(cseq) => return Ok(r),
                Incoming::Response(r) if r.cseq().is_none() => {
                    return Err(Error::new(
                        ErrorKind::Protocol,
                        format!(
                            "the camera answered {method} without a CSeq ({} {})",
                            r.status, r.reason
                        ),
                    ))
                }
                Incoming::Request { method, cseq } => {
                    let answer = wire::answer(&method, cseq);
                    self.wire.send(&answer).map_err(|e| self.write_error(&e))?;
                }
                Incoming::Frame { .. } | Incoming::Response(_) => {}
            }
        }
    }

    /// One request and its successful answer. A 401 is answered once with
    /// its challenge; a second one means the credentials are wrong.
    fn exchange(
        &mut self,
        method: &str,
        uri: &str,
        headers: &[(&str, String)],
    ) -> Result<Response> {
        let mut retried = false;
        loop {
            let cseq = self.send_request(method, uri, headers)?;
            let r = self.await_response(cseq, method)?;
            match r.status {
                200..=299 => return Ok(r),
                401 if !retried && self.auth.has_credentials() => {
                    let challenge = auth::choose(r.headers("WWW-Authenticate"))
                        .map_err(|m| Error::new(ErrorKind::Unauthorized, m))?;
                    self.auth.challenged(challenge);
                    retried = true;
                }
                _ => return Err(status_error(method, uri, &r, self.auth.has_credentials())),
            }
        }
    }

    fn read_error(&self, e: WireError) -> Error {
        match e {
            WireError::Deadline => Error::new(
                ErrorKind::Timeout,
                "the camera did not finish setting up the stream in time",
            ),
            WireError::Protocol(m) => {
                Error::new(ErrorKind::Protocol, format!("the camera sent {m}"))
            }
            WireError::Io(e) => io_error("reading from", &e, self.io_timeout),
        }
    }

    fn write_error(&self, e: &io::Error) -> Error {
        io_error("writing to", e, self.io_timeout)
    }
}

impl Drop for Session {
    /// A session dropped without `close` still says TEARDOWN (not waiting
    /// for the answer), so the camera frees it at once.
    fn drop(&mut self) {
        let _ = self.teardown(Duration::ZERO);
    }
}

fn io_error(doing: &str, e: &io::Error, timeout: Duration) -> Error {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Error::new(
            ErrorKind::Timeout,
            format!(
                "{doing} the camera timed out: nothing moved for {}",
                crate::source::secs(timeout)
            ),
        ),
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => {
            Error::new(ErrorKind::Closed, "the camera closed the connection")
        }
        _ => Error::new(ErrorKind::Closed, format!("{doing} the camera failed: {e}")),
    }
}

fn status_error(method: &str, uri: &str, r: &Response, had_credentials: bool) -> Error {
    let status = format!("{} {}", r.status, r.reason);
    match r.status {
        401 if had_credentials => Error::new(
            ErrorKind::Unauthorized,
            format!("the camera refused the login ({status}): wrong user or password"),
        ),
        401 => Error::new(
            ErrorKind::Unauthorized,
            format!("the camera asks for a user and password ({status})"),
        ),
        404 => Error::new(
            ErrorKind::NotFound,
            format!("no stream at {uri} ({status})"),
        ),
        _ => Error::new(
            ErrorKind::Protocol,
            format!("the camera answered {method} with {status}"),
        ),
    }
}

/// The connection, and its TLS version for rtsps.
fn connect(
    target: &Target,
    url: &Url,
    transport: Transport,
    t: Timeouts,
) -> Result<(Box<dyn Conn>, Option<&'static str>)> {
    match (url.scheme(), transport) {
        ("rtsp", Transport::Plain) => {
            let sock = target.connect(t.connect).map_err(|e| {
                Error::new(
                    ErrorKind::Unreachable,
                    format!("cannot connect to {}: {e}", target.label()),
                )
            })?;
            set_timeouts(&sock, t.io)?;
            Ok((Box::new(sock), None))
        }
        ("rtsps", Transport::Tls(dialer)) => {
            let stream = tls::connect_with(target, &dialer, t.connect).map_err(|e| {
                let kind = match e.kind {
                    ConnectErrorKind::Unreachable => ErrorKind::Unreachable,
                    ConnectErrorKind::Handshake => ErrorKind::Tls,
                    ConnectErrorKind::CertificateChanged => ErrorKind::CertificateChanged,
                };
                Error::new(kind, e.message)
            })?;
            set_timeouts(&stream.sock, t.io)?;
            let version = tls::version_name(&stream.conn);
            Ok((Box::new(stream), Some(version)))
        }
        (scheme, _) => Err(Error::new(
            ErrorKind::Unsupported,
            format!("{scheme}:// needs the matching transport (rtsp plain, rtsps TLS)"),
        )),
    }
}

fn set_timeouts(sock: &std::net::TcpStream, io: Duration) -> Result<()> {
    sock.set_read_timeout(Some(io))
        .and_then(|()| sock.set_write_timeout(Some(io)))
        .map_err(|e| Error::new(ErrorKind::Unreachable, format!("socket setup failed: {e}")))
}

/// The URL as requests carry it: without user information or fragment.
fn request_uri(url: &Url) -> String {
    let mut u = url.clone();
    // Only cannot-be-a-base URLs refuse these, and rtsp URLs have a host.
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_fragment(None);
    u.to_string()
}

fn url_credentials(url: &Url) -> Result<Option<Credentials>> {
    if url.username().is_empty() && url.password().is_none() {
        return Ok(None);
    }
    let user = percent_decode(url.username());
    let password = percent_decode(url.password().unwrap_or(""));
    Credentials::new(&user, &password)
        .map(Some)
        .map_err(|m| Error::new(ErrorKind::Unauthorized, m))
}

/// `%XX` escapes of a URL's user information undone (`+` stays `+`).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
            Some(v) if b[i] == b'%' => {
                out.push(v);
                i += 3;
            }
            _ => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Content-Base, else Content-Location (RFC 2326 C.1.1).
fn content_base(r: &Response) -> Option<&str> {
    r.header("Content-Base")
        .or_else(|| r.header("Content-Location"))
        .filter(|b| b.starts_with("rtsp://") || b.starts_with("rtsps://"))
}

/// A URI from the camera goes into a request line: no spaces or controls.
fn check_uri(uri: &str) -> Result<()> {
    if uri.is_empty() || uri.bytes().any(|b| b <= b' ' || b == 0x7F) {
        return Err(Error::new(
            ErrorKind::Protocol,
            format!("the camera named an unusable control URL {uri:.80?}"),
        ));
    }
    Ok(())
}

fn check_header_value(v: &str) -> Result<()> {
    if v.is_empty() || v.bytes().any(|b| b < b' ' || b == 0x7F) {
        return Err(Error::new(
            ErrorKind::Protocol,
            "the camera named an unusable session id",
        ));
    }
    Ok(())
}

/// `12345678;timeout=60` → the id and the timeout.
fn session_header(value: &str) -> (String, Option<Duration>) {
    let mut parts = value.split(';');
    let id = parts.next().unwrap_or("").trim().to_string();
    let timeout = parts
        .filter_map(|p| p.trim().strip_prefix("timeout="))
        .find_map(|t| t.trim().parse::<u64>().ok())
        .filter(|t| *t > 0)
        .map(Duration::from_secs);
    (id, timeout)
}

/// Half the session timeout, at least one second.
fn keepalive_interval(session_timeout: Duration) -> Duration {
    (session_timeout / 2).max(Duration::from_secs(1))
}

/// The RTP channel of `interleaved=0-1` in a Transport header.
fn interleaved_channel(transport: &str) -> Option<u8> {
    transport.split(';').find_map(|p| {
        let v = p.trim().strip_prefix("interleaved=")?;
        v.split('-').next()?.trim().parse().ok()
    })
}

/// The `seq` of the track set up as `control` in an RTP-Info header
/// (`url=…;seq=N;rtptime=T, url=…`); of the only entry when one.
fn rtp_info_seq(value: &str, control: &str) -> Option<u16> {
    let entries: Vec<&str> = value.split(',').collect();
    let seq = |e: &str| {
        e.split(';')
            .find_map(|p| p.trim().strip_prefix("seq=")?.trim().parse().ok())
    };
    fn url_of(e: &str) -> Option<&str> {
        e.split(';')
            .find_map(|p| p.trim().strip_prefix("url=").map(str::trim))
    }
    match entries[..] {
        [only] => seq(only),
        _ => entries
            .iter()
            .find(|e| url_of(e).is_some_and(|u| u == control || control.ends_with(u)))
            .and_then(|e| seq(e)),
    }
}

#[cfg(test)]
mod tests;
