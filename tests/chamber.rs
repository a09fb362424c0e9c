//! The chamber camera source against a real TLS test double of a printer's
//! port 6000.

#[path = "support/chamber_double.rs"]
mod chamber_double;

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use chamber_double::{cert_der, expected_frames, Double, Mode, Options, Stats};
use printcam::source::{Source, SourceError, Upstream};
use printcam::sources::chamber::{Chamber, OnPin};
use printcam::tls::cert_sha256_hex;
use printcam::urlguard::Policy;

const CODE: &str = "12345678";
/// The tests' printers listen on loopback, as `--allow-loopback` allows.
const LOOPBACK_OK: Policy = Policy {
    allow_loopback: true,
};

/// Collects frames; wants `want` of them, then says stop.
struct Collect {
    want: usize,
    frames: Mutex<Vec<Vec<u8>>>,
    stopped: AtomicBool,
    cancel: Mutex<Option<Box<dyn Fn() + Send + Sync>>>,
}

impl Collect {
    fn new(want: usize) -> Arc<Self> {
        Arc::new(Collect {
            want,
            frames: Mutex::new(Vec::new()),
            stopped: AtomicBool::new(false),
            cancel: Mutex::new(None),
        })
    }

    fn frames(&self) -> Vec<Vec<u8>> {
        self.frames.lock().unwrap().clone()
    }

    /// What the hub does on stop: flag, then interrupt.
    fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        if let Some(cancel) = self.cancel.lock().unwrap().as_ref() {
            cancel();
        }
    }
}

impl Upstream for Collect {
    fn emit(&self, jpeg: Vec<u8>) -> bool {
        let mut frames = self.frames.lock().unwrap();
        frames.push(jpeg);
        frames.len() < self.want
    }

    fn stopping(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    fn sleep(&self, d: Duration) -> bool {
        thread::sleep(d.min(Duration::from_millis(100)));
        !self.stopping()
    }

    fn wanted_fps(&self) -> u32 {
        2
    }

    fn on_cancel(&self, cancel: Box<dyn Fn() + Send + Sync>) {
        *self.cancel.lock().unwrap() = Some(cancel);
    }
}

/// Runs the source on its own thread so a hang fails the test instead of
/// blocking it forever.
fn run(chamber: &Arc<Chamber>, up: &Arc<Collect>) -> Result<(), SourceError> {
    let (tx, rx) = mpsc::channel();
    let (c, u) = (Arc::clone(chamber), Arc::clone(up));
    thread::Builder::new()
        .name("chamber-run".into())
        .spawn(move || {
            let _ = tx.send(c.run(u.as_ref()));
        })
        .unwrap();
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the chamber source did not return")
}

fn chamber(port: u16, code: &str, pin: Option<String>, on_pin: Option<OnPin>) -> Arc<Chamber> {
    Arc::new(
        Chamber::new(
            "127.0.0.1".into(),
            port,
            code.into(),
            pin,
            on_pin,
            LOOPBACK_OK,
        )
        .with_timeouts(Duration::from_secs(5), Duration::from_secs(5)),
    )
}

/// A chamber source without a pin, at `host`, with (connect, read) timeouts.
fn plain_chamber(
    host: &str,
    port: u16,
    policy: Policy,
    (connect, read): (Duration, Duration),
) -> Arc<Chamber> {
    Arc::new(
        Chamber::new(host.into(), port, CODE.into(), None, None, policy)
            .with_timeouts(connect, read),
    )
}

/// An on_pin callback and what it was called with.
fn pin_sink() -> (OnPin, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let cb: OnPin =
        Arc::new(move |fp: &str, _verified: bool| sink.lock().unwrap().push(fp.to_string()));
    (cb, seen)
}

fn assert_no_secret(e: &SourceError) {
    assert!(!e.message.contains(CODE), "{}", e.message);
    assert!(!e.message.contains("87654321"), "{}", e.message);
}

#[test]
fn frames_arrive_intact_over_one_connection_and_the_certificate_is_pinned() {
    let double = Double::start(Options::new(Mode::Normal));
    let (on_pin, pins) = pin_sink();
    let source = chamber(double.port(), CODE, None, Some(on_pin));
    let up = Collect::new(12);

    run(&source, &up).unwrap();

    assert_eq!(up.frames(), expected_frames(12));
    assert_eq!(Stats::get(&double.stats.connections), 1);
    assert_eq!(Stats::get(&double.stats.max_concurrent), 1);
    assert_eq!(Stats::get(&double.stats.auth_ok), 1);
    let fingerprint = cert_sha256_hex(&cert_der(chamber_double::CERT_A));
    assert_eq!(*pins.lock().unwrap(), vec![fingerprint]);
}

#[test]
fn tls12_and_ecdsa_certificates_work_too() {
    for (cert, key) in [
        (chamber_double::CERT_A, chamber_double::KEY_A),
        (chamber_double::CERT_EC, chamber_double::KEY_EC),
    ] {
        for tls12_only in [true, false] {
            let double = Double::start(Options {
                cert_pem: cert,
                key_pem: key,
                tls12_only,
                ..Options::new(Mode::Normal)
            });
            let up = Collect::new(5);
            run(&chamber(double.port(), CODE, None, None), &up).unwrap();
            assert_eq!(up.frames(), expected_frames(5));
        }
    }
}

#[test]
fn a_pinned_certificate_is_accepted_and_a_changed_one_refused() {
    let pin = cert_sha256_hex(&cert_der(chamber_double::CERT_A));
    let printer = Double::start(Options::new(Mode::Normal));
    let (on_pin, pins) = pin_sink();
    let up = Collect::new(3);
    run(
        &chamber(printer.port(), CODE, Some(pin.clone()), Some(on_pin)),
        &up,
    )
    .unwrap();
    assert_eq!(up.frames().len(), 3);
    assert!(pins.lock().unwrap().is_empty(), "an existing pin is kept");

    let impostor = Double::start(Options {
        cert_pem: chamber_double::CERT_B,
        key_pem: chamber_double::KEY_B,
        ..Options::new(Mode::Normal)
    });
    let err = run(
        &chamber(impostor.port(), CODE, Some(pin), None),
        &Collect::new(3),
    )
    .unwrap_err();
    assert!(!err.retry, "retrying cannot fix a changed certificate");
    assert!(
        err.message.contains("certificate changed"),
        "{}",
        err.message
    );
    assert!(
        err.message.contains("printcam printer forget-cert"),
        "{}",
        err.message
    );
    assert_eq!(Stats::get(&impostor.stats.auth_ok), 0, "no secret sent");
    assert_no_secret(&err);
}

#[test]
fn a_pin_learned_on_first_use_holds_for_later_connections() {
    let first = Double::start(Options::new(Mode::Normal));
    let port = first.port();
    let source = chamber(port, CODE, None, None);
    run(&source, &Collect::new(2)).unwrap();
    drop(first);

    // Another device now answers at the same address.
    let other = Double::start_on(
        port,
        Options {
            cert_pem: chamber_double::CERT_B,
            key_pem: chamber_double::KEY_B,
            ..Options::new(Mode::Normal)
        },
    );
    let err = run(&source, &Collect::new(1)).unwrap_err();
    assert!(!err.retry);
    assert!(
        err.message.contains("certificate changed"),
        "{}",
        err.message
    );
    assert_eq!(Stats::get(&other.stats.auth_ok), 0, "no secret sent");
}

#[test]
fn a_server_without_the_certificate_key_fails_the_handshake() {
    let pin = cert_sha256_hex(&cert_der(chamber_double::CERT_A));
    for tls12_only in [false, true] {
        // Presents printer A's certificate but signs with B's key.
        let impostor = Double::start(Options {
            key_pem: chamber_double::KEY_B,
            tls12_only,
            ..Options::new(Mode::Normal)
        });
        for pinned in [Some(pin.clone()), None] {
            let (on_pin, pins) = pin_sink();
            let err = run(
                &chamber(impostor.port(), CODE, pinned, Some(on_pin)),
                &Collect::new(1),
            )
            .unwrap_err();
            assert!(err.retry);
            assert!(err.message.contains("TLS handshake"), "{}", err.message);
            assert!(err.message.contains("signature"), "{}", err.message);
            assert!(pins.lock().unwrap().is_empty());
        }
        assert_eq!(Stats::get(&impostor.stats.auth_ok), 0, "no secret sent");
    }
}

#[test]
fn a_wrong_access_code_is_reported_as_such() {
    let double = Double::start(Options::new(Mode::Normal));
    let (on_pin, pins) = pin_sink();
    let err = run(
        &chamber(double.port(), "87654321", None, Some(on_pin)),
        &Collect::new(1),
    )
    .unwrap_err();
    assert!(err.retry);
    assert!(
        err.message.contains("check the access code"),
        "{}",
        err.message
    );
    assert_no_secret(&err);
    assert_eq!(Stats::get(&double.stats.auth_bad), 1);
    assert!(pins.lock().unwrap().is_empty(), "no pin before a frame");
}

#[test]
fn an_overlong_access_code_is_fatal_and_never_sent() {
    let double = Double::start(Options::new(Mode::Normal));
    let code = "x".repeat(33);
    let err = run(&chamber(double.port(), &code, None, None), &Collect::new(1)).unwrap_err();
    assert!(!err.retry);
    assert!(!err.message.contains(&code));
    assert_eq!(Stats::get(&double.stats.connections), 0);
}

#[test]
fn a_silent_camera_times_out_with_a_clear_message() {
    let double = Double::start(Options::new(Mode::Silent));
    let source = plain_chamber(
        "127.0.0.1",
        double.port(),
        LOOPBACK_OK,
        (Duration::from_secs(5), Duration::from_secs(1)),
    );
    let err = run(&source, &Collect::new(1)).unwrap_err();
    assert!(err.retry);
    assert!(
        err.message
            .contains("no frame from the camera within 1 s: the camera may be off"),
        "{}",
        err.message
    );
}

#[test]
fn a_connection_dropped_mid_frame_is_an_error_after_the_good_frames() {
    let double = Double::start(Options::new(Mode::DropMidFrame));
    let up = Collect::new(10);
    let err = run(&chamber(double.port(), CODE, None, None), &up).unwrap_err();
    assert!(err.retry);
    assert!(err.message.contains("middle of a frame"), "{}", err.message);
    assert_eq!(up.frames(), expected_frames(1));
}

#[test]
fn a_stop_interrupts_a_blocked_read() {
    let double = Double::start(Options::new(Mode::Silent));
    let source = plain_chamber(
        "127.0.0.1",
        double.port(),
        LOOPBACK_OK,
        (Duration::from_secs(5), Duration::from_secs(120)),
    );
    let up = Collect::new(1);
    let stopper = {
        let up = Arc::clone(&up);
        let stats = Arc::clone(&double.stats);
        thread::Builder::new()
            .name("stopper".into())
            .spawn(move || {
                // Once authenticated, the source is blocked reading.
                for _ in 0..2000 {
                    if Stats::get(&stats.auth_ok) == 1 {
                        break;
                    }
                    thread::sleep(Duration::from_millis(10));
                }
                thread::sleep(Duration::from_millis(100));
                up.stop();
            })
            .unwrap()
    };
    // run() gives up after 30 s, far below the 120 s read timeout.
    assert_eq!(run(&source, &up), Ok(()));
    stopper.join().unwrap();
}

#[test]
fn a_refused_connection_says_the_printer_is_off_or_the_ip_wrong() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let err = run(&chamber(port, CODE, None, None), &Collect::new(1)).unwrap_err();
    assert!(err.retry);
    assert!(err.message.contains("refused"), "{}", err.message);
    assert!(err.message.contains("IP address"), "{}", err.message);
}

#[test]
fn a_server_that_never_speaks_tls_fails_the_handshake_in_time() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let holder = thread::Builder::new()
        .name("mute-server".into())
        .spawn(move || {
            // Twice: the client retries at once with TLS 1.2 only.
            for _ in 0..2 {
                let (sock, _) = listener.accept().unwrap();
                // Hold the connection open, saying nothing, until the client leaves.
                sock.set_read_timeout(Some(Duration::from_secs(20)))
                    .unwrap();
                let mut buf = [0u8; 4096];
                while let Ok(n) = std::io::Read::read(&mut &sock, &mut buf) {
                    if n == 0 {
                        break;
                    }
                }
            }
        })
        .unwrap();
    let source = plain_chamber(
        "127.0.0.1",
        port,
        LOOPBACK_OK,
        (Duration::from_secs(1), Duration::from_secs(1)),
    );
    let err = run(&source, &Collect::new(1)).unwrap_err();
    assert!(err.retry);
    assert!(err.message.contains("TLS handshake"), "{}", err.message);
    assert!(
        err.message.contains("no answer within 1 s")
            && err.message.contains("retried with TLS 1.2 only"),
        "{}",
        err.message
    );
    holder.join().unwrap();
}

#[test]
fn a_host_name_works_as_well_as_an_ip_address() {
    let double = Double::start(Options::new(Mode::Normal));
    let source = plain_chamber(
        "localhost",
        double.port(),
        LOOPBACK_OK,
        (Duration::from_secs(5), Duration::from_secs(5)),
    );
    let up = Collect::new(2);
    run(&source, &up).unwrap();
    assert_eq!(up.frames(), expected_frames(2));
}

/// A name that resolves to loopback is judged by what it resolves to, right
/// before connecting: without `--allow-loopback` nothing connects, so no
/// access code is sent.
#[test]
fn a_name_that_resolves_to_loopback_is_not_connected_to() {
    let double = Double::start(Options::new(Mode::Normal));
    for host in ["localhost", "127.0.0.1", "2130706433"] {
        let timeouts = (Duration::from_secs(5), Duration::from_secs(5));
        let source = plain_chamber(host, double.port(), Policy::default(), timeouts);
        let err = run(&source, &Collect::new(1)).unwrap_err();
        assert!(err.message.contains("loopback"), "{host}: {}", err.message);
        assert!(!err.message.contains(CODE), "{}", err.message);
    }
    assert_eq!(Stats::get(&double.stats.connections), 0);
    assert_eq!(Stats::get(&double.stats.auth_ok), 0);
}
