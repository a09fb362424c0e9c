//! A complete (non-streaming) response and how it goes on the wire.

use crate::error::Error;
use crate::frame::Frame;
use crate::json::Value;
use std::io::{self, Write};
use std::sync::Arc;

use std::net::TcpStream;

const JSON: &str = "application/json";
const NO_CACHE: &str = "no-cache, no-store, must-revalidate";

/// Status, content type, extra headers and body of one response.
pub struct Reply {
    pub status: u16,
    content_type: &'static str,
    headers: Vec<(&'static str, String)>,
    /// Shared so a snapshot goes out without copying the JPEG.
    body: Arc<[u8]>,
    /// The answer to a HEAD: every header as for GET, no body.
    head_only: bool,
}

impl Reply {
    pub fn json(status: u16, v: &Value) -> Reply {
        Reply::new(status, JSON, v.to_json().into_bytes().into())
    }

    /// `{"detail": msg}`, the shape of every error.
    pub fn detail(status: u16, msg: &str) -> Reply {
        // Sources are meant to redact already; a URL password must never
        // reach a client even if one of them forgets.
        let msg = crate::redact::url_passwords(msg);
        Reply::json(status, &Value::object([("detail", Value::from(msg))]))
    }

    pub fn error(e: &Error) -> Reply {
        Reply::detail(status_of(e), e.message())
    }

    /// A reply without a body (a CORS preflight's 204).
    pub fn empty(status: u16) -> Reply {
        Reply::new(status, "text/plain", Arc::from(&[][..]))
    }

    pub fn not_found() -> Reply {
        Reply::detail(404, "Not found")
    }

    pub fn method_not_allowed(allow: &'static str) -> Reply {
        Reply::detail(405, &format!("Method not allowed; use {allow}"))
            .with_header("Allow", allow.replace(' ', ", "))
    }

    /// A frame as a JPEG download, saying how old it is.
    pub fn jpeg(frame: &Frame, printer_id: i64) -> Reply {
        Reply::new(200, "image/jpeg", frame.jpeg.clone())
            .with_header(
                "Content-Disposition",
                format!("inline; filename=\"snapshot_{printer_id}.jpg\""),
            )
            .with_header("X-Frame-Age-Ms", frame.age_ms().to_string())
            .with_header("Pragma", "no-cache".into())
    }

    /// A text body of the given type (metrics).
    pub fn text(status: u16, content_type: &'static str, text: String) -> Reply {
        Reply::new(status, content_type, text.into_bytes().into())
    }

    /// A body shared with whoever else holds it (an HLS segment).
    pub fn bytes(content_type: &'static str, body: Arc<[u8]>) -> Reply {
        Reply::new(200, content_type, body)
    }

    pub fn html(page: String) -> Reply {
        Reply::new(200, "text/html; charset=utf-8", page.into_bytes().into())
            .with_header(
                "Content-Security-Policy",
                "default-src 'none'; img-src 'self'; media-src 'self'; \
                 style-src 'unsafe-inline'; script-src 'self'; connect-src 'self'"
                    .into(),
            )
            // Its links may carry the viewer's token.
            .with_header("Referrer-Policy", "no-referrer".into())
    }

    fn new(status: u16, content_type: &'static str, body: Arc<[u8]>) -> Reply {
        Reply {
            status,
            content_type,
            headers: Vec::new(),
            body,
            head_only: false,
        }
    }

    /// As the answer to a HEAD request: the same head, no body.
    pub fn without_body(mut self) -> Reply {
        self.head_only = true;
        self
    }

    /// What a HEAD of a stream gets: a stream's head, no frames.
    pub fn stream_head(content_type: &'static str) -> Reply {
        Reply::new(200, content_type, Arc::from(&[][..]))
    }

    pub fn with_header(mut self, name: &'static str, value: String) -> Reply {
        self.headers.push((name, value));
        self
    }

    /// Sends the reply on the request's connection; an error means the
    /// client is gone, which is its business.
    pub fn send(self, conn: &mut TcpStream) {
        if let Err(e) = self.write_to(conn) {
            log::debug!("response not delivered: {e}");
        }
    }

    /// Writes status line, headers and body; the connection closes after.
    pub fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nCache-Control: {NO_CACHE}\r\n\
             X-Content-Type-Options: nosniff\r\n",
            self.status,
            reason(self.status),
            self.content_type
        );
        // A value that could break the head (never ours) is left out.
        let fit = |v: &String| !v.bytes().any(|b| b.is_ascii_control() && b != b'\t');
        for (name, value) in self.headers.iter().filter(|(_, v)| fit(v)) {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if self.status != 204 {
            head.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        head.push_str("Connection: close\r\n\r\n");
        out.write_all(head.as_bytes())?;
        if !self.head_only {
            out.write_all(&self.body)?;
        }
        out.flush()
    }
}

/// The HTTP status code of an error.
pub fn status_of(e: &Error) -> u16 {
    match e {
        Error::NotFound(_) => 404,
        Error::Invalid(_) => 400,
        Error::Unavailable(_) => 503,
        Error::Internal(_) => 500,
    }
}

/// The reason phrase of the statuses printcam sends.
fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(reply: Reply) -> String {
        let mut out = Vec::new();
        reply.write_to(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn replies_carry_length_and_close() {
        let text = wire(Reply::not_found().with_header("X-Bad", "a\r\nb".into()));
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 404 Not Found\r\n"), "{head}");
        assert!(head.contains("\r\nContent-Type: application/json\r\n"));
        assert!(head.contains(&format!("\r\nContent-Length: {}\r\n", body.len())));
        assert!(head.ends_with("\r\nConnection: close"));
        assert!(!head.contains("X-Bad"));
        assert_eq!(body, r#"{"detail":"Not found"}"#);
    }

    #[test]
    fn no_content_has_no_length() {
        let text = wire(Reply::empty(204));
        assert!(text.starts_with("HTTP/1.1 204 No Content\r\n"));
        assert!(!text.contains("Content-Length"));
        assert!(text.ends_with("Connection: close\r\n\r\n"));
    }
}
