//! The HTTP server: one accept loop, one small thread per connection and
//! one request per connection (`conn`, `request`). See `router` for the
//! paths, `handlers` and `stream` for the answers.

mod access;
mod body;
mod conn;
mod handlers;
mod nonblocking;
mod page;
pub mod printers;
mod reply;
// Public for the fuzz target of the head parser (fuzz/).
pub mod request;
mod router;
mod stream;
mod viewers;

use crate::cameras::Cameras;
use reply::Reply;
use request::{Method, Request};
use router::Route;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
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
    /// How long a client may take to send its request head (and again its
    /// body); one that is slower is closed, so idle connections cannot
    /// hold the server's places.
    pub head_timeout: Duration,
    /// How long a write to a client may block (a viewer that stopped
    /// reading is dropped after this).
    pub write_timeout: Duration,
    /// How long `shutdown` waits for request threads to finish.
    pub stop_wait: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body: 64 * 1024,
            max_handlers: 256,
            head_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            stop_wait: Duration::from_secs(5),
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
}

impl Server {
    /// Binds `listen` (e.g. `0.0.0.0:8080`, `127.0.0.1:0`) and starts serving
    /// in background threads. The error names the address and the cause.
    /// The write timeout comes from the cameras' settings.
    pub fn start(cameras: Arc<Cameras>, listen: &str) -> Result<Server, String> {
        let limits = Limits {
            write_timeout: cameras.settings().write_timeout,
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
        });
        let looping = shared.clone();
        let handle = thread::Builder::new()
            .name("http-accept".into())
            .spawn(move || conn::accept_loop(listener, looping))
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

fn warn_if_open(token: &Option<String>, addr: SocketAddr) {
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
    let send = |reply: Reply, request: &mut Request| {
        log_status(reply.status);
        access::with_cors(settings, reply).send(request);
    };
    if let Some(reply) = access::preflight(settings, &method) {
        return send(reply, request);
    }
    let route = router::route(&method, path);
    if let Err(reply) = access::check(settings, &route, request, query) {
        return send(reply, request);
    }
    match route {
        Ok(Route::Stream(id)) => stream::serve(
            &shared.cameras,
            &shared.viewers,
            id,
            query,
            request,
            &shared.stopping,
            log_status,
        ),
        Ok(route) => {
            let reply = handlers::handle(&shared.cameras, route, request);
            send(reply, request);
        }
        Err(reply) => send(reply, request),
    }
}

/// One line per request. Never the query string: it may carry a token.
fn log_request(method: &Method, target: &str, status: u16) {
    let (path, _) = router::split_target(target);
    let path: String = path
        .chars()
        .take(200)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    log::info!("{method} {path} {status}");
}

/// Counts running connection threads so shutdown can wait for them.
#[derive(Default)]
struct Handlers {
    running: Mutex<usize>,
    finished: Condvar,
}

/// A running connection's place; gives it back when dropped (also on panic).
struct Slot(Arc<Shared>);

impl Drop for Slot {
    fn drop(&mut self) {
        let h = &self.0.handlers;
        *lock(&h.running) -= 1;
        h.finished.notify_all();
    }
}

impl Handlers {
    fn enter(&self, shared: Arc<Shared>) -> Option<Slot> {
        let mut running = lock(&self.running);
        if *running >= shared.limits.max_handlers {
            return None;
        }
        *running += 1;
        drop(running);
        Some(Slot(shared))
    }

    /// Waits up to `bound` for every connection to finish; returns how many remain.
    fn wait_idle(&self, bound: Duration) -> usize {
        let deadline = Instant::now() + bound;
        let mut running = lock(&self.running);
        while *running > 0 {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            running = match self.finished.wait_timeout(running, deadline - now) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
        *running
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
