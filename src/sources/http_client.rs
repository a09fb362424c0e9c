//! What the HTTP camera sources share: a locked-down ureq agent that connects
//! only to addresses `urlguard` approved at the moment of connecting, and error
//! messages that name the camera by host and port, never by its full URL.

use std::fmt;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ureq::config::Config;
use ureq::http::{Response, Uri};
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{Connector, NextTimeout, TcpConnector};
use ureq::{Agent, Body};

use crate::source::{SourceError, Upstream};
use crate::urlguard::{self, Policy};
use crate::{redact, tls};

use crate::source::CONNECT_TIMEOUT;
/// How long a camera may stay silent (headers or body) before we give up.
pub(crate) const SILENCE_TIMEOUT: Duration = Duration::from_secs(10);

/// One external camera reached over HTTP(S).
pub(crate) struct HttpCamera {
    url: String,
    policy: Policy,
    /// `host:port`, safe to show.
    label: String,
}

impl HttpCamera {
    pub(crate) fn new(url: String, policy: Policy) -> Self {
        let label = host_port(&url);
        HttpCamera { url, policy, label }
    }

    pub(crate) fn describe(&self) -> String {
        redact::url_passwords(&self.url)
    }

    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    /// A client for one connection attempt. Cancelling through `up` shuts the
    /// agent down, which wakes any read blocked on the camera.
    pub(crate) fn client(&self, up: &dyn Upstream, body_budget: Option<Duration>) -> Client<'_> {
        let refusal = Arc::new(Mutex::new(None));
        let resolver = GuardedResolver {
            url: self.url.clone(),
            policy: self.policy,
            refusal: Arc::clone(&refusal),
        };
        let agent = Agent::with_parts(agent_config(body_budget), connector(), resolver);
        let cancel = agent.clone();
        up.on_cancel(Box::new(move || cancel.clone().shutdown()));
        Client {
            camera: self,
            agent,
            refusal,
        }
    }
}

/// TCP, and TLS over it when the build has https cameras: ureq's default
/// connector would also chain its SOCKS and CONNECT proxy connectors, which
/// `.proxy(None)` never lets act (10 448 bytes of the router binary).
fn connector() -> impl Connector {
    let tcp = ().chain(TcpConnector::default());
    #[cfg(feature = "webpki-roots")]
    let tcp = tcp.chain(ureq::unversioned::transport::RustlsConnector::default());
    tcp
}

fn agent_config(body_budget: Option<Duration>) -> Config {
    let builder = Agent::config_builder()
        // A redirect could lead anywhere, past the address check.
        .max_redirects(0)
        .max_redirects_will_error(false)
        // The default would read HTTP_PROXY and friends from the environment.
        .proxy(None)
        .http_status_as_error(false)
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_recv_response(Some(SILENCE_TIMEOUT))
        .timeout_per_read(Some(SILENCE_TIMEOUT))
        .timeout_recv_body(body_budget)
        .user_agent("printcam")
        // Small buffers: this runs on routers.
        .input_buffer_size(64 * 1024)
        .output_buffer_size(16 * 1024)
        .max_response_header_size(16 * 1024)
        .max_idle_connections(1)
        .max_idle_connections_per_host(1);
    #[cfg(feature = "webpki-roots")]
    let builder = builder.tls_config(
        // printcam's slimmer crypto provider; the roots are ureq's default,
        // the public CA certificates of webpki-roots.
        ureq::tls::TlsConfig::builder()
            .unversioned_rustls_crypto_provider(tls::crypto_provider())
            .build(),
    );
    builder.build()
}

fn is_https(raw: &str) -> bool {
    url::Url::parse(raw).is_ok_and(|u| u.scheme() == "https")
}

/// `host:port` of a URL, for messages; never the user info.
fn host_port(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(u) => match (u.host_str(), u.port_or_known_default()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => "the camera".to_string(),
        },
        Err(_) => "the camera".to_string(),
    }
}

/// Resolves by asking `urlguard`, so the addresses checked are exactly the
/// addresses connected to (no window for DNS rebinding), and the check runs
/// each time a new connection is opened.
struct GuardedResolver {
    url: String,
    policy: Policy,
    /// Why `urlguard` refused, for the error message ureq cannot carry.
    refusal: Arc<Mutex<Option<String>>>,
}

impl fmt::Debug for GuardedResolver {
    // Manual: the URL may hold a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GuardedResolver")
    }
}

impl Resolver for GuardedResolver {
    fn resolve(
        &self,
        _uri: &Uri,
        _config: &Config,
        _timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let target = match urlguard::check_resolved(&self.url, self.policy) {
            Ok((_, target)) => target,
            Err(why) => {
                *lock(&self.refusal) = Some(why);
                return Err(ureq::Error::HostNotFound);
            }
        };
        // ureq connects to exactly these; the Host header and TLS server
        // name still come from the URL.
        let mut out = self.empty();
        for addr in target.addrs() {
            if out.try_push(*addr).is_err() {
                break;
            }
        }
        if out.is_empty() {
            return Err(ureq::Error::HostNotFound);
        }
        Ok(out)
    }
}

use crate::sync::lock;

/// One connection attempt's agent; reused between requests (snapshot polls).
pub(crate) struct Client<'a> {
    camera: &'a HttpCamera,
    agent: Agent,
    refusal: Arc<Mutex<Option<String>>>,
}

impl Client<'_> {
    /// GETs the camera URL and returns the response if it is a success.
    /// `Ok(None)` when the hub stopped the connection meanwhile.
    pub(crate) fn get(&self, up: &dyn Upstream) -> Result<Option<Response<Body>>, SourceError> {
        if !tls::public_roots_available() && is_https(&self.camera.url) {
            return Err(SourceError::fatal(tls::NO_PUBLIC_ROOTS));
        }
        let response = match self.agent.get(&self.camera.url).call() {
            Ok(r) => r,
            Err(_) if up.stopping() => return Ok(None),
            Err(e) => return Err(self.error(e)),
        };
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            up.reached(format!(
                "the camera at {} answered {status}",
                self.camera.label()
            ));
            Ok(Some(response))
        } else {
            Err(status_error(self.camera.label(), status))
        }
    }

    /// A user-facing error for a failed request or body read.
    pub(crate) fn error(&self, e: ureq::Error) -> SourceError {
        if let Some(why) = lock(&self.refusal).take() {
            return SourceError::fatal(why);
        }
        let at = self.camera.label();
        match e {
            ureq::Error::Timeout(ureq::Timeout::Connect) => SourceError::transient(format!(
                "the camera at {at} did not accept a connection within {} s",
                CONNECT_TIMEOUT.as_secs()
            )),
            ureq::Error::Timeout(_) => silent(at),
            ureq::Error::Io(e) => match e.downcast::<ureq::Error>() {
                Ok(inner) => self.error(inner),
                Err(e) if is_timeout(&e) => silent(at),
                Err(e) => SourceError::transient(format!(
                    "cannot reach the camera at {at}: {}",
                    redact::url_passwords(&e.to_string())
                )),
            },
            ureq::Error::HostNotFound => {
                SourceError::transient(format!("cannot find the camera host {at}"))
            }
            ureq::Error::ConnectionFailed => {
                SourceError::transient(format!("cannot connect to the camera at {at}"))
            }
            ureq::Error::BodyExceedsLimit(_) => SourceError::transient(format!(
                "the camera at {at} sent a picture larger than {} MB",
                crate::jpeg::MAX_FRAME / (1024 * 1024)
            )),
            other => SourceError::transient(format!(
                "HTTP error with the camera at {at}: {}",
                redact::url_passwords(&other.to_string())
            )),
        }
    }

    /// A user-facing error for a failed read of a streaming body.
    pub(crate) fn io_error(&self, e: io::Error) -> SourceError {
        let at = self.camera.label();
        // ureq hands its own errors through io::Error.
        let e = match e.downcast::<ureq::Error>() {
            Ok(inner) => return self.error(inner),
            Err(e) => e,
        };
        if is_timeout(&e) {
            return silent(at);
        }
        SourceError::transient(format!(
            "lost the camera at {at}: {}",
            redact::url_passwords(&e.to_string())
        ))
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

fn silent(at: &str) -> SourceError {
    SourceError::transient(format!(
        "the camera at {at} sent nothing for {} s",
        SILENCE_TIMEOUT.as_secs()
    ))
}

fn status_error(at: &str, status: u16) -> SourceError {
    match status {
        401 | 403 => SourceError::fatal(format!(
            "the camera at {at} refused the login (HTTP {status}): check the user name and password in the camera URL"
        )),
        404 => SourceError::fatal(format!(
            "the camera at {at} has no such page (HTTP 404): check the path in the camera URL"
        )),
        300..=399 => SourceError::fatal(format!(
            "the camera at {at} answered with a redirect (HTTP {status}), which printcam does not follow: use the final URL"
        )),
        _ => SourceError::transient(format!("the camera at {at} answered HTTP {status}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_has_no_user_info() {
        assert_eq!(host_port("http://u:secret@10.0.0.5/video"), "10.0.0.5:80");
        assert_eq!(host_port("https://cam.lan:8443/x"), "cam.lan:8443");
        assert_eq!(host_port("http://[::1]:81/"), "[::1]:81");
        assert_eq!(host_port("not a url :secret@"), "the camera");
    }

    #[test]
    fn statuses_are_explained() {
        assert!(!status_error("h:1", 401).retry);
        assert!(!status_error("h:1", 404).retry);
        assert!(!status_error("h:1", 302).retry);
        assert!(status_error("h:1", 503).retry);
        assert!(status_error("h:1", 404).message.contains("404"));
    }
}
