//! One hub per camera: opens one upstream for any number of consumers, fans
//! frames out, keeps the latest for snapshots, and counts what happens.

use crate::error::{Error, Result};
use crate::frame::Frame;
use crate::orientation::Orientation;
use crate::source::{Source, SourceError, Upstream};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use crossbeam_channel::{RecvTimeoutError, TryRecvError};

/// Per-viewer frame rate bounds and default.
pub const MIN_FPS: u32 = 1;
pub const MAX_FPS: u32 = 30;
pub const DEFAULT_FPS: u32 = 10;

/// Clamps a requested frame rate to 1–30.
pub fn clamp_fps(fps: u32) -> u32 {
    fps.clamp(MIN_FPS, MAX_FPS)
}

#[derive(Debug, Clone)]
pub struct HubConfig {
    /// How long the upstream stays open after the last consumer leaves.
    pub grace: Duration,
    /// First wait before reconnecting after a failure; doubles up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// Written into every frame before fan-out; the identity costs nothing.
    pub orientation: Orientation,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            grace: Duration::from_secs(5),
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            orientation: Orientation::default(),
        }
    }
}

/// What the upstream is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamState {
    /// No connection, nobody asked for one.
    Idle,
    Connecting,
    /// Frames are arriving.
    Live,
    /// The last attempt failed; waiting before the next.
    Retrying,
    /// Gave up (a failure retrying cannot fix); the next consumer tries again.
    Failed,
}

impl UpstreamState {
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamState::Idle => "idle",
            UpstreamState::Connecting => "connecting",
            UpstreamState::Live => "live",
            UpstreamState::Retrying => "retrying",
            UpstreamState::Failed => "failed",
        }
    }
}

/// One viewer's figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewerStats {
    pub id: u64,
    pub fps: u32,
    pub frames_out: u64,
    pub frames_dropped: u64,
    pub connected_ms: u64,
}

/// The hub's figures, for `/camera/status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubStats {
    pub state: UpstreamState,
    pub viewers: usize,
    pub frames_in: u64,
    pub frames_out: u64,
    pub frames_dropped: u64,
    /// Frames the camera sent that were not usable JPEGs and were skipped.
    pub frames_skipped: u64,
    /// The TLS version of the last camera connection, for TLS cameras.
    pub tls_version: Option<&'static str>,
    pub last_frame_age_ms: Option<u64>,
    /// Upstream connections opened since the hub was made.
    pub connects: u64,
    /// Of those, the ones opened after a failure.
    pub reconnects: u64,
    pub last_error: Option<String>,
    pub viewer_stats: Vec<ViewerStats>,
}

/// Frames a viewer may be ahead by after a pause; absorbs jitter in the
/// camera's timing without letting a viewer exceed its fps on average.
const FPS_BURST: f64 = 2.0;
/// Frames queued per viewer. A viewer that falls behind loses the oldest.
const VIEWER_QUEUE: usize = 2;
/// A live camera's latest frame younger than this is a snapshot as it is.
const FRESH_FRAME: Duration = Duration::from_secs(5);
/// How long a one-shot capture waits for a second frame when the source's
/// first frame may be stale.
const WARMUP_WAIT: Duration = Duration::from_secs(2);
/// The frame rate asked of a source when only snapshots keep it open.
const IDLE_FPS: u32 = 2;

/// A handle to one camera's hub; clones share it.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    source: Arc<dyn Source>,
    config: HubConfig,
    state: Mutex<State>,
    /// Signalled on every frame, failure, consumer change and stop.
    changed: Condvar,
}

/// Counters a viewer and the hub both update. Word-sized: 32-bit MIPS has
/// no 64-bit atomics, and one viewer will not see 4 billion frames.
#[derive(Default)]
struct ViewerCounters {
    out: AtomicUsize,
    dropped: AtomicUsize,
}

impl ViewerCounters {
    fn out(&self) -> u64 {
        self.out.load(Ordering::Relaxed) as u64
    }

    fn dropped(&self) -> u64 {
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
enum Offer {
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

impl Viewer {
    fn wake(&self) {
        if let Some(sink) = &self.sink {
            sink.wake();
        }
    }
}

struct Viewer {
    id: u64,
    fps: u32,
    tx: Sender<Delivery>,
    /// The hub's own end of the queue, to drop the oldest frame when full.
    rx: Receiver<Delivery>,
    /// Where the hub writes frames itself while `direct` holds: only while
    /// the queue is empty, so frames stay in order.
    sink: Option<Arc<dyn Sink>>,
    direct: bool,
    /// Takes every frame, whatever its fps (H.264: a frame cannot be
    /// skipped without breaking those that follow).
    every_frame: bool,
    tokens: f64,
    last_offer: Instant,
    since: Instant,
    counters: Arc<ViewerCounters>,
}

impl Viewer {
    /// Takes `frame` if the viewer's fps allows it: says to write it to
    /// the sink when the viewer is served directly, else queues it,
    /// replacing the oldest queued frame when the viewer is behind. A
    /// direct viewer whose fps skips the frame is to be watched instead.
    /// Never blocks.
    fn offer(&mut self, frame: &Frame, now: Instant) -> Option<Offer> {
        let elapsed = now.saturating_duration_since(self.last_offer).as_secs_f64();
        self.last_offer = now;
        self.tokens = (self.tokens + elapsed * f64::from(self.fps)).min(FPS_BURST);
        let sink = self.sink.as_ref().filter(|_| self.direct);
        if self.tokens < 1.0 && !self.every_frame {
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

#[derive(Default)]
struct State {
    viewers: Vec<Viewer>,
    next_viewer_id: u64,
    /// Snapshot and test calls waiting for a frame.
    waiters: usize,
    /// When the last consumer left; the upstream closes `grace` later.
    idle_since: Option<Instant>,
    /// The generation of the current upstream thread; bumped at each start.
    gen: u64,
    /// True while the upstream of generation `gen` is wanted.
    running: bool,
    /// The newest upstream thread; the next one joins it before connecting,
    /// so two connections to one camera never overlap.
    thread: Option<JoinHandle<()>>,
    cancel: Option<Box<dyn Fn() + Send + Sync>>,
    upstream: Option<UpstreamState>,
    latest: Option<Frame>,
    seq: u64,
    /// Frames received on the current connection.
    conn_frames: u64,
    failures: u64,
    last_error: Option<String>,
    frames_in: u64,
    frames_skipped: u64,
    tls_version: Option<&'static str>,
    /// How far the current connection got (see `Upstream::reached`).
    reached: Option<String>,
    /// Counters of viewers that have left.
    departed_out: u64,
    departed_dropped: u64,
    connects: u64,
    reconnects: u64,
    shut_down: bool,
}

impl State {
    fn consumers(&self) -> usize {
        self.viewers.len() + self.waiters
    }

    fn is_current(&self, gen: u64) -> bool {
        self.running && self.gen == gen
    }

    fn remove_viewer(&mut self, id: u64) {
        if let Some(pos) = self.viewers.iter().position(|v| v.id == id) {
            let v = self.viewers.swap_remove(pos);
            self.departed_out += v.counters.out();
            self.departed_dropped += v.counters.dropped();
            // Its queue ends here (with `v`); a thread waiting on its
            // connection must hear of it.
            let sink = v.sink.clone();
            drop(v);
            if let Some(sink) = sink {
                sink.wake();
            }
        }
    }

    fn remove_all_viewers(&mut self) -> usize {
        let ids: Vec<u64> = self.viewers.iter().map(|v| v.id).collect();
        for id in &ids {
            self.remove_viewer(*id);
        }
        ids.len()
    }

    fn note_consumer_left(&mut self) {
        if self.consumers() == 0 {
            self.idle_since = Some(Instant::now());
        }
    }

    /// Ends the current upstream; returns its canceller to call once the
    /// lock is released.
    fn stop_upstream(&mut self) -> Option<Box<dyn Fn() + Send + Sync>> {
        self.running = false;
        self.upstream = Some(UpstreamState::Idle);
        self.cancel.take()
    }

    fn wanted_fps(&self) -> u32 {
        self.viewers.iter().map(|v| v.fps).max().unwrap_or(IDLE_FPS)
    }
}

impl Hub {
    pub fn new(name: String, source: Arc<dyn Source>, config: HubConfig) -> Hub {
        Hub {
            inner: Arc::new(Inner {
                name,
                source,
                config,
                state: Mutex::new(State::default()),
                changed: Condvar::new(),
            }),
        }
    }

    /// A new viewer at `fps` (clamped). The upstream starts if it is not running.
    pub fn subscribe(&self, fps: u32) -> Subscription {
        self.subscribe_with(fps, None, false)
    }

    /// A new viewer whose connection the hub may write to itself once the
    /// viewer calls `Subscription::deliver_directly`.
    pub fn subscribe_direct(&self, fps: u32, sink: Arc<dyn Sink>) -> Subscription {
        self.subscribe_with(fps, Some(sink), false)
    }

    /// A direct viewer offered every frame the camera sends, as a video
    /// stream needs; what it misses it sees as a gap in `Frame::seq`.
    pub fn subscribe_every_frame(&self, sink: Arc<dyn Sink>) -> Subscription {
        self.subscribe_with(MAX_FPS, Some(sink), true)
    }

    fn subscribe_with(
        &self,
        fps: u32,
        sink: Option<Arc<dyn Sink>>,
        every_frame: bool,
    ) -> Subscription {
        let (tx, rx) = crossbeam_channel::bounded(VIEWER_QUEUE);
        let counters = Arc::new(ViewerCounters::default());
        let now = Instant::now();
        let mut st = self.inner.lock();
        st.next_viewer_id += 1;
        let id = st.next_viewer_id;
        if !st.shut_down {
            st.viewers.push(Viewer {
                id,
                fps: clamp_fps(fps),
                tx,
                rx: rx.clone(),
                sink,
                direct: false,
                every_frame,
                tokens: FPS_BURST,
                last_offer: now,
                since: now,
                counters: counters.clone(),
            });
            self.inner.ensure_running(&mut st);
        }
        drop(st);
        self.inner.changed.notify_all();
        Subscription {
            hub: self.clone(),
            id,
            rx,
            counters,
        }
    }

    /// The latest frame if the camera is live, else starts the upstream and
    /// waits up to `timeout` for a good frame. Concurrent callers share one
    /// capture. Fails with the reason when no frame comes.
    pub fn snapshot(&self, timeout: Duration) -> Result<Frame> {
        let mut st = self.inner.lock();
        if st.shut_down {
            return Err(Error::Unavailable("printcam is shutting down".into()));
        }
        if let Some(frame) = fresh_frame(&st) {
            return Ok(frame);
        }
        st.waiters += 1;
        st.idle_since = None;
        self.inner.ensure_running(&mut st);
        let (st, result) = self.inner.wait_for_frame(st, timeout);
        let mut st = st;
        st.waiters -= 1;
        st.note_consumer_left();
        drop(st);
        self.inner.changed.notify_all();
        result
    }

    /// Ends every viewer's stream; returns how many were ended. An upstream
    /// kept only for them closes now rather than after the grace period.
    pub fn stop_viewers(&self) -> usize {
        let mut st = self.inner.lock();
        let ended = st.remove_all_viewers();
        let cancel = if st.consumers() == 0 && st.running {
            st.stop_upstream()
        } else {
            None
        };
        drop(st);
        self.inner.changed.notify_all();
        if let Some(cancel) = cancel {
            cancel();
        }
        ended
    }

    /// Ends all viewers and closes the upstream, waiting for its thread.
    pub fn shutdown(&self) {
        let mut st = self.inner.lock();
        st.shut_down = true;
        st.remove_all_viewers();
        let cancel = st.stop_upstream();
        let thread = st.thread.take();
        drop(st);
        self.inner.changed.notify_all();
        if let Some(cancel) = cancel {
            cancel();
        }
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }

    pub fn stats(&self) -> HubStats {
        let st = self.inner.lock();
        let viewer_stats: Vec<ViewerStats> = st
            .viewers
            .iter()
            .map(|v| ViewerStats {
                id: v.id,
                fps: v.fps,
                frames_out: v.counters.out(),
                frames_dropped: v.counters.dropped(),
                connected_ms: millis(v.since.elapsed()),
            })
            .collect();
        HubStats {
            state: st.upstream.unwrap_or(UpstreamState::Idle),
            viewers: st.viewers.len(),
            frames_in: st.frames_in,
            frames_out: st.departed_out + viewer_stats.iter().map(|v| v.frames_out).sum::<u64>(),
            frames_dropped: st.departed_dropped
                + viewer_stats.iter().map(|v| v.frames_dropped).sum::<u64>(),
            frames_skipped: st.frames_skipped,
            tls_version: st.tls_version,
            last_frame_age_ms: st.latest.as_ref().map(|f| millis(f.received.elapsed())),
            connects: st.connects,
            reconnects: st.reconnects,
            last_error: st.last_error.clone(),
            viewer_stats,
        }
    }

    /// The camera's name as the hub logs it.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Lets the hub write to viewer `id`'s sink once its queue is empty.
    fn deliver_directly(&self, id: u64) {
        let mut st = self.inner.lock();
        if let Some(v) = st.viewers.iter_mut().find(|v| v.id == id) {
            v.direct = v.sink.is_some() && v.rx.is_empty();
        }
    }

    fn unsubscribe(&self, id: u64) {
        let mut st = self.inner.lock();
        st.remove_viewer(id);
        st.note_consumer_left();
        drop(st);
        self.inner.changed.notify_all();
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The latest frame if it can be served as a snapshot without waiting.
fn fresh_frame(st: &State) -> Option<Frame> {
    let frame = st.latest.as_ref()?;
    let live = st.running && st.upstream == Some(UpstreamState::Live);
    (live && frame.received.elapsed() <= FRESH_FRAME).then(|| frame.clone())
}

impl Inner {
    /// The viewer's thread sends the rest of a frame the hub began, and
    /// every frame after it until its queue is empty again.
    fn hand_back(&self, id: u64, frame: Frame, written: usize) {
        let mut st = self.lock();
        if let Some(v) = st.viewers.iter_mut().find(|v| v.id == id) {
            v.direct = false;
            // Cannot be full: nothing is queued while the hub writes directly.
            let _ = v.tx.try_send(Delivery { frame, written });
            v.wake();
        }
    }

    /// Ends a viewer whose sink reported it gone; its thread sees the end
    /// of its queue.
    fn drop_viewer(&self, id: u64) {
        let mut st = self.lock();
        st.remove_viewer(id);
        st.note_consumer_left();
        drop(st);
        self.changed.notify_all();
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves counters at worst slightly
        // off; serving on beats taking every viewer of this camera down.
        crate::sync::lock(&self.state)
    }

    fn wait<'a>(&self, st: MutexGuard<'a, State>, d: Duration) -> MutexGuard<'a, State> {
        match self.changed.wait_timeout(st, d) {
            Ok((st, _)) => st,
            Err(e) => e.into_inner().0,
        }
    }

    /// Starts an upstream thread unless one is wanted already.
    fn ensure_running(self: &Arc<Self>, st: &mut State) {
        if st.running || st.shut_down {
            return;
        }
        st.gen += 1;
        st.running = true;
        st.idle_since = None;
        st.upstream = Some(UpstreamState::Connecting);
        let gen = st.gen;
        let previous = st.thread.take();
        let inner = self.clone();
        let spawned =
            crate::sync::spawn(format!("up-{}", self.name), Some(256 * 1024), move || {
                if let Some(previous) = previous {
                    let _ = previous.join();
                }
                inner.run_upstream(gen);
            });
        match spawned {
            Ok(handle) => st.thread = Some(handle),
            Err(e) => {
                st.running = false;
                st.upstream = Some(UpstreamState::Failed);
                st.failures += 1;
                st.last_error = Some(format!("could not start the upstream thread: {e}"));
            }
        }
    }

    /// True when the upstream of `gen` should close: told to, or the grace
    /// period after the last consumer has run out (then marks it closed).
    fn should_stop(&self, st: &mut State, gen: u64) -> bool {
        if !st.is_current(gen) {
            return true;
        }
        let idle_over = st.consumers() == 0
            && st
                .idle_since
                .is_none_or(|t| t.elapsed() >= self.config.grace);
        if idle_over {
            log::info!(
                "{}: no consumers for the grace period, closing upstream",
                self.name
            );
            st.stop_upstream();
        }
        idle_over
    }

    /// One upstream thread: connect, deliver, reconnect with backoff while
    /// someone is watching.
    fn run_upstream(self: Arc<Self>, gen: u64) {
        let mut backoff = self.config.backoff;
        let mut attempt = 0u64;
        loop {
            {
                let mut st = self.lock();
                if self.should_stop(&mut st, gen) {
                    break;
                }
                st.upstream = Some(UpstreamState::Connecting);
                st.connects += 1;
                if attempt > 0 {
                    st.reconnects += 1;
                }
                st.conn_frames = 0;
                st.reached = None;
            }
            attempt += 1;
            log::debug!("{}: connecting to {}", self.name, self.source.describe());
            let ctx = Ctx {
                inner: self.clone(),
                gen,
            };
            let result = catch_unwind(AssertUnwindSafe(|| self.source.run(&ctx)))
                .unwrap_or_else(|_| Err(SourceError::transient("the camera reader crashed")));
            let mut st = self.lock();
            st.cancel = None;
            if !st.is_current(gen) {
                break;
            }
            let err = match result {
                Ok(()) if self.should_stop(&mut st, gen) => break,
                Ok(()) => SourceError::transient("the camera ended the stream"),
                Err(e) => e,
            };
            log::warn!("{}: {}", self.name, err.message);
            st.failures += 1;
            st.last_error = Some(err.message.clone());
            self.changed.notify_all();
            if !err.retry {
                st.remove_all_viewers();
                st.running = false;
                st.upstream = Some(UpstreamState::Failed);
                break;
            }
            if st.consumers() == 0 {
                st.stop_upstream();
                break;
            }
            if st.conn_frames > 0 {
                backoff = self.config.backoff;
            }
            st.upstream = Some(UpstreamState::Retrying);
            let st = self.backoff_wait(st, gen, jittered(backoff));
            drop(st);
            backoff = (backoff * 2).min(self.config.max_backoff);
        }
        self.changed.notify_all();
    }

    /// Waits before a reconnect; ends early when stopped or nobody watches.
    fn backoff_wait<'a>(
        &self,
        mut st: MutexGuard<'a, State>,
        gen: u64,
        d: Duration,
    ) -> MutexGuard<'a, State> {
        let deadline = Instant::now() + d;
        loop {
            if !st.is_current(gen) {
                return st;
            }
            if st.consumers() == 0 {
                st.stop_upstream();
                return st;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return st;
            }
            st = self.wait(st, left);
        }
    }

    /// Waits for a frame newer than the call (the second of a fresh
    /// connection for sources with a stale first frame), a failure, or the
    /// timeout.
    fn wait_for_frame<'a>(
        &self,
        mut st: MutexGuard<'a, State>,
        timeout: Duration,
    ) -> (MutexGuard<'a, State>, Result<Frame>) {
        let deadline = Instant::now() + timeout;
        let start_seq = st.seq;
        let start_failures = st.failures;
        let skip_first = self.source.warmup_frame();
        let mut first_seen: Option<Instant> = None;
        loop {
            if st.shut_down {
                return (
                    st,
                    Err(Error::Unavailable("printcam is shutting down".into())),
                );
            }
            if st.seq > start_seq {
                if let Some(frame) = st.latest.clone() {
                    let first_of_connection = st.conn_frames == 1;
                    let waited_enough = first_seen.is_some_and(|t| t.elapsed() >= WARMUP_WAIT);
                    if !(skip_first && first_of_connection) || waited_enough {
                        return (st, Ok(frame));
                    }
                    first_seen.get_or_insert_with(Instant::now);
                }
            }
            if st.failures > start_failures {
                let why = st.last_error.clone().unwrap_or_default();
                return (
                    st,
                    Err(Error::Unavailable(format!("camera unavailable: {why}"))),
                );
            }
            let now = Instant::now();
            if now >= deadline {
                if let (Some(_), Some(frame)) = (first_seen, st.latest.clone()) {
                    return (st, Ok(frame));
                }
                let msg = no_frame_message(&st, timeout);
                return (st, Err(Error::Unavailable(msg)));
            }
            let mut wake = deadline;
            if let Some(t) = first_seen {
                wake = wake.min(t + WARMUP_WAIT);
            }
            st = self.wait(st, wake.saturating_duration_since(now));
        }
    }
}

fn no_frame_message(st: &State, timeout: Duration) -> String {
    let mut msg = format!(
        "no frame from the camera within {} s",
        timeout.as_secs_f32()
    );
    match (&st.reached, &st.last_error) {
        // The camera answered but sent no picture: say how far it got.
        (Some(step), _) if st.conn_frames == 0 => {
            msg.push_str(&format!(": {step}, then nothing"));
        }
        (_, Some(e)) => msg.push_str(&format!(" (last error: {e})")),
        (None, None) => msg.push_str(": the camera was not reached yet"),
        _ => {}
    }
    msg
}

/// `d` plus up to a quarter more, so cameras that failed together do not
/// all reconnect in the same instant.
fn jittered(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or(0);
    let quarter = d.as_millis() as u64 / 4;
    if quarter == 0 {
        return d;
    }
    d + Duration::from_millis(u64::from(nanos) % quarter)
}

/// What a running source sees of the hub: one per connection attempt.
struct Ctx {
    inner: Arc<Inner>,
    gen: u64,
}

impl Upstream for Ctx {
    fn emit(&self, mut jpeg: Vec<u8>) -> bool {
        let orientation = self.inner.config.orientation;
        if !orientation.is_identity() {
            crate::media::exif::set_orientation(&mut jpeg, orientation);
        }
        let now = Instant::now();
        let mut frame = Frame {
            jpeg: Arc::from(jpeg),
            seq: 0,
            received: now,
        };
        let mut st = self.inner.lock();
        if !st.is_current(self.gen) {
            return false;
        }
        st.seq += 1;
        frame.seq = st.seq;
        st.conn_frames += 1;
        st.frames_in += 1;
        st.upstream = Some(UpstreamState::Live);
        let mut direct: Vec<_> = st
            .viewers
            .iter_mut()
            .filter_map(|v| Some((v.id, v.offer(&frame, now)?, v.counters.clone())))
            .collect();
        // The writes are one after another: take turns at being first, so
        // no viewer is always served last.
        if !direct.is_empty() {
            let turn = (frame.seq % direct.len() as u64) as usize;
            direct.rotate_left(turn);
        }
        st.latest = Some(frame.clone());
        let keep_going = !self.inner.should_stop(&mut st, self.gen);
        drop(st);
        self.inner.changed.notify_all();
        // Outside the lock: snapshots and new viewers need not wait for
        // the writes. Only this thread writes to sinks, one frame at a time.
        for (id, offer, counters) in direct {
            let sink = match offer {
                Offer::Write(sink) => sink,
                Offer::Watch(sink) => {
                    if sink.hung_up() {
                        self.inner.drop_viewer(id);
                    }
                    continue;
                }
            };
            match sink.try_send(&frame) {
                Sent::Whole => {
                    counters.out.fetch_add(1, Ordering::Relaxed);
                }
                Sent::Nothing => {
                    counters.dropped.fetch_add(1, Ordering::Relaxed);
                }
                Sent::Part(written) => self.inner.hand_back(id, frame.clone(), written),
                Sent::Gone => self.inner.drop_viewer(id),
            }
        }
        keep_going
    }

    fn stopping(&self) -> bool {
        let mut st = self.inner.lock();
        self.inner.should_stop(&mut st, self.gen)
    }

    fn sleep(&self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        let mut st = self.inner.lock();
        loop {
            if self.inner.should_stop(&mut st, self.gen) {
                return false;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            st = self.inner.wait(st, left);
        }
    }

    fn wanted_fps(&self) -> u32 {
        self.inner.lock().wanted_fps()
    }

    fn on_cancel(&self, cancel: Box<dyn Fn() + Send + Sync>) {
        let mut st = self.inner.lock();
        if st.is_current(self.gen) {
            st.cancel = Some(cancel);
        } else {
            drop(st);
            cancel();
        }
    }

    fn skipped_frame(&self) {
        self.inner.lock().frames_skipped += 1;
    }

    fn tls_version(&self, version: &'static str) {
        self.inner.lock().tls_version = Some(version);
    }

    fn reached(&self, step: String) {
        let mut st = self.inner.lock();
        if st.is_current(self.gen) {
            st.reached = Some(step);
        }
    }
}

/// A viewer's place in the hub. Dropping it leaves the hub.
pub struct Subscription {
    hub: Hub,
    id: u64,
    rx: Receiver<Delivery>,
    counters: Arc<ViewerCounters>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize};

    /// A camera that emits numbered frames every `interval`, optionally
    /// failing after `fail_after` frames, and records how many of its
    /// connections are open at once.
    struct TestSource {
        interval: Duration,
        fail_after: Option<u64>,
        fatal: bool,
        warmup: bool,
        active: AtomicUsize,
        max_active: AtomicUsize,
        runs: AtomicUsize,
    }

    impl TestSource {
        fn new(interval_ms: u64) -> TestSource {
            TestSource {
                interval: Duration::from_millis(interval_ms),
                fail_after: None,
                fatal: false,
                warmup: false,
                active: AtomicUsize::new(0),
                max_active: AtomicUsize::new(0),
                runs: AtomicUsize::new(0),
            }
        }
    }

    impl Source for TestSource {
        fn describe(&self) -> String {
            "test source".into()
        }

        fn warmup_frame(&self) -> bool {
            self.warmup
        }

        fn run(&self, up: &dyn Upstream) -> std::result::Result<(), SourceError> {
            let run = self.runs.fetch_add(1, Ordering::SeqCst) as u8;
            let now_active = self.active.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_active.fetch_max(now_active, Ordering::SeqCst);
            let result = (|| {
                if self.fatal {
                    return Err(SourceError::fatal("no such program"));
                }
                for i in 0u64.. {
                    if self.fail_after == Some(i) {
                        return Err(SourceError::transient("camera went away"));
                    }
                    if !up.emit(vec![0xFF, 0xD8, run, i as u8, 0xFF, 0xD9]) {
                        return Ok(());
                    }
                    if !up.sleep(self.interval) {
                        return Ok(());
                    }
                }
                Ok(())
            })();
            // Linger a little, like a real socket closing, to widen any
            // window in which two connections could overlap.
            std::thread::sleep(Duration::from_millis(5));
            self.active.fetch_sub(1, Ordering::SeqCst);
            result
        }
    }

    fn hub(source: &Arc<TestSource>, grace_ms: u64) -> Hub {
        let config = HubConfig {
            grace: Duration::from_millis(grace_ms),
            backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(100),
            ..HubConfig::default()
        };
        Hub::new("test".into(), source.clone(), config)
    }

    /// Polls `cond` for up to 5 s.
    fn eventually(what: &str, cond: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    const RECV: Duration = Duration::from_secs(5);

    #[test]
    fn many_consumers_share_one_upstream() {
        let source = Arc::new(TestSource::new(5));
        let hub = hub(&source, 100);
        let viewers: Vec<_> = (0..5).map(|_| hub.subscribe(30)).collect();
        for v in &viewers {
            v.recv(RECV).unwrap();
        }
        for _ in 0..5 {
            assert!(looks_like_frame(&hub.snapshot(RECV).unwrap()));
        }
        assert_eq!(source.runs.load(Ordering::SeqCst), 1);
        assert_eq!(source.max_active.load(Ordering::SeqCst), 1);
        assert_eq!(hub.stats().viewers, 5);
        drop(viewers);
        hub.shutdown();
        assert_eq!(source.active.load(Ordering::SeqCst), 0);
    }

    fn looks_like_frame(f: &Frame) -> bool {
        f.jpeg.starts_with(&[0xFF, 0xD8]) && f.jpeg.ends_with(&[0xFF, 0xD9])
    }

    #[test]
    fn upstream_closes_after_grace_and_reopens_without_overlap() {
        let source = Arc::new(TestSource::new(5));
        let hub = hub(&source, 50);
        for round in 1..=3 {
            let v = hub.subscribe(30);
            v.recv(RECV).unwrap();
            drop(v);
            eventually("upstream to close", || {
                source.active.load(Ordering::SeqCst) == 0
                    && hub.stats().state == UpstreamState::Idle
            });
            assert_eq!(source.runs.load(Ordering::SeqCst), round);
        }
        // Rapid leave/join inside and around the grace period.
        for _ in 0..50 {
            let v = hub.subscribe(30);
            let _ = v.recv(Duration::from_millis(50));
        }
        hub.shutdown();
        assert_eq!(source.max_active.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_viewer_that_never_reads_does_not_hold_up_others() {
        let source = Arc::new(TestSource::new(2));
        let hub = hub(&source, 0);
        let stalled = hub.subscribe(30);
        let reader = hub.subscribe(30);
        let mut last = 0;
        for _ in 0..40 {
            let f = reader.recv(RECV).unwrap().frame;
            assert!(f.seq > last);
            last = f.seq;
        }
        assert!(stalled.rx.len() <= VIEWER_QUEUE);
        let stats = hub.stats();
        let s = stats
            .viewer_stats
            .iter()
            .find(|v| v.id == stalled.id())
            .unwrap();
        assert!(s.frames_dropped > 0, "{stats:?}");
        // What the stalled viewer finds queued is recent, not the first frames.
        let f = stalled.recv(RECV).unwrap().frame;
        assert!(f.seq > 2, "seq {}", f.seq);
        hub.shutdown();
    }

    #[test]
    fn stop_ends_streams_and_closes_the_upstream() {
        let source = Arc::new(TestSource::new(5));
        let hub = hub(&source, 60_000);
        let a = hub.subscribe(10);
        let b = hub.subscribe(10);
        a.recv(RECV).unwrap();
        assert_eq!(hub.stop_viewers(), 2);
        for v in [&a, &b] {
            let end = Instant::now() + RECV;
            loop {
                match v.recv(RECV) {
                    Ok(_) => assert!(Instant::now() < end),
                    Err(e) => {
                        assert_eq!(e, RecvTimeoutError::Disconnected);
                        break;
                    }
                }
            }
        }
        eventually("upstream to close", || {
            source.active.load(Ordering::SeqCst) == 0
        });
        assert_eq!(hub.stop_viewers(), 0);
        hub.shutdown();
    }

    #[test]
    fn viewers_resume_after_the_upstream_fails() {
        let mut s = TestSource::new(2);
        s.fail_after = Some(3);
        let source = Arc::new(s);
        let hub = hub(&source, 0);
        let v = hub.subscribe(30);
        let mut runs_seen = std::collections::BTreeSet::new();
        while runs_seen.len() < 3 {
            let f = v.recv(RECV).unwrap().frame;
            runs_seen.insert(f.jpeg[2]);
        }
        let stats = hub.stats();
        assert!(stats.reconnects >= 2, "{stats:?}");
        assert_eq!(stats.last_error.as_deref(), Some("camera went away"));
        hub.shutdown();
        assert_eq!(source.max_active.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_fatal_failure_ends_streams_and_fails_snapshots() {
        let mut s = TestSource::new(5);
        s.fatal = true;
        let source = Arc::new(s);
        let hub = hub(&source, 0);
        let v = hub.subscribe(10);
        assert_eq!(v.recv(RECV).unwrap_err(), RecvTimeoutError::Disconnected);
        let err = hub.snapshot(RECV).unwrap_err();
        assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
        assert!(err.message().contains("no such program"), "{err}");
        assert_eq!(hub.stats().state, UpstreamState::Failed);
        // Each consumer tries once; nothing retries in the background.
        let runs = source.runs.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(source.runs.load(Ordering::SeqCst), runs);
        hub.shutdown();
    }

    #[test]
    fn snapshot_of_a_silent_camera_times_out_with_a_reason() {
        let source = Arc::new(TestSource::new(60_000));
        let hub = hub(&source, 0);
        // The first frame comes at once; a second never does.
        hub.snapshot(RECV).unwrap();
        hub.shutdown();
        let mut s = TestSource::new(5);
        s.fail_after = Some(0);
        let hub2 = hub_with(Arc::new(s));
        let err = hub2.snapshot(RECV).unwrap_err();
        assert!(err.message().contains("camera went away"), "{err}");
        hub2.shutdown();
    }

    fn hub_with(source: Arc<TestSource>) -> Hub {
        hub(&source, 0)
    }

    #[test]
    fn cold_snapshot_skips_a_warmup_frame() {
        let mut s = TestSource::new(5);
        s.warmup = true;
        let source = Arc::new(s);
        let hub = hub(&source, 1000);
        let f = hub.snapshot(RECV).unwrap();
        assert_eq!(f.jpeg[3], 1, "expected the second frame of the connection");
        // Live now: the next snapshot is the latest frame, no new connection.
        hub.snapshot(RECV).unwrap();
        assert_eq!(source.runs.load(Ordering::SeqCst), 1);
        hub.shutdown();
    }

    #[test]
    fn warmup_falls_back_to_the_first_frame() {
        let mut s = TestSource::new(60_000);
        s.warmup = true;
        let hub = hub_with(Arc::new(s));
        let f = hub.snapshot(Duration::from_secs(10)).unwrap();
        assert_eq!(f.jpeg[3], 0);
        hub.shutdown();
    }

    /// A sink that answers from a script (then `Whole` forever) and
    /// records the sequence numbers it was offered.
    #[derive(Default)]
    struct ScriptedSink {
        script: Mutex<Vec<Sent>>,
        offered: Mutex<Vec<u64>>,
        /// Set when the "viewer" hangs up; counts the checks after that.
        gone: AtomicBool,
        watched: AtomicUsize,
    }

    impl ScriptedSink {
        fn new(script: &[Sent]) -> Arc<ScriptedSink> {
            let mut script = script.to_vec();
            script.reverse();
            Arc::new(ScriptedSink {
                script: Mutex::new(script),
                ..ScriptedSink::default()
            })
        }

        fn offered(&self) -> Vec<u64> {
            self.offered.lock().unwrap().clone()
        }
    }

    impl Sink for ScriptedSink {
        fn try_send(&self, frame: &Frame) -> Sent {
            self.offered.lock().unwrap().push(frame.seq);
            if self.gone.load(Ordering::SeqCst) {
                return Sent::Gone;
            }
            self.script.lock().unwrap().pop().unwrap_or(Sent::Whole)
        }

        fn hung_up(&self) -> bool {
            self.watched.fetch_add(1, Ordering::SeqCst);
            self.gone.load(Ordering::SeqCst)
        }
    }

    /// Empties the viewer's queue and hands writing to the hub, until the
    /// hub has offered the sink a frame.
    fn go_direct(v: &Subscription, sink: &ScriptedSink) {
        go_direct_after(v, sink, 0);
    }

    /// Like `go_direct`, for a sink already offered `before` frames.
    fn go_direct_after(v: &Subscription, sink: &ScriptedSink, before: usize) {
        eventually("the hub writing to the sink", || {
            if sink.offered().len() > before {
                return true;
            }
            while v.recv(Duration::ZERO).is_ok() {}
            v.deliver_directly();
            std::thread::sleep(Duration::from_millis(1));
            false
        });
    }

    fn frames_out(hub: &Hub) -> u64 {
        hub.stats().frames_out
    }

    #[test]
    fn a_direct_viewer_is_written_by_the_hub_once_it_asks() {
        let source = Arc::new(TestSource::new(5));
        let hub = hub(&source, 0);
        let sink = ScriptedSink::new(&[]);
        let v = hub.subscribe_direct(30, sink.clone());
        // Until the viewer has written its response head, frames queue.
        let first = v.recv(RECV).unwrap();
        assert_eq!(first.written, 0);
        assert!(sink.offered().is_empty());
        go_direct(&v, &sink);
        eventually("frames written by the hub", || sink.offered().len() >= 5);
        assert_eq!(
            v.recv(Duration::from_millis(50)).unwrap_err(),
            RecvTimeoutError::Timeout
        );
        let seqs = sink.offered();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
        eventually("direct frames counted", || frames_out(&hub) >= 6);
        hub.shutdown();
    }

    #[test]
    fn a_partly_written_frame_goes_back_to_the_viewer_in_order() {
        let source = Arc::new(TestSource::new(5));
        let hub = hub(&source, 0);
        let sink = ScriptedSink::new(&[Sent::Whole, Sent::Part(7)]);
        let v = hub.subscribe_direct(30, sink.clone());
        v.recv(RECV).unwrap();
        go_direct(&v, &sink);
        let rest = v.recv(RECV).unwrap();
        assert_eq!(rest.written, 7);
        let offered = sink.offered();
        assert_eq!(offered.len(), 2, "{offered:?}");
        assert_eq!(rest.frame.seq, offered[1]);
        // Later frames queue for the viewer's thread, which is now behind.
        let next = v.recv(RECV).unwrap();
        assert_eq!(next.written, 0);
        assert!(next.frame.seq > rest.frame.seq);
        assert_eq!(sink.offered().len(), 2);
        // Caught up, it hands writing back to the hub.
        go_direct_after(&v, &sink, 2);
        hub.shutdown();
    }

    #[test]
    fn a_frame_the_sink_cannot_take_is_counted_dropped() {
        let source = Arc::new(TestSource::new(5));
        let hub = hub(&source, 0);
        let sink = ScriptedSink::new(&[Sent::Nothing, Sent::Nothing]);
        let v = hub.subscribe_direct(30, sink.clone());
        v.recv(RECV).unwrap();
        go_direct(&v, &sink);
        eventually("two drops", || hub.stats().frames_dropped >= 2);
        assert_eq!(
            v.recv(Duration::from_millis(50)).unwrap_err(),
            RecvTimeoutError::Timeout
        );
        hub.shutdown();
    }

    #[test]
    fn a_gone_sink_ends_the_viewer_and_lets_the_upstream_close() {
        let source = Arc::new(TestSource::new(5));
        let hub = hub(&source, 0);
        let sink = ScriptedSink::new(&[Sent::Gone]);
        let v = hub.subscribe_direct(30, sink.clone());
        v.recv(RECV).unwrap();
        go_direct(&v, &sink);
        let deadline = Instant::now() + RECV;
        loop {
            match v.recv(RECV) {
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!("the viewer was not ended"),
                Ok(_) => assert!(Instant::now() < deadline, "the viewer was not ended"),
            }
        }
        assert_eq!(hub.stats().viewers, 0);
        eventually("the upstream closes", || {
            source.active.load(Ordering::SeqCst) == 0
        });
        drop(v);
        hub.shutdown();
    }

    /// A camera that emits a frame each time the test says so.
    struct SteppedSource {
        step: Mutex<u64>,
        stepped: Condvar,
    }

    impl SteppedSource {
        fn new() -> Arc<SteppedSource> {
            Arc::new(SteppedSource {
                step: Mutex::new(0),
                stepped: Condvar::new(),
            })
        }

        /// Lets one more frame out.
        fn step(&self) {
            *self.step.lock().unwrap() += 1;
            self.stepped.notify_all();
        }
    }

    impl Source for SteppedSource {
        fn describe(&self) -> String {
            "stepped source".into()
        }

        fn run(&self, up: &dyn Upstream) -> std::result::Result<(), SourceError> {
            let mut sent = 0u64;
            while !up.stopping() {
                let allowed = *self.step.lock().unwrap();
                if sent < allowed {
                    sent += 1;
                    if !up.emit(vec![0xFF, 0xD8, sent as u8, 0xFF, 0xD9]) {
                        break;
                    }
                    continue;
                }
                let st = self.step.lock().unwrap();
                if *st == allowed {
                    let _ = self.stepped.wait_timeout(st, Duration::from_millis(20));
                }
            }
            Ok(())
        }
    }

    /// Steps the camera until it has emitted `n` frames in all.
    fn emit_until(hub: &Hub, source: &SteppedSource, n: u64) {
        while hub.stats().frames_in < n {
            if *source.step.lock().unwrap() < n {
                source.step();
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_viewer_that_hung_up_leaves_at_the_next_frame_even_one_its_fps_skips() {
        let source = SteppedSource::new();
        let hub = Hub::new("test".into(), source.clone(), HubConfig::default());
        let sink = ScriptedSink::new(&[]);
        // 1 fps: of frames a few milliseconds apart only the first is due.
        let v = hub.subscribe_direct(1, sink.clone());
        emit_until(&hub, &source, 1);
        v.recv(RECV).unwrap();
        v.deliver_directly();
        emit_until(&hub, &source, 2);
        assert_eq!(hub.stats().viewers, 1);
        sink.gone.store(true, Ordering::SeqCst);
        let watched = sink.watched.load(Ordering::SeqCst);
        // One frame after the hang-up, the viewer is gone: counted in
        // frames, not in time.
        emit_until(&hub, &source, 3);
        assert_eq!(hub.stats().viewers, 0);
        assert_eq!(sink.watched.load(Ordering::SeqCst), watched + 1);
        assert_eq!(v.recv(RECV).unwrap_err(), RecvTimeoutError::Disconnected);
        drop(v);
        hub.shutdown();
    }

    #[test]
    fn fps_cap_is_a_token_bucket() {
        let (tx, rx) = crossbeam_channel::bounded(VIEWER_QUEUE);
        let start = Instant::now();
        let mut v = Viewer {
            id: 1,
            fps: 10,
            tx,
            rx: rx.clone(),
            sink: None,
            direct: false,
            every_frame: false,
            tokens: FPS_BURST,
            last_offer: start,
            since: start,
            counters: Arc::default(),
        };
        let frame = |seq| Frame {
            jpeg: Arc::from(vec![0xFF, 0xD8, 0xFF, 0xD9]),
            seq,
            received: start,
        };
        // A 30 fps camera for 3 s, read as fast as it comes.
        let mut got = 0;
        for i in 0..90u64 {
            v.offer(&frame(i), start + Duration::from_micros(i * 33_333));
            while rx.try_recv().is_ok() {
                got += 1;
            }
        }
        assert!((29..=32).contains(&got), "got {got}");
        // A camera at exactly the cap with jittered arrivals loses nothing.
        let mut t = start + Duration::from_secs(10);
        let mut got = 0;
        for i in 0..100u64 {
            t += Duration::from_millis(if i % 2 == 0 { 70 } else { 130 });
            v.offer(&frame(i), t);
            while rx.try_recv().is_ok() {
                got += 1;
            }
        }
        assert_eq!(got, 100);
    }

    #[test]
    fn an_every_frame_viewer_takes_a_burst_whole() {
        let (tx, rx) = crossbeam_channel::bounded(VIEWER_QUEUE);
        let start = Instant::now();
        let mut v = Viewer {
            id: 1,
            fps: MAX_FPS,
            tx,
            rx: rx.clone(),
            sink: None,
            direct: false,
            every_frame: true,
            tokens: FPS_BURST,
            last_offer: start,
            since: start,
            counters: Arc::default(),
        };
        // Ten frames in the same instant, as they come after a stall.
        let mut got = Vec::new();
        for seq in 0..10u64 {
            let frame = Frame {
                jpeg: Arc::from(vec![0u8; 4]),
                seq,
                received: start,
            };
            v.offer(&frame, start);
            while let Ok(d) = rx.try_recv() {
                got.push(d.frame.seq);
            }
        }
        assert_eq!(got, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn wanted_fps_follows_the_fastest_viewer() {
        let source = Arc::new(TestSource::new(5));
        let hub = hub(&source, 0);
        let _a = hub.subscribe(5);
        let b = hub.subscribe(500);
        assert_eq!(hub.inner.lock().wanted_fps(), 30);
        drop(b);
        assert_eq!(hub.inner.lock().wanted_fps(), 5);
        hub.shutdown();
    }

    #[test]
    fn fps_is_clamped() {
        assert_eq!(clamp_fps(0), 1);
        assert_eq!(clamp_fps(15), 15);
        assert_eq!(clamp_fps(1000), 30);
    }
}
