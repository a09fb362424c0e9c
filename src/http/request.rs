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
    /// Names (tokens, so text) and values (trimmed by httparse); a value
    /// is bytes, as RFC 9110 allows any octet above 0x7F in it.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Head {
    /// The first header named `name` (any case), if its value is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_bytes(name)
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The first header named `name` (any case), as sent.
    pub fn header_bytes(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// The body's length from Content-Length (0 without one). Bodies must
    /// be at most `max_body` (413) and not chunked (411): everything
    /// printcam takes is a small JSON object.
    pub fn body_length(&self, max_body: usize) -> Result<usize, Reply> {
        if let Some(te) = self.header_bytes("Transfer-Encoding") {
            let chunked = te.windows(7).any(|w| w.eq_ignore_ascii_case(b"chunked"));
            return Err(if chunked {
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
            .map(|(_, v)| v.as_slice());
        let Some(first) = lengths.next() else {
            return Ok(0);
        };
        let bad = || Reply::detail(400, "Content-Length must be one whole number");
        if lengths.any(|v| v != first)
            || first.is_empty()
            || !first.iter().all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        // All digits: only overflow fails, and that is too large anyway.
        let n = std::str::from_utf8(first)
            .ok()
            .and_then(|digits| digits.parse::<usize>().ok())
            .unwrap_or(usize::MAX);
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
/// rescans. Bare LF line ends are accepted, as RFC 9112 allows, and so is
/// one empty line before the request line.
pub fn head_end(buf: &[u8], from: usize) -> Result<Option<usize>, Reply> {
    let line = skip_empty_line(buf);
    if memchr::memchr(b'\n', line).map_or(line.len(), |i| i + 1) > MAX_REQUEST_LINE {
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

/// Most headers a head may have; more get 431. Browsers send about 20.
pub const MAX_HEADERS: usize = 64;

/// Parses a complete head (as delimited by `head_end`).
pub fn parse_head(head: &[u8]) -> Result<Head, Reply> {
    let head = skip_empty_line(head);
    // httparse skips any number of empty lines; RFC 9112 asks for one.
    if head.starts_with(b"\r") || head.starts_with(b"\n") {
        return Err(bad_request("more than one empty line before the request"));
    }
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut slots);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(bad_request("an incomplete head")),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Reply::detail(
                431,
                &format!("the request has more than {MAX_HEADERS} headers"),
            ))
        }
        Err(httparse::Error::Version) if names_http(head) => {
            return Err(Reply::detail(505, "only HTTP/1.0 and HTTP/1.1 are spoken"))
        }
        Err(e) => return Err(bad_request(&e.to_string())),
    }
    // Complete: httparse has filled these in.
    let (method, target) = (req.method.unwrap_or_default(), req.path.unwrap_or_default());
    if !target.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad_request("the target must be visible ASCII"));
    }
    let headers: Vec<(String, Vec<u8>)> = req
        .headers
        .iter()
        .map(|h| (h.name.to_string(), h.value.to_vec()))
        .collect();
    let http10 = req.version == Some(0);
    let hosts = headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("Host"));
    if !http10 && hosts.count() != 1 {
        return Err(bad_request("an HTTP/1.1 request needs one Host header"));
    }
    Ok(Head {
        method: Method::from_token(method),
        target: target.to_string(),
        http10,
        headers,
    })
}

/// `head` without the one empty line a client may send before its
/// request line (RFC 9112, section 2.2).
fn skip_empty_line(head: &[u8]) -> &[u8] {
    head.strip_prefix(b"\r\n")
        .or_else(|| head.strip_prefix(b"\n"))
        .unwrap_or(head)
}

/// Whether the request line ends in an `HTTP/` version, just not one
/// printcam speaks (505 rather than 400).
fn names_http(head: &[u8]) -> bool {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (Some(_), Some(_), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    version.starts_with(b"HTTP/")
}

fn bad_request(what: &str) -> Reply {
    Reply::detail(400, &format!("malformed request: {what}"))
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
        let h = parsed(b"BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(h.method.to_string(), "BREW");
        assert!(!h.http10);
    }

    #[test]
    fn malformed_heads_are_400_or_505() {
        for bad in [
            &b"GET /\r\nHost: x\r\n\r\n"[..],
            b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET / HTTP/1.1 x\r\nHost: x\r\n\r\n",
            b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nNo colon\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nA : b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nA: b\r\n folded\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nA: b\x00c\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nA: b\x7fc\r\n\r\n",
            b"GET / FTP/1.1\r\nHost: x\r\n\r\n",
            b"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
        ] {
            let shown = String::from_utf8_lossy(bad);
            // Each has its Host, so fails for its own fault.
            assert_eq!(status(parse_head(bad)), 400, "{shown:?}");
        }
        assert_eq!(status(parse_head(b"PRI * HTTP/2.0\r\n\r\n")), 505);
        assert_eq!(
            status(parse_head(b"GET / HTTP/1.2\r\nHost: x\r\n\r\n")),
            505
        );
    }

    #[test]
    fn one_empty_line_before_the_request_is_ignored() {
        for head in [
            &b"\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"\nGET /a HTTP/1.1\nHost: x\n\n",
        ] {
            let end = end(head).unwrap_or_else(|| panic!("no end in {head:?}"));
            assert_eq!(end, head.len());
            assert_eq!(parsed(&head[..end]).target, "/a");
        }
        // The request line is still measured for 414 after the empty line.
        let mut long = b"\r\nGET /".to_vec();
        long.resize(2 + MAX_REQUEST_LINE + 1, b'a');
        assert_eq!(status(head_end(&long, 0)), 414);
    }

    #[test]
    fn http11_needs_exactly_one_host() {
        let host =
            |headers: &str| parse_head(format!("GET / HTTP/1.1\r\n{headers}\r\n").as_bytes());
        assert_eq!(status(host("")), 400);
        assert_eq!(status(host("Host: a\r\nhost: a\r\n")), 400);
        assert_eq!(status(host("X-Host: a\r\n")), 400);
        assert_eq!(
            parsed(b"GET / HTTP/1.1\r\nhOsT: a\r\n\r\n").header("host"),
            Some("a")
        );
        // HTTP/1.0 had no Host header.
        assert!(parsed(b"GET / HTTP/1.0\r\n\r\n").http10);
    }

    #[test]
    fn too_many_headers_are_431() {
        let mut head = "GET / HTTP/1.1\r\nHost: x\r\n".to_string();
        for i in 1..MAX_HEADERS {
            head.push_str(&format!("X-{i}: {i}\r\n"));
        }
        let fits = format!("{head}\r\n");
        assert_eq!(parsed(fits.as_bytes()).headers.len(), MAX_HEADERS);
        let over = format!("{head}X-Last: 1\r\n\r\n");
        assert_eq!(status(parse_head(over.as_bytes())), 431);
    }

    #[test]
    fn header_values_stay_bytes() {
        let h =
            parsed(b"GET / HTTP/1.1\r\nHost: x\r\nX-Name: caf\xe9 \r\nX-Text: caf\xc3\xa9\r\n\r\n");
        assert_eq!(h.header_bytes("x-name"), Some(&b"caf\xe9"[..]));
        assert_eq!(h.header("x-name"), None);
        assert_eq!(h.header("x-text"), Some("café"));
    }

    mod random {
        use super::*;
        use proptest::prelude::*;

        /// Heads that are often nearly right, and bytes that are not.
        fn heads() -> impl Strategy<Value = Vec<u8>> {
            let line = prop_oneof![
                4 => "[A-Za-z-]{1,6}: ?[ -~\u{e9}]{0,8}",
                1 => "[ -~\t\x00\u{e9}]{0,10}",
            ];
            let head = (
                any::<bool>(),
                "(GET|POST|B\\(W) /[!-~]{0,8}",
                prop::sample::select(vec!["HTTP/1.1", "HTTP/1.0", "HTTP/2.0"]),
                prop::collection::vec(line, 0..5),
                prop::sample::select(vec![0, 1, 1, 2]),
                prop::sample::select(vec!["", "\r\n", "\n"]),
            )
                .prop_map(|(crlf, request, version, mut lines, hosts, before)| {
                    lines.extend(std::iter::repeat_n("Host: h".to_string(), hosts));
                    let eol = if crlf { "\r\n" } else { "\n" };
                    let lines: String = lines.iter().map(|l| format!("{l}{eol}")).collect();
                    format!("{before}{request} {version}{eol}{lines}{eol}").into_bytes()
                });
            prop_oneof![3 => head, 1 => prop::collection::vec(any::<u8>(), 0..128)]
        }

        /// `head_end` as conn.rs calls it: once per read of `step` bytes.
        fn piecemeal(bytes: &[u8], step: usize) -> Result<Option<usize>, u16> {
            let mut from = 0;
            loop {
                let to = (from + step).min(bytes.len());
                let found = head_end(&bytes[..to], from).map_err(|r| r.status);
                if to == bytes.len() || !matches!(found, Ok(None)) {
                    return found;
                }
                from = to;
            }
        }

        proptest! {
            #[test]
            fn heads_are_judged_alike_whole_or_piecemeal(bytes in heads(), step in 1usize..40) {
                let whole = head_end(&bytes, 0).map_err(|r| r.status);
                prop_assert_eq!(piecemeal(&bytes, step), whole);
            }

            #[test]
            fn accepted_heads_keep_the_rules(bytes in heads()) {
                let Ok(Some(end)) = head_end(&bytes, 0) else {
                    return Ok(());
                };
                match parse_head(&bytes[..end]) {
                    Ok(h) => {
                        prop_assert!(h.target.bytes().all(|b| b.is_ascii_graphic()));
                        let hosts = h.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case("host"));
                        prop_assert!(h.http10 || hosts.count() == 1);
                        prop_assert!(h.headers.iter().all(|(_, v)| !v.contains(&0)));
                    }
                    Err(r) => prop_assert!(matches!(r.status, 400 | 431 | 505), "{}", r.status),
                }
            }
        }
    }

    fn length(headers: &str) -> Result<usize, Reply> {
        parsed(format!("POST / HTTP/1.1\r\nHost: x\r\n{headers}\r\n").as_bytes()).body_length(100)
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
        assert_eq!(
            status(length(
                "Transfer-Encoding: gzip, CHUNKED\r\nContent-Length: 3\r\n"
            )),
            411
        );
        let raw = |h: &[u8]| parsed(&[b"POST / HTTP/1.1\r\nHost: x\r\n", h, b"\r\n"].concat());
        assert_eq!(
            status(raw(b"Transfer-Encoding: \xff\r\n").body_length(100)),
            400
        );
        assert_eq!(
            status(raw(b"Content-Length: \xff1\r\n").body_length(100)),
            400
        );
    }

    #[test]
    fn continue_is_expected_only_from_http11() {
        let h = |v: &str| {
            parsed(format!("POST / {v}\r\nHost: x\r\nExpect: 100-Continue\r\n\r\n").as_bytes())
        };
        assert!(h("HTTP/1.1").expects_continue());
        assert!(!h("HTTP/1.0").expects_continue());
    }
}
