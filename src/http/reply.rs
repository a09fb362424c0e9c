//! A complete (non-streaming) response and how it goes on the wire.

use crate::error::Error;
use crate::frame::Frame;
use crate::json::Value;
use std::io::Cursor;
use std::sync::Arc;
use tiny_http::{Header, Request, Response, StatusCode};

const JSON: &str = "application/json";
const NO_CACHE: &str = "no-cache, no-store, must-revalidate";

/// Status, content type, extra headers and body of one response.
pub struct Reply {
    pub status: u16,
    content_type: &'static str,
    headers: Vec<(&'static str, String)>,
    /// Shared so a snapshot goes out without copying the JPEG.
    body: Arc<[u8]>,
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
        Reply::detail(e.status(), e.message())
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

    pub fn html(page: String) -> Reply {
        Reply::new(200, "text/html; charset=utf-8", page.into_bytes().into())
            .with_header(
                "Content-Security-Policy",
                "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'".into(),
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
        }
    }

    pub fn with_header(mut self, name: &'static str, value: String) -> Reply {
        self.headers.push((name, value));
        self
    }

    /// Sends the reply; an error means the client is gone, which is its business.
    pub fn send(self, request: Request) {
        let mut headers = vec![
            header("Content-Type", self.content_type),
            header("Cache-Control", NO_CACHE),
            header("X-Content-Type-Options", "nosniff"),
        ];
        headers.extend(self.headers.iter().map(|(n, v)| header(n, v)));
        let len = self.body.len();
        let response = Response::new(
            StatusCode(self.status),
            headers.into_iter().flatten().collect(),
            Cursor::new(self.body),
            Some(len),
            None,
        );
        if let Err(e) = request.respond(response) {
            log::debug!("response not delivered: {e}");
        }
    }
}

/// A header; None for a value that is not valid in a header (never ours).
fn header(name: &str, value: &str) -> Option<Header> {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).ok()
}
