//! Shared by tests/ffmpeg_children.rs and tests/tls_proxy.rs (included with
//! `#[path]`): a recording Upstream, required external programs (the rule
//! in tests/support/programs.rs), a real RTSP server (GStreamer through
//! python3-gi) and a test TLS terminator in front of it, standing in for a
//! printer's port 322.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use printcam::ffmpeg::{self, Child};
use printcam::source::Upstream;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, ServerConfig, SignatureScheme};

/// The one rule for missing programs, shared with every other test.
#[path = "../support/programs.rs"]
pub mod programs;

#[allow(unused_imports)]
pub use programs::{find, require_gst_element, require_gst_rtsp};

pub fn manifest(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// An Upstream that keeps the frames it gets and says stop after `limit`.
pub struct TestUp {
    pub frames: Mutex<Vec<Vec<u8>>>,
    limit: usize,
    fps: u32,
    stopping: AtomicBool,
    cancel: Mutex<Option<Box<dyn Fn() + Send + Sync>>>,
    pub emitted: AtomicU64,
}

impl TestUp {
    pub fn new(limit: usize, fps: u32) -> Self {
        TestUp {
            frames: Mutex::new(Vec::new()),
            limit,
            fps,
            stopping: AtomicBool::new(false),
            cancel: Mutex::new(None),
            emitted: AtomicU64::new(0),
        }
    }

    /// What the hub does on stop: flag, then the registered canceller.
    pub fn cancel(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        if let Some(c) = self.cancel.lock().unwrap().as_ref() {
            c();
        }
    }
}

impl Upstream for TestUp {
    fn emit(&self, jpeg: Vec<u8>) -> bool {
        self.emitted.fetch_add(1, Ordering::SeqCst);
        let mut frames = self.frames.lock().unwrap();
        if frames.len() < self.limit {
            frames.push(jpeg);
        }
        if frames.len() >= self.limit {
            self.stopping.store(true, Ordering::SeqCst);
        }
        !self.stopping.load(Ordering::SeqCst)
    }
    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }
    fn sleep(&self, d: Duration) -> bool {
        thread::sleep(d);
        !self.stopping()
    }
    fn wanted_fps(&self) -> u32 {
        self.fps
    }
    fn on_cancel(&self, cancel: Box<dyn Fn() + Send + Sync>) {
        *self.cancel.lock().unwrap() = Some(cancel);
    }
}

/// Pids of this process's children, zombies included.
pub fn child_pids() -> Vec<u32> {
    children_of(std::process::id())
}

/// This process's children other than `kept` (the double it started).
pub fn child_pids_besides(kept: u32) -> Vec<u32> {
    child_pids().into_iter().filter(|p| *p != kept).collect()
}

/// Pids whose parent is `parent`, zombies included.
pub fn children_of(parent: u32) -> Vec<u32> {
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid …": comm may hold spaces, so split after ')'.
        let Some(after) = stat.rsplit_once(')').map(|(_, a)| a) else {
            continue;
        };
        let ppid: Option<u32> = after.split_whitespace().nth(1).and_then(|p| p.parse().ok());
        if ppid == Some(parent) {
            pids.extend(
                stat.split_whitespace()
                    .next()
                    .and_then(|p| p.parse::<u32>().ok()),
            );
        }
    }
    pids
}

/// A per-test directory with an `ffmpeg` wrapper that runs
/// tests/fake-ffmpeg/`script` with the given environment (variables set in
/// the test process would leak between tests) and FAKE_FFMPEG_ARGS pointing
/// at `args_file()`.
pub struct Fake {
    dir: PathBuf,
}

impl Fake {
    pub fn new(name: &str, script: &str, env: &[(&str, &str)]) -> Fake {
        let dir = std::env::temp_dir().join(format!("printcam-fake-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut wrapper = format!(
            "#!/bin/sh\nFAKE_FFMPEG_ARGS='{}'; export FAKE_FFMPEG_ARGS\n",
            dir.join("args").display()
        );
        for (k, v) in env {
            wrapper.push_str(&format!("{k}='{v}'; export {k}\n"));
        }
        let target = manifest(&format!("tests/fake-ffmpeg/{script}"));
        wrapper.push_str(&format!("exec '{}' \"$@\"\n", target.display()));
        let path = dir.join("ffmpeg");
        std::fs::write(&path, wrapper).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        Fake { dir }
    }

    pub fn ffmpeg(&self) -> PathBuf {
        self.dir.join("ffmpeg")
    }

    pub fn args_file(&self) -> PathBuf {
        self.dir.join("args")
    }

    /// The frame rate the latest ffmpeg was started with (`-r N`).
    pub fn last_fps(&self) -> Option<u32> {
        let args = std::fs::read_to_string(self.args_file()).ok()?;
        let mut it = args.lines();
        it.find(|a| *a == "-r")?;
        it.next()?.parse().ok()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// GStreamer's RTSP server (tests/rtsp_server.py), stopped and reaped on drop.
pub struct RtspServer {
    pub child: Child,
    pub port: u16,
}

impl RtspServer {
    pub fn start(user: &str, password: &str, width: u32, height: u32) -> RtspServer {
        RtspServer::start_slow(user, password, width, height, 1)
    }

    /// With timestamps running `slow` times slower than real time (as P2S
    /// firmware 01.02.00.00 stamps its frames).
    pub fn start_slow(
        user: &str,
        password: &str,
        width: u32,
        height: u32,
        slow: u32,
    ) -> RtspServer {
        let size = (width.to_string(), height.to_string());
        RtspServer::spawn(&[user, password, &size.0, &size.1, &slow.to_string()]).0
    }

    /// A server whose sessions time out after `session_timeout` seconds and
    /// that reports what its clients ask (OPTIONS, GET_PARAMETER, TEARDOWN,
    /// CLOSED) in the returned `Events`.
    pub fn watched(user: &str, password: &str, session_timeout: u32) -> (RtspServer, Events) {
        let timeout = session_timeout.to_string();
        RtspServer::spawn_watched(&[user, password, "640", "360", "1", &timeout])
    }

    /// A watched server on `port` (0: any) sending `codec` ("h264", or
    /// "jpeg": MJPEG over RTP) at `size`.
    pub fn watched_on(
        user: &str,
        password: &str,
        port: u16,
        codec: &str,
        size: (u32, u32),
    ) -> (RtspServer, Events) {
        let (port, w, h) = (port.to_string(), size.0.to_string(), size.1.to_string());
        RtspServer::spawn_watched(&[user, password, &w, &h, "1", "60", &port, codec])
    }

    fn spawn_watched(args: &[&str]) -> (RtspServer, Events) {
        let (server, out) = RtspServer::spawn(args);
        let events = Events {
            out,
            seen: Vec::new(),
        };
        (server, events)
    }

    fn spawn(args: &[&str]) -> (RtspServer, std::process::ChildStdout) {
        let script = manifest("tests/rtsp_server.py");
        let mut all = vec![script.to_string_lossy().into_owned()];
        all.extend(args.iter().map(|a| a.to_string()));
        let mut child = Child::spawn(Path::new("/usr/bin/python3"), &all).unwrap();
        let mut out = child.take_stdout().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let line = read_line(&mut out, deadline)
            .unwrap_or_else(|| panic!("RTSP server did not start: {}", child.tail()));
        let port = line.trim().parse().unwrap();
        (RtspServer { child, port }, out)
    }
}

/// One line of `out` (without its newline) before `deadline`, or None.
fn read_line(out: &mut std::process::ChildStdout, deadline: Instant) -> Option<String> {
    let mut line = Vec::new();
    while !line.ends_with(b"\n") {
        let left = deadline.checked_duration_since(Instant::now())?;
        if ffmpeg::wait_readable(out.as_raw_fd(), left.min(Duration::from_millis(200))).ok()? {
            let mut b = [0u8; 1];
            if out.read(&mut b).ok()? == 0 {
                return None;
            }
            line.push(b[0]);
        }
    }
    line.pop();
    String::from_utf8(line).ok()
}

/// What a watched RTSP server's clients asked, one word a line.
pub struct Events {
    out: std::process::ChildStdout,
    pub seen: Vec<String>,
}

impl Events {
    /// Waits up to `limit` for `event` (counting those already seen).
    pub fn wait_for(&mut self, event: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while !self.seen.iter().any(|e| e == event) {
            match read_line(&mut self.out, deadline) {
                Some(line) => self.seen.push(line),
                None => return false,
            }
        }
        true
    }

    pub fn count(&self, event: &str) -> usize {
        self.seen.iter().filter(|e| *e == event).count()
    }

    /// Every event the server printed within `d`.
    pub fn drain(&mut self, d: Duration) {
        self.wait_for("never printed", d);
    }
}

/// The body of `POST /printers` for an external rtsp camera that is the
/// RTSP double on `port`.
pub fn rtsp_camera_json(user: &str, password: &str, port: u16) -> String {
    format!(
        r#"{{"name":"cam","camera_type":"rtsp","camera_url":"rtsp://{user}:{password}@127.0.0.1:{port}/streaming/live/1"}}"#
    )
}

/// For tests that count RTSP sessions or children: one at a time.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Accepts any server certificate: the tests' printers are self-signed.
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

pub fn accept_any_client() -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    Arc::new(config)
}

pub fn test_server_config() -> Arc<ServerConfig> {
    server_config(
        "tests/data/rtsps_test_cert.pem",
        "tests/data/rtsps_test_key.pem",
    )
}

/// The DER of the first certificate in a PEM file under the crate root.
pub fn first_cert_der(cert_pem: &str) -> Vec<u8> {
    CertificateDer::pem_file_iter(manifest(cert_pem))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .to_vec()
}

/// A server configuration with the certificate chain and key in the given
/// PEM files (paths relative to the crate root). X.509 v1 certificates, as
/// printers have, are served too (`with_single_cert` would refuse them).
pub fn server_config(cert_pem: &str, key_pem: &str) -> Arc<ServerConfig> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(manifest(cert_pem))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(manifest(key_pem)).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let signing = provider.key_provider.load_private_key(key).unwrap();
    let certified = Arc::new(CertifiedKey::new(certs, signing));
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Fixed(certified)));
    Arc::new(config)
}

/// Always the one certificate and key.
#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

/// A TLS terminator in front of a plain TCP backend (a printer's port 322 is
/// an RTSP server behind TLS). Written differently from printcam's proxy on
/// purpose: one thread alternating short reads over a rustls StreamOwned.
pub struct TlsFront {
    pub port: u16,
    stop: Arc<AtomicBool>,
    pub accepted: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl TlsFront {
    pub fn start(backend_port: u16) -> TlsFront {
        TlsFront::start_on(0, backend_port, test_server_config())
    }

    /// Listens on `port` (0: any) with the given certificate, e.g. to stand
    /// in for another device at an earlier front's address.
    pub fn start_on(port: u16, backend_port: u16, config: Arc<ServerConfig>) -> TlsFront {
        TlsFront::start_at(IpAddr::V4(Ipv4Addr::LOCALHOST), port, backend_port, config)
    }

    /// Listens on [::1] (an IPv6 printer address); the backend stays on
    /// 127.0.0.1.
    pub fn start_v6(backend_port: u16) -> TlsFront {
        let any_port = 0;
        let ip = IpAddr::V6(Ipv6Addr::LOCALHOST);
        TlsFront::start_at(ip, any_port, backend_port, test_server_config())
    }

    fn start_at(ip: IpAddr, port: u16, backend_port: u16, config: Arc<ServerConfig>) -> TlsFront {
        let listener = TcpListener::bind((ip, port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicU64::new(0));
        let (s, a) = (Arc::clone(&stop), Arc::clone(&accepted));
        let thread = thread::Builder::new()
            .name("test-tls-front".into())
            .spawn(move || {
                while !s.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((tcp, _)) => {
                            a.fetch_add(1, Ordering::SeqCst);
                            let _ = relay(tcp, backend_port, &config, &s);
                        }
                        Err(_) => thread::sleep(Duration::from_millis(20)),
                    }
                }
            })
            .unwrap();
        TlsFront {
            port,
            stop,
            accepted,
            thread: Some(thread),
        }
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn idle(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn relay(
    tcp: TcpStream,
    backend_port: u16,
    config: &Arc<ServerConfig>,
    stop: &AtomicBool,
) -> io::Result<()> {
    let short = Some(Duration::from_millis(5));
    tcp.set_nonblocking(false)?;
    tcp.set_read_timeout(short)?;
    tcp.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut backend = TcpStream::connect(("127.0.0.1", backend_port))?;
    backend.set_read_timeout(short)?;
    backend.set_write_timeout(Some(Duration::from_secs(10)))?;
    let conn = rustls::ServerConnection::new(Arc::clone(config)).map_err(io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut buf = vec![0u8; 32 * 1024];
    while !stop.load(Ordering::SeqCst) {
        match tls.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => backend.write_all(&buf[..n])?,
            Err(e) if idle(&e) => {}
            Err(e) => return Err(e),
        }
        match backend.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => tls.write_all(&buf[..n])?,
            Err(e) if idle(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// ffprobe's `codec,width,height,frames` of the video in the MP4 `data`
/// (written to a file named after `name` for ffprobe to count frames).
pub fn probe_mp4(ffprobe: &Path, data: &[u8], name: &str) -> String {
    let path = std::env::temp_dir().join(format!("printcam-{name}-{}.mp4", std::process::id()));
    std::fs::write(&path, data).unwrap();
    let out = std::process::Command::new(ffprobe)
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames",
        ])
        .args(["-of", "csv=p=0"])
        .arg(&path)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run ffprobe");
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
