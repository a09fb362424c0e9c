//! The few bytes of HTTP/1.1 a camera GET needs: the request head, the
//! response head (tokenized by httparse, at most `MAX_HEAD` bytes) and the
//! body's framing (Content-Length, chunked, or until the camera closes).
//! Plain functions over `BufRead`, so tests can feed them any split of bytes.

use std::io::{self, BufRead, Read};

use url::Url;

/// The largest response head accepted (ureq's limit was the same).
pub(crate) const MAX_HEAD: usize = 16 * 1024;
/// The longest chunk-size line, extensions included.
const MAX_CHUNK_LINE: u64 = 1024;
/// A chunk larger than this is a broken length rather than a picture or a
/// part of a stream.
const MAX_CHUNK: u64 = 1 << 30;
/// Header slots for httparse; a camera that sends more is refused.
const MAX_HEADERS: usize = 64;

/// The GET for `url`: path and query, Host with the port when it is not the
/// scheme's default, Basic credentials from the URL's user info (as written,
/// as ureq sent them) and `Connection: close`, as each request has its own
/// connection.
pub(crate) fn request_head(url: &Url) -> String {
    let mut target = url.path().to_string();
    if let Some(query) = url.query() {
        target.push('?');
        target.push_str(query);
    }
    let mut host = url.host_str().unwrap_or_default().to_string();
    if let Some(port) = url.port() {
        host.push_str(&format!(":{port}"));
    }
    let mut auth = String::new();
    if !url.username().is_empty() || url.password().is_some() {
        let creds = format!("{}:{}", url.username(), url.password().unwrap_or_default());
        auth = format!("Authorization: Basic {}\r\n", base64(creds.as_bytes()));
    }
    format!(
        "GET {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: printcam\r\nAccept: */*\r\n\
         {auth}Connection: close\r\n\r\n"
    )
}

/// Standard base64 with padding.
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for group in data.chunks(3) {
        let b = [
            group[0],
            *group.get(1).unwrap_or(&0),
            *group.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= group.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// How the body of a response ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    Length(u64),
    Chunked,
    Close,
}

/// What printcam needs of a response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Head {
    pub status: u16,
    pub framing: Framing,
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

fn eof(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, what.to_string())
}

/// Reads the response head, leaving the body's first bytes in `r`.
pub(crate) fn read_head(r: &mut impl BufRead) -> io::Result<Head> {
    let mut head = Vec::new();
    loop {
        let avail = r.fill_buf()?;
        if avail.is_empty() {
            return Err(eof("the camera closed the connection before answering"));
        }
        let before = head.len();
        let take = avail.len().min(MAX_HEAD - before);
        head.extend_from_slice(&avail[..take]);
        match parse_head(&head)? {
            Some((len, parsed)) => {
                r.consume(len.saturating_sub(before));
                return Ok(parsed);
            }
            None if head.len() >= MAX_HEAD => {
                return Err(invalid(format!(
                    "the response head is larger than {} KB",
                    MAX_HEAD / 1024
                )))
            }
            None => r.consume(take),
        }
    }
}

/// The head's length and contents once `buf` holds all of it.
fn parse_head(buf: &[u8]) -> io::Result<Option<(usize, Head)>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(invalid(format!("malformed response head ({e})"))),
    };
    let status = response
        .code
        .ok_or_else(|| invalid("no status code".to_string()))?;
    let framing = framing(status, response.headers)?;
    Ok(Some((len, Head { status, framing })))
}

/// RFC 9112 section 6.3, for a response to a GET.
fn framing(status: u16, headers: &[httparse::Header<'_>]) -> io::Result<Framing> {
    if status < 200 || status == 204 || status == 304 {
        return Ok(Framing::Length(0));
    }
    let named = |name: &'static str| {
        headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.trim_ascii())
    };
    if let Some(codings) = named("transfer-encoding").next_back() {
        let last = codings.rsplit(|&b| b == b',').next().unwrap_or_default();
        return Ok(if last.trim_ascii().eq_ignore_ascii_case(b"chunked") {
            Framing::Chunked
        } else {
            Framing::Close
        });
    }
    let mut length = None;
    for value in named("content-length") {
        let n = decimal(value).ok_or_else(|| invalid("a bad Content-Length".to_string()))?;
        if length.is_some_and(|l| l != n) {
            return Err(invalid("two different Content-Lengths".to_string()));
        }
        length = Some(n);
    }
    Ok(length.map_or(Framing::Close, Framing::Length))
}

/// Digits only: `u64::from_str` would also take a sign.
fn decimal(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 19 || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// A response body: what a `Read` of it returns are the body's bytes, the
/// framing taken off. The end of a Content-Length or chunked body reads as
/// the end of the stream; a connection lost before it as an error.
pub(crate) struct Body<R> {
    inner: R,
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Length(u64),
    Close,
    ChunkSize,
    ChunkData(u64),
    ChunkEnd,
    Done,
}

impl<R: BufRead> Body<R> {
    pub(crate) fn new(inner: R, framing: Framing) -> Self {
        let state = match framing {
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::ChunkSize,
            Framing::Close => State::Close,
        };
        Body { inner, state }
    }

    /// At most `left` bytes into `buf`; the connection ending is an error.
    fn read_framed(&mut self, buf: &mut [u8], left: u64) -> io::Result<usize> {
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(eof(
                "the camera closed the connection in the middle of the body",
            ));
        }
        Ok(n)
    }
}

impl<R: BufRead> Read for Body<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match self.state {
                State::Done | State::Length(0) => return Ok(0),
                State::Close => return self.inner.read(buf),
                State::Length(left) => {
                    let n = self.read_framed(buf, left)?;
                    self.state = State::Length(left - n as u64);
                    return Ok(n);
                }
                State::ChunkData(left) => {
                    let n = self.read_framed(buf, left)?;
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        State::ChunkEnd
                    } else {
                        State::ChunkData(left)
                    };
                    return Ok(n);
                }
                State::ChunkSize => {
                    let size = chunk_size(&read_line(&mut self.inner, MAX_CHUNK_LINE)?)?;
                    self.state = if size == 0 {
                        skip_trailers(&mut self.inner)?;
                        State::Done
                    } else {
                        State::ChunkData(size)
                    };
                }
                State::ChunkEnd => {
                    if !read_line(&mut self.inner, MAX_CHUNK_LINE)?.is_empty() {
                        return Err(invalid("a chunk longer than its size".to_string()));
                    }
                    self.state = State::ChunkSize;
                }
            }
        }
    }
}

/// One line without its CRLF (or bare LF), at most `max` bytes with it.
fn read_line(r: &mut impl BufRead, max: u64) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    Read::take(&mut *r, max).read_until(b'\n', &mut line)?;
    if line.pop() != Some(b'\n') {
        return Err(if line.len() as u64 + 1 >= max {
            invalid("a line of the chunked body is too long".to_string())
        } else {
            eof("the camera closed the connection in the middle of the body")
        });
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(line)
}

/// The size of a chunk-size line, its extensions ignored.
fn chunk_size(line: &[u8]) -> io::Result<u64> {
    let digits = line.split(|&b| b == b';').next().unwrap_or_default();
    let digits = digits.trim_ascii();
    let bad = || invalid("a bad chunk size".to_string());
    if digits.is_empty() || digits.len() > 16 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return Err(bad());
    }
    let text = std::str::from_utf8(digits).map_err(|_| bad())?;
    let size = u64::from_str_radix(text, 16).map_err(|_| bad())?;
    if size > MAX_CHUNK {
        return Err(invalid(format!(
            "a chunk larger than {} MB",
            MAX_CHUNK / (1024 * 1024)
        )));
    }
    Ok(size)
}

/// The trailer fields after the last chunk, up to the empty line; at most
/// `MAX_HEAD` bytes of them.
fn skip_trailers(r: &mut impl BufRead) -> io::Result<()> {
    let mut budget = MAX_HEAD as u64;
    loop {
        let line = read_line(r, budget)?;
        if line.is_empty() {
            return Ok(());
        }
        budget = budget.saturating_sub(line.len() as u64 + 2);
        if budget < 2 {
            return Err(invalid(
                "the chunked body's trailer is too long".to_string(),
            ));
        }
    }
}

#[cfg(test)]
#[path = "http_wire_tests.rs"]
mod tests;
