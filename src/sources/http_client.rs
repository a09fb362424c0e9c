//! What the HTTP camera sources share: a small blocking HTTP/1.1 client (one
//! GET per connection, no redirects, no proxies) that connects only to the
//! addresses `urlguard` approved right before connecting, and error messages
//! that name the camera by host and port, never by its full URL.

use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use url::Url;

use super::http_wire::{self, Body, Head};
use crate::jpeg::MAX_FRAME;
use crate::source::{SourceError, Upstream, CONNECT_TIMEOUT};
use crate::sync::lock;
use crate::urlguard::{self, Policy, Target};
use crate::{redact, tls};

/// How long a camera may stay silent (headers or body) before we give up.
pub(crate) const SILENCE_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes read from the camera at a time (a bigger read goes past the buffer).
const READ_BUFFER: usize = 16 * 1024;

/// A response body being read from the camera.
pub(crate) type Response = Body<BufReader<Conn>>;

/// One external camera reached over HTTP(S).
pub(crate) struct HttpCamera {
    url: String,
    policy: Policy,
    /// `host:port`, safe to show.
    label: String,
}

impl HttpCamera {
    pub(crate) fn new(url: String, policy: Policy) -> Self {
        let label = host_port(&url);
        HttpCamera { url, policy, label }
    }

    pub(crate) fn describe(&self) -> String {
        redact::url_passwords(&self.url)
    }

    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    /// A client for one connection attempt. Cancelling through `up` shuts
    /// the socket of the request under way down, which wakes any read
    /// blocked on the camera. `body_budget` is the time a whole body may
    /// take (none: only the silence timeout per read).
    pub(crate) fn client(&self, up: &dyn Upstream, body_budget: Option<Duration>) -> Client<'_> {
        let live: Arc<Mutex<Option<TcpStream>>> = Arc::new(Mutex::new(None));
        let cancel = Arc::clone(&live);
        up.on_cancel(Box::new(move || {
            if let Some(sock) = lock(&cancel).as_ref() {
                // An error means the socket is already closed.
                let _ = sock.shutdown(Shutdown::Both);
            }
        }));
        Client {
            camera: self,
            body_budget,
            live,
        }
    }
}

fn is_https(raw: &str) -> bool {
    url::Url::parse(raw).is_ok_and(|u| u.scheme() == "https")
}

/// `host:port` of a URL, for messages; never the user info.
fn host_port(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(u) => match (u.host_str(), u.port_or_known_default()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => "the camera".to_string(),
        },
        Err(_) => "the camera".to_string(),
    }
}

/// The connection to a camera, plain or TLS. Reads time out after
/// `SILENCE_TIMEOUT`, or sooner at the deadline when one is set.
pub(crate) struct Conn {
    stream: Stream,
    deadline: Option<Instant>,
}

enum Stream {
    Plain(TcpStream),
    #[cfg(feature = "webpki-roots")]
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Conn {
    fn tcp(&self) -> &TcpStream {
        match &self.stream {
            Stream::Plain(sock) => sock,
            #[cfg(feature = "webpki-roots")]
            Stream::Tls(tls) => &tls.sock,
        }
    }

    /// From now on every read ends by `deadline` (none: each read may wait
    /// `SILENCE_TIMEOUT`).
    fn set_deadline(&mut self, deadline: Option<Instant>) -> io::Result<()> {
        self.deadline = deadline;
        self.tcp().set_read_timeout(Some(SILENCE_TIMEOUT))
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(deadline) = self.deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "out of time"));
            }
            self.tcp()
                .set_read_timeout(Some(left.min(SILENCE_TIMEOUT)))?;
        }
        match &mut self.stream {
            Stream::Plain(sock) => sock.read(buf),
            #[cfg(feature = "webpki-roots")]
            Stream::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.stream {
            Stream::Plain(sock) => sock.write(buf),
            #[cfg(feature = "webpki-roots")]
            Stream::Tls(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.stream {
            Stream::Plain(sock) => sock.flush(),
            #[cfg(feature = "webpki-roots")]
            Stream::Tls(tls) => tls.flush(),
        }
    }
}

/// TLS over `sock`, checked against the public CAs of webpki-roots with
/// printcam's own crypto provider, the server name being the URL's host
/// (as ureq's rustls connector did). The handshake happens with the first
/// write.
#[cfg(feature = "webpki-roots")]
fn tls_stream(sock: TcpStream, target: &Target) -> Result<Stream, String> {
    use rustls::pki_types::ServerName;
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let config = rustls::ClientConfig::builder_with_provider(tls::crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(target.host().to_string())
        .map_err(|_| format!("{:?} is not a valid TLS server name", target.host()))?;
    let conn = rustls::ClientConnection::new(Arc::new(config), name)
        .map_err(|e| format!("TLS setup failed: {e}"))?;
    Ok(Stream::Tls(Box::new(rustls::StreamOwned::new(conn, sock))))
}

/// One connection attempt's client; each request (snapshot poll) opens its
/// own connection, checked by `urlguard` again.
pub(crate) struct Client<'a> {
    camera: &'a HttpCamera,
    body_budget: Option<Duration>,
    /// The socket of the request under way, for the cancel to shut down.
    live: Arc<Mutex<Option<TcpStream>>>,
}

impl Client<'_> {
    /// GETs the camera URL and returns the body if the answer is a success.
    /// `Ok(None)` when the hub stopped the connection meanwhile.
    pub(crate) fn get(&self, up: &dyn Upstream) -> Result<Option<Response>, SourceError> {
        if !tls::public_roots_available() && is_https(&self.camera.url) {
            return Err(SourceError::fatal(tls::NO_PUBLIC_ROOTS));
        }
        // The addresses checked are exactly the addresses connected to (no
        // window for DNS rebinding); a redirect, which could lead anywhere
        // past this check, is never followed.
        let (url, target) = urlguard::check_resolved(&self.camera.url, self.camera.policy)
            .map_err(SourceError::fatal)?;
        let sock = match self.connect(&target) {
            Ok(sock) => sock,
            Err(_) if up.stopping() => return Ok(None),
            Err(e) => return Err(e),
        };
        // Stopped before the cancel could see this socket: it would not wake.
        if up.stopping() {
            return Ok(None);
        }
        let (head, reader) = match self.exchange(sock, &url, &target) {
            Ok(answer) => answer,
            Err(_) if up.stopping() => return Ok(None),
            Err(e) => return Err(e),
        };
        if !(200..300).contains(&head.status) {
            return Err(status_error(self.camera.label(), head.status));
        }
        up.reached(format!(
            "the camera at {} answered {}",
            self.camera.label(),
            head.status
        ));
        Ok(Some(Body::new(reader, head.framing)))
    }

    /// TCP to the first checked address that answers, registered for the
    /// cancel.
    fn connect(&self, target: &Target) -> Result<TcpStream, SourceError> {
        let at = self.camera.label();
        let sock = target.connect(CONNECT_TIMEOUT).map_err(|e| {
            if is_timeout(&e) {
                SourceError::transient(format!(
                    "the camera at {at} did not accept a connection within {} s",
                    CONNECT_TIMEOUT.as_secs()
                ))
            } else {
                SourceError::transient(format!("cannot reach the camera at {at}: {e}"))
            }
        })?;
        let setup = |e: io::Error| SourceError::transient(format!("socket setup failed: {e}"));
        sock.set_read_timeout(Some(SILENCE_TIMEOUT))
            .map_err(setup)?;
        sock.set_write_timeout(Some(SILENCE_TIMEOUT))
            .map_err(setup)?;
        *lock(&self.live) = Some(sock.try_clone().map_err(setup)?);
        Ok(sock)
    }

    /// Sends the GET and reads the answer's head, within `SILENCE_TIMEOUT`.
    fn exchange(
        &self,
        sock: TcpStream,
        url: &Url,
        target: &Target,
    ) -> Result<(Head, BufReader<Conn>), SourceError> {
        let stream = self.stream(sock, url, target)?;
        let mut conn = Conn {
            stream,
            deadline: Some(Instant::now() + SILENCE_TIMEOUT),
        };
        let sent = conn
            .write_all(http_wire::request_head(url).as_bytes())
            .and_then(|()| conn.flush());
        sent.map_err(|e| self.request_error(e))?;
        let mut reader = BufReader::with_capacity(READ_BUFFER, conn);
        let head = http_wire::read_head(&mut reader).map_err(|e| self.request_error(e))?;
        let body_deadline = self.body_budget.map(|b| Instant::now() + b);
        reader
            .get_mut()
            .set_deadline(body_deadline)
            .map_err(|e| self.request_error(e))?;
        Ok((head, reader))
    }

    #[cfg(feature = "webpki-roots")]
    fn stream(&self, sock: TcpStream, url: &Url, target: &Target) -> Result<Stream, SourceError> {
        if url.scheme() != "https" {
            return Ok(Stream::Plain(sock));
        }
        tls_stream(sock, target).map_err(|why| {
            SourceError::transient(format!("the camera at {}: {why}", self.camera.label()))
        })
    }

    /// Without public CAs `get` refuses https before connecting.
    #[cfg(not(feature = "webpki-roots"))]
    fn stream(&self, sock: TcpStream, _url: &Url, _target: &Target) -> Result<Stream, SourceError> {
        Ok(Stream::Plain(sock))
    }

    /// The whole body of a snapshot, at most `MAX_FRAME` bytes.
    pub(crate) fn read_picture(&self, body: Response) -> Result<Vec<u8>, SourceError> {
        let mut picture = Vec::new();
        body.take(MAX_FRAME as u64 + 1)
            .read_to_end(&mut picture)
            .map_err(|e| self.io_error(e))?;
        if picture.len() > MAX_FRAME {
            return Err(SourceError::transient(format!(
                "the camera at {} sent a picture larger than {} MB",
                self.camera.label(),
                MAX_FRAME / (1024 * 1024)
            )));
        }
        Ok(picture)
    }

    /// A user-facing error for a failed request or response head.
    fn request_error(&self, e: io::Error) -> SourceError {
        let at = self.camera.label();
        if let Some(why) = tls_failure(&e) {
            return SourceError::transient(format!("TLS with the camera at {at} failed: {why}"));
        }
        match e.kind() {
            _ if is_timeout(&e) => silent(at),
            io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => {
                SourceError::transient(format!(
                    "HTTP error with the camera at {at}: {}",
                    redact::url_passwords(&e.to_string())
                ))
            }
            _ => SourceError::transient(format!(
                "cannot reach the camera at {at}: {}",
                redact::url_passwords(&e.to_string())
            )),
        }
    }

    /// A user-facing error for a failed read of a body.
    pub(crate) fn io_error(&self, e: io::Error) -> SourceError {
        let at = self.camera.label();
        if is_timeout(&e) {
            return silent(at);
        }
        if let Some(why) = tls_failure(&e) {
            return SourceError::transient(format!("lost the camera at {at}: TLS: {why}"));
        }
        SourceError::transient(format!(
            "lost the camera at {at}: {}",
            redact::url_passwords(&e.to_string())
        ))
    }
}

/// rustls's own error, which it hands through `io::Error`.
fn tls_failure(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>()
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

fn silent(at: &str) -> SourceError {
    SourceError::transient(format!(
        "the camera at {at} sent nothing for {} s",
        SILENCE_TIMEOUT.as_secs()
    ))
}

fn status_error(at: &str, status: u16) -> SourceError {
    match status {
        401 | 403 => SourceError::fatal(format!(
            "the camera at {at} refused the login (HTTP {status}): check the user name and password in the camera URL"
        )),
        404 => SourceError::fatal(format!(
            "the camera at {at} has no such page (HTTP 404): check the path in the camera URL"
        )),
        300..=399 => SourceError::fatal(format!(
            "the camera at {at} answered with a redirect (HTTP {status}), which printcam does not follow: use the final URL"
        )),
        _ => SourceError::transient(format!("the camera at {at} answered HTTP {status}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_has_no_user_info() {
        assert_eq!(host_port("http://u:secret@10.0.0.5/video"), "10.0.0.5:80");
        assert_eq!(host_port("https://cam.lan:8443/x"), "cam.lan:8443");
        assert_eq!(host_port("http://[::1]:81/"), "[::1]:81");
        assert_eq!(host_port("not a url :secret@"), "the camera");
    }

    #[test]
    fn statuses_are_explained() {
        assert!(!status_error("h:1", 401).retry);
        assert!(!status_error("h:1", 404).retry);
        assert!(!status_error("h:1", 302).retry);
        assert!(status_error("h:1", 503).retry);
        assert!(status_error("h:1", 404).message.contains("404"));
    }
}
