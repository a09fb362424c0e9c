//! The HTTP server. (STUB: being written; API fixed.)

use crate::cameras::Cameras;
use std::net::SocketAddr;
use std::sync::Arc;

/// A running server: one accept loop, one thread per request.
pub struct Server {}

impl Server {
    /// Binds `listen` (e.g. `0.0.0.0:8080`, `127.0.0.1:0`) and starts serving
    /// in background threads. The error names the address and the cause.
    pub fn start(_cameras: Arc<Cameras>, _listen: &str) -> Result<Server, String> {
        todo!()
    }

    /// The address actually bound (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        todo!()
    }

    /// Blocks until the server stops (after `shutdown` from another thread).
    pub fn wait(&self) {
        todo!()
    }

    /// Stops accepting, ends every stream, closes every upstream, and waits
    /// for the server's threads. Idempotent.
    pub fn shutdown(&self) {
        todo!()
    }
}
