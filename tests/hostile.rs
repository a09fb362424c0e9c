//! Hostile and careless clients against a real server on loopback: one
//! address trying to hold every connection place, viewers who hang up
//! without a word, bodies announced and never sent. Each test prints its
//! figures. The tests measure this process's memory, so they run one at a
//! time.

mod support;

#[path = "support/tiny_camera.rs"]
mod tiny_camera;

use printcam::http::Limits;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};
use support::{test_settings, MjpegReader, TestServer};
use tiny_camera::TinyServer;

fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A TCP connection from the loopback address `from` (127.0.0.2, …), so
/// one machine plays several clients.
fn connect_from(from: &str, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = socket2_like::bound(from)?;
    socket.connect(to)
}

/// Binding a client socket to a chosen source address needs `bind` before
/// `connect`, which std's TcpStream cannot do; libc can.
mod socket2_like {
    use std::io;
    use std::net::{SocketAddr, SocketAddrV4, TcpStream};
    use std::os::fd::FromRawFd;

    pub struct Bound(i32);

    pub fn bound(from: &str) -> io::Result<Bound> {
        let ip: std::net::Ipv4Addr = from
            .parse()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "an IPv4 address"))?;
        // SAFETY: plain socket syscall; the fd is owned by Bound.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let b = Bound(fd);
        let addr = sockaddr(SocketAddrV4::new(ip, 0));
        // SAFETY: addr is a valid sockaddr_in for the call.
        let rc = unsafe {
            libc::bind(
                fd,
                (&addr as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as u32,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(b)
    }

    fn sockaddr(a: SocketAddrV4) -> libc::sockaddr_in {
        libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: a.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*a.ip()).to_be(),
            },
            sin_zero: [0; 8],
        }
    }

    impl Bound {
        pub fn connect(self, to: SocketAddr) -> io::Result<TcpStream> {
            let SocketAddr::V4(to) = to else {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, "IPv4 only"));
            };
            let addr = sockaddr(to);
            // SAFETY: addr is a valid sockaddr_in; the fd is open.
            let rc = unsafe {
                libc::connect(
                    self.0,
                    (&addr as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as u32,
                )
            };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
            let fd = self.0;
            std::mem::forget(self);
            // SAFETY: fd is a connected socket we own.
            let s = unsafe { TcpStream::from_raw_fd(fd) };
            s.set_read_timeout(Some(crate::support::IO_TIMEOUT))?;
            s.set_write_timeout(Some(crate::support::IO_TIMEOUT))?;
            Ok(s)
        }
    }

    impl Drop for Bound {
        fn drop(&mut self) {
            // SAFETY: closing the fd we own, once.
            unsafe { libc::close(self.0) };
        }
    }
}

/// Whether the server still holds `s` open without having answered.
fn held(s: &TcpStream) -> bool {
    let mut b = [0u8; 1];
    s.set_nonblocking(true).unwrap();
    let held = matches!(s.peek(&mut b), Err(e) if e.kind() == ErrorKind::WouldBlock);
    s.set_nonblocking(false).unwrap();
    held
}

fn healthz_from(from: &str, to: SocketAddr) -> u16 {
    let Ok(mut s) = connect_from(from, to) else {
        return 0;
    };
    let req = format!("GET /healthz HTTP/1.1\r\nHost: {to}\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return 0;
    }
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer)
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[test]
fn one_address_holding_idle_connections_cannot_lock_others_out() {
    let _turn = one_at_a_time();
    let limits = Limits {
        max_per_client: 32,
        first_byte_timeout: Duration::from_secs(1),
        ..Limits::default()
    };
    let ts = TestServer::start_configured(test_settings(), limits.clone());
    // The attacker keeps 256 idle sockets open from 127.0.0.2, reopening
    // each one the server closes, for 5 s; a victim at 127.0.0.3 asks for
    // /healthz meanwhile.
    let attacker_addr = ts.addr;
    let attacker = thread::spawn(move || {
        let mut socks: Vec<Option<TcpStream>> = (0..256).map(|_| None).collect();
        let mut most_held = 0;
        let mut reopened = 0;
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            for slot in socks.iter_mut() {
                if slot.as_ref().is_some_and(held) {
                    continue;
                }
                *slot = connect_from("127.0.0.2", attacker_addr).ok();
                reopened += 1;
            }
            thread::sleep(Duration::from_millis(300));
            let now = socks.iter().flatten().filter(|s| held(s)).count();
            most_held = most_held.max(now);
        }
        (most_held, reopened)
    });
    let mut answered = 0;
    let mut asked = 0;
    let until = Instant::now() + Duration::from_secs(4);
    thread::sleep(Duration::from_millis(500));
    while Instant::now() < until {
        asked += 1;
        if healthz_from("127.0.0.3", ts.addr) == 200 {
            answered += 1;
        }
        thread::sleep(Duration::from_millis(50));
    }
    let (most_held, reopened) = attacker.join().unwrap();
    println!(
        "one client, 256 idle sockets: at most {most_held} held by the server (bound {}), \
         {reopened} connects; another client: {answered} of {asked} /healthz answered",
        limits.max_per_client
    );
    assert_eq!(answered, asked, "the other client was locked out");
    assert!(
        most_held <= limits.max_per_client,
        "{most_held} places held"
    );
}

#[test]
fn a_silent_connection_is_closed_soon_but_a_slow_head_gets_its_time() {
    let _turn = one_at_a_time();
    let limits = Limits {
        first_byte_timeout: Duration::from_secs(1),
        head_timeout: Duration::from_secs(10),
        ..Limits::default()
    };
    let ts = TestServer::start_configured(test_settings(), limits);
    let started = Instant::now();
    let mut silent = connect_from("127.0.0.2", ts.addr).unwrap();
    let mut slow = connect_from("127.0.0.3", ts.addr).unwrap();
    slow.write_all(b"G").unwrap();
    let mut rest = Vec::new();
    assert!(silent.read_to_end(&mut rest).is_ok(), "never closed");
    let closed_after = started.elapsed();
    assert!(rest.is_empty(), "a silent client gets no answer");
    // Past the first-byte limit, the head that has begun goes on.
    slow.write_all(format!("ET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", ts.addr).as_bytes())
        .unwrap();
    let mut answer = String::new();
    slow.read_to_string(&mut answer).unwrap();
    println!("a silent connection was closed after {closed_after:?}");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        closed_after < Duration::from_secs(10),
        "held until the head timeout"
    );
}

/// The camera's place count as the status endpoint shows it.
fn viewers(ts: &TestServer, id: i64) -> usize {
    ts.cameras.status(id).unwrap().map_or(0, |s| s.viewers)
}

/// Waits (bounded) until camera `id` has `n` viewers; returns how long.
fn until_viewers(ts: &TestServer, id: i64, n: usize, limit: Duration) -> Duration {
    let started = Instant::now();
    while viewers(ts, id) != n {
        assert!(
            started.elapsed() < limit,
            "camera {id} still has {} viewers after {limit:?}, expected {n}",
            viewers(ts, id)
        );
        thread::sleep(Duration::from_millis(2));
    }
    started.elapsed()
}

/// Stream requests that close without reading, then three real viewers.
/// The stream threads here look at the shutdown flag only once a minute,
/// so a place freed in seconds was freed by the hang-up itself.
fn gone_viewers_free_their_places(camera_id: i64, ts: &TestServer) {
    let path = format!("/printers/{camera_id}/camera/stream?fps=2");
    for _ in 0..300 {
        if let Ok(mut s) = connect_from("127.0.0.2", ts.addr) {
            let req = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", ts.addr);
            let _ = s.write_all(req.as_bytes());
        }
    }
    let started = Instant::now();
    until_viewers(ts, camera_id, 0, Duration::from_secs(30));
    // The hub forgets a viewer a moment before its connection's thread
    // gives back its place: the first real viewer may have to ask again.
    let first = loop {
        let v = MjpegReader::open(ts.addr, &path);
        if v.status == 200 || started.elapsed() > Duration::from_secs(30) {
            break v;
        }
        thread::sleep(Duration::from_millis(5));
    };
    let freed = started.elapsed();
    let mut real = vec![first];
    real.extend((0..2).map(|_| MjpegReader::open(ts.addr, &path)));
    let statuses: Vec<u16> = real.iter().map(|v| v.status).collect();
    println!("camera {camera_id}: 300 hung-up viewers' places freed {freed:?} after the last; real viewers: {statuses:?}");
    assert_eq!(statuses, [200, 200, 200]);
    assert!(
        freed < Duration::from_secs(10),
        "places freed only after {freed:?}"
    );
}

fn places_server() -> TestServer {
    let settings = printcam::config::Settings {
        max_viewers_per_camera: 8,
        ..test_settings()
    };
    let limits = Limits {
        stream_poll: Duration::from_secs(60),
        ..Limits::default()
    };
    TestServer::start_configured(settings, limits)
}

#[test]
fn viewers_who_hang_up_free_their_places_at_once_on_a_live_camera() {
    let _turn = one_at_a_time();
    let ts = places_server();
    gone_viewers_free_their_places(0, &ts);
}

#[test]
fn viewers_who_hang_up_free_their_places_at_once_on_a_silent_camera() {
    let _turn = one_at_a_time();
    // A camera that accepts and never sends a byte.
    let camera = TinyServer::start(|_| Vec::new(), true);
    let ts = places_server();
    let body = format!(
        r#"{{"name":"silent","camera_type":"mjpeg","camera_url":"{}"}}"#,
        camera.url("/stream")
    );
    assert_eq!(ts.send_json("POST", "/printers", &body).status, 201);
    gone_viewers_free_their_places(1, &ts);
    let st = ts.cameras.status(1).unwrap().unwrap();
    assert_eq!(st.frames_in, 0, "the camera was meant to stay silent");
}

fn rss_kb() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn bodies_announced_and_never_sent_cost_no_memory() {
    let _turn = one_at_a_time();
    let ts = TestServer::start_configured(test_settings(), Limits::default());
    // Warm the server's threads and allocator once.
    assert_eq!(ts.get("/healthz").status, 200);
    let before = rss_kb();
    let mut held = Vec::new();
    for i in 0..200 {
        let from = format!("127.0.0.{}", 10 + i % 20);
        let mut s = connect_from(&from, ts.addr).unwrap();
        let head = format!(
            "POST /printers HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: 65536\r\n\r\n",
            ts.addr
        );
        s.write_all(head.as_bytes()).unwrap();
        held.push(s);
    }
    // Give every connection's thread time to read its head and wait for
    // the body (what is measured is memory, not time).
    thread::sleep(Duration::from_secs(2));
    let grown = rss_kb().saturating_sub(before);
    println!("200 announced 64 KB bodies, none sent: RSS grew by {grown} KB");
    // Their 200 threads cost about 5 MB (stacks, head buffers); bodies
    // allocated as announced would add 12.5 MB.
    assert!(grown < 9 * 1024, "RSS grew by {grown} KB");
    drop(held);
}
