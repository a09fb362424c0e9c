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
            source.active.load(Ordering::SeqCst) == 0 && hub.stats().state == UpstreamState::Idle
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
        taking: Taking::Some,
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
        taking: Taking::Every,
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

#[test]
fn a_feed_keeps_the_camera_open_but_is_no_viewer() {
    let source = Arc::new(TestSource::new(5));
    let hub = hub(&source, 60_000);
    let sink = ScriptedSink::new(&[]);
    let feed = hub.subscribe_feed(sink.clone());
    go_direct(&feed, &sink);
    let viewer = hub.subscribe(10);
    viewer.recv(RECV).unwrap();
    let stats = hub.stats();
    assert_eq!(stats.viewers, 1, "{stats:?}");
    assert_eq!(stats.viewer_stats.len(), 1);
    // A stop ends the viewer and leaves the feed to its own hub.
    assert_eq!(hub.stop_viewers(), 1);
    let (before, out) = (sink.offered().len(), frames_out(&hub));
    eventually("more frames for the feed", || {
        sink.offered().len() > before + 2
    });
    assert_eq!(source.active.load(Ordering::SeqCst), 1);
    assert_eq!(frames_out(&hub), out, "the feed's frames are not out");
    // Once the feed leaves too, the stopped camera closes at once, not
    // after the (here one minute) grace period.
    drop(feed);
    eventually("upstream to close", || {
        source.active.load(Ordering::SeqCst) == 0
    });
    hub.shutdown();
}
