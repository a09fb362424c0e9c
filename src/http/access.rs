//! Who may do what: the optional token, the rule that without one only this
//! box may change things, and the CORS headers.

use super::reply::Reply;
use super::request::{Method, Request};
use super::router::Route;
use crate::config::Settings;
use std::net::SocketAddr;

/// Refuses a request that lacks the token (401) or, with no token
/// configured, one that changes things from another machine (403).
/// `/healthz` is always open so supervisors need no secret.
pub fn check(
    settings: &Settings,
    route: &Result<Route, Reply>,
    request: &Request,
    query: &str,
) -> Result<(), Reply> {
    if matches!(route, Ok(Route::Health)) {
        return Ok(());
    }
    match &settings.token {
        Some(token) => check_token(token, request, query),
        None => match route {
            Ok(r) if changes_things(r) && !is_local(settings, request.remote_addr()) => {
                Err(Reply::detail(
                    403,
                    "changes are accepted only from this machine while no token is set; \
                     start printcam with --token or PRINTCAM_TOKEN and send it",
                ))
            }
            _ => Ok(()),
        },
    }
}

fn check_token(token: &str, request: &Request, query: &str) -> Result<(), Reply> {
    let from_query = query_token(query);
    let from_header = bearer_token(request);
    if from_query.is_none() && from_header.is_none() {
        return Err(unauthorized(
            "a token is required: add ?token=… to the URL or send Authorization: Bearer …",
        ));
    }
    // Both are compared whatever the first gives, so timing tells nothing
    // about which one was right.
    let query_ok = from_query.is_some_and(|t| same_secret(token.as_bytes(), t.as_bytes()));
    let header_ok = from_header.is_some_and(|t| same_secret(token.as_bytes(), t.as_bytes()));
    if query_ok | header_ok {
        Ok(())
    } else {
        Err(unauthorized("the token is not valid"))
    }
}

fn unauthorized(msg: &str) -> Reply {
    Reply::detail(401, msg).with_header("WWW-Authenticate", "Bearer".into())
}

/// The routes that change the registry or end other people's streams.
fn changes_things(route: &Route) -> bool {
    matches!(
        route,
        Route::CreatePrinter
            | Route::UpdatePrinter(_)
            | Route::DeletePrinter(_)
            | Route::ForgetCert(_)
            | Route::Stop(_)
    )
}

fn is_local(settings: &Settings, peer: SocketAddr) -> bool {
    settings.is_local_client(peer.ip())
}

/// The token a page's links should carry: the one its own URL carried,
/// when a token is required (the viewer has it already; a header-only
/// client gets plain links).
pub fn page_token(settings: &Settings, request: &Request) -> Option<String> {
    settings.token.as_ref()?;
    let (_, query) = super::router::split_target(request.url());
    query_token(query)
}

fn query_token(query: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
}

/// The credentials of an `Authorization: Bearer …` header.
fn bearer_token(request: &Request) -> Option<&str> {
    let value = request.header("Authorization")?.trim();
    let (scheme, credentials) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("Bearer")
        .then(|| credentials.trim())
}

/// Compares a secret in time that depends on `expected`'s length only, not
/// on where `given` first differs.
pub fn same_secret(expected: &[u8], given: &[u8]) -> bool {
    let mut diff = u8::from(expected.len() != given.len());
    for (i, e) in expected.iter().enumerate() {
        diff |= e ^ given.get(i).copied().unwrap_or(!e);
    }
    std::hint::black_box(diff) == 0
}

/// The answer to a CORS preflight (`OPTIONS`), when an origin is configured.
pub fn preflight(settings: &Settings, method: &Method) -> Option<Reply> {
    if *method != Method::Options {
        return None;
    }
    let origin = settings.cors_origin.as_ref()?;
    Some(
        Reply::empty(204)
            .with_header("Access-Control-Allow-Origin", origin.clone())
            .with_header(
                "Access-Control-Allow-Methods",
                "GET, POST, PATCH, PUT, DELETE".into(),
            )
            .with_header(
                "Access-Control-Allow-Headers",
                "Authorization, Content-Type".into(),
            )
            .with_header("Access-Control-Max-Age", "600".into())
            .with_header("Vary", "Origin".into()),
    )
}

/// `reply` with the CORS header, when an origin is configured.
pub fn with_cors(settings: &Settings, reply: Reply) -> Reply {
    match &settings.cors_origin {
        Some(origin) => reply
            .with_header("Access-Control-Allow-Origin", origin.clone())
            .with_header("Vary", "Origin".into()),
        None => reply,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"ab"));
        assert!(!same_secret(b"abc", b"abcd"));
        assert!(!same_secret(b"abc", b""));
        assert!(same_secret(b"", b""));
        // A missing byte must not pass as a match of a zero byte.
        assert!(!same_secret(b"a\0", b"a"));
    }

    #[test]
    fn query_tokens_are_decoded() {
        assert_eq!(query_token("fps=3&token=a%2Bb"), Some("a+b".into()));
        assert_eq!(query_token("fps=3"), None);
    }

    #[test]
    fn writes_are_the_changing_routes() {
        assert!(changes_things(&Route::Stop(1)));
        assert!(changes_things(&Route::CreatePrinter));
        assert!(!changes_things(&Route::Snapshot(1)));
        assert!(!changes_things(&Route::ListPrinters));
    }
}
