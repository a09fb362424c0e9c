//! A printer's port 6000 for tests: a real rustls server with a committed
//! X.509 v1 certificate that checks the authentication packet byte for byte
//! and sends real JPEGs, split across writes the way TLS records may split
//! them.
#![allow(dead_code)]

use std::fmt;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, ServerConnection, StreamOwned};

pub const CERT_A: &[u8] = include_bytes!("../data/printer_a.crt");
pub const KEY_A: &[u8] = include_bytes!("../data/printer_a.key");
pub const CERT_B: &[u8] = include_bytes!("../data/printer_b.crt");
pub const KEY_B: &[u8] = include_bytes!("../data/printer_b.key");
pub const CERT_EC: &[u8] = include_bytes!("../data/printer_ec.crt");
pub const KEY_EC: &[u8] = include_bytes!("../data/printer_ec.key");
/// A private "Bambu-like" CA and leaves it issued (RSA-2048, v1 unless
/// named v3); the serial they name is `BBL_SERIAL` unless named other.
pub const BBL_CA: &[u8] = include_bytes!("../data/bbl_test_ca.crt");
pub const BBL_DEVICE_CA: &[u8] = include_bytes!("../data/bbl_test_device_ca.crt");
pub const BBL_SERIAL: &str = "01P00A000000001";
pub const BBL_LEAF: &[u8] = include_bytes!("../data/bbl_leaf.crt");
pub const BBL_LEAF_KEY: &[u8] = include_bytes!("../data/bbl_leaf.key");
pub const BBL_REISSUED: &[u8] = include_bytes!("../data/bbl_leaf_reissued.crt");
pub const BBL_REISSUED_KEY: &[u8] = include_bytes!("../data/bbl_leaf_reissued.key");
pub const BBL_OTHER: &[u8] = include_bytes!("../data/bbl_leaf_other.crt");
pub const BBL_OTHER_KEY: &[u8] = include_bytes!("../data/bbl_leaf_other.key");
pub const BBL_V3: &[u8] = include_bytes!("../data/bbl_leaf_v3.crt");
pub const BBL_V3_KEY: &[u8] = include_bytes!("../data/bbl_leaf_v3.key");

pub fn jpegs() -> Vec<Vec<u8>> {
    vec![
        include_bytes!("../data/frame1.jpg").to_vec(),
        include_bytes!("../data/frame2.jpg").to_vec(),
        include_bytes!("../data/frame3.jpg").to_vec(),
    ]
}

pub fn cert_der(pem: &[u8]) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem).unwrap().to_vec()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Sends `frames` frames (jpegs() in turn), then waits for the client to go.
    Normal,
    /// Authenticates and never sends anything, like a camera that is off.
    Silent,
    /// Sends one frame and half of the next, then closes.
    DropMidFrame,
    /// Sends jpegs() in turn every `interval` until the client leaves, like
    /// a printer's live camera.
    Endless,
    /// Like DropMidFrame on the first connection, then Endless.
    DropOnceThenEndless,
    /// Like Endless, with a payload that is not a JPEG after each frame.
    OddPayloads,
}

/// What the double does with a ClientHello that offers TLS 1.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hello {
    /// Negotiates as rustls does.
    Answer,
    /// Never answers it, as P2S firmware 01.02.00.00 was seen doing.
    IgnoreTls13,
    /// Answers it with a protocol_version alert.
    AlertTls13,
}

pub struct Options {
    pub cert_pem: &'static [u8],
    /// The key the server signs with; a key not matching the certificate
    /// makes an impostor that has the certificate but not its key.
    pub key_pem: &'static [u8],
    pub access_code: &'static str,
    pub mode: Mode,
    pub tls12_only: bool,
    pub hello: Hello,
    /// Sent after the certificate, as a printer may send its device CA.
    pub intermediate_pem: Option<&'static [u8]>,
    pub frames: usize,
    /// The pause between frames in the Endless modes.
    pub interval: Duration,
}

impl Options {
    pub fn new(mode: Mode) -> Self {
        Options {
            cert_pem: CERT_A,
            key_pem: KEY_A,
            access_code: "12345678",
            mode,
            tls12_only: false,
            hello: Hello::Answer,
            intermediate_pem: None,
            frames: 60,
            interval: Duration::from_millis(50),
        }
    }
}

#[derive(Default)]
pub struct Stats {
    pub connections: AtomicUsize,
    pub current: AtomicUsize,
    pub max_concurrent: AtomicUsize,
    pub handshakes_failed: AtomicUsize,
    pub auth_ok: AtomicUsize,
    pub auth_bad: AtomicUsize,
    /// ClientHellos offering TLS 1.3 that the double ignored or refused.
    pub tls13_refused: AtomicUsize,
}

impl Stats {
    pub fn get(counter: &AtomicUsize) -> usize {
        counter.load(Ordering::SeqCst)
    }
}

pub struct Double {
    pub addr: SocketAddr,
    pub stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Double {
    pub fn start(opts: Options) -> Double {
        Double::start_on(0, opts)
    }

    /// Starts on a given port (0: any), e.g. to stand in for another device
    /// at the same address as an earlier double.
    pub fn start_on(port: u16, opts: Options) -> Double {
        Double::start_at(IpAddr::V4(Ipv4Addr::LOCALHOST), port, opts)
    }

    /// Listens on [::1] (an IPv6 printer address).
    pub fn start_v6(opts: Options) -> Double {
        Double::start_at(IpAddr::V6(Ipv6Addr::LOCALHOST), 0, opts)
    }

    fn start_at(ip: IpAddr, port: u16, opts: Options) -> Double {
        let listener = TcpListener::bind((ip, port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stats = Arc::new(Stats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let config = Arc::new(server_config(&opts));
        let shared = Arc::new(Shared {
            opts,
            config,
            stats: Arc::clone(&stats),
            stop: Arc::clone(&stop),
        });
        let accept = thread::Builder::new()
            .name("chamber-double-accept".into())
            .spawn(move || accept_loop(listener, shared))
            .unwrap();
        Double {
            addr,
            stats,
            stop,
            accept: Some(accept),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Waits (bounded) until `counter` reaches `n`.
    pub fn wait_for(&self, counter: &AtomicUsize, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while counter.load(Ordering::SeqCst) < n {
            assert!(Instant::now() < deadline, "the double never got there");
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Double {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

struct Shared {
    opts: Options,
    config: Arc<ServerConfig>,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
}

/// Always hands out the configured certificate and key, even when they do
/// not match (which `with_single_cert` would refuse).
struct Fixed(Arc<CertifiedKey>);

impl fmt::Debug for Fixed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Fixed")
    }
}

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

fn server_config(opts: &Options) -> ServerConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut chain = vec![CertificateDer::from_pem_slice(opts.cert_pem).unwrap()];
    chain.extend(
        opts.intermediate_pem
            .map(|p| CertificateDer::from_pem_slice(p).unwrap()),
    );
    let key = PrivateKeyDer::from_pem_slice(opts.key_pem).unwrap();
    let signing = provider.key_provider.load_private_key(key).unwrap();
    let certified = Arc::new(CertifiedKey::new(chain, signing));
    let versions: &[&rustls::SupportedProtocolVersion] = if opts.tls12_only {
        &[&rustls::version::TLS12]
    } else {
        rustls::DEFAULT_VERSIONS
    };
    ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Fixed(certified)))
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut handlers = Vec::new();
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((sock, _)) => {
                let shared = Arc::clone(&shared);
                let h = thread::Builder::new()
                    .name("chamber-double-conn".into())
                    .spawn(move || serve(sock, &shared))
                    .unwrap();
                handlers.push(h);
            }
            Err(_) => thread::sleep(Duration::from_millis(10)),
        }
    }
    for h in handlers {
        let _ = h.join();
    }
}

/// Counts a connection as open for as long as it lives.
struct Open<'a>(&'a Stats);

impl<'a> Open<'a> {
    fn new(stats: &'a Stats) -> Self {
        stats.connections.fetch_add(1, Ordering::SeqCst);
        let now = stats.current.fetch_add(1, Ordering::SeqCst) + 1;
        stats.max_concurrent.fetch_max(now, Ordering::SeqCst);
        Open(stats)
    }
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.current.fetch_sub(1, Ordering::SeqCst);
    }
}

type Tls = StreamOwned<ServerConnection, TcpStream>;

fn serve(sock: TcpStream, shared: &Shared) {
    let _open = Open::new(&shared.stats);
    sock.set_nonblocking(false).unwrap();
    sock.set_nodelay(true).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    sock.set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    if shared.opts.hello != Hello::Answer && offers_tls13(&sock) {
        shared.stats.tls13_refused.fetch_add(1, Ordering::SeqCst);
        refuse_tls13(sock, shared);
        return;
    }
    let mut conn = ServerConnection::new(Arc::clone(&shared.config)).unwrap();
    let mut sock = sock;
    while conn.is_handshaking() {
        if conn.complete_io(&mut sock).is_err() {
            shared
                .stats
                .handshakes_failed
                .fetch_add(1, Ordering::SeqCst);
            return;
        }
    }
    let mut tls = StreamOwned::new(conn, sock);
    let mut auth = [0u8; 80];
    if tls.read_exact(&mut auth).is_err() || auth != expected_auth(shared.opts.access_code) {
        // What a printer does with a wrong access code: close, send nothing.
        shared.stats.auth_bad.fetch_add(1, Ordering::SeqCst);
        return;
    }
    let nth = shared.stats.auth_ok.fetch_add(1, Ordering::SeqCst);
    let mode = match shared.opts.mode {
        Mode::DropOnceThenEndless if nth == 0 => Mode::DropMidFrame,
        Mode::DropOnceThenEndless => Mode::Endless,
        mode => mode,
    };
    match mode {
        Mode::Normal => {
            send_frames(&mut tls, shared);
            wait_for_client_to_leave(&mut tls, &shared.stop);
        }
        Mode::Silent => wait_for_client_to_leave(&mut tls, &shared.stop),
        Mode::Endless | Mode::DropOnceThenEndless | Mode::OddPayloads => {
            send_forever(&mut tls, shared, mode == Mode::OddPayloads)
        }
        Mode::DropMidFrame => {
            let frames = jpegs();
            let _ = write_in_pieces(&mut tls, &encode(&frames[..1]), &[1000]);
            let half = encode(&frames[1..2]);
            let _ = write_in_pieces(&mut tls, &half[..half.len() / 2], &[1000]);
            let _ = tls.sock.shutdown(Shutdown::Both);
        }
    }
}

/// Built by hand from design.md, independently of the crate's auth_packet.
fn expected_auth(code: &str) -> [u8; 80] {
    let mut p = [0u8; 80];
    p[0] = 0x40;
    p[5] = 0x30;
    p[16..20].copy_from_slice(b"bblp");
    p[48..48 + code.len()].copy_from_slice(code.as_bytes());
    p
}

pub fn encode(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in frames {
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&[0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
        out.extend_from_slice(f);
    }
    out
}

/// The frames a Normal double sends, in order.
pub fn expected_frames(n: usize) -> Vec<Vec<u8>> {
    let frames = jpegs();
    (0..n).map(|i| frames[i % frames.len()].clone()).collect()
}

/// Sends frames in batches written in different piece patterns: header and
/// payload split across writes, one byte at a time, whole, and two frames in
/// one write.
fn send_frames(tls: &mut Tls, shared: &Shared) {
    let all = expected_frames(shared.opts.frames);
    let mut i = 0;
    let mut batch_no = 0;
    while i < all.len() && !shared.stop.load(Ordering::SeqCst) {
        let take = if batch_no % 4 == 3 { 2 } else { 1 };
        let end = (i + take).min(all.len());
        let bytes = encode(&all[i..end]);
        let pieces: &[usize] = match batch_no % 4 {
            0 => &[5, 6, 5, 100, 1000, 7, 300],
            1 => &[1; 20],
            _ => &[bytes.len()],
        };
        if write_in_pieces(tls, &bytes, pieces).is_err() {
            return;
        }
        i = end;
        batch_no += 1;
    }
}

/// Writes `bytes` in pieces of the given sizes, each its own TLS record,
/// then the rest in one write.
fn write_in_pieces(tls: &mut Tls, bytes: &[u8], sizes: &[usize]) -> std::io::Result<()> {
    let mut pos = 0;
    for size in sizes.iter().map(|s| Some(*s)).chain(std::iter::once(None)) {
        let end = size.map_or(bytes.len(), |s| (pos + s).min(bytes.len()));
        if pos < end {
            tls.write_all(&bytes[pos..end])?;
            tls.flush()?;
        }
        pos = end;
    }
    Ok(())
}

/// Payloads a camera might slip between frames: none of them a JPEG.
pub fn odd_payloads() -> Vec<Vec<u8>> {
    vec![
        b"{\"status\":\"busy\"}".to_vec(),
        vec![0xff, 0xd8, 0, 0, 0],
        vec![0; 1000],
    ]
}

/// Sends whole frames every `interval` (each followed by an odd payload if
/// `odd`) until a write fails (the client has gone), the double stops, or a
/// minute has passed.
fn send_forever(tls: &mut Tls, shared: &Shared, odd: bool) {
    let frames = jpegs();
    let odd_ones = odd_payloads();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut i = 0;
    while !shared.stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        let mut bytes = encode(&frames[i % frames.len()..][..1]);
        if odd {
            bytes.extend(encode(&odd_ones[i % odd_ones.len()..][..1]));
        }
        if write_in_pieces(tls, &bytes, &[]).is_err() {
            return;
        }
        i += 1;
        thread::sleep(shared.opts.interval);
    }
}

/// Whether the ClientHello waiting on `sock` offers TLS 1.3 (its
/// supported_versions extension lists 0x0304). Only looks (peek): rustls
/// reads the same bytes afterwards.
fn offers_tls13(sock: &TcpStream) -> bool {
    let mut buf = vec![0u8; 16 * 1024];
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let n = sock.peek(&mut buf).unwrap_or(0);
        let want = buf
            .get(3..5)
            .filter(|_| n >= 5)
            .map(|l| 5 + usize::from(u16::from_be_bytes([l[0], l[1]])));
        if want.is_some_and(|w| n >= w) || Instant::now() > deadline {
            return hello_has_tls13(&buf[..n]);
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Walks record → handshake → ClientHello → extensions; None on anything
/// malformed.
fn hello_has_tls13(record: &[u8]) -> bool {
    fn walk(r: &[u8]) -> Option<bool> {
        let body = r.get(5..)?; // record header
        let mut at = 4 + 2 + 32; // handshake header, version, random
        let skip = |at: &mut usize, len_bytes: usize| -> Option<()> {
            let l = body.get(*at..*at + len_bytes)?;
            let len = l.iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            *at += len_bytes + len;
            Some(())
        };
        skip(&mut at, 1)?; // session id
        skip(&mut at, 2)?; // cipher suites
        skip(&mut at, 1)?; // compression methods
        let ext_len = usize::from(u16::from_be_bytes([*body.get(at)?, *body.get(at + 1)?]));
        let mut exts = body.get(at + 2..at + 2 + ext_len)?;
        while exts.len() >= 4 {
            let kind = u16::from_be_bytes([exts[0], exts[1]]);
            let len = usize::from(u16::from_be_bytes([exts[2], exts[3]]));
            let data = exts.get(4..4 + len)?;
            if kind == 0x002b {
                let list = data.get(1..)?;
                return Some(list.chunks(2).any(|v| v == [0x03, 0x04]));
            }
            exts = &exts[4 + len..];
        }
        Some(false)
    }
    walk(record).unwrap_or(false)
}

/// Stays silent until the client gives up, or sends a fatal
/// protocol_version alert.
fn refuse_tls13(mut sock: TcpStream, shared: &Shared) {
    if shared.opts.hello == Hello::AlertTls13 {
        let _ = sock.write_all(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x46]);
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buf = [0u8; 4096];
    while !shared.stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        match sock.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return,
        }
    }
}

fn wait_for_client_to_leave(tls: &mut Tls, stop: &AtomicBool) {
    let _ = tls.sock.set_read_timeout(Some(Duration::from_millis(100)));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut buf = [0u8; 256];
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        match tls.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return,
        }
    }
}
