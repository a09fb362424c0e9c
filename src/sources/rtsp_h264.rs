//! An RTSP(S) H.264 camera read with the native client, without ffmpeg and
//! without decoding: each access unit becomes one fragmented-MP4 fragment
//! (`moof` + `mdat`) handed to the hub as it arrives, and the camera's
//! current group of pictures is kept in a `Gop` for viewers that join.

use super::rtsp_native::{self, ErrorKind, Session, Timeouts, Transport};
use super::tofu::{PinCheck, PrinterTls};
use crate::gop::Gop;
use crate::media::fmp4::{Fragmenter, Rotation, VideoTrack};
use crate::media::rtp_h264::{AccessUnit, Depacketizer};
use crate::redact;
use crate::source::{OnFirstFrame, Source, SourceError, Upstream, CONNECT_TIMEOUT};
use crate::sync::lock;
use crate::urlguard::{self, Policy};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A frame's duration before a second one shows the camera's rate: 30 fps.
const FIRST_DURATION: u32 = 3000;

pub struct RtspH264 {
    url: String,
    policy: Policy,
    /// For rtsps:// URLs: how the camera's certificate is checked.
    tls: Option<PrinterTls>,
    gop: Arc<Gop>,
    /// The display matrix of the init segment: how players turn the picture.
    rotation: Rotation,
    timeline: Mutex<Timeline>,
    refusal: Arc<Refusal>,
}

/// Why the native client cannot take a camera's stream (no H.264 track, as
/// with H.265 or MJPEG over RTSP; an SDP it cannot read), once a session
/// found out. Shared with the camera's MJPEG side, which then reads the
/// camera through ffmpeg's own RTSP client.
#[derive(Default)]
pub struct Refusal(Mutex<Option<String>>);

impl Refusal {
    pub fn get(&self) -> Option<String> {
        lock(&self.0).clone()
    }

    fn set(&self, why: &str) {
        *lock(&self.0) = Some(why.to_string());
    }
}

/// Fragment numbers and decode times run on across reconnects, so a viewer
/// that stays through one sees time go forward.
#[derive(Default)]
struct Timeline {
    fragmenter: Fragmenter,
    /// Decode time of the last fragment, and the interval before it.
    last: Option<(u64, u32)>,
}

impl Timeline {
    /// Where a new session's times start: one interval after the last frame.
    fn session_base(&self) -> u64 {
        self.last.map_or(0, |(t, d)| t + u64::from(d))
    }

    fn fragment(&mut self, time: u64, au: &AccessUnit) -> Vec<u8> {
        let duration = match self.last {
            Some((t, _)) if time > t => u32::try_from(time - t).unwrap_or(u32::MAX),
            Some((_, d)) => d,
            None => FIRST_DURATION,
        };
        self.last = Some((time, duration));
        // A live fragment goes out before the next frame is known: its
        // duration is the interval that led to it.
        self.fragmenter
            .fragment(time, duration, au.keyframe, &au.data)
    }
}

impl RtspH264 {
    /// A camera at `url`; an rtsps:// one needs `tls` (for a printer's own
    /// camera, its pin: `PrinterTls::Tofu`).
    pub fn new(url: String, policy: Policy, tls: Option<PrinterTls>, gop: Arc<Gop>) -> RtspH264 {
        RtspH264 {
            url,
            policy,
            tls,
            gop,
            rotation: Rotation::None,
            timeline: Mutex::default(),
            refusal: Arc::default(),
        }
    }

    /// Where a stream this client cannot take is told of.
    pub fn with_refusal(mut self, refusal: Arc<Refusal>) -> RtspH264 {
        self.refusal = refusal;
        self
    }

    /// Players turn the picture by the init segment's display matrix (no
    /// pixel is touched); a mirror has no matrix here.
    pub fn with_rotation(mut self, rotation: Rotation) -> RtspH264 {
        self.rotation = rotation;
        self
    }

    fn redact(&self, text: &str) -> String {
        let secrets = url::Url::parse(&self.url)
            .map(|u| redact::url_secret_parts(&u))
            .unwrap_or_default();
        let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
        redact::secrets(text, &refs)
    }

    /// The session, and the pin check of its TLS connection when the
    /// certificate is pinned on first use.
    fn open(&self) -> Result<(Session, Option<PinCheck>), SourceError> {
        urlguard::check_text(&self.url, self.policy)
            .map_err(|e| SourceError::fatal(self.redact(&e)))?;
        let (url, target) = urlguard::check_resolved(&self.url, self.policy)
            .map_err(|e| SourceError::transient(self.redact(&e)))?;
        let (transport, pin) = match (url.scheme(), &self.tls) {
            ("rtsp", _) => (Transport::Plain, None),
            ("rtsps", Some(tls)) => {
                let (dialer, pin) = tls.check();
                (Transport::Tls(dialer), pin)
            }
            ("rtsps", None) => {
                return Err(SourceError::fatal(
                    "rtsps cameras need TLS settings (internal error)",
                ))
            }
            _ => {
                return Err(SourceError::fatal(
                    "an rtsp camera needs an rtsp:// or rtsps:// URL",
                ))
            }
        };
        let timeouts = Timeouts {
            connect: CONNECT_TIMEOUT,
            ..Timeouts::default()
        };
        let session =
            Session::open(&target, &url, None, transport, timeouts).map_err(|e| self.failed(&e))?;
        Ok((session, pin))
    }

    fn failed(&self, e: &rtsp_native::Error) -> SourceError {
        let message = self.redact(&e.message);
        if e.kind == ErrorKind::Unsupported {
            self.refusal.set(&message);
        }
        match e.kind {
            ErrorKind::CertificateChanged | ErrorKind::Unsupported | ErrorKind::Unauthorized => {
                SourceError::fatal(message)
            }
            _ => SourceError::transient(message),
        }
    }

    /// Plays the session until the hub wants it closed or it fails.
    fn play(&self, session: &mut Session, up: &dyn Upstream) -> Result<(), SourceError> {
        let mut depacketizer = Depacketizer::default();
        depacketizer.set_parameter_sets(&session.info().parameter_sets);
        if let Some(seq) = session.info().first_sequence {
            depacketizer.expect_sequence(seq);
        }
        let base = lock(&self.timeline).session_base();
        let mut track: Option<VideoTrack> = None;
        let start = Instant::now();
        while !up.stopping() {
            let packet = session.next_packet().map_err(|e| self.failed(&e))?;
            for au in depacketizer.push(packet, start.elapsed()) {
                if !self.set_track(&mut track, &depacketizer) {
                    up.skipped_frame();
                    continue;
                }
                let fragment = lock(&self.timeline).fragment(base + au.time, &au);
                self.gop.push(&fragment, au.keyframe);
                if !up.emit(fragment) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Makes sure `track` is that of the depacketizer's parameter sets,
    /// telling the group of pictures of a new one. False while there are
    /// none fit for a track.
    fn set_track(&self, track: &mut Option<VideoTrack>, d: &Depacketizer) -> bool {
        let (Some(sps), Some(pps)) = (d.sps(), d.pps()) else {
            return false;
        };
        let Ok(now) = VideoTrack::new(sps, pps) else {
            return false;
        };
        if track.as_ref() != Some(&now) {
            let parameter_sets = crate::media::h264::to_annex_b([sps, pps]);
            self.gop
                .set_init(now.init_segment(self.rotation), parameter_sets);
            *track = Some(now);
        }
        true
    }
}

impl Source for RtspH264 {
    fn describe(&self) -> String {
        format!("native RTSP {}", redact::url_passwords(&self.url))
    }

    fn run(&self, up: &dyn Upstream) -> Result<(), SourceError> {
        let (mut session, pin) = self.open()?;
        up.reached("RTSP session playing".into());
        if let Some(version) = session.info().tls_version {
            up.tls_version(version);
        }
        self.gop.clear();
        // A certificate first seen is pinned only once a frame came: the
        // device behind it also knew the access code.
        let confirm = || {
            if let (Some(tls), Some(check)) = (&self.tls, &pin) {
                tls.confirm(check, &self.describe());
            }
        };
        let played = self.play(&mut session, &OnFirstFrame::new(up, confirm));
        // TEARDOWN is a courtesy: the camera drops the session anyway.
        let _ = session.close();
        played
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn au(time: u64, keyframe: bool) -> AccessUnit {
        AccessUnit {
            data: vec![0, 0, 0, 1, if keyframe { 0x65 } else { 0x41 }],
            keyframe,
            rtp_timestamp: 0,
            time,
        }
    }

    #[test]
    fn times_and_numbers_run_on_across_sessions() {
        let mut t = Timeline::default();
        let first = t.fragment(0, &au(0, true));
        assert_eq!(crate::media::fmp4::fragment_info(&first), Some((1, true)));
        t.fragment(6000, &au(6000, false));
        // A new session starts its own times at 0.
        let base = t.session_base();
        assert_eq!(base, 12_000);
        let next = t.fragment(base, &au(0, true));
        assert_eq!(crate::media::fmp4::fragment_info(&next), Some((3, true)));
        assert_eq!(t.last, Some((12_000, 6000)));
    }
}
