//! Reading a request body as JSON, within a size limit.

use super::reply::Reply;
use crate::json::{self, Value};
use std::io::Read;
use tiny_http::Request;

/// Reads and parses the body. Only `application/json` is taken: browsers
/// send other types across sites without asking (a form on any web page
/// could otherwise change printers), JSON needs a CORS preflight we never grant.
pub fn read_json(request: &mut Request, limit: usize) -> Result<Value, Reply> {
    check_content_type(request)?;
    let too_large = || Reply::detail(413, &format!("the body is larger than {limit} bytes"));
    if request.body_length().is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    request
        .as_reader()
        .take(cap)
        .read_to_end(&mut body)
        .map_err(|e| Reply::detail(400, &format!("could not read the body: {e}")))?;
    if body.len() > limit {
        return Err(too_large());
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Reply::detail(400, "the body is empty; send a JSON object"));
    }
    json::parse_bytes(&body)
        .map_err(|e| Reply::detail(400, &format!("the body is not valid JSON: {e}")))
}

fn check_content_type(request: &Request) -> Result<(), Reply> {
    let given = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Content-Type"))
        .map(|h| h.value.as_str().to_string());
    let essence = given
        .as_deref()
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
