//! RTSP on one TCP (or TLS) connection: requests out; responses, requests
//! from the server and interleaved binary frames (`$`, channel, u16 length,
//! RFC 2326 10.12) in, in whatever order they come. Everything read is
//! bounded: a head, a body and a frame each have a cap, and the caller's
//! deadline is checked before every read from the socket.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::time::Instant;

/// A response or request head: status or request line and headers.
pub const MAX_HEAD: usize = 16 * 1024;
/// A body (the SDP of a DESCRIBE is a few hundred bytes).
pub const MAX_BODY: usize = 64 * 1024;
/// Buffered bytes: an interleaved frame (at most 4 + 65 535) fits twice.
const BUFFER: usize = 128 * 1024;

/// What one connection is: TCP or TLS, with read and write timeouts set.
pub trait Conn: Read + Write + Send {
    /// Ends the connection (TLS: close_notify first); errors do not matter
    /// any more at that point.
    fn shutdown(&mut self) {}
}

impl Conn for std::net::TcpStream {
    fn shutdown(&mut self) {
        let _ = std::net::TcpStream::shutdown(self, std::net::Shutdown::Both);
    }
}

impl Conn for crate::tls::TlsStream {
    fn shutdown(&mut self) {
        self.conn.send_close_notify();
        let _ = self.flush();
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
    }
}

/// An RTSP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    pub fn headers<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn cseq(&self) -> Option<u32> {
        cseq(&self.headers)
    }
}

/// What arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// An interleaved frame on `channel`; its bytes are in `Wire::frame`.
    Frame {
        channel: u8,
    },
    Response(Response),
    /// The server asks something of the client (some servers ping).
    Request {
        method: String,
        cseq: Option<u32>,
    },
}

/// Why reading failed.
#[derive(Debug)]
pub enum WireError {
    Io(io::Error),
    /// The caller's deadline passed.
    Deadline,
    /// The peer sent what is not RTSP, or too much of it.
    Protocol(String),
}

impl From<io::Error> for WireError {
    fn from(e: io::Error) -> Self {
        WireError::Io(e)
    }
}

fn protocol(detail: impl Into<String>) -> WireError {
    WireError::Protocol(detail.into())
}

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn cseq(headers: &[(String, String)]) -> Option<u32> {
    header(headers, "CSeq").and_then(|v| v.trim().parse().ok())
}

/// One connection's reading and writing.
pub struct Wire {
    reader: BufReader<Box<dyn Conn>>,
    /// The bytes of the last interleaved frame read.
    pub frame: Vec<u8>,
    /// Reads fail with `WireError::Deadline` after this instant.
    pub deadline: Option<Instant>,
}

impl Wire {
    pub fn new(conn: Box<dyn Conn>) -> Wire {
        Wire {
            reader: BufReader::with_capacity(BUFFER, conn),
            frame: Vec::new(),
            deadline: None,
        }
    }

    /// Writes one whole message.
    pub fn send(&mut self, message: &[u8]) -> io::Result<()> {
        let conn = self.reader.get_mut();
        conn.write_all(message)?;
        conn.flush()
    }

    pub fn shutdown(&mut self) {
        self.reader.get_mut().shutdown();
    }

    /// The next message or frame. Blank lines between messages are skipped.
    pub fn read(&mut self) -> Result<Incoming, WireError> {
        loop {
            let first = *self.fill()?.first().ok_or_else(closed)?;
            match first {
                b'$' => return self.read_frame(),
                b'\r' | b'\n' => self.reader.consume(1),
                _ => return self.read_message(),
            }
        }
    }

    fn fill(&mut self) -> Result<&[u8], WireError> {
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(WireError::Deadline);
        }
        Ok(self.reader.fill_buf()?)
    }

    fn read_exact(&mut self, out: &mut [u8]) -> Result<(), WireError> {
        let mut done = 0;
        while done < out.len() {
            let avail = self.fill()?;
            if avail.is_empty() {
                return Err(closed());
            }
            let n = avail.len().min(out.len() - done);
            out[done..done + n].copy_from_slice(&avail[..n]);
            self.reader.consume(n);
            done += n;
        }
        Ok(())
    }

    fn read_frame(&mut self) -> Result<Incoming, WireError> {
        let mut head = [0u8; 4];
        self.read_exact(&mut head)?;
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        let mut frame = std::mem::take(&mut self.frame);
        frame.resize(len, 0);
        let read = self.read_exact(&mut frame);
        self.frame = frame;
        read?;
        Ok(Incoming::Frame { channel: head[1] })
    }

    /// One line without its CR LF, counted against `budget`.
    fn read_line(&mut self, budget: &mut usize) -> Result<String, WireError> {
        let mut line = Vec::new();
        loop {
            let avail = self.fill()?;
            if avail.is_empty() {
                return Err(closed());
            }
            let (take, done) = match memchr::memchr(b'\n', avail) {
                Some(i) => (i + 1, true),
                None => (avail.len(), false),
            };
            if take > *budget {
                return Err(protocol(format!(
                    "a message head longer than {MAX_HEAD} bytes"
                )));
            }
            *budget -= take;
            line.extend_from_slice(&avail[..take]);
            self.reader.consume(take);
            if done {
                break;
            }
        }
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        String::from_utf8(line).map_err(|_| protocol("a message head that is not text"))
    }

    fn read_message(&mut self) -> Result<Incoming, WireError> {
        let mut budget = MAX_HEAD;
        let start = self.read_line(&mut budget)?;
        let mut headers = Vec::new();
        loop {
            let line = self.read_line(&mut budget)?;
            if line.is_empty() {
                break;
            }
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| protocol(format!("a header line without a colon: {line:.60}")))?;
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
        let body = self.read_body(&headers)?;
        if let Some(rest) = start.strip_prefix("RTSP/") {
            return status_line(rest, &start).map(|(status, reason)| {
                Incoming::Response(Response {
                    status,
                    reason,
                    headers,
                    body,
                })
            });
        }
        match start.split(' ').collect::<Vec<_>>()[..] {
            [method, _uri, version] if version.starts_with("RTSP/") => Ok(Incoming::Request {
                method: method.to_string(),
                cseq: cseq(&headers),
            }),
            _ => Err(protocol(format!("not an RTSP message: {start:.60}"))),
        }
    }

    fn read_body(&mut self, headers: &[(String, String)]) -> Result<Vec<u8>, WireError> {
        let Some(len) = header(headers, "Content-Length") else {
            return Ok(Vec::new());
        };
        let len: usize = len
            .parse()
            .map_err(|_| protocol(format!("Content-Length {len:.20}")))?;
        if len > MAX_BODY {
            return Err(protocol(format!(
                "a body of {len} bytes, more than {MAX_BODY}"
            )));
        }
        let mut body = vec![0; len];
        self.read_exact(&mut body)?;
        Ok(body)
    }
}

fn closed() -> WireError {
    WireError::Io(io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the camera closed the connection",
    ))
}

/// `1.0 200 OK` after the `RTSP/`.
fn status_line(rest: &str, whole: &str) -> Result<(u16, String), WireError> {
    let mut parts = rest.splitn(3, ' ');
    let _version = parts.next();
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|s| (100..600).contains(s))
        .ok_or_else(|| protocol(format!("a bad status line: {whole:.60}")))?;
    Ok((status, parts.next().unwrap_or("").to_string()))
}

/// A request: the request line, `CSeq`, printcam's `User-Agent`, then
/// `headers` in order. Values are the client's own or checked by the
/// caller: none holds CR or LF.
pub fn request(method: &str, uri: &str, cseq: u32, headers: &[(&str, String)]) -> Vec<u8> {
    let mut out = format!("{method} {uri} RTSP/1.0\r\nCSeq: {cseq}\r\n");
    out.push_str(concat!(
        "User-Agent: printcam/",
        env!("CARGO_PKG_VERSION"),
        "\r\n"
    ));
    for (name, value) in headers {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// The answer to a request from the server: 200 to the pings (OPTIONS,
/// GET_PARAMETER), 501 to anything else.
pub fn answer(method: &str, cseq: Option<u32>) -> Vec<u8> {
    let status = match method {
        "OPTIONS" | "GET_PARAMETER" => "200 OK",
        _ => "501 Not Implemented",
    };
    let cseq = cseq.map(|c| format!("CSeq: {c}\r\n")).unwrap_or_default();
    format!("RTSP/1.0 {status}\r\n{cseq}\r\n").into_bytes()
}
