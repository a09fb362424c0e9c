//! A request as printcam sees it, and the parsing of its head: request line
//! and headers, within fixed bounds. The connection (`conn`) reads the
//! bytes; this module only judges them.

use super::reply::Reply;
use std::fmt;
use std::net::{SocketAddr, TcpStream};

/// Longest request line; a longer one gets 414.
pub const MAX_REQUEST_LINE: usize = 8 * 1024;
/// Longest head, request line and headers with the blank line; more gets 431.
pub const MAX_HEAD: usize = 32 * 1024;

/// A request method; the ones printcam routes have names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
    /// Any other token (checked to be one, so it is safe to log).
    Other(String),
}

impl Method {
    fn from_token(token: &str) -> Method {
        match token {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            other => Method::Other(other.to_string()),
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Other(token) => token,
        };
        f.write_str(name)
    }
}

/// The request line and headers.
#[derive(Debug)]
pub struct Head {
    pub method: Method,
    /// The target as sent: path and query, not decoded.
    pub target: String,
    /// HTTP/1.0 rather than 1.1.
    pub http10: bool,
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// The first header named `name` (any case), trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body's length from Content-Length (0 without one). Bodies must
    /// be at most `max_body` (413) and not chunked (411): everything
    /// printcam takes is a small JSON object.
    pub fn body_length(&self, max_body: usize) -> Result<usize, Reply> {
        if let Some(te) = self.header("Transfer-Encoding") {
            return Err(if te.to_ascii_lowercase().contains("chunked") {
                Reply::detail(
                    411,
                    "chunked request bodies are not accepted; send a Content-Length",
                )
            } else {
                Reply::detail(400, "unsupported Transfer-Encoding")
            });
        }
        let mut lengths = self
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("Content-Length"))
            .map(|(_, v)| v.as_str());
        let Some(first) = lengths.next() else {
            return Ok(0);
        };
        let bad = || Reply::detail(400, "Content-Length must be one whole number");
        if lengths.any(|v| v != first)
            || first.is_empty()
            || !first.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        // All digits: only overflow fails, and that is too large anyway.
        let n = first.parse::<usize>().unwrap_or(usize::MAX);
        if n > max_body {
            return Err(too_large(max_body));
        }
        Ok(n)
    }

    /// Whether the client waits for `100 Continue` before sending its body.
    pub fn expects_continue(&self) -> bool {
        !self.http10
            && self
                .header("Expect")
                .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    }
}

/// The 413 for a body over `limit` bytes.
pub fn too_large(limit: usize) -> Reply {
    Reply::detail(413, &format!("the body is larger than {limit} bytes"))
}

/// Where a head ends in `buf` (the index after its blank line), None while
/// it is incomplete, or the reply when it is too long. `from` is how far a
/// previous call looked, so a client sending a byte at a time costs no
/// rescans. Bare LF line ends are accepted, as RFC 9112 allows.
pub fn head_end(buf: &[u8], from: usize) -> Result<Option<usize>, Reply> {
    let line_end = memchr::memchr(b'\n', buf);
    if line_end.map_or(buf.len(), |i| i + 1) > MAX_REQUEST_LINE {
        return Err(Reply::detail(
            414,
            &format!("the request line is longer than {MAX_REQUEST_LINE} bytes"),
        ));
    }
    // A new blank line may end at most 2 bytes before the old end.
    let start = from.saturating_sub(2);
    let end = memchr::memchr_iter(b'\n', &buf[start..])
        .map(|i| start + i + 1)
        .find(|&i| buf[i..].starts_with(b"\n") || buf[i..].starts_with(b"\r\n"))
        .map(|i| if buf[i] == b'\n' { i + 1 } else { i + 2 });
    match end {
        Some(end) if end <= MAX_HEAD => Ok(Some(end)),
        None if buf.len() < MAX_HEAD => Ok(None),
        _ => Err(Reply::detail(
            431,
            &format!("the request head is longer than {MAX_HEAD} bytes"),
        )),
    }
}

/// Parses a complete head (as delimited by `head_end`).
pub fn parse_head(head: &[u8]) -> Result<Head, Reply> {
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let (method, target, http10) = parse_request_line(lines.next().unwrap_or_default())?;
    let mut headers = Vec::new();
    for line in lines.take_while(|l| !l.is_empty()) {
        headers.push(parse_header(line)?);
    }
    Ok(Head {
        method,
        target,
        http10,
        headers,
    })
}

fn bad_request(what: &str) -> Reply {
    Reply::detail(400, &format!("malformed request: {what}"))
}

fn parse_request_line(line: &[u8]) -> Result<(Method, String, bool), Reply> {
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad_request("the request line is not METHOD TARGET VERSION"));
    };
    let http10 = match version {
        b"HTTP/1.1" => false,
        b"HTTP/1.0" => true,
        v if v.starts_with(b"HTTP/") => {
            return Err(Reply::detail(505, "only HTTP/1.0 and HTTP/1.1 are spoken"))
        }
        _ => return Err(bad_request("no HTTP version")),
    };
    if !is_token(method) {
        return Err(bad_request("the method is not a token"));
    }
    if target.is_empty() || !target.iter().all(|b| b.is_ascii_graphic()) {
        return Err(bad_request("the target must be visible ASCII"));
    }
    // Both checked to be ASCII.
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    Ok((Method::from_token(&text(method)), text(target), http10))
}

fn parse_header(line: &[u8]) -> Result<(String, String), Reply> {
    let colon =
        memchr::memchr(b':', line).ok_or_else(|| bad_request("a header without a colon"))?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    // Also refuses obsolete line folding, whose lines start with a space.
    if !is_token(name) {
        return Err(bad_request("a header name is not a token"));
    }
    if value.iter().any(|&b| b.is_ascii_control() && b != b'\t') {
        return Err(bad_request("a header value holds a control character"));
    }
    let value = String::from_utf8_lossy(value);
    Ok((
        String::from_utf8_lossy(name).into_owned(),
        value.trim_matches([' ', '\t']).to_string(),
    ))
}

/// An RFC 9110 token: what methods and header names are made of.
fn is_token(b: &[u8]) -> bool {
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(c))
}

/// A whole request: its head, its body (already read), who sent it and the
/// connection to answer on.
pub struct Request {
    head: Head,
    body: Vec<u8>,
    peer: SocketAddr,
    stream: TcpStream,
}

impl Request {
    pub fn new(head: Head, body: Vec<u8>, peer: SocketAddr, stream: TcpStream) -> Request {
        Request {
            head,
            body,
            peer,
            stream,
        }
    }

    pub fn method(&self) -> &Method {
        &self.head.method
    }

    /// The target as sent: path and query, not decoded.
    pub fn url(&self) -> &str {
        &self.head.target
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.header(name)
    }

    pub fn body(&self) -> &[u8] {
        &self.body
    }

    pub fn remote_addr(&self) -> SocketAddr {
        self.peer
    }

    /// The connection, to write the response on.
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status<T: fmt::Debug>(r: Result<T, Reply>) -> u16 {
        match r {
            Ok(v) => panic!("accepted: {v:?}"),
            Err(reply) => reply.status,
        }
    }

    fn parsed(head: &[u8]) -> Head {
        parse_head(head).unwrap_or_else(|r| panic!("{}", r.status))
    }

    fn end(buf: &[u8]) -> Option<usize> {
        head_end(buf, 0).unwrap_or_else(|r| panic!("{}", r.status))
    }

    #[test]
    fn heads_end_at_the_first_blank_line() {
        assert_eq!(end(b"GET / HTTP/1.1\r\nA: b\r\n\r\nbody"), Some(24));
        assert_eq!(end(b"GET / HTTP/1.1\nA: b\n\nbody"), Some(21));
        assert_eq!(end(b"GET / HTTP/1.1\r\nA: b\r\n\r"), None);
        assert_eq!(end(b"GET / HTTP/1.1\r\nA: b\r\n"), None);
        assert_eq!(end(b""), None);
    }

    #[test]
    fn heads_found_piecemeal() {
        let full = b"GET / HTTP/1.1\r\nA: b\r\n\r\n";
        let mut from = 0;
        for n in 1..=full.len() {
            let found = head_end(&full[..n], from).unwrap_or_else(|r| panic!("{}", r.status));
            assert_eq!(found, (n == full.len()).then_some(n), "at {n}");
            from = n;
        }
    }

    #[test]
    fn long_lines_and_heads_are_refused() {
        let line = vec![b'a'; MAX_REQUEST_LINE + 1];
        assert_eq!(status(head_end(&line, 0)), 414);
        let mut head = b"GET / HTTP/1.1\r\n".to_vec();
        while head.len() < MAX_HEAD {
            head.extend_from_slice(b"X-Pad: 0123456789012345678901234567890123456789\r\n");
        }
        assert_eq!(status(head_end(&head, 0)), 431);
        head.extend_from_slice(b"\r\n");
        assert_eq!(status(head_end(&head, 0)), 431);
    }

    #[test]
    fn heads_parse_into_method_target_and_headers() {
        let h = parsed(
            b"PATCH /printers/1?x=%20 HTTP/1.0\r\nContent-Type:  application/json \r\nX-Empty:\r\n\r\n",
        );
        assert_eq!(h.method, Method::Patch);
        assert_eq!(h.target, "/printers/1?x=%20");
        assert!(h.http10);
        assert_eq!(h.header("content-type"), Some("application/json"));
        assert_eq!(h.header("X-Empty"), Some(""));
        let h = parsed(b"BREW /pot HTTP/1.1\r\n\r\n");
        assert_eq!(h.method.to_string(), "BREW");
        assert!(!h.http10);
    }

    #[test]
    fn malformed_heads_are_400_or_505() {
        for bad in [
            &b"GET /\r\n\r\n"[..],
            b"GET  / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1 x\r\n\r\n",
            b"G(T / HTTP/1.1\r\n\r\n",
            b"GET /\x01 HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nNo colon\r\n\r\n",
            b"GET / HTTP/1.1\r\nA : b\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: b\x00c\r\n\r\n",
            b"GET / FTP/1.1\r\n\r\n",
        ] {
            assert_eq!(
                status(parse_head(bad)),
                400,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(status(parse_head(b"PRI * HTTP/2.0\r\n\r\n")), 505);
    }

    fn length(headers: &str) -> Result<usize, Reply> {
        parsed(format!("POST / HTTP/1.1\r\n{headers}\r\n").as_bytes()).body_length(100)
    }

    #[test]
    fn body_lengths_are_bounded_and_never_chunked() {
        assert_eq!(length("").ok(), Some(0));
        assert_eq!(length("Content-Length: 100\r\n").ok(), Some(100));
        assert_eq!(
            length("Content-Length: 7\r\nContent-Length: 7\r\n").ok(),
            Some(7)
        );
        assert_eq!(status(length("Content-Length: 101\r\n")), 413);
        assert_eq!(
            status(length("Content-Length: 99999999999999999999999\r\n")),
            413
        );
        assert_eq!(status(length("Content-Length: -1\r\n")), 400);
        assert_eq!(status(length("Content-Length: 1, 1\r\n")), 400);
        assert_eq!(
            status(length("Content-Length: 1\r\nContent-Length: 2\r\n")),
            400
        );
        assert_eq!(status(length("Transfer-Encoding: chunked\r\n")), 411);
        assert_eq!(status(length("Transfer-Encoding: gzip\r\n")), 400);
    }

    #[test]
    fn continue_is_expected_only_from_http11() {
        let h = |v: &str| parsed(format!("POST / {v}\r\nExpect: 100-Continue\r\n\r\n").as_bytes());
        assert!(h("HTTP/1.1").expects_continue());
        assert!(!h("HTTP/1.0").expects_continue());
    }
}
