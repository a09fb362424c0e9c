//! Real printers' oddities against the port-6000 double: quiet cameras,
//! payloads that are not JPEGs, firmware that never answers a TLS 1.3
//! hello, and certificates issued by a (private, Bambu-like) CA.

#[path = "support/chamber_double.rs"]
mod chamber_double;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use chamber_double::*;
use printcam::bambu_ca::CaSet;
use printcam::source::{Source, SourceError, Upstream};
use printcam::sources::chamber::{Chamber, Pin};
use printcam::sources::tofu::{OnPin, Tofu};
use printcam::tls::{cert_sha256_hex, Identity};
use printcam::urlguard::Policy;

const CODE: &str = "12345678";
const LOOPBACK_OK: Policy = Policy {
    allow_loopback: true,
};

/// Collects frames until it has `want`, and what the source reported.
#[derive(Default)]
struct Collect {
    want: usize,
    frames: Mutex<Vec<Vec<u8>>>,
    skipped: AtomicUsize,
    tls: Mutex<Vec<&'static str>>,
}

impl Collect {
    fn new(want: usize) -> Arc<Self> {
        Arc::new(Collect {
            want,
            ..Collect::default()
        })
    }

    fn frames(&self) -> Vec<Vec<u8>> {
        self.frames.lock().unwrap().clone()
    }
}

impl Upstream for Collect {
    fn emit(&self, jpeg: Vec<u8>) -> bool {
        let mut frames = self.frames.lock().unwrap();
        frames.push(jpeg);
        frames.len() < self.want
    }
    fn stopping(&self) -> bool {
        false
    }
    fn sleep(&self, d: Duration) -> bool {
        thread::sleep(d.min(Duration::from_millis(100)));
        true
    }
    fn wanted_fps(&self) -> u32 {
        2
    }
    fn on_cancel(&self, _cancel: Box<dyn Fn() + Send + Sync>) {}
    fn skipped_frame(&self) {
        self.skipped.fetch_add(1, Ordering::SeqCst);
    }
    fn tls_version(&self, version: &'static str) {
        self.tls.lock().unwrap().push(version);
    }
}

/// Runs the source on its own thread so a hang fails the test.
fn run(chamber: &Arc<Chamber>, up: &Arc<Collect>) -> Result<(), SourceError> {
    let (tx, rx) = mpsc::channel();
    let (c, u) = (Arc::clone(chamber), Arc::clone(up));
    thread::Builder::new()
        .name("chamber-run".into())
        .spawn(move || {
            let _ = tx.send(c.run(u.as_ref()));
        })
        .unwrap();
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the chamber source did not return")
}

fn chamber(port: u16, quiet: Duration, tofu: Option<Tofu>) -> Arc<Chamber> {
    let c = Chamber::new(
        "127.0.0.1".into(),
        port,
        CODE.into(),
        None,
        None,
        LOOPBACK_OK,
    )
    .with_timeouts(Duration::from_secs(2), quiet);
    Arc::new(match tofu {
        Some(t) => c.with_tofu(Arc::new(t)),
        None => c,
    })
}

#[test]
fn a_camera_quieter_than_the_wait_keeps_its_connection() {
    let double = Double::start(Options {
        interval: Duration::from_secs(3),
        ..Options::new(Mode::Endless)
    });
    // Frames 3 s apart, a wait of 10 s: three frames, one login.
    let up = Collect::new(3);
    run(&chamber(double.port(), Duration::from_secs(10), None), &up).unwrap();
    assert_eq!(up.frames(), expected_frames(3));
    assert_eq!(Stats::get(&double.stats.auth_ok), 1);
}

#[test]
fn a_camera_quieter_than_a_short_wait_is_given_up_after_one_frame() {
    let double = Double::start(Options {
        interval: Duration::from_secs(3),
        ..Options::new(Mode::Endless)
    });
    // The same camera with a wait shorter than its pause (what the old
    // fixed 10 s did to a camera sending every ~16 s).
    let up = Collect::new(3);
    let err = run(&chamber(double.port(), Duration::from_secs(1), None), &up).unwrap_err();
    assert!(
        err.message.contains("no frame from the camera within 1 s"),
        "{err}"
    );
    assert_eq!(up.frames().len(), 1);
}

#[test]
fn payloads_that_are_not_jpegs_are_skipped_and_counted_on_one_connection() {
    let double = Double::start(Options::new(Mode::OddPayloads));
    let up = Collect::new(6);
    run(&chamber(double.port(), Duration::from_secs(5), None), &up).unwrap();
    assert_eq!(up.frames(), expected_frames(6));
    assert!(up.skipped.load(Ordering::SeqCst) >= 5);
    assert_eq!(Stats::get(&double.stats.connections), 1);
}

fn tls12_fallback(hello: Hello) {
    let double = Double::start(Options {
        hello,
        ..Options::new(Mode::Endless)
    });
    let source = chamber(double.port(), Duration::from_secs(5), None);
    let up = Collect::new(2);
    run(&source, &up).unwrap();
    assert_eq!(up.frames().len(), 2);
    assert_eq!(*up.tls.lock().unwrap(), ["TLS 1.2"]);
    assert_eq!(Stats::get(&double.stats.tls13_refused), 1);
    // Remembered: the next connection offers TLS 1.2 only, at once.
    let up = Collect::new(2);
    run(&source, &up).unwrap();
    assert_eq!(*up.tls.lock().unwrap(), ["TLS 1.2"]);
    assert_eq!(Stats::get(&double.stats.tls13_refused), 1);
    assert_eq!(Stats::get(&double.stats.auth_ok), 2);
}

#[test]
fn a_printer_that_never_answers_a_tls13_hello_is_retried_with_tls12() {
    tls12_fallback(Hello::IgnoreTls13);
}

#[test]
fn a_protocol_version_alert_is_retried_with_tls12() {
    tls12_fallback(Hello::AlertTls13);
}

#[test]
fn a_printer_that_speaks_tls13_keeps_it() {
    let double = Double::start(Options::new(Mode::Endless));
    let up = Collect::new(1);
    run(&chamber(double.port(), Duration::from_secs(5), None), &up).unwrap();
    assert_eq!(*up.tls.lock().unwrap(), ["TLS 1.3"]);
}

// ------------------------------------------------------------ Bambu CA

type Pins = Arc<Mutex<Vec<(String, bool)>>>;

/// A source trusting the private CA for `BBL_SERIAL`, with `pin`.
fn verified_chamber(port: u16, pin: Option<Pin>) -> (Arc<Chamber>, Pins) {
    let pins: Pins = Arc::default();
    let sink = Arc::clone(&pins);
    let on_pin: OnPin = Arc::new(move |fp: &str, verified: bool| {
        sink.lock().unwrap().push((fp.to_string(), verified))
    });
    let identity = Identity {
        serial: BBL_SERIAL.into(),
        cas: Arc::new(CaSet::bambu_and(BBL_CA).unwrap()),
    };
    let tofu = Tofu::with_identity(pin, Some(identity), Some(on_pin));
    (chamber(port, Duration::from_secs(5), Some(tofu)), pins)
}

fn double_with(cert_pem: &'static [u8], key_pem: &'static [u8]) -> Double {
    Double::start(Options {
        cert_pem,
        key_pem,
        ..Options::new(Mode::Endless)
    })
}

fn fp(pem: &[u8]) -> String {
    cert_sha256_hex(&cert_der(pem))
}

#[test]
fn a_leaf_the_ca_issued_to_the_serial_is_verified_and_pinned() {
    let double = double_with(BBL_LEAF, BBL_LEAF_KEY);
    let (source, pins) = verified_chamber(double.port(), None);
    run(&source, &Collect::new(1)).unwrap();
    assert_eq!(*pins.lock().unwrap(), [(fp(BBL_LEAF), true)]);
}

#[test]
fn a_reissued_leaf_is_accepted_when_verified_and_replaces_the_pin() {
    let double = double_with(BBL_REISSUED, BBL_REISSUED_KEY);
    let old = Pin {
        sha256: fp(BBL_LEAF),
        verified: true,
    };
    let (source, pins) = verified_chamber(double.port(), Some(old));
    run(&source, &Collect::new(1)).unwrap();
    assert_eq!(*pins.lock().unwrap(), [(fp(BBL_REISSUED), true)]);
    // The source holds the new pin: the next connection changes nothing.
    run(&source, &Collect::new(1)).unwrap();
    assert_eq!(pins.lock().unwrap().len(), 1);
}

#[test]
fn a_leaf_for_another_serial_is_pinned_on_first_use_and_its_change_refused() {
    let double = double_with(BBL_OTHER, BBL_OTHER_KEY);
    let (source, pins) = verified_chamber(double.port(), None);
    run(&source, &Collect::new(1)).unwrap();
    assert_eq!(*pins.lock().unwrap(), [(fp(BBL_OTHER), false)]);
    drop(double);
    // Pinned on first use only: another certificate is refused, even one
    // the CA issued (the pin says which printer this is).
    let pin = Pin {
        sha256: fp(BBL_OTHER),
        verified: false,
    };
    let double = double_with(CERT_A, KEY_A);
    let (source, _) = verified_chamber(double.port(), Some(pin));
    let err = run(&source, &Collect::new(1)).unwrap_err();
    assert!(
        !err.retry && err.message.contains("certificate changed"),
        "{err}"
    );
    assert_eq!(Stats::get(&double.stats.auth_ok), 0);
}

#[test]
fn a_self_made_certificate_does_not_displace_a_verified_pin() {
    let pin = Pin {
        sha256: fp(BBL_LEAF),
        verified: true,
    };
    let double = double_with(CERT_A, KEY_A);
    let (source, pins) = verified_chamber(double.port(), Some(pin));
    let err = run(&source, &Collect::new(1)).unwrap_err();
    assert!(err.message.contains("certificate changed"), "{err}");
    assert!(pins.lock().unwrap().is_empty());
    assert_eq!(Stats::get(&double.stats.auth_ok), 0);
}

#[test]
fn a_v3_leaf_sent_with_its_device_ca_is_verified() {
    let double = Double::start(Options {
        cert_pem: BBL_V3,
        key_pem: BBL_V3_KEY,
        intermediate_pem: Some(BBL_DEVICE_CA),
        ..Options::new(Mode::Endless)
    });
    let (source, pins) = verified_chamber(double.port(), None);
    run(&source, &Collect::new(1)).unwrap();
    assert_eq!(*pins.lock().unwrap(), [(fp(BBL_V3), true)]);
}
