//! A request body as JSON. The connection has read it already, within
//! `Limits::max_body`.

use super::reply::Reply;
use super::request::Request;
use crate::json::{self, Value};

/// Parses the body. Only `application/json` is taken: browsers
/// send other types across sites without asking (a form on any web page
/// could otherwise change printers), JSON needs a CORS preflight we never grant.
pub fn read_json(request: &Request) -> Result<Value, Reply> {
    check_content_type(request)?;
    let body = request.body();
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Reply::detail(400, "the body is empty; send a JSON object"));
    }
    json::parse_bytes(body)
        .map_err(|e| Reply::detail(400, &format!("the body is not valid JSON: {e}")))
}

fn check_content_type(request: &Request) -> Result<(), Reply> {
    let essence = request
        .header("Content-Type")
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    match essence.as_deref() {
        Some("application/json") => Ok(()),
        Some(other) => Err(Reply::detail(
            400,
            &format!(
                "the body must be JSON sent with Content-Type: application/json, not \"{}\"",
                super::router::quote_safely(other)
            ),
        )),
        None => Err(Reply::detail(
            400,
            "the body must be JSON sent with Content-Type: application/json",
        )),
    }
}
