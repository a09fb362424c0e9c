//! MJPEG and snapshots of an H.264 camera, decoded from the session that
//! feeds its `<video>` viewers, so the camera sees one RTSP client whatever
//! watches. The frames go to one ffmpeg decoder child (Annex B on its
//! stdin) that runs only while an MJPEG viewer or a snapshot needs it. When
//! no consumer wants more pictures than the camera sends keyframes (a 1 fps
//! dashboard, a snapshot) only keyframes are fed, so it decodes one picture
//! per group; a snapshot of a camera whose session is open decodes the
//! keyframe of the group kept for `<video>` joiners. Streams the native client cannot take are read by ffmpeg's
//! own RTSP client instead (`RtspClient::Auto`), or always when the camera
//! is set to `RtspClient::Ffmpeg`.

use super::rtsp::{read_jpegs, Ended};
use super::rtsp_h264::Refusal;
use crate::camera::RtspClient;
use crate::error::Error;
use crate::ffmpeg::{self, Child};
use crate::frame::Frame;
use crate::gop::{Admit, Gate, Gop};
use crate::hub::{Hub, Sent, Sink, Subscription, TryRecvError, UpstreamState};
use crate::media::fmp4::{self, TIMESCALE};
use crate::media::h264;
use crate::source::{Decoding, Source, SourceError, Upstream};
use crate::sync::lock;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::io::Write;
use std::path::PathBuf;
use std::process::ChildStdin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The camera's H.264 session: its hub and group of pictures, asked for at
/// each connection (the session's hub is replaced when settings change).
pub type Feed = Box<dyn Fn() -> Result<(Hub, Arc<Gop>), Error> + Send + Sync>;

/// Frames waiting for the decoder; when it falls this far behind, frames
/// are left out and it picks up again at the next keyframe.
const QUEUE: usize = 32;
/// Ends each access unit, so ffmpeg's parser hands it on at once instead
/// of waiting for the start of the next one (a whole group of pictures
/// when only keyframes are fed).
const AUD: [u8; 6] = [0, 0, 0, 1, 9, 0xf0];
/// How often the feeding thread looks whether it should end.
const TICK: Duration = Duration::from_millis(200);
/// How often the session's figures are looked at (its TLS version, a
/// failure).
const CHECK: Duration = Duration::from_secs(2);
/// Keyframes may come this much slower than asked (5 %) and still do.
const RATE_SLACK: (u64, u64) = (21, 20);

pub struct H264Decode {
    feed: Feed,
    /// ffmpeg's own RTSP client (through the TLS proxy for rtsps).
    fallback: Arc<dyn Source>,
    client: RtspClient,
    refusal: Arc<Refusal>,
    ffmpeg: Option<PathBuf>,
    /// The reason for falling back that was logged last, so it is told once.
    told: Mutex<Option<String>>,
}

impl H264Decode {
    pub fn new(
        feed: Feed,
        fallback: Arc<dyn Source>,
        client: RtspClient,
        refusal: Arc<Refusal>,
        ffmpeg: Option<PathBuf>,
    ) -> H264Decode {
        H264Decode {
            feed,
            fallback,
            client,
            refusal,
            ffmpeg,
            told: Mutex::new(None),
        }
    }

    /// Logs, once per reason, that ffmpeg's RTSP client reads the camera.
    fn tell_fallback(&self, why: &str) {
        let mut told = lock(&self.told);
        if told.as_deref() != Some(why) {
            log::warn!(
                "{}: the native RTSP client cannot take this stream ({why}); MJPEG and \
                 snapshots come from ffmpeg's own RTSP client, and stream.mp4 is not offered",
                self.fallback.describe()
            );
            *told = Some(why.to_string());
        }
    }

    /// One decoder child fed from the session until the hub stops, the
    /// session ends for good, or ffmpeg fails.
    fn decode(&self, up: &dyn Upstream) -> Result<(), SourceError> {
        let (hub, gop) = (self.feed)().map_err(|e| self.no_session(&e))?;
        let program = ffmpeg::find(self.ffmpeg.as_deref()).map_err(SourceError::fatal)?;
        let args = ffmpeg::decode_args(ffmpeg::passthrough_flag(&program));
        let mut child = Child::spawn_fed(&program, &args).map_err(|e| {
            SourceError::transient(format!("cannot start {}: {e}", program.display()))
        })?;
        let (Some(stdin), Some(stdout)) = (child.take_stdin(), child.take_stdout()) else {
            return Err(SourceError::transient("ffmpeg has no stdin or stdout"));
        };
        let pid = child.pid();
        let child = Arc::new(Mutex::new(child));
        let cancel_child = Arc::clone(&child);
        up.on_cancel(Box::new(move || lock(&cancel_child).terminate()));

        let shared = Arc::new(Shared::default());
        shared.set_want(Want::of(up));
        let (tx, rx) = crossbeam_channel::bounded(QUEUE);
        let sink = Arc::new(FeedSink { tx });
        let as_sink: Arc<dyn Sink> = sink.clone();
        let (sub, joined) = match gop.join(|| hub.subscribe_feed(as_sink.clone())) {
            Some(joined) => (joined.value, joined.fragments),
            // No picture yet: the session is starting.
            None => (hub.subscribe_feed(as_sink), Vec::new()),
        };
        sub.deliver_directly();
        // Stopped while starting (ffmpeg's help is probed once, slowly):
        // the session must not be kept open for nobody.
        if up.stopping() {
            return Ok(());
        }
        let feeder = {
            let (gop, shared) = (Arc::clone(&gop), Arc::clone(&shared));
            crate::sync::spawn(format!("feed-{pid}"), None, move || {
                feed_decoder(stdin, &rx, joined, &gop, &shared)
            })
        };
        let read = match &feeder {
            Ok(_) => read_jpegs(stdout, up, || self.between(&sub, &sink, &shared, &hub, up)),
            Err(e) => Err(SourceError::transient(format!(
                "cannot start the decoder's feed: {e}"
            ))),
        };
        shared.done.store(true, Ordering::Relaxed);
        drop(sub);
        let status = lock(&child).stop();
        if let Ok(feeder) = feeder {
            let _ = feeder.join();
        }
        if up.stopping() {
            return Ok(());
        }
        match read? {
            Ended::Stopped | Ended::FasterWanted => Ok(()),
            Ended::Eof { frames } => {
                let status = status.map_or_else(|| "unknown status".into(), |s| s.to_string());
                let tail = lock(&child).tail();
                Err(SourceError::transient(format!(
                    "the H.264 decoder (ffmpeg) ended ({status}) after {frames} pictures: {tail}"
                )))
            }
        }
    }

    /// Between reads of the decoder's pictures: tells the feeder what the
    /// consumers want, the hub what is decoded, and takes frames the
    /// session queued before it wrote to the feed directly. An error once
    /// the session dropped this consumer (it failed for good).
    fn between(
        &self,
        sub: &Subscription,
        sink: &FeedSink,
        shared: &Shared,
        hub: &Hub,
        up: &dyn Upstream,
    ) -> Result<Option<Ended>, SourceError> {
        shared.set_want(Want::of(up));
        up.decoding(shared.decoding());
        if shared.note_check() {
            let stats = hub.stats();
            if let Some(version) = stats.tls_version {
                up.tls_version(version);
            }
            // The session failed and waits to reconnect: say why here too
            // (snapshots and the test endpoint wait on this side).
            if stats.state == UpstreamState::Retrying {
                let why = stats.last_error.unwrap_or_default();
                return Err(SourceError::transient(format!(
                    "the camera's H.264 session: {why}"
                )));
            }
        }
        if shared.resized.load(Ordering::Relaxed) {
            return Err(SourceError::transient(
                "the camera's picture size changed: the decoder starts again",
            ));
        }
        loop {
            match sub.try_recv() {
                Ok(delivery) => {
                    let _ = sink.tx.try_send(delivery.frame);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return Err(self.session_ended(hub)),
            }
        }
        sub.deliver_directly();
        Ok(None)
    }

    /// Why there is no session to feed on: with `Auto`, a stream found
    /// unfit for the native client is read by ffmpeg's at the next try.
    fn no_session(&self, e: &Error) -> SourceError {
        match (self.client, self.refusal.get(), e) {
            (RtspClient::Auto, Some(why), _) => {
                SourceError::transient(format!("{why}: switching to ffmpeg's RTSP client"))
            }
            (_, _, Error::NotFound(m) | Error::Invalid(m)) => SourceError::fatal(m.clone()),
            (_, _, e) => SourceError::transient(e.message()),
        }
    }

    /// Why the session dropped its consumers, for this hub's viewers.
    fn session_ended(&self, hub: &Hub) -> SourceError {
        if let (RtspClient::Auto, Some(why)) = (self.client, self.refusal.get()) {
            return SourceError::transient(format!("{why}: switching to ffmpeg's RTSP client"));
        }
        let stats = hub.stats();
        let why = stats
            .last_error
            .unwrap_or_else(|| "the camera's H.264 session ended".into());
        if stats.state == UpstreamState::Failed {
            SourceError::fatal(why)
        } else {
            SourceError::transient(why)
        }
    }
}

impl Source for H264Decode {
    fn describe(&self) -> String {
        match (self.client, self.refusal.get()) {
            (RtspClient::Ffmpeg, _) | (RtspClient::Auto, Some(_)) => self.fallback.describe(),
            _ => format!(
                "{}, decoded from the native session",
                self.fallback.describe()
            ),
        }
    }

    fn run(&self, up: &dyn Upstream) -> Result<(), SourceError> {
        match (self.client, self.refusal.get()) {
            (RtspClient::Ffmpeg, _) => self.fallback.run(up),
            (RtspClient::Auto, Some(why)) => {
                self.tell_fallback(&why);
                self.fallback.run(up)
            }
            _ => self.decode(up),
        }
    }
}

/// What the consumers of the decoded pictures want.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// Only snapshots: one picture, as soon as there is one.
    Snapshots,
    /// The fastest viewer's frame rate.
    Fps(u32),
}

impl Want {
    fn of(up: &dyn Upstream) -> Want {
        up.viewer_fps().map_or(Want::Snapshots, Want::Fps)
    }

    /// True when keyframes `interval` apart (TIMESCALE units) give all the
    /// pictures wanted.
    fn keyframes_suffice(self, interval: Option<u64>) -> bool {
        match self {
            Want::Snapshots => true,
            Want::Fps(fps) => interval.is_some_and(|t| {
                t > 0 && u64::from(fps) * t * RATE_SLACK.1 <= u64::from(TIMESCALE) * RATE_SLACK.0
            }),
        }
    }
}

/// What the reading and the feeding threads share.
#[derive(Default)]
struct Shared {
    /// 0 for `Want::Snapshots`, else the frame rate.
    want: AtomicU32,
    keyframes_only: AtomicBool,
    fed: AtomicU32,
    done: AtomicBool,
    /// The session's track changed (a new picture size): a decoder set up
    /// for the old one is not fed it.
    resized: AtomicBool,
    /// When the session's figures were last looked at.
    checked: Mutex<Option<Instant>>,
}

impl Shared {
    /// True at most every `CHECK`: time to look at the session's figures.
    fn note_check(&self) -> bool {
        let mut last = lock(&self.checked);
        if last.is_some_and(|t| t.elapsed() < CHECK) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }

    fn set_want(&self, want: Want) {
        let v = match want {
            Want::Snapshots => 0,
            Want::Fps(fps) => fps.max(1),
        };
        self.want.store(v, Ordering::Relaxed);
    }

    fn want(&self) -> Want {
        match self.want.load(Ordering::Relaxed) {
            0 => Want::Snapshots,
            fps => Want::Fps(fps),
        }
    }

    fn decoding(&self) -> Decoding {
        Decoding {
            keyframes_only: self.keyframes_only.load(Ordering::Relaxed),
            frames_decoded: self.fed.load(Ordering::Relaxed),
        }
    }
}

/// The session's side of the feed: never blocks the session's thread; a
/// frame the feed has no room for is left out (the decoder then waits for
/// the next keyframe).
struct FeedSink {
    tx: Sender<Frame>,
}

impl Sink for FeedSink {
    fn try_send(&self, frame: &Frame) -> Sent {
        match self.tx.try_send(frame.clone()) {
            Ok(()) => Sent::Whole,
            Err(crossbeam_channel::TrySendError::Full(_)) => Sent::Nothing,
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => Sent::Gone,
        }
    }

    /// Only asked of viewers whose fps skips a frame; a feed takes all.
    fn hung_up(&self) -> bool {
        false
    }
}

/// Which of the session's frames go to the decoder: from a keyframe on and
/// without gaps (as a `<video>` viewer gets them), or keyframes only while
/// those give every picture wanted. The choice is made at each keyframe.
#[derive(Debug, Default)]
struct Picker {
    gate: Gate,
    keyframes_only: bool,
    /// Decode time of the last keyframe, and the interval before it.
    last_keyframe: Option<u64>,
    interval: Option<u64>,
}

impl Picker {
    /// Whether `fragment` is decoded, and if so whether it is a keyframe.
    /// The group kept from before this consumer came goes through here
    /// first: its keyframe answers a snapshot at once (a picture at most
    /// one keyframe interval old), and every-frame viewers start with all
    /// of it.
    fn pick(&mut self, fragment: &[u8], want: Want) -> Option<bool> {
        let (_, keyframe) = fmp4::fragment_info(fragment)?;
        if keyframe {
            self.note_keyframe(fmp4::decode_time(fragment));
            self.keyframes_only = want.keyframes_suffice(self.interval);
        }
        let admitted = self.gate.admit(fragment) == Admit::Send;
        let go = admitted && (keyframe || !self.keyframes_only);
        if go {
            self.gate.sent(fragment);
        }
        go.then_some(keyframe)
    }

    fn note_keyframe(&mut self, time: Option<u64>) {
        let Some(time) = time else { return };
        match self.last_keyframe {
            Some(last) if time > last => self.interval = Some(time - last),
            Some(last) if time == last => return,
            _ => {}
        }
        self.last_keyframe = Some(time);
    }
}

/// The feeding thread: the joined group, then the session's frames as they
/// come, picked, as Annex B access units on ffmpeg's stdin (a keyframe
/// with the track's parameter sets before it). Ends when told, when the
/// session is gone, or when ffmpeg no longer reads.
fn feed_decoder(
    mut stdin: ChildStdin,
    rx: &Receiver<Frame>,
    joined: Vec<Arc<[u8]>>,
    gop: &Gop,
    shared: &Shared,
) {
    let mut picker = Picker::default();
    // The track of the first keyframe fed: the one ffmpeg set up for.
    let mut track: Option<u64> = None;
    let mut feed = |fragment: &[u8]| -> bool {
        let picked = picker.pick(fragment, shared.want());
        shared
            .keyframes_only
            .store(picker.keyframes_only, Ordering::Relaxed);
        let Some(keyframe) = picked else {
            return true;
        };
        if keyframe && *track.get_or_insert(gop.generation()) != gop.generation() {
            shared.resized.store(true, Ordering::Relaxed);
            return false;
        }
        let parameter_sets = if keyframe { gop.parameter_sets() } else { None };
        let Some(unit) = access_unit(fragment, parameter_sets.as_deref()) else {
            return true;
        };
        if stdin.write_all(&unit).is_err() {
            return false;
        }
        shared.fed.fetch_add(1, Ordering::Relaxed);
        true
    };
    for fragment in &joined {
        if !feed(fragment) {
            return;
        }
    }
    while !shared.done.load(Ordering::Relaxed) {
        match rx.recv_timeout(TICK) {
            Ok(frame) if !feed(&frame.jpeg) => return,
            Ok(_) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// A fragment's frame as an Annex B access unit ending in a delimiter,
/// after `parameter_sets` when given. None when the fragment holds no
/// well-formed frame.
fn access_unit(fragment: &[u8], parameter_sets: Option<&[u8]>) -> Option<Vec<u8>> {
    let sample = fmp4::sample(fragment)?;
    let mut unit = Vec::with_capacity(sample.len() + 64);
    unit.extend_from_slice(parameter_sets.unwrap_or_default());
    for nal in h264::length_prefixed_nals(sample) {
        unit.extend_from_slice(&[0, 0, 0, 1]);
        unit.extend_from_slice(nal.ok()?);
    }
    unit.extend_from_slice(&AUD);
    Some(unit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::fmp4::Fragmenter;

    /// Fragments of `n` frames at 15 fps, keyframes at `keys`.
    fn fragments(n: usize, keys: &[usize]) -> Vec<Vec<u8>> {
        let mut f = Fragmenter::new();
        (0..n)
            .map(|i| {
                let key = keys.contains(&i);
                let nal = [if key { 0x65 } else { 0x41 }, i as u8];
                let sample = h264::to_length_prefixed([&nal[..]]);
                f.fragment(i as u64 * 6000, 6000, key, &sample)
            })
            .collect()
    }

    fn picked(p: &mut Picker, f: &[Vec<u8>], want: Want) -> Vec<usize> {
        (0..f.len())
            .filter(|&i| p.pick(&f[i], want).is_some())
            .collect()
    }

    #[test]
    fn a_one_fps_viewer_of_one_keyframe_a_second_gets_keyframes_only() {
        let f = fragments(46, &[0, 15, 30, 45]);
        let mut p = Picker::default();
        // The rate is known from the second keyframe on; before, every frame.
        let got = picked(&mut p, &f, Want::Fps(1));
        let mut want: Vec<usize> = (0..15).collect();
        want.extend([15, 30, 45]);
        assert_eq!(got, want);
        assert!(p.keyframes_only);
    }

    #[test]
    fn a_fifteen_fps_viewer_gets_every_frame_and_a_two_fps_one_too() {
        let f = fragments(46, &[0, 15, 30, 45]);
        for fps in [15, 2] {
            let mut p = Picker::default();
            assert_eq!(
                picked(&mut p, &f, Want::Fps(fps)),
                (0..46).collect::<Vec<_>>()
            );
            assert!(!p.keyframes_only);
        }
    }

    #[test]
    fn snapshots_get_keyframes_only() {
        let f = fragments(20, &[0, 15]);
        let mut p = Picker::default();
        assert_eq!(picked(&mut p, &f, Want::Snapshots), [0, 15]);
    }

    #[test]
    fn the_choice_changes_at_a_keyframe_and_a_gap_waits_for_one() {
        let f = fragments(40, &[0, 10, 20, 30]);
        let mut p = Picker::default();
        let mut got = Vec::new();
        for (i, frag) in f.iter().enumerate() {
            // 9 is lost; a 1 fps viewer leaves at 25; a 15 fps one comes at 25.
            let want = if i < 25 { Want::Fps(1) } else { Want::Fps(15) };
            if i != 9 && p.pick(frag, want).is_some() {
                got.push(i);
            }
        }
        // Keyframes every 10 frames at 15 fps are 1.5 a second: enough
        // for 1 fps from the second keyframe on; every frame again from
        // the keyframe after the faster viewer came.
        let mut want: Vec<usize> = (0..9).collect();
        want.extend([10, 20]);
        want.extend(30..40);
        assert_eq!(got, want);
    }

    #[test]
    fn a_frame_seen_twice_is_decoded_once() {
        let f = fragments(4, &[0]);
        let mut p = Picker::default();
        assert!(p.pick(&f[0], Want::Fps(15)).is_some());
        assert!(p.pick(&f[1], Want::Fps(15)).is_some());
        assert!(p.pick(&f[1], Want::Fps(15)).is_none());
        assert!(p.pick(&f[2], Want::Fps(15)).is_some());
    }

    #[test]
    fn keyframes_suffice_within_five_percent() {
        let second = u64::from(TIMESCALE);
        assert!(Want::Fps(1).keyframes_suffice(Some(second)));
        assert!(Want::Fps(1).keyframes_suffice(Some(second * 21 / 20)));
        assert!(!Want::Fps(1).keyframes_suffice(Some(second * 11 / 10)));
        assert!(!Want::Fps(2).keyframes_suffice(Some(second)));
        assert!(Want::Fps(2).keyframes_suffice(Some(second / 2)));
        assert!(!Want::Fps(1).keyframes_suffice(None));
        assert!(Want::Snapshots.keyframes_suffice(None));
    }

    #[test]
    fn an_access_unit_is_annex_b_with_its_parameter_sets_and_a_delimiter() {
        let f = fragments(1, &[0]);
        let unit = access_unit(&f[0], Some(&[0, 0, 0, 1, 0x67, 1, 0, 0, 0, 1, 0x68, 2])).unwrap();
        assert_eq!(
            unit,
            [0, 0, 0, 1, 0x67, 1, 0, 0, 0, 1, 0x68, 2, 0, 0, 0, 1, 0x65, 0, 0, 0, 0, 1, 9, 0xf0]
        );
        assert!(access_unit(b"not a fragment", None).is_none());
    }
}
