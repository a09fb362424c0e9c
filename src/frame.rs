//! A JPEG frame as it travels from an upstream to every consumer.

use std::sync::Arc;
use std::time::Instant;

/// One complete JPEG (`FF D8 … FF D9`). Cloning shares the bytes: fan-out to
/// any number of viewers copies no image data.
#[derive(Clone, Debug)]
pub struct Frame {
    pub jpeg: Arc<[u8]>,
    /// Position in the hub's sequence, counting every frame the hub received.
    pub seq: u64,
    /// When the hub received it.
    pub received: Instant,
}

impl Frame {
    pub fn age_ms(&self) -> u128 {
        self.received.elapsed().as_millis()
    }
}
