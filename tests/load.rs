//! Resource hygiene under many connections: idle clients cannot starve the
//! server, and viewers coming and going leave threads and file descriptors
//! where they were. The tests here count this process's threads and fds, so
//! they run one at a time and nothing else shares their test binary.

mod support;

use printcam::http::Limits;
use std::io::Read;
use std::net::TcpStream;
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};
use support::{connect, is_jpeg, test_settings, MjpegReader, TestServer};

fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Viewer limits high enough not to matter: closed viewers the server has
/// not noticed yet must not count against these tests, which are about
/// leaks and bursts, not limits.
fn unlimited_viewers() -> printcam::config::Settings {
    printcam::config::Settings {
        max_viewers: 10_000,
        max_viewers_per_camera: 10_000,
        ..test_settings()
    }
}

/// These tests play many clients from one address; the per-client bound
/// (tested in hostile.rs) is raised as for a reverse proxy.
fn one_address_many_clients() -> Limits {
    Limits {
        max_per_client: 10_000,
        ..Limits::default()
    }
}

fn threads() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap()
}

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Waits up to 30 s for threads and fds to be back at most at `base`.
fn settles_to(base: (usize, usize), what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = (threads(), fds());
        if now.0 <= base.0 && now.1 <= base.1 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: threads/fds {now:?}, were {base:?}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn idle_connections_do_not_block_requests() {
    let _turn = one_at_a_time();
    let ts = TestServer::start_configured(test_settings(), one_address_many_clients());
    let idle: Vec<TcpStream> = (0..200)
        .map(|_| TcpStream::connect(ts.addr).unwrap())
        .collect();
    let r = ts.get("/printers/0/camera/snapshot");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(is_jpeg(&r.body));
    drop(idle);
}

/// Idle connections (slowloris) hold a place only until the head timeout:
/// the server closes each one that sent nothing.
#[test]
fn idle_connections_are_closed_after_the_head_timeout() {
    let _turn = one_at_a_time();
    let limits = Limits {
        head_timeout: Duration::from_secs(1),
        ..one_address_many_clients()
    };
    let ts = TestServer::start_configured(test_settings(), limits);
    let idle: Vec<TcpStream> = (0..200).map(|_| connect(ts.addr)).collect();
    let r = ts.get("/printers/0/camera/snapshot");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(is_jpeg(&r.body));
    // `connect` sets a 20 s read timeout: a connection the server did not
    // close makes read_to_end fail with it.
    for (i, mut s) in idle.into_iter().enumerate() {
        let mut rest = Vec::new();
        let read = s.read_to_end(&mut rest);
        assert!(read.is_ok(), "idle connection {i} still open: {read:?}");
        assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
    }
    assert_eq!(ts.get("/healthz").status, 200);
}

/// The regression test of tiny_http's stall: its pool queued connections
/// accepted in a burst behind a thread counted as waiting, and a stream
/// holds its thread while watched, so some viewers never got a response.
#[test]
fn a_burst_of_viewers_all_get_a_first_frame() {
    let _turn = one_at_a_time();
    let ts = TestServer::start_configured(unlimited_viewers(), one_address_many_clients());
    // Connected in a tight loop first, so the server accepts them in a burst.
    let connections: Vec<TcpStream> = (0..40).map(|_| connect(ts.addr)).collect();
    let viewers: Vec<_> = connections
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            thread::Builder::new()
                .name(format!("viewer-{i}"))
                .spawn(move || {
                    let mut v = MjpegReader::request(s, "/printers/0/camera/stream?fps=30");
                    assert_eq!(v.status, 200, "viewer {i}");
                    let frame = v.next_part().unwrap_or_else(|e| panic!("viewer {i}: {e}"));
                    assert!(is_jpeg(&frame), "viewer {i}");
                    // Kept open until every viewer is in: all 40 streams overlap.
                    v
                })
                .unwrap()
        })
        .collect();
    let open: Vec<MjpegReader> = viewers.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(open.len(), 40);
}

/// A regression test: a timeout set on the listening socket once made
/// accept() fail after that long without a connection, which ended the
/// accept thread (tiny_http's) and so the server.
#[test]
fn the_server_keeps_accepting_after_a_quiet_spell() {
    let _turn = one_at_a_time();
    let limits = Limits {
        write_timeout: Duration::from_millis(200),
        ..one_address_many_clients()
    };
    let ts = TestServer::start_configured(test_settings(), limits);
    assert_eq!(ts.get("/healthz").status, 200);
    thread::sleep(Duration::from_secs(1));
    assert_eq!(ts.get("/healthz").status, 200);
}

#[test]
fn viewers_coming_and_going_leave_threads_and_fds_where_they_were() {
    let _turn = one_at_a_time();
    let ts = TestServer::start_configured(unlimited_viewers(), one_address_many_clients());
    let watch = |n: usize| {
        for _ in 0..n {
            let mut v = MjpegReader::open(ts.addr, "/printers/0/camera/stream?fps=30");
            if v.status != 200 {
                let body = v.read_to_end().unwrap_or_default();
                let st = ts.cameras.status(0).unwrap().unwrap();
                panic!(
                    "{} {} hub viewers {} frames_in {}",
                    v.status,
                    String::from_utf8_lossy(&body),
                    st.viewers,
                    st.frames_in
                );
            }
        }
    };
    // Warm up (the demo camera), then let the camera's grace period end
    // before measuring.
    watch(50);
    thread::sleep(Duration::from_secs(1));
    let mut v = MjpegReader::open(ts.addr, "/printers/0/camera/stream?fps=30");
    assert!(is_jpeg(&v.next_part().unwrap()));
    drop(v);
    settles_to((usize::MAX, usize::MAX), "warm-up");
    thread::sleep(Duration::from_secs(6));
    let base = (threads(), fds());
    watch(500);
    settles_to(base, "after 500 viewers");
    let status = ts.get("/printers/0/camera/status").json();
    assert_eq!(status.get("viewers").and_then(|v| v.as_i64()), Some(0));
}
