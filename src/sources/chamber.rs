//! The "chamber image" camera of P1/A1-series printers: JPEG frames over TLS
//! on port 6000, after an 80-byte authentication packet (see design.md).

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;
use std::time::Duration;

use super::tofu::{PinCheck, Tofu};
use crate::jpeg::MAX_FRAME;
use crate::source::{Source, SourceError, Upstream};
use crate::tls::{self, ConnectErrorKind, TlsStream};
use crate::urlguard::Policy;

pub use super::tofu::{OnPin, Pin};

const AUTH_LEN: usize = 80;
const HEADER_LEN: usize = 16;
const FIELD_LEN: usize = 32;
/// How long a camera may send nothing before the connection counts as
/// dead. P1/A1 cameras send 0.5–2 fps and an A1's can go quiet for many
/// seconds; the clients that work with them wait 30 s.
pub const DEFAULT_QUIET_TIMEOUT: Duration = Duration::from_secs(30);
/// Unusable payloads in a row after which the stream counts as out of step
/// (a length that was not one): reconnecting is then the way back.
const MAX_SKIPPED_IN_A_ROW: u32 = 8;

/// One printer's chamber camera.
pub struct Chamber {
    host: String,
    port: u16,
    /// Judges the address each time before connecting.
    policy: Policy,
    access_code: String,
    tofu: Arc<Tofu>,
    connect_timeout: Duration,
    read_timeout: Duration,
}

impl Chamber {
    pub fn new(
        host: String,
        port: u16,
        access_code: String,
        pin: Option<String>,
        on_pin: Option<OnPin>,
        policy: Policy,
    ) -> Self {
        Chamber {
            host,
            port,
            policy,
            access_code,
            tofu: Arc::new(Tofu::new(pin, on_pin)),
            connect_timeout: Duration::from_secs(5),
            read_timeout: DEFAULT_QUIET_TIMEOUT,
        }
    }

    /// Replaces the certificate trust (by default: trust on first use of
    /// the pin given to `new`), perhaps shared with the printer's other
    /// camera sources.
    pub fn with_tofu(mut self, tofu: Arc<Tofu>) -> Self {
        self.tofu = tofu;
        self
    }

    /// Overrides the connect/handshake timeout (default 5 s) and the time
    /// allowed between frames (default `DEFAULT_QUIET_TIMEOUT`).
    pub fn with_timeouts(mut self, connect: Duration, read: Duration) -> Self {
        self.connect_timeout = connect;
        self.read_timeout = read;
        self
    }

    fn open(&self) -> Result<(TlsStream, PinCheck), SourceError> {
        // Resolved and checked now, before the access code goes anywhere.
        let target = super::printer_target(&self.host, self.port, self.policy)?;
        let check = self.tofu.check();
        let stream =
            tls::connect_with(&target, &check.dialer, self.connect_timeout).map_err(|e| match e
                .kind
            {
                ConnectErrorKind::CertificateChanged => SourceError::fatal(e.message),
                _ => SourceError::transient(e.message),
            })?;
        Ok((stream, check))
    }

    fn read_error(&self, e: &io::Error, got_frame: bool) -> SourceError {
        // An end of stream before any byte is `Ok(None)` from read_frame; a
        // printer may also refuse the code with a reset.
        let reset = matches!(
            e.kind(),
            io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
        );
        if reset && !got_frame {
            return access_code_error();
        }
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => SourceError::transient(format!(
                "no frame from the camera within {}: the camera may be off or busy with another \
                 client",
                crate::source::secs(self.read_timeout)
            )),
            io::ErrorKind::InvalidData => {
                SourceError::transient(format!("the camera sent invalid data: {e}"))
            }
            io::ErrorKind::UnexpectedEof => SourceError::transient(
                "the printer closed the camera connection in the middle of a frame",
            ),
            _ => SourceError::transient(format!("reading from the camera failed: {e}")),
        }
    }

    fn stream_frames(
        &self,
        stream: &mut TlsStream,
        check: &PinCheck,
        up: &dyn Upstream,
    ) -> Result<(), SourceError> {
        let mut got_frame = false;
        let mut skipped_in_a_row = 0;
        while !up.stopping() {
            let frame = match read_frame(stream, MAX_FRAME) {
                Ok(Some(Payload::Jpeg(frame))) => frame,
                Ok(Some(Payload::NotJpeg(len))) => {
                    self.skip(len, &mut skipped_in_a_row, up)?;
                    continue;
                }
                // A cancel shuts the socket down: whatever the read saw, stop.
                _ if up.stopping() => return Ok(()),
                Ok(None) if got_frame => {
                    return Err(SourceError::transient(
                        "the printer closed the camera connection",
                    ))
                }
                Ok(None) => return Err(access_code_error()),
                Err(e) => return Err(self.read_error(&e, got_frame)),
            };
            skipped_in_a_row = 0;
            if !got_frame {
                self.tofu.confirm(check, &self.describe());
            }
            got_frame = true;
            if !up.emit(frame) {
                return Ok(());
            }
        }
        Ok(())
    }

    /// A payload that is not a JPEG costs one frame, not the connection,
    /// unless such payloads keep coming (then the framing is lost).
    fn skip(&self, len: usize, in_a_row: &mut u32, up: &dyn Upstream) -> Result<(), SourceError> {
        up.skipped_frame();
        *in_a_row += 1;
        log::debug!(
            "{}: skipped a {len}-byte payload that is not a JPEG",
            self.describe()
        );
        if *in_a_row >= MAX_SKIPPED_IN_A_ROW {
            return Err(SourceError::transient(format!(
                "the camera sent {in_a_row} payloads in a row that are not JPEG pictures"
            )));
        }
        Ok(())
    }
}

/// Sends close_notify without waiting for anything; errors do not matter any
/// more (the socket may already be shut down by a cancel).
fn close_politely(stream: &mut TlsStream) {
    stream.conn.send_close_notify();
    for _ in 0..4 {
        if !stream.conn.wants_write() {
            break;
        }
        match stream.conn.write_tls(&mut stream.sock) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
}

fn access_code_error() -> SourceError {
    SourceError::transient(
        "the printer closed the connection right after authentication: check the access code",
    )
}

impl Source for Chamber {
    fn describe(&self) -> String {
        format!("chamber camera at {}", super::label(&self.host, self.port))
    }

    fn run(&self, up: &dyn Upstream) -> Result<(), SourceError> {
        let packet = auth_packet(&self.access_code).map_err(SourceError::fatal)?;
        let (mut stream, check) = self.open()?;
        up.tls_version(tls::version_name(&stream.conn));
        let canceller = stream.sock.try_clone().map_err(|e| {
            SourceError::transient(format!("cannot set up the camera connection: {e}"))
        })?;
        up.on_cancel(Box::new(move || {
            let _ = canceller.shutdown(Shutdown::Both);
        }));
        if up.stopping() {
            return Ok(());
        }
        stream
            .sock
            .set_read_timeout(Some(self.read_timeout))
            .map_err(|e| SourceError::transient(format!("socket setup failed: {e}")))?;
        if let Err(e) = stream.write_all(&packet).and_then(|()| stream.flush()) {
            if up.stopping() {
                return Ok(());
            }
            return Err(SourceError::transient(format!(
                "sending the authentication to the printer failed: {e}"
            )));
        }
        up.reached(format!(
            "TLS handshake with {} done and the access code sent",
            super::label(&self.host, self.port)
        ));
        let result = self.stream_frames(&mut stream, &check, up);
        close_politely(&mut stream);
        result
    }
}

/// The 80-byte authentication packet: four u32 LE (0x40, 0x3000, 0, 0), the
/// user `bblp` and the access code, each NUL-padded to 32 bytes.
pub fn auth_packet(access_code: &str) -> Result<[u8; AUTH_LEN], String> {
    if access_code.len() > FIELD_LEN {
        return Err(format!(
            "the access code is longer than {FIELD_LEN} characters: check it in the printer's \
             settings"
        ));
    }
    let mut packet = [0u8; AUTH_LEN];
    packet[0..4].copy_from_slice(&0x40u32.to_le_bytes());
    packet[4..8].copy_from_slice(&0x3000u32.to_le_bytes());
    let user = 16;
    let code = user + FIELD_LEN;
    packet[user..user + 4].copy_from_slice(b"bblp");
    packet[code..code + access_code.len()].copy_from_slice(access_code.as_bytes());
    Ok(packet)
}

fn protocol_error(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// What one frame of the chamber protocol carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// A complete JPEG (`FF D8 … FF D9`).
    Jpeg(Vec<u8>),
    /// A payload of this many bytes that is not one, already read past.
    NotJpeg(usize),
}

/// Reads one frame: a 16-byte header whose first u32 LE is the payload length,
/// then that many bytes. `Ok(None)` when the stream ends cleanly before a
/// header; a length of 0 or over `max` is an `InvalidData` error (the
/// framing cannot be trusted after it). Allocates at most `max` bytes.
pub fn read_frame<R: Read>(r: &mut R, max: usize) -> io::Result<Option<Payload>> {
    let mut header = [0u8; HEADER_LEN];
    if !read_header(r, &mut header)? {
        return Ok(None);
    }
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    if len == 0 || len > max {
        return Err(protocol_error(format!(
            "frame length {len} is outside 1..={max} bytes"
        )));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload)?;
    if !(payload.starts_with(&[0xff, 0xd8]) && payload.ends_with(&[0xff, 0xd9]) && len >= 4) {
        return Ok(Some(Payload::NotJpeg(len)));
    }
    Ok(Some(Payload::Jpeg(payload)))
}

/// Fills the header; false if the stream ended before its first byte (rustls
/// reports a close without close_notify as `UnexpectedEof`).
fn read_header<R: Read>(r: &mut R, header: &mut [u8; HEADER_LEN]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < HEADER_LEN {
        match r.read(&mut header[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the stream ended inside a frame header",
                ))
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && filled == 0 => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn auth_packet_is_byte_exact() {
        let p = auth_packet("12345678").unwrap();
        let mut expected = vec![0x40, 0, 0, 0, 0, 0x30, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        expected.extend_from_slice(b"bblp");
        expected.extend_from_slice(&[0; 28]);
        expected.extend_from_slice(b"12345678");
        expected.extend_from_slice(&[0; 24]);
        assert_eq!(p.to_vec(), expected);

        let full = "a".repeat(32);
        assert_eq!(&auth_packet(&full).unwrap()[48..], full.as_bytes());
        let err = auth_packet(&"b".repeat(33)).unwrap_err();
        assert!(err.contains("longer than 32"), "{err}");
        assert!(!err.contains("bbb"), "the message must not repeat the code");
    }

    fn encode(frames: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for f in frames {
            out.extend_from_slice(&(f.len() as u32).to_le_bytes());
            out.extend_from_slice(&[0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
            out.extend_from_slice(f);
        }
        out
    }

    /// A reader that hands out its data in the given piece sizes, the way TLS
    /// records may split it.
    struct Chunked {
        data: Vec<u8>,
        pos: usize,
        sizes: Vec<usize>,
        turn: usize,
    }

    impl Read for Chunked {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let size = self.sizes[self.turn % self.sizes.len()];
            self.turn += 1;
            let n = size.min(buf.len()).min(self.data.len() - self.pos);
            buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    fn jpeg_like() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(|mid| {
            let mut f = vec![0xff, 0xd8];
            f.extend(mid);
            f.extend([0xff, 0xd9]);
            f
        })
    }

    const MAX: usize = 1024;

    /// Reads frames until the end or an error, with a bounded number of
    /// steps; payloads that are not JPEGs are left out.
    fn drain(r: &mut Chunked) -> (Vec<Vec<u8>>, Option<io::Error>) {
        let mut frames = Vec::new();
        for _ in 0..10_000 {
            match read_frame(r, MAX) {
                Ok(Some(Payload::Jpeg(f))) => frames.push(f),
                Ok(Some(Payload::NotJpeg(len))) => assert!((1..=MAX).contains(&len)),
                Ok(None) => return (frames, None),
                Err(e) => return (frames, Some(e)),
            }
        }
        panic!("read_frame did not finish");
    }

    proptest! {
        #[test]
        fn frames_survive_any_chunking(
            frames in proptest::collection::vec(jpeg_like(), 0..8),
            sizes in proptest::collection::vec(1usize..40, 1..10),
        ) {
            let mut r = Chunked { data: encode(&frames), pos: 0, sizes, turn: 0 };
            let (got, err) = drain(&mut r);
            prop_assert!(err.is_none());
            prop_assert_eq!(got, frames);
        }

        #[test]
        fn corruption_never_yields_a_bad_frame(
            frames in proptest::collection::vec(jpeg_like(), 1..6),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
            cut in any::<prop::sample::Index>(),
            sizes in proptest::collection::vec(1usize..40, 1..10),
        ) {
            let mut data = encode(&frames);
            for (at, byte) in edits {
                let i = at.index(data.len());
                data[i] = byte;
            }
            data.truncate(cut.index(data.len() + 1));
            let mut r = Chunked { data, pos: 0, sizes, turn: 0 };
            let (got, _) = drain(&mut r);
            for f in got {
                prop_assert!(f.len() >= 4 && f.len() <= MAX);
                prop_assert!(f.starts_with(&[0xff, 0xd8]) && f.ends_with(&[0xff, 0xd9]));
            }
        }

        #[test]
        fn random_bytes_never_panic(
            data in proptest::collection::vec(any::<u8>(), 0..2000),
            sizes in proptest::collection::vec(1usize..40, 1..10),
        ) {
            let mut r = Chunked { data, pos: 0, sizes, turn: 0 };
            let (got, _) = drain(&mut r);
            for f in got {
                prop_assert!(f.len() <= MAX);
                prop_assert!(f.starts_with(&[0xff, 0xd8]) && f.ends_with(&[0xff, 0xd9]));
            }
        }
    }

    fn chunked(data: Vec<u8>, sizes: Vec<usize>) -> Chunked {
        Chunked {
            data,
            pos: 0,
            sizes,
            turn: 0,
        }
    }

    #[test]
    fn bad_lengths_are_protocol_errors() {
        for data in [encode(&[vec![]]), encode(&[vec![0xff; MAX + 1]])] {
            let err = read_frame(&mut chunked(data, vec![7]), MAX).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        }
    }

    #[test]
    fn a_payload_that_is_not_a_jpeg_is_read_past_and_the_next_frame_is_whole() {
        let good = vec![0xff, 0xd8, 7, 0xff, 0xd9];
        let odd = [
            vec![0x00, 0xd8, 0xff, 0xd9],
            vec![0xff, 0xd9],
            b"{}".to_vec(),
        ];
        for bad in odd {
            let data = encode(&[bad.clone(), good.clone()]);
            let mut r = chunked(data, vec![3]);
            let first = read_frame(&mut r, MAX).unwrap().unwrap();
            assert_eq!(first, Payload::NotJpeg(bad.len()));
            let second = read_frame(&mut r, MAX).unwrap().unwrap();
            assert_eq!(second, Payload::Jpeg(good.clone()));
        }
    }

    #[test]
    fn end_of_stream_between_frames_is_clean_and_inside_one_is_not() {
        assert!(read_frame(&mut chunked(vec![], vec![1]), MAX)
            .unwrap()
            .is_none());
        let data = encode(&[vec![0xff, 0xd8, 1, 2, 0xff, 0xd9]]);
        for cut in 1..data.len() {
            let err = read_frame(&mut chunked(data[..cut].to_vec(), vec![3]), MAX).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        }
    }
}
