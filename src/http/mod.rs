//! The HTTP server: one accept loop, one small thread per connection and
//! one request per connection (`conn`, `request`). See `router` for the
//! paths, `handlers` and `stream` for the answers.

mod access;
mod body;
mod conn;
mod handlers;
mod hls;
mod metrics;
pub mod mjpeg;
mod nonblocking;
mod page;
pub mod printers;
mod reply;
// Public for the fuzz target of the head parser (fuzz/).
pub mod request;
mod router;
mod stream;
mod stream_mp4;
mod viewers;

use crate::cameras::Cameras;
use reply::Reply;
use request::{Method, Request};
use router::Route;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Stack of a connection thread. Handlers run SQLite queries and, when a camera
/// URL is saved, a DNS lookup; 64 KB was enough for both in a debug build
/// (tests/http_api.rs saves a host name), 128 KB leaves headroom. Only
/// touched pages cost memory.
const HANDLER_STACK: usize = 128 * 1024;

/// Bounds on what clients can make the server hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body, in bytes.
    pub max_body: usize,
    /// Connections served at once (each open stream counts); more get a 503.
    pub max_handlers: usize,
    /// Of those, how many one client address (an IPv6 /64) may hold; its
    /// next connection gets a 503 while other clients are still served.
    pub max_per_client: usize,
    /// How long a new connection may stay silent before its first byte:
    /// short, so idle sockets cannot hold places; a head that has begun
    /// gets the whole `head_timeout`.
    pub first_byte_timeout: Duration,
    /// How long a client may take to send its request head (and again its
    /// body); one that is slower is closed, so idle connections cannot
    /// hold the server's places.
    pub head_timeout: Duration,
    /// How long a write to a client may block (a viewer that stopped
    /// reading is dropped after this).
    pub write_timeout: Duration,
    /// How long `shutdown` waits for request threads to finish.
    pub stop_wait: Duration,
    /// How often a stream with nothing to send looks at the shutdown flag.
    /// Nothing else waits for it: frames, hang-ups and the end of a stream
    /// wake the stream's thread at once.
    pub stream_poll: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body: 64 * 1024,
            max_handlers: 256,
            max_per_client: 32,
            first_byte_timeout: Duration::from_secs(3),
            head_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            stop_wait: Duration::from_secs(5),
            stream_poll: Duration::from_secs(1),
        }
    }
}

/// A running server: one accept loop, one thread per connection.
pub struct Server {
    shared: Arc<Shared>,
    addr: SocketAddr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    Stopping,
    Stopped,
}

struct Shared {
    cameras: Arc<Cameras>,
    limits: Limits,
    /// The listening address, for waking the accept loop.
    addr: SocketAddr,
    /// Set first thing on shutdown; streams check it between frames.
    stopping: AtomicBool,
    phase: Mutex<Phase>,
    phase_changed: Condvar,
    accept: Mutex<Option<JoinHandle<()>>>,
    handlers: Handlers,
    viewers: viewers::Viewers,
    refusals: metrics::Refusals,
}

impl Server {
    /// Binds `listen` (e.g. `0.0.0.0:8080`, `127.0.0.1:0`) and starts serving
    /// in background threads. The error names the address and the cause.
    /// The write timeout comes from the cameras' settings.
    pub fn start(cameras: Arc<Cameras>, listen: &str) -> Result<Server, String> {
        let settings = cameras.settings();
        let limits = Limits {
            write_timeout: settings.write_timeout,
            max_per_client: settings.max_connections_per_client,
            ..Limits::default()
        };
        Server::start_with(cameras, listen, limits)
    }

    /// `start` with explicit limits.
    pub fn start_with(
        cameras: Arc<Cameras>,
        listen: &str,
        limits: Limits,
    ) -> Result<Server, String> {
        let fail = |e: &dyn std::fmt::Display| format!("cannot listen on {listen}: {e}");
        let listener = TcpListener::bind(listen).map_err(|e| fail(&e))?;
        let addr = listener.local_addr().map_err(|e| fail(&e))?;
        let shared = Arc::new(Shared {
            cameras,
            limits,
            addr,
            stopping: AtomicBool::new(false),
            phase: Mutex::new(Phase::Running),
            phase_changed: Condvar::new(),
            accept: Mutex::new(None),
            handlers: Handlers::default(),
            viewers: viewers::Viewers::default(),
            refusals: metrics::Refusals::default(),
        });
        let looping = shared.clone();
        let handle = crate::sync::spawn("http-accept".into(), None, move || {
            conn::accept_loop(listener, looping)
        })
        .map_err(|e| fail(&format!("could not start the accept thread: {e}")))?;
        *lock(&shared.accept) = Some(handle);
        log::info!("listening on http://{addr}");
        warn_if_open(&shared.cameras.settings().token, addr);
        Ok(Server { shared, addr })
    }

    /// The address actually bound (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Blocks until the server stops (after `shutdown` from another thread).
    pub fn wait(&self) {
        let mut phase = lock(&self.shared.phase);
        while *phase != Phase::Stopped {
            phase = self
                .shared
                .phase_changed
                .wait(phase)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Stops accepting, ends every stream, closes every upstream, and waits
    /// for the server's threads. Idempotent.
    pub fn shutdown(&self) {
        self.shared.shutdown();
    }
}

impl Shared {
    /// When another thread is already shutting down, waits for it to finish.
    fn shutdown(&self) {
        {
            let mut phase = lock(&self.phase);
            loop {
                match *phase {
                    Phase::Running => break,
                    Phase::Stopping => {
                        phase = self
                            .phase_changed
                            .wait(phase)
                            .unwrap_or_else(|e| e.into_inner());
                    }
                    Phase::Stopped => return,
                }
            }
            *phase = Phase::Stopping;
        }
        log::info!("http: shutting down");
        self.stopping.store(true, Ordering::SeqCst);
        let accept = lock(&self.accept).take();
        if let Some(accept) = accept {
            // Joined, the listener is closed when shutdown returns. Without
            // the wake-up the loop ends at its next connection instead.
            if conn::wake(self.addr) {
                let _ = accept.join();
            }
        }
        // Ends every stream: their subscriptions disconnect.
        self.cameras.shutdown();
        let left = self.handlers.wait_idle(self.limits.stop_wait);
        if left > 0 {
            log::warn!(
                "http: {left} connection(s) still open after {:?}",
                self.limits.stop_wait
            );
        }
        // A request that was between lookup and subscribe may have made a hub anew.
        self.cameras.shutdown();
        *lock(&self.phase) = Phase::Stopped;
        self.phase_changed.notify_all();
        log::info!("http: stopped");
    }
}

/// A token this short can be guessed by trying.
const SHORT_TOKEN: usize = 16;

fn warn_if_open(token: &Option<String>, addr: SocketAddr) {
    if token
        .as_ref()
        .is_some_and(|t| t.chars().count() < SHORT_TOKEN)
    {
        log::warn!(
            "the token is shorter than {SHORT_TOKEN} characters and can be guessed; use a \
             long random one (e.g. `head -c 18 /dev/urandom | base64`)"
        );
    }
    if token.is_none() && !addr.ip().is_loopback() {
        log::warn!(
            "listening on {addr} without a token: anyone who can reach this port can \
             watch every camera (changes are refused from other machines); set \
             PRINTCAM_TOKEN or --token"
        );
    }
}

/// Answers one request (its body already read) on its connection.
fn dispatch(shared: &Shared, request: &mut Request) {
    let settings = shared.cameras.settings();
    let method = request.method().clone();
    let target = request.url().to_string();
    let (path, query) = router::split_target(&target);
    let log_status = |status: u16| log_request(&method, path, status);
    // HEAD is GET without the body (RFC 9110), also for monitors that
    // check a URL with it.
    let head_only = method == Method::Head;
    let send = |reply: Reply, request: &mut Request| {
        log_status(reply.status);
        let reply = if head_only {
            reply.without_body()
        } else {
            reply
        };
        access::with_cors(settings, reply).send(request.stream());
    };
    if let Some(reply) = access::preflight(settings, &method) {
        // Complete already: `send` would add the CORS headers a second
        // time, and browsers refuse a doubled Allow-Origin.
        log_status(reply.status);
        return reply.send(request.stream());
    }
    let routed_as = if head_only {
        Method::Get
    } else {
        method.clone()
    };
    let route = router::route(&routed_as, path, query);
    if let Err(reply) = access::check(settings, &route, request, query) {
        shared.refusals.count(reply.status);
        return send(reply, request);
    }
    let route = route.and_then(|r| resolve_source(&shared.cameras, r, query));
    match route {
        Ok(Route::Stream(id) | Route::StreamMp4(id)) if head_only => {
            let kind = match route {
                Ok(Route::StreamMp4(_)) => stream_mp4::CONTENT_TYPE,
                _ => mjpeg::CONTENT_TYPE,
            };
            let reply = shared
                .cameras
                .printer(id)
                .map_or_else(|e| Reply::error(&e), |_| Reply::stream_head(kind));
            send(reply, request);
        }
        Ok(Route::Stream(id)) => stream::serve(
            &shared.cameras,
            &shared.viewers,
            id,
            query,
            request,
            (&shared.stopping, shared.limits.stream_poll),
            log_status,
        ),
        Ok(Route::StreamMp4(id)) => stream_mp4::serve(
            &shared.cameras,
            &shared.viewers,
            id,
            request,
            (&shared.stopping, shared.limits.stream_poll),
            log_status,
        ),
        Ok(Route::Metrics) => send(metrics_reply(shared), request),
        Ok(route) => {
            let reply = handlers::handle(&shared.cameras, route, request);
            send(reply, request);
        }
        Err(reply) => send(reply, request),
    }
}

fn metrics_reply(shared: &Shared) -> Reply {
    let figures = metrics::ServerFigures {
        open_connections: shared.handlers.open(),
        refusals: &shared.refusals,
        viewers_refused: shared.viewers.refused(),
    };
    match metrics::render(&shared.cameras, &figures) {
        Ok(text) => Reply::text(200, metrics::CONTENT_TYPE, text),
        Err(e) => Reply::error(&e),
    }
}

/// A go2rtc-style route's camera, named by `src`: a printer's id, or its
/// name (exactly, else ignoring case). Unknown is the usual 404.
fn resolve_source(cameras: &Cameras, route: Route, query: &str) -> Result<Route, Reply> {
    let Route::BySource(action) = route else {
        return Ok(route);
    };
    let Some(src) = router::query_value(query, "src").filter(|s| !s.is_empty()) else {
        return Err(Reply::detail(
            400,
            "src is required: a printer's id or name",
        ));
    };
    let printers = cameras.printers().map_err(|e| Reply::error(&e))?;
    let by_id = src
        .parse::<i64>()
        .ok()
        .filter(|id| printers.iter().any(|p| p.id == *id));
    let by_name = || {
        let exact = printers.iter().find(|p| p.name == src);
        exact
            .or_else(|| printers.iter().find(|p| p.name.eq_ignore_ascii_case(&src)))
            .map(|p| p.id)
    };
    match by_id.or_else(by_name) {
        Some(id) => Ok(action.route(id)),
        None => Err(Reply::detail(404, "Printer not found")),
    }
}

/// One line per request, bounded as a whole: a client chooses the method
/// and the path. Never the query string: it may carry a token.
fn log_request(method: &Method, target: &str, status: u16) {
    log::info!("{}", request_line_for_log(method, target, status));
}

fn request_line_for_log(method: &Method, target: &str, status: u16) -> String {
    let (path, _) = router::split_target(target);
    let method = method.to_string();
    format!(
        "{} {} {status}",
        printable(&method, 16),
        printable(path, 200)
    )
}

/// At most `max` characters of `text`, controls as `?`, a cut marked `…`.
fn printable(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .take(max)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if text.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

/// Counts running connection threads, overall and per client, so one
/// client cannot take every place and shutdown can wait for them.
#[derive(Default)]
struct Handlers {
    running: Mutex<Running>,
    finished: Condvar,
}

#[derive(Default)]
struct Running {
    total: usize,
    per_client: HashMap<Client, usize>,
}

/// Who holds connection places: an IPv4 address, or an IPv6 /64 (one host
/// can use a whole /64, so counting single addresses would bound nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Client {
    V4(std::net::Ipv4Addr),
    V6(u64),
}

impl Client {
    fn of(ip: IpAddr) -> Client {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Client::V4(v4),
            IpAddr::V6(v6) => Client::V6((u128::from(v6) >> 64) as u64),
        }
    }
}

/// Why a connection got no place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Full {
    Server,
    Client,
}

/// A running connection's place; gives it back when dropped (also on panic).
struct Slot {
    shared: Arc<Shared>,
    client: Client,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let h = &self.shared.handlers;
        let mut running = lock(&h.running);
        running.total -= 1;
        if let Some(n) = running.per_client.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                running.per_client.remove(&self.client);
            }
        }
        drop(running);
        h.finished.notify_all();
    }
}

impl Handlers {
    fn enter(&self, shared: Arc<Shared>, peer: IpAddr) -> Result<Slot, Full> {
        let client = Client::of(peer);
        let mut running = lock(&self.running);
        if running.total >= shared.limits.max_handlers {
            return Err(Full::Server);
        }
        let held = running.per_client.entry(client).or_insert(0);
        if *held >= shared.limits.max_per_client {
            return Err(Full::Client);
        }
        *held += 1;
        running.total += 1;
        drop(running);
        Ok(Slot { shared, client })
    }

    fn open(&self) -> usize {
        lock(&self.running).total
    }

    /// Waits up to `bound` for every connection to finish; returns how many remain.
    fn wait_idle(&self, bound: Duration) -> usize {
        let deadline = Instant::now() + bound;
        let mut running = lock(&self.running);
        while running.total > 0 {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            running = match self.finished.wait_timeout(running, deadline - now) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
        running.total
    }
}

use crate::sync::lock;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_logged_in_a_bounded_line() {
        let long_method = Method::Other("X".repeat(8192));
        let line =
            request_line_for_log(&long_method, &format!("/{}?token=s", "p".repeat(9000)), 400);
        assert!(
            line.chars().count() < 240,
            "{} characters",
            line.chars().count()
        );
        assert!(
            line.starts_with(&format!("{}… /", "X".repeat(16))),
            "{line}"
        );
        assert!(!line.contains("token"));
        let plain = request_line_for_log(&Method::Get, "/healthz?token=s", 200);
        assert_eq!(plain, "GET /healthz 200");
        assert_eq!(printable("a\u{1b}b", 10), "a?b");
    }
}
