//! One hub per camera: opens one upstream for any number of consumers, fans
//! frames out, keeps the latest for snapshots, and counts what happens.

use crate::error::{Error, Result};
use crate::frame::Frame;
use crate::orientation::Orientation;
use crate::source::{Decoding, Source, SourceError, Upstream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use crossbeam_channel::{RecvTimeoutError, TryRecvError};

mod stats;
mod viewers;

pub use stats::{HubStats, UpstreamState, ViewerStats};
pub use viewers::{clamp_fps, Delivery, Sent, Sink, Subscription, DEFAULT_FPS, MAX_FPS, MIN_FPS};
use viewers::{Offer, Taking, Viewer, ViewerCounters, FPS_BURST, VIEWER_QUEUE};

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
    /// What the current connection decodes, for sources that decode H.264.
    decoding: Option<Decoding>,
    /// How far the current connection got (see `Upstream::reached`).
    reached: Option<String>,
    /// Counters of viewers that have left.
    departed_out: u64,
    departed_dropped: u64,
    connects: u64,
    reconnects: u64,
    shut_down: bool,
    /// A stop ended the viewers while feeds remained: the upstream closes
    /// as soon as the last of them leaves, not a grace period later.
    close_when_idle: bool,
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
            if !v.feeds() {
                self.departed_out += v.counters.out();
                self.departed_dropped += v.counters.dropped();
            }
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
        self.remove_viewers_if(|_| true)
    }

    /// Removes the viewers `which` picks; returns how many of them were
    /// viewers rather than feeds.
    fn remove_viewers_if(&mut self, which: impl Fn(&Viewer) -> bool) -> usize {
        let picked: Vec<(u64, bool)> = self
            .viewers
            .iter()
            .filter(|v| which(v))
            .map(|v| (v.id, v.feeds()))
            .collect();
        for (id, _) in &picked {
            self.remove_viewer(*id);
        }
        picked.iter().filter(|(_, feeds)| !feeds).count()
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
        self.close_when_idle = false;
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
        self.subscribe_with(fps, None, Taking::Some)
    }

    /// A new viewer whose connection the hub may write to itself once the
    /// viewer calls `Subscription::deliver_directly`.
    pub fn subscribe_direct(&self, fps: u32, sink: Arc<dyn Sink>) -> Subscription {
        self.subscribe_with(fps, Some(sink), Taking::Some)
    }

    /// A direct viewer offered every frame the camera sends, as a video
    /// stream needs; what it misses it sees as a gap in `Frame::seq`.
    pub fn subscribe_every_frame(&self, sink: Arc<dyn Sink>) -> Subscription {
        self.subscribe_with(MAX_FPS, Some(sink), Taking::Every)
    }

    /// As `subscribe_every_frame`, for another hub's source that feeds on
    /// this one (an H.264 camera's MJPEG decoder): it keeps the camera
    /// open but is no viewer in the figures, and `stop_viewers` leaves it
    /// to its own hub.
    pub fn subscribe_feed(&self, sink: Arc<dyn Sink>) -> Subscription {
        self.subscribe_with(MAX_FPS, Some(sink), Taking::Feed)
    }

    fn subscribe_with(
        &self,
        fps: u32,
        sink: Option<Arc<dyn Sink>>,
        taking: Taking,
    ) -> Subscription {
        let (tx, rx) = crossbeam_channel::bounded(VIEWER_QUEUE);
        let counters = Arc::new(ViewerCounters::default());
        let now = Instant::now();
        let mut st = self.inner.lock();
        st.next_viewer_id += 1;
        let id = st.next_viewer_id;
        if !st.shut_down {
            st.close_when_idle = false;
            st.viewers.push(Viewer {
                id,
                fps: clamp_fps(fps),
                tx,
                rx: rx.clone(),
                sink,
                direct: false,
                taking,
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
            // A consumer that came and went: polling clients (HLS players,
            // snapshot pollers) keep the camera open between polls.
            st.note_consumer_left();
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
        let ended = st.remove_viewers_if(|v| !v.feeds());
        let cancel = if st.consumers() == 0 && st.running {
            st.stop_upstream()
        } else {
            st.close_when_idle = st.running;
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
            .filter(|v| !v.feeds())
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
            viewers: viewer_stats.len(),
            frames_in: st.frames_in,
            frames_out: st.departed_out + viewer_stats.iter().map(|v| v.frames_out).sum::<u64>(),
            frames_dropped: st.departed_dropped
                + viewer_stats.iter().map(|v| v.frames_dropped).sum::<u64>(),
            frames_skipped: st.frames_skipped,
            tls_version: st.tls_version,
            decoding: st.decoding,
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
        let cancel = if st.close_when_idle && st.consumers() == 0 && st.running {
            st.stop_upstream()
        } else {
            None
        };
        drop(st);
        self.inner.changed.notify_all();
        if let Some(cancel) = cancel {
            cancel();
        }
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
                st.decoding = None;
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

    fn viewer_fps(&self) -> Option<u32> {
        self.inner.lock().viewers.iter().map(|v| v.fps).max()
    }

    fn decoding(&self, decoding: Decoding) {
        let mut st = self.inner.lock();
        if st.is_current(self.gen) {
            st.decoding = Some(decoding);
        }
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

#[cfg(test)]
mod tests;
