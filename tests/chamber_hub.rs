//! A P1S's chamber camera served through `Cameras` against the port-6000
//! TLS double: one printer connection for any number of consumers, closing
//! after the grace period, reconnecting under live viewers, the access-code
//! message, and certificate pinning on first use.

#[path = "support/chamber_double.rs"]
mod chamber_double;

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use chamber_double::{cert_der, Double, Mode, Options, Stats, CERT_A, CERT_B, KEY_B};
use printcam::cameras::Cameras;
use printcam::config::Settings;
use printcam::hub::{RecvTimeoutError, UpstreamState};
use printcam::registry::{Printer, PrinterPatch, Registry};
use printcam::tls::cert_sha256_hex;

const CODE: &str = "12345678";
const GRACE: Duration = Duration::from_millis(300);
/// Generous: the box may be busy building other crates.
const LONG: Duration = Duration::from_secs(15);

fn cameras() -> Arc<Cameras> {
    let registry = Arc::new(Registry::open_in_memory().unwrap());
    Cameras::new(
        registry,
        Settings {
            allow_loopback: true,
            grace: GRACE,
            snapshot_timeout: Duration::from_secs(5),
            ..Settings::default()
        },
    )
}

fn add_p1s(cameras: &Cameras, port: u16, code: &str) -> i64 {
    cameras
        .add_printer(&Printer {
            name: "P1S".into(),
            ip: Some("127.0.0.1".into()),
            access_code: Some(code.into()),
            model: Some("P1S".into()),
            camera_port: Some(port),
            ..Printer::default()
        })
        .unwrap()
}

/// Polls `cond` until it holds; fails the test after `LONG`.
fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + LONG;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

fn count(c: &AtomicUsize) -> usize {
    Stats::get(c)
}

fn pin_of(cameras: &Cameras, id: i64) -> Option<String> {
    cameras.registry().get(id).unwrap().unwrap().cert_sha256
}

#[test]
fn viewers_and_snapshots_share_one_printer_connection() {
    let double = Double::start(Options::new(Mode::Endless));
    let cameras = cameras();
    let id = add_p1s(&cameras, double.port(), CODE);
    let hub = cameras.hub(id).unwrap();
    let viewers: Vec<_> = (0..3).map(|_| hub.subscribe(10)).collect();
    let snapshots: Vec<_> = (0..4)
        .map(|i| {
            let cameras = Arc::clone(&cameras);
            thread::Builder::new()
                .name(format!("snapshot-{i}"))
                .spawn(move || cameras.snapshot(id))
                .unwrap()
        })
        .collect();
    for viewer in &viewers {
        for _ in 0..3 {
            let frame = viewer.recv(LONG).expect("a viewer got no frame").frame;
            assert!(printcam::jpeg::resolution(&frame.jpeg).is_some());
        }
    }
    for s in snapshots {
        let frame = s.join().unwrap().expect("snapshot failed");
        assert!(printcam::jpeg::resolution(&frame.jpeg).is_some());
    }
    let test = cameras.test(id).unwrap();
    assert!(test.success, "{test:?}");
    assert!(test.resolution.is_some(), "{test:?}");

    assert_eq!(count(&double.stats.connections), 1);
    assert_eq!(count(&double.stats.max_concurrent), 1);
    assert_eq!(count(&double.stats.current), 1);

    drop(viewers);
    // The grace period passes, then the printer connection closes.
    wait_until("the printer connection to close", || {
        count(&double.stats.current) == 0
    });
    assert_eq!(count(&double.stats.connections), 1);
    let stats = cameras.status(id).unwrap().unwrap();
    assert_eq!(stats.state, UpstreamState::Idle, "{stats:?}");
    assert_eq!(stats.connects, 1, "{stats:?}");
    cameras.shutdown();
}

#[test]
fn a_wrong_access_code_is_named_in_the_test_result() {
    let double = Double::start(Options::new(Mode::Endless));
    let cameras = cameras();
    let id = add_p1s(&cameras, double.port(), "87654321");
    let test = cameras.test(id).unwrap();
    assert!(!test.success, "{test:?}");
    let error = test.error.unwrap();
    assert!(error.contains("check the access code"), "{error}");
    assert!(!error.contains("87654321"), "{error}");
    assert!(count(&double.stats.auth_bad) >= 1);
    cameras.shutdown();
}

#[test]
fn viewers_keep_their_stream_across_a_reconnect() {
    // One frame and half of the next, then the printer hangs up; the next
    // connection streams normally.
    let double = Double::start(Options::new(Mode::DropOnceThenEndless));
    let cameras = cameras();
    let id = add_p1s(&cameras, double.port(), CODE);
    let hub = cameras.hub(id).unwrap();
    let viewers: Vec<_> = (0..3).map(|_| hub.subscribe(10)).collect();
    for viewer in &viewers {
        // The first connection gives frame 1 only: seq 2 and later come
        // from the reconnect.
        let deadline = Instant::now() + LONG;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match viewer.recv(left) {
                Ok(d) if d.frame.seq >= 2 => break,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => panic!("no frame after the reconnect"),
                Err(RecvTimeoutError::Disconnected) => panic!("the viewer was dropped"),
            }
        }
    }
    assert!(count(&double.stats.connections) >= 2);
    assert_eq!(count(&double.stats.max_concurrent), 1);
    let stats = hub.stats();
    assert!(stats.reconnects >= 1, "{stats:?}");
    assert_eq!(stats.viewers, 3, "{stats:?}");
    drop(viewers);
    wait_until("the printer connection to close", || {
        count(&double.stats.current) == 0
    });
    cameras.shutdown();
}

#[test]
fn the_first_certificate_is_pinned_and_a_changed_one_refused() {
    let first = Double::start(Options::new(Mode::Endless));
    let port = first.port();
    let cameras = cameras();
    let id = add_p1s(&cameras, port, CODE);
    assert_eq!(pin_of(&cameras, id), None);

    let test = cameras.test(id).unwrap();
    assert!(test.success, "{test:?}");
    let pin_a = cert_sha256_hex(&cert_der(CERT_A));
    assert_eq!(pin_of(&cameras, id), Some(pin_a.clone()));
    wait_until("the printer connection to close", || {
        count(&first.stats.current) == 0
    });
    drop(first);

    // Another device, another certificate, same address.
    let impostor = Double::start_on(
        port,
        Options {
            cert_pem: CERT_B,
            key_pem: KEY_B,
            ..Options::new(Mode::Endless)
        },
    );
    let test = cameras.test(id).unwrap();
    assert!(!test.success, "{test:?}");
    let error = test.error.unwrap();
    assert!(error.contains("certificate changed"), "{error}");
    assert!(error.contains("forget-cert"), "{error}");
    // The access code never went to the impostor, and the pin stays.
    assert_eq!(count(&impostor.stats.auth_ok), 0);
    assert_eq!(count(&impostor.stats.auth_bad), 0);
    assert_eq!(pin_of(&cameras, id), Some(pin_a));
    // Refused for good: the hub does not keep knocking.
    let before = count(&impostor.stats.connections);
    thread::sleep(Duration::from_secs(1));
    assert_eq!(count(&impostor.stats.connections), before);

    // The user accepts the new certificate.
    cameras.forget_cert(id).unwrap();
    assert_eq!(pin_of(&cameras, id), None);
    let test = cameras.test(id).unwrap();
    assert!(test.success, "{test:?}");
    assert_eq!(
        pin_of(&cameras, id),
        Some(cert_sha256_hex(&cert_der(CERT_B)))
    );
    cameras.shutdown();
    wait_until("the printer connection to close", || {
        count(&impostor.stats.current) == 0
    });
}

#[test]
fn moving_a_printer_forgets_the_pin_and_needs_the_access_code_again() {
    let first = Double::start(Options::new(Mode::Endless));
    let cameras = cameras();
    let id = add_p1s(&cameras, first.port(), CODE);
    assert!(cameras.test(id).unwrap().success);
    assert!(pin_of(&cameras, id).is_some());

    // Another device on another port, with another certificate and code.
    const NEW_CODE: &str = "87654321";
    let other = Double::start(Options {
        cert_pem: CERT_B,
        key_pem: KEY_B,
        access_code: NEW_CODE,
        ..Options::new(Mode::Endless)
    });
    let move_only = PrinterPatch {
        camera_port: Some(Some(other.port())),
        ..PrinterPatch::default()
    };
    let e = cameras.update_printer(id, &move_only).unwrap_err();
    assert!(matches!(e, printcam::error::Error::Invalid(_)), "{e:?}");
    assert!(e.message().contains("access_code"), "{}", e.message());
    assert_eq!(cameras.printer(id).unwrap().camera_port, Some(first.port()));
    assert!(pin_of(&cameras, id).is_some());
    let move_ip = PrinterPatch {
        ip: Some(Some("localhost".into())),
        ..PrinterPatch::default()
    };
    assert!(cameras.update_printer(id, &move_ip).is_err());

    let with_code = PrinterPatch {
        access_code: Some(Some(NEW_CODE.into())),
        ..move_only
    };
    cameras.update_printer(id, &with_code).unwrap();
    assert_eq!(pin_of(&cameras, id), None);
    let test = cameras.test(id).unwrap();
    assert!(test.success, "{test:?}");
    // The new device got the new code, never the old one, and is pinned.
    assert_eq!(count(&other.stats.auth_bad), 0);
    assert_eq!(
        pin_of(&cameras, id),
        Some(cert_sha256_hex(&cert_der(CERT_B)))
    );
    // Same address again: nothing to re-enter.
    let same = PrinterPatch {
        camera_port: Some(Some(other.port())),
        name: Some("renamed".into()),
        ..PrinterPatch::default()
    };
    cameras.update_printer(id, &same).unwrap();
    assert!(pin_of(&cameras, id).is_some());
    cameras.shutdown();
}

#[test]
fn a_pin_seen_at_the_old_address_is_not_stored_after_a_move() {
    let cameras = cameras();
    let id = add_p1s(&cameras, 6000, CODE);
    let before = cameras.printer(id).unwrap();
    let moved = PrinterPatch {
        camera_port: Some(Some(6001)),
        access_code: Some(Some(CODE.into())),
        ..PrinterPatch::default()
    };
    cameras.update_printer(id, &moved).unwrap();
    // The old hub's connection delivers its first frame only now.
    cameras.pin_cert(&before, &"ab".repeat(32), false);
    assert_eq!(pin_of(&cameras, id), None);
    cameras.pin_cert(&cameras.printer(id).unwrap(), &"cd".repeat(32), false);
    assert_eq!(pin_of(&cameras, id), Some("cd".repeat(32)));
}

/// Cameras that also trust the tests' private Bambu-like CA.
fn cameras_trusting_the_test_ca() -> Arc<Cameras> {
    let registry = Arc::new(Registry::open_in_memory().unwrap());
    let ca = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/bbl_test_ca.crt");
    Cameras::new(
        registry,
        Settings {
            allow_loopback: true,
            grace: GRACE,
            snapshot_timeout: Duration::from_secs(5),
            printer_ca: Some(ca.into()),
            ..Settings::default()
        },
    )
}

fn bbl_double(port: u16, cert_pem: &'static [u8], key_pem: &'static [u8]) -> Double {
    Double::start_on(
        port,
        Options {
            cert_pem,
            key_pem,
            ..Options::new(Mode::Endless)
        },
    )
}

#[test]
fn a_verified_certificate_is_shown_as_such_and_its_reissue_accepted() {
    use chamber_double::{BBL_LEAF, BBL_LEAF_KEY, BBL_REISSUED, BBL_REISSUED_KEY, BBL_SERIAL};
    let first = bbl_double(0, BBL_LEAF, BBL_LEAF_KEY);
    let port = first.port();
    let cameras = cameras_trusting_the_test_ca();
    let id = add_p1s(&cameras, port, CODE);
    let serial = PrinterPatch {
        serial: Some(Some(BBL_SERIAL.into())),
        ..PrinterPatch::default()
    };
    cameras.update_printer(id, &serial).unwrap();

    assert!(cameras.test(id).unwrap().success);
    let p = cameras.printer(id).unwrap();
    assert_eq!(p.cert_sha256, Some(cert_sha256_hex(&cert_der(BBL_LEAF))));
    assert_eq!(p.cert_trust(), Some("verified by Bambu CA"));
    wait_until("the printer connection to close", || {
        count(&first.stats.current) == 0
    });
    drop(first);

    // The printer's certificate is re-issued: no forget-cert needed.
    let reissued = bbl_double(port, BBL_REISSUED, BBL_REISSUED_KEY);
    let test = cameras.test(id).unwrap();
    assert!(test.success, "{test:?}");
    let p = cameras.printer(id).unwrap();
    assert_eq!(
        p.cert_sha256,
        Some(cert_sha256_hex(&cert_der(BBL_REISSUED)))
    );
    assert_eq!(p.cert_trust(), Some("verified by Bambu CA"));
    cameras.shutdown();
    drop(reissued);
}

#[test]
fn without_a_matching_serial_the_certificate_is_pinned_on_first_use() {
    use chamber_double::{BBL_OTHER, BBL_OTHER_KEY, BBL_REISSUED, BBL_REISSUED_KEY};
    let first = bbl_double(0, BBL_OTHER, BBL_OTHER_KEY);
    let port = first.port();
    let cameras = cameras_trusting_the_test_ca();
    // No serial set: nothing to match the certificate's name with.
    let id = add_p1s(&cameras, port, CODE);
    assert!(cameras.test(id).unwrap().success);
    let p = cameras.printer(id).unwrap();
    assert_eq!(p.cert_trust(), Some("pinned on first use"));
    wait_until("the printer connection to close", || {
        count(&first.stats.current) == 0
    });
    drop(first);
    // Another CA-issued certificate is refused: only the pin counts.
    let other = bbl_double(port, BBL_REISSUED, BBL_REISSUED_KEY);
    let test = cameras.test(id).unwrap();
    assert!(!test.success, "{test:?}");
    assert!(test.error.unwrap().contains("certificate changed"));
    assert_eq!(pin_of(&cameras, id), p.cert_sha256);
    cameras.shutdown();
    drop(other);
}
