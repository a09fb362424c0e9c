//! The native RTSP client against GStreamer's RTSP server (Digest, TCP
//! interleaved, x264): plain rtsp, and rtsps through a TLS front with
//! printcam's own TLS connect and pinning. The access units it delivers are
//! muxed as fragmented MP4 that ffprobe must read back as 640x360 H.264.

#[path = "fake-ffmpeg/support.rs"]
mod doubles;

use doubles::{Events, RtspServer, TlsFront};
use printcam::media::fmp4::{Fragmenter, Rotation, VideoTrack};
use printcam::media::rtp_h264::{AccessUnit, Depacketizer};
use printcam::sources::rtsp_native::{Credentials, Error, ErrorKind, Session, Timeouts, Transport};
use printcam::tls::Dialer;
use printcam::urlguard::{self, Policy};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const CODE: &str = "27182818";
/// How long each test plays.
const PLAY: Duration = Duration::from_secs(4);
/// The double's session timeout: keep-alives every second.
const SESSION_TIMEOUT: u32 = 2;

fn tools() -> Option<PathBuf> {
    let ffprobe = doubles::find("ffprobe", "ffmpeg")?;
    doubles::require_gst_rtsp().then_some(ffprobe)
}

fn open(port: u16, scheme: &str, password: &str, transport: Transport) -> Result<Session, Error> {
    let url = format!("{scheme}://127.0.0.1:{port}/streaming/live/1");
    let (url, target) = urlguard::check_resolved(
        &url,
        Policy {
            allow_loopback: true,
        },
    )
    .unwrap();
    let creds = Credentials::new("bblp", password).unwrap();
    Session::open(&target, &url, Some(creds), transport, Timeouts::default())
}

/// The error of a session that must not open.
fn refused(port: u16, scheme: &str, password: &str, transport: Transport) -> Error {
    match open(port, scheme, password, transport) {
        Ok(_) => panic!("the session opened"),
        Err(e) => e,
    }
}

/// Access units of `PLAY` seconds of the session.
fn play(session: &mut Session) -> (Depacketizer, Vec<AccessUnit>) {
    let mut depacketizer = Depacketizer::default();
    depacketizer.set_parameter_sets(&session.info().parameter_sets);
    if let Some(seq) = session.info().first_sequence {
        depacketizer.expect_sequence(seq);
    }
    let start = Instant::now();
    let mut units = Vec::new();
    while start.elapsed() < PLAY {
        let packet = session.next_packet().expect("next packet");
        units.extend(depacketizer.push(packet, start.elapsed()));
    }
    (depacketizer, units)
}

/// The units as a fragmented MP4 file; returns ffprobe's
/// `codec,width,height,frames`.
fn mux_and_probe(ffprobe: &Path, d: &Depacketizer, units: &[AccessUnit], name: &str) -> String {
    let track = VideoTrack::new(d.sps().expect("an SPS"), d.pps().expect("a PPS")).unwrap();
    let mut file = track.init_segment(Rotation::None);
    let mut fragmenter = Fragmenter::new();
    for pair in units.windows(2) {
        let duration = u32::try_from(pair[1].time - pair[0].time).unwrap();
        let au = &pair[0];
        file.extend(fragmenter.fragment(au.time, duration, au.keyframe, &au.data));
    }
    doubles::probe_mp4(ffprobe, &file, &format!("rtsp-native-{name}"))
}

/// Checks the probe line: H.264, 640x360, and most of the frames of
/// `PLAY` seconds at 15 fps.
fn assert_h264_640x360(probe: &str) {
    let fields: Vec<&str> = probe.split(',').collect();
    assert_eq!(fields[..3], ["h264", "640", "360"], "{probe}");
    let frames: u32 = fields[3].parse().unwrap();
    assert!(frames >= 15, "only {frames} frames in {PLAY:?}: {probe}");
}

fn close_and_see_teardown(session: Session, events: &mut Events) {
    session.close().expect("TEARDOWN answered");
    assert!(
        events.wait_for("TEARDOWN", Duration::from_secs(10)),
        "{:?}",
        events.seen
    );
    assert!(
        events.wait_for("CLOSED", Duration::from_secs(10)),
        "{:?}",
        events.seen
    );
}

#[test]
fn plain_rtsp_plays_h264_keeps_alive_and_tears_down() {
    let Some(ffprobe) = tools() else { return };
    let (rtsp, mut events) = RtspServer::watched("bblp", CODE, SESSION_TIMEOUT);
    let mut session = open(rtsp.port, "rtsp", CODE, Transport::Plain).unwrap();
    assert_eq!(session.info().clock_rate, 90_000);
    assert_eq!(
        session.info().session_timeout,
        Duration::from_secs(SESSION_TIMEOUT.into())
    );
    let (d, units) = play(&mut session);
    assert!(units.iter().any(|u| u.keyframe));
    assert_h264_640x360(&mux_and_probe(&ffprobe, &d, &units, "plain"));
    close_and_see_teardown(session, &mut events);
    // One OPTIONS to start; the keep-alives (GStreamer lists GET_PARAMETER)
    // came while playing, one a second.
    assert_eq!(events.count("OPTIONS"), 1, "{:?}", events.seen);
    assert!(events.count("GET_PARAMETER") >= 1, "{:?}", events.seen);
}

#[test]
fn rtsps_through_printcams_tls_with_a_pin() {
    let Some(ffprobe) = tools() else { return };
    let (rtsp, mut events) = RtspServer::watched("bblp", CODE, 60);
    let front = TlsFront::start(rtsp.port);
    let (config, recorder) = printcam::tls::client_config(None);
    let mut session = open(
        front.port,
        "rtsps",
        CODE,
        Transport::Tls(Dialer::fixed(config)),
    )
    .unwrap();
    let pin = recorder.seen().expect("the certificate seen");
    let (d, units) = play(&mut session);
    assert_h264_640x360(&mux_and_probe(&ffprobe, &d, &units, "tls"));
    close_and_see_teardown(session, &mut events);

    // The pinned certificate is accepted again; another one is refused.
    let (pinned, _) = printcam::tls::client_config(Some(pin.clone()));
    open(
        front.port,
        "rtsps",
        CODE,
        Transport::Tls(Dialer::fixed(pinned)),
    )
    .unwrap()
    .close()
    .unwrap();
    let other = "00".repeat(32);
    let (wrong, _) = printcam::tls::client_config(Some(other));
    let e = refused(
        front.port,
        "rtsps",
        CODE,
        Transport::Tls(Dialer::fixed(wrong)),
    );
    assert_eq!(e.kind, ErrorKind::CertificateChanged, "{e}");
}

#[test]
fn a_wrong_password_is_named_and_not_shown() {
    if tools().is_none() {
        return;
    }
    let rtsp = RtspServer::start("bblp", CODE, 640, 360);
    let wrong = "99999999";
    let e = refused(rtsp.port, "rtsp", wrong, Transport::Plain);
    assert_eq!(e.kind, ErrorKind::Unauthorized, "{e}");
    assert!(e.message.contains("wrong user or password"), "{e}");
    assert!(
        !e.message.contains(wrong) && !e.message.contains(CODE),
        "{e}"
    );
    // And through rtsps, as a printer with a wrong access code.
    let front = TlsFront::start(rtsp.port);
    let (config, _) = printcam::tls::client_config(None);
    let e = refused(
        front.port,
        "rtsps",
        wrong,
        Transport::Tls(Dialer::fixed(config)),
    );
    assert_eq!(e.kind, ErrorKind::Unauthorized, "{e}");
    assert!(e.message.contains("wrong user or password"), "{e}");
}

#[test]
fn a_missing_stream_is_not_found() {
    if tools().is_none() {
        return;
    }
    let rtsp = RtspServer::start("bblp", CODE, 640, 360);
    let url = format!(
        "rtsp://bblp:{CODE}@127.0.0.1:{}/streaming/live/9",
        rtsp.port
    );
    let (url, target) = urlguard::check_resolved(
        &url,
        Policy {
            allow_loopback: true,
        },
    )
    .unwrap();
    // The credentials come from the URL here.
    let e = Session::open(&target, &url, None, Transport::Plain, Timeouts::default())
        .err()
        .unwrap();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
    assert!(!e.message.contains(CODE), "{e}");
}
