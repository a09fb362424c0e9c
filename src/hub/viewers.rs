//! A hub's viewers: their frame rate buckets, the sinks the hub writes to
//! directly, the queues their threads catch up from, and their places.

use super::Hub;
use crate::frame::Frame;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError, TrySendError};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Per-viewer frame rate bounds and default.
pub const MIN_FPS: u32 = 1;

pub const MAX_FPS: u32 = 30;

pub const DEFAULT_FPS: u32 = 10;

/// Clamps a requested frame rate to 1–30.
pub fn clamp_fps(fps: u32) -> u32 {
    fps.clamp(MIN_FPS, MAX_FPS)
}

/// Frames a viewer may be ahead by after a pause; absorbs jitter in the
/// camera's timing without letting a viewer exceed its fps on average.
pub(super) const FPS_BURST: f64 = 2.0;

/// Frames queued per viewer. A viewer that falls behind loses the oldest.
pub(super) const VIEWER_QUEUE: usize = 2;

/// Counters a viewer and the hub both update. Word-sized: 32-bit MIPS has
/// no 64-bit atomics, and one viewer will not see 4 billion frames.
#[derive(Default)]
pub(super) struct ViewerCounters {
    pub(super) out: AtomicUsize,
    pub(super) dropped: AtomicUsize,
}

impl ViewerCounters {
    pub(super) fn out(&self) -> u64 {
        self.out.load(Ordering::Relaxed) as u64
    }

    pub(super) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed) as u64
    }
}

/// What became of a frame the hub offered straight to a viewer's connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// All of it is on its way.
    Whole,
    /// Nothing: the connection is busy or full; the viewer misses this frame.
    Nothing,
    /// Only this many bytes of its encoding; the rest is the viewer's to send.
    Part(usize),
    /// The viewer is gone (hung up, or stalled past its limit).
    Gone,
}

/// A viewer's connection the hub may write frames to itself, so a viewer
/// that keeps up costs one non-blocking write per frame and no wake-up of
/// its own thread. Must never block.
pub trait Sink: Send + Sync {
    /// Writes the frame's part, or reports the viewer gone: also when it
    /// has hung up, which the first write after a hang-up would not show.
    fn try_send(&self, frame: &Frame) -> Sent;
    /// Whether the viewer has hung up, seen without blocking. Asked at each
    /// frame the viewer's fps skips, so its place is freed within one frame
    /// of the camera.
    fn hung_up(&self) -> bool;
    /// Tells the viewer's thread, which may be waiting on its connection
    /// rather than on its queue, that a frame was queued for it or that it
    /// was ended. Never blocks.
    fn wake(&self) {}
}

/// What the hub does with a frame for one viewer served directly.
pub(super) enum Offer {
    /// Write it: the viewer's fps allows it.
    Write(Arc<dyn Sink>),
    /// Skip it, but see whether the viewer is still there.
    Watch(Arc<dyn Sink>),
}

/// A frame for a viewer's thread to send, of which the hub may already
/// have sent the first `written` bytes (see `Sent::Part`).
#[derive(Debug, Clone)]
pub struct Delivery {
    pub frame: Frame,
    pub written: usize,
}

/// Which frames a subscription takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Taking {
    /// As many as its fps allows.
    Some,
    /// Every one, whatever its fps (a video viewer: an H.264 frame cannot
    /// be skipped without breaking those that follow).
    Every,
    /// Every one, for another hub's source that feeds on this one (an
    /// H.264 camera's MJPEG decoder): kept out of the viewer figures and
    /// of `stop_viewers`.
    Feed,
}

impl Viewer {
    /// Not a viewer but another hub's source.
    pub(super) fn feeds(&self) -> bool {
        self.taking == Taking::Feed
    }

    pub(super) fn wake(&self) {
        if let Some(sink) = &self.sink {
            sink.wake();
        }
    }
}

pub(super) struct Viewer {
    pub(super) id: u64,
    pub(super) fps: u32,
    pub(super) tx: Sender<Delivery>,
    /// The hub's own end of the queue, to drop the oldest frame when full.
    pub(super) rx: Receiver<Delivery>,
    /// Where the hub writes frames itself while `direct` holds: only while
    /// the queue is empty, so frames stay in order.
    pub(super) sink: Option<Arc<dyn Sink>>,
    pub(super) direct: bool,
    pub(super) taking: Taking,
    pub(super) tokens: f64,
    pub(super) last_offer: Instant,
    pub(super) since: Instant,
    pub(super) counters: Arc<ViewerCounters>,
}

impl Viewer {
    /// Takes `frame` if the viewer's fps allows it: says to write it to
    /// the sink when the viewer is served directly, else queues it,
    /// replacing the oldest queued frame when the viewer is behind. A
    /// direct viewer whose fps skips the frame is to be watched instead.
    /// Never blocks.
    pub(super) fn offer(&mut self, frame: &Frame, now: Instant) -> Option<Offer> {
        let elapsed = now.saturating_duration_since(self.last_offer).as_secs_f64();
        self.last_offer = now;
        self.tokens = (self.tokens + elapsed * f64::from(self.fps)).min(FPS_BURST);
        let sink = self.sink.as_ref().filter(|_| self.direct);
        if self.tokens < 1.0 && self.taking == Taking::Some {
            return sink.map(|s| Offer::Watch(s.clone()));
        }
        self.tokens -= 1.0;
        if let Some(sink) = sink {
            return Some(Offer::Write(sink.clone()));
        }
        let delivery = Delivery {
            frame: frame.clone(),
            written: 0,
        };
        if let Err(TrySendError::Full(delivery)) = self.tx.try_send(delivery) {
            if self.rx.try_recv().is_ok() {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
            let _ = self.tx.try_send(delivery);
        }
        self.wake();
        None
    }
}

/// A viewer's place in the hub. Dropping it leaves the hub.
pub struct Subscription {
    pub(super) hub: Hub,
    pub(super) id: u64,
    pub(super) rx: Receiver<Delivery>,
    pub(super) counters: Arc<ViewerCounters>,
}

impl Subscription {
    /// The next frame for this viewer's thread to send; `Disconnected` once
    /// the hub ended the stream. A viewer served directly gets only the
    /// frames the hub could not finish.
    pub fn recv(&self, timeout: Duration) -> std::result::Result<Delivery, RecvTimeoutError> {
        let delivery = self.rx.recv_timeout(timeout)?;
        self.counters.out.fetch_add(1, Ordering::Relaxed);
        Ok(delivery)
    }

    /// `recv` without waiting: `Empty` when nothing is queued.
    pub fn try_recv(&self) -> std::result::Result<Delivery, TryRecvError> {
        let delivery = self.rx.try_recv()?;
        self.counters.out.fetch_add(1, Ordering::Relaxed);
        Ok(delivery)
    }

    /// From now on (once the queue is empty) the hub writes frames to this
    /// viewer's sink itself. Call after each frame the thread sent.
    pub fn deliver_directly(&self) {
        if !self.rx.is_empty() {
            return;
        }
        self.hub.deliver_directly(self.id);
    }

    pub fn id(&self) -> u64 {
        self.id
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.unsubscribe(self.id);
    }
}
