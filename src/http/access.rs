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
    if matches!(route, Ok(Route::Health | Route::PageScript)) {
        return Ok(());
    }
    match &settings.token {
        Some(token) => check_token(token, request, query),
        None => match route {
            Ok(r) if changes_things(r) => {
                if !is_local(settings, request.remote_addr()) {
                    return Err(Reply::detail(
                        403,
                        "changes are accepted only from this machine while no token is set; \
                         start printcam with --token or PRINTCAM_TOKEN and send it",
                    ));
                }
                let sent = Sent {
                    host: request.header("Host"),
                    origin: request.header("Origin"),
                    fetch_site: request.header("Sec-Fetch-Site"),
                };
                check_change_source(settings, &sent, this_host_name())
                    .map_err(|why| Reply::detail(403, &why))
            }
            _ => Ok(()),
        },
    }
}

/// The request headers that tell where a change comes from.
struct Sent<'a> {
    host: Option<&'a str>,
    origin: Option<&'a str>,
    fetch_site: Option<&'a str>,
}

/// Without a token, a change from this machine is still refused when a
/// web page could have sent it: addressed to a name that is not this
/// machine's (DNS rebinding points an attacker's name at 127.0.0.1), or
/// sent by a page of another origin than printcam's own or the CORS origin
/// (a form, a `fetch`, an `<img>` pointing at `camera/stop`).
fn check_change_source(
    settings: &Settings,
    sent: &Sent,
    own_name: Option<&str>,
) -> Result<(), String> {
    if let Some(host) = sent.host {
        if !host_is_this_machine(settings, host, own_name) {
            return Err(format!(
                "changes must be addressed to this machine by its IP address, localhost or its \
                 host name, not \"{}\"; allow a name with --allow-host, or set a token",
                super::router::quote_safely(host)
            ));
        }
    }
    let own_origin = sent
        .host
        .map(|h| format!("http://{}", h.to_ascii_lowercase()));
    let allowed = |origin: &str| {
        Some(origin) == own_origin.as_deref()
            || settings
                .cors_origin
                .as_deref()
                .is_some_and(|o| o != "*" && o == origin)
    };
    let from_a_page = match sent.origin {
        Some(origin) => !allowed(origin),
        // Browsers send no Origin with a plain GET (an <img> at
        // camera/stop) but say whether it crosses sites.
        None => sent.fetch_site.is_some_and(|s| {
            s.eq_ignore_ascii_case("cross-site") || s.eq_ignore_ascii_case("same-site")
        }),
    };
    if from_a_page {
        return Err(
            "changes are not accepted from a web page of another origin; name the \
             dashboard's origin with --cors-origin, or set a token"
                .into(),
        );
    }
    Ok(())
}

/// An IP literal, `localhost`, this machine's own name or an allowed name,
/// with or without a port.
fn host_is_this_machine(settings: &Settings, host: &str, own_name: Option<&str>) -> bool {
    let name = host_without_port(host.trim());
    if let Some(v6) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().is_ok();
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return true;
    }
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || own_name.is_some_and(|own| own.eq_ignore_ascii_case(&name))
        || settings.allowed_hosts.contains(&name)
}

fn host_without_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        // `[::1]:8080` and `box:8080`; a bare IPv6 address is not a Host.
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !name.ends_with(':') => {
            name
        }
        _ => host,
    }
}

/// This machine's host name, asked once.
fn this_host_name() -> Option<&'static str> {
    static NAME: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        let mut buf = [0u8; 256];
        // SAFETY: the buffer is valid for its length; gethostname writes at
        // most that many bytes.
        let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
        if rc != 0 {
            return None;
        }
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        std::str::from_utf8(&buf[..end])
            .ok()
            .filter(|n| !n.is_empty())
            .map(str::to_ascii_lowercase)
    })
    .as_deref()
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
    super::router::query_value(query, "token")
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

    fn source<'a>(
        host: Option<&'a str>,
        origin: Option<&'a str>,
        site: Option<&'a str>,
    ) -> Sent<'a> {
        Sent {
            host,
            origin,
            fetch_site: site,
        }
    }

    fn change_ok(settings: &Settings, sent: Sent) -> bool {
        check_change_source(settings, &sent, Some("printbox")).is_ok()
    }

    #[test]
    fn changes_must_be_addressed_to_this_machine() {
        let s = Settings::default();
        for host in [
            "127.0.0.1:8080",
            "127.0.0.1",
            "[::1]:8080",
            "[::1]",
            "localhost:8080",
            "LOCALHOST",
            "cams.localhost",
            "printbox:8080",
            "PrintBox",
            "192.168.1.5:8080",
        ] {
            assert!(change_ok(&s, source(Some(host), None, None)), "{host}");
        }
        for host in [
            "rebind.attacker.example:8080",
            "printbox.attacker.example",
            "2130706433",
            "[::1",
            "",
        ] {
            assert!(!change_ok(&s, source(Some(host), None, None)), "{host}");
        }
        // No Host at all is no browser (HTTP/1.0 tools).
        assert!(change_ok(&s, source(None, None, None)));
        let allowed = Settings {
            allowed_hosts: vec!["printcam.lan".into()],
            ..Settings::default()
        };
        assert!(change_ok(
            &allowed,
            source(Some("printcam.lan:8080"), None, None)
        ));
    }

    #[test]
    fn changes_from_pages_of_other_origins_are_refused() {
        let s = Settings {
            cors_origin: Some("http://dash.lan".into()),
            ..Settings::default()
        };
        let host = Some("127.0.0.1:8080");
        assert!(change_ok(
            &s,
            source(host, Some("http://127.0.0.1:8080"), Some("same-origin"))
        ));
        assert!(change_ok(
            &s,
            source(host, Some("http://dash.lan"), Some("cross-site"))
        ));
        assert!(!change_ok(
            &s,
            source(host, Some("http://evil.example"), None)
        ));
        assert!(!change_ok(&s, source(host, Some("null"), None)));
        // An <img src=".../camera/stop"> on another site: no Origin.
        assert!(!change_ok(&s, source(host, None, Some("cross-site"))));
        assert!(!change_ok(&s, source(host, None, Some("same-site"))));
        assert!(change_ok(&s, source(host, None, Some("none"))));
        // `*` lets any page read, not change.
        let any = Settings {
            cors_origin: Some("*".into()),
            ..Settings::default()
        };
        assert!(!change_ok(
            &any,
            source(host, Some("http://evil.example"), None)
        ));
    }

    #[test]
    fn this_machine_has_a_name() {
        assert!(this_host_name().is_some_and(|n| !n.is_empty()));
    }

    #[test]
    fn writes_are_the_changing_routes() {
        assert!(changes_things(&Route::Stop(1)));
        assert!(changes_things(&Route::CreatePrinter));
        assert!(!changes_things(&Route::Snapshot(1)));
        assert!(!changes_things(&Route::ListPrinters));
    }
}
