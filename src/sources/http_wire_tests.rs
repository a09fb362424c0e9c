use std::io::{self, BufRead, BufReader, Read};

use proptest::prelude::*;

use super::*;

/// A reader handing out `data` in the pieces `cuts` marks, as a socket may.
struct Pieces {
    data: Vec<u8>,
    cuts: Vec<usize>,
    pos: usize,
}

impl Pieces {
    fn new(data: &[u8], cuts: &[usize]) -> Self {
        Pieces {
            data: data.to_vec(),
            cuts: cuts.to_vec(),
            pos: 0,
        }
    }
}

impl Read for Pieces {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let end = self
            .cuts
            .iter()
            .copied()
            .find(|&c| c > self.pos && c < self.data.len())
            .unwrap_or(self.data.len());
        let n = (end - self.pos).min(buf.len());
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The head, then the whole body, from `wire` cut at `cuts`.
fn exchange(wire: &[u8], cuts: &[usize]) -> io::Result<(Head, Vec<u8>)> {
    // A small buffer, so that the head's and the body's reads split too.
    let mut r = BufReader::with_capacity(7, Pieces::new(wire, cuts));
    let head = read_head(&mut r)?;
    let mut body = Vec::new();
    Body::new(r, head.framing).read_to_end(&mut body)?;
    Ok((head, body))
}

fn body_of(wire: &[u8], cuts: &[usize]) -> io::Result<Vec<u8>> {
    exchange(wire, cuts).map(|(_, body)| body)
}

const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
    5\r\nhello\r\n1;ext=\"x\"\r\n \r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n";

#[test]
fn head_is_read_across_every_split() {
    let wire = b"HTTP/1.1 206 Partial\r\nContent-Length: 3\r\nX: y\r\n\r\nabc";
    for cut in 0..wire.len() {
        let (head, body) = exchange(wire, &[cut]).unwrap();
        assert_eq!(head.status, 206);
        assert_eq!(head.framing, Framing::Length(3));
        assert_eq!(body, b"abc", "cut at {cut}");
    }
}

#[test]
fn head_leaves_the_body_in_the_reader() {
    let wire = b"HTTP/1.1 200 OK\r\n\r\nbody bytes";
    let mut r = BufReader::with_capacity(64, &wire[..]);
    let head = read_head(&mut r).unwrap();
    assert_eq!(head.framing, Framing::Close);
    assert_eq!(r.fill_buf().unwrap(), b"body bytes");
}

#[test]
fn a_head_larger_than_the_limit_is_refused() {
    let mut wire = b"HTTP/1.1 200 OK\r\nX-Padding: ".to_vec();
    wire.resize(MAX_HEAD, b'a');
    wire.extend_from_slice(b"\r\n\r\n");
    let mut r = BufReader::new(&wire[..]);
    let e = read_head(&mut r).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    assert!(e.to_string().contains("16 KB"), "{e}");
}

#[test]
fn too_many_headers_are_refused() {
    let mut wire = b"HTTP/1.1 200 OK\r\n".to_vec();
    for _ in 0..=MAX_HEADERS {
        wire.extend_from_slice(b"X: y\r\n");
    }
    wire.extend_from_slice(b"\r\n");
    let e = read_head(&mut BufReader::new(&wire[..])).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
}

#[test]
fn a_head_just_under_the_limit_is_read() {
    let mut wire = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX: ".to_vec();
    wire.resize(MAX_HEAD - 4, b'a');
    wire.extend_from_slice(b"\r\n\r\n");
    assert_eq!(wire.len(), MAX_HEAD);
    assert!(exchange(&wire, &[]).is_ok());
}

#[test]
fn closed_before_answering_and_garbage_are_errors() {
    let e = exchange(b"HTTP/1.1 200 OK\r\nContent-Le", &[]).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    let e = exchange(b"SSH-2.0-OpenSSH_9.2\r\n\r\n", &[]).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
}

#[test]
fn redirects_and_errors_are_read_as_statuses() {
    let (head, _) = exchange(
        b"HTTP/1.1 301 Moved Permanently\r\nLocation: http://169.254.169.254/\r\nContent-Length: 0\r\n\r\n",
        &[],
    )
    .unwrap();
    assert_eq!(head.status, 301);
    let (head, body) =
        exchange(b"HTTP/1.0 503 Busy\r\nContent-Length: 4\r\n\r\nbusy", &[]).unwrap();
    assert_eq!((head.status, body.as_slice()), (503, &b"busy"[..]));
}

#[test]
fn content_length_body_stops_at_its_length() {
    let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA";
    assert_eq!(body_of(wire, &[]).unwrap(), b"hello");
}

#[test]
fn content_length_body_cut_short_is_an_error() {
    let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nhello";
    let e = body_of(wire, &[]).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
}

#[test]
fn bad_or_conflicting_content_lengths_are_refused() {
    for length in ["+5", "-1", "5 5", "0x5", "", "99999999999999999999"] {
        let wire = format!("HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n\r\nhello");
        assert!(body_of(wire.as_bytes(), &[]).is_err(), "{length:?}");
    }
    let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!";
    assert!(body_of(wire, &[]).is_err());
    let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\nhello";
    assert_eq!(body_of(wire, &[]).unwrap(), b"hello");
}

#[test]
fn without_length_the_body_runs_until_close() {
    let wire = b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\n\r\nall of it";
    assert_eq!(body_of(wire, &[20, 40]).unwrap(), b"all of it");
}

#[test]
fn no_content_has_no_body() {
    let wire = b"HTTP/1.1 204 No Content\r\n\r\nnot a body";
    assert_eq!(body_of(wire, &[]).unwrap(), b"");
}

#[test]
fn chunked_body_is_decoded_across_every_split() {
    for cut in 0..CHUNKED.len() {
        let (head, body) = exchange(CHUNKED, &[cut]).unwrap();
        assert_eq!(head.framing, Framing::Chunked);
        assert_eq!(body, b"hello 0123456789", "cut at {cut}");
    }
}

#[test]
fn chunked_wins_over_content_length_and_comes_last() {
    let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n\
        4\r\nabcd\r\n0\r\n\r\n";
    assert_eq!(body_of(wire, &[]).unwrap(), b"abcd");
    // Not chunked last: the body runs until close, raw.
    let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n4\r\nabcd";
    assert_eq!(body_of(wire, &[]).unwrap(), b"4\r\nabcd");
}

#[test]
fn chunked_body_stops_at_the_last_chunk() {
    let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\nEXTRA";
    assert_eq!(body_of(wire, &[]).unwrap(), b"ab");
}

#[test]
fn bad_chunk_sizes_are_refused() {
    for size in [
        "",
        "g",
        "+5",
        "-1",
        "0x5",
        "5 5",
        "1ffffffffffffffff",
        "40000001",
        "ffffffff",
    ] {
        let wire = format!(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{size}\r\nhello\r\n0\r\n\r\n"
        );
        let e = body_of(wire.as_bytes(), &[]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{size:?}: {e}");
    }
}

#[test]
fn a_chunk_longer_than_its_size_is_refused() {
    let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n";
    assert_eq!(
        body_of(wire, &[]).unwrap_err().kind(),
        io::ErrorKind::InvalidData
    );
}

#[test]
fn chunk_lines_and_trailers_are_bounded() {
    let mut wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;".to_vec();
    wire.resize(wire.len() + 2000, b'x');
    wire.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
    let e = body_of(&wire, &[]).unwrap_err();
    assert!(e.to_string().contains("too long"), "{e}");

    let mut wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n".to_vec();
    for _ in 0..1000 {
        wire.extend_from_slice(b"X-Trailer: 0123456789012345678901234567890\r\n");
    }
    wire.extend_from_slice(b"\r\n");
    let e = body_of(&wire, &[]).unwrap_err();
    assert!(e.to_string().contains("too long"), "{e}");
}

#[test]
fn chunked_body_cut_short_is_an_error() {
    for end in [50, 53, 58, 60] {
        let e = body_of(&CHUNKED[..end], &[]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "end {end}: {e}");
    }
}

#[test]
fn request_has_host_path_query_and_no_fragment() {
    let url = Url::parse("http://10.0.0.5:8081/video/feed?action=stream&x=1#frag").unwrap();
    let head = request_head(&url);
    assert!(
        head.starts_with("GET /video/feed?action=stream&x=1 HTTP/1.1\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nHost: 10.0.0.5:8081\r\n"), "{head}");
    assert!(head.contains("\r\nConnection: close\r\n"), "{head}");
    assert!(head.contains("\r\nUser-Agent: printcam\r\n"), "{head}");
    assert!(!head.contains("Authorization"), "{head}");
    assert!(head.ends_with("\r\n\r\n"));
    assert_eq!(head.matches("\r\n\r\n").count(), 1);
}

#[test]
fn request_host_leaves_out_the_default_port() {
    let head = request_head(&Url::parse("http://cam.lan:80").unwrap());
    assert!(
        head.starts_with("GET / HTTP/1.1\r\nHost: cam.lan\r\n"),
        "{head}"
    );
    let head = request_head(&Url::parse("https://[::1]:8443/x").unwrap());
    assert!(head.contains("\r\nHost: [::1]:8443\r\n"), "{head}");
}

#[test]
fn request_has_basic_auth_from_the_user_info() {
    // The same bytes ureq sent (its tests: martin:secret).
    let head = request_head(&Url::parse("http://martin:secret@cam/").unwrap());
    assert!(
        head.contains("\r\nAuthorization: Basic bWFydGluOnNlY3JldA==\r\n"),
        "{head}"
    );
    let head = request_head(&Url::parse("http://martin@cam/").unwrap());
    assert!(
        head.contains("\r\nAuthorization: Basic bWFydGluOg==\r\n"),
        "{head}"
    );
    let head = request_head(&Url::parse("http://:secret@cam/").unwrap());
    assert!(
        head.contains("\r\nAuthorization: Basic OnNlY3JldA==\r\n"),
        "{head}"
    );
}

#[test]
fn base64_pads() {
    assert_eq!(base64(b""), "");
    assert_eq!(base64(b"M"), "TQ==");
    assert_eq!(base64(b"Ma"), "TWE=");
    assert_eq!(base64(b"Man"), "TWFu");
    assert_eq!(base64(b"bblp:27182818"), "YmJscDoyNzE4MjgxOA==");
}

proptest! {
    /// Whatever a camera sends, reading the answer ends in a head and a
    /// body or an error, never a panic.
    #[test]
    fn random_bytes_never_panic(
        wire in proptest::collection::vec(any::<u8>(), 0..2048),
        cuts in proptest::collection::vec(0usize..2048, 0..8),
    ) {
        let _ = exchange(&wire, &cuts);
    }

    /// The same with a valid head, so the body decoders see the bytes.
    #[test]
    fn random_bodies_never_panic(
        framing in 0usize..3,
        body in proptest::collection::vec(
            prop_oneof![Just(b'\r'), Just(b'\n'), Just(b';'), Just(b'0'), Just(b'f'), any::<u8>()],
            0..1024,
        ),
        cuts in proptest::collection::vec(0usize..2048, 0..8),
    ) {
        let header = ["Transfer-Encoding: chunked", "Content-Length: 100", "X: y"][framing];
        let mut wire = format!("HTTP/1.1 200 OK\r\n{header}\r\n\r\n").into_bytes();
        wire.extend_from_slice(&body);
        let _ = exchange(&wire, &cuts);
    }

    /// Any body sent chunked in any pieces reads back as itself.
    #[test]
    fn chunked_round_trips(
        pieces in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..64), 0..8),
        cuts in proptest::collection::vec(0usize..1024, 0..8),
    ) {
        let mut wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for p in &pieces {
            wire.extend_from_slice(format!("{:x}\r\n", p.len()).as_bytes());
            wire.extend_from_slice(p);
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b"0\r\n\r\n");
        let body = body_of(&wire, &cuts).unwrap();
        prop_assert_eq!(body, pieces.concat());
    }
}
