//! Shared test helpers: a server on an ephemeral loopback port that stops
//! when dropped, and a tiny raw HTTP/1.1 client with timeouts.
#![allow(dead_code)]

use printcam::cameras::Cameras;
use printcam::config::Settings;
use printcam::http::{Limits, Server};
use printcam::json::{self, Value};
use printcam::registry::Registry;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Every socket read or write in the tests gives up after this.
pub const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// A server with an in-memory registry and the demo camera; shut down on drop.
pub struct TestServer {
    pub server: Server,
    pub cameras: Arc<Cameras>,
    pub addr: SocketAddr,
}

impl TestServer {
    pub fn start() -> TestServer {
        TestServer::start_with(Limits::default())
    }

    pub fn start_with(limits: Limits) -> TestServer {
        TestServer::start_configured(test_settings(), limits)
    }

    pub fn start_configured(settings: Settings, limits: Limits) -> TestServer {
        let registry = Arc::new(Registry::open_in_memory().expect("in-memory registry"));
        let cameras = Cameras::new(registry, settings);
        let server =
            Server::start_with(cameras.clone(), "127.0.0.1:0", limits).expect("server starts");
        let addr = server.addr();
        TestServer {
            server,
            cameras,
            addr,
        }
    }

    pub fn get(&self, path: &str) -> HttpResponse {
        request(self.addr, "GET", path, &[], None)
    }

    pub fn send_json(&self, method: &str, path: &str, body: &str) -> HttpResponse {
        request(
            self.addr,
            method,
            path,
            &[("Content-Type", "application/json")],
            Some(body.as_bytes()),
        )
    }
}

/// Demo camera on, loopback cameras allowed, a short grace period.
pub fn test_settings() -> Settings {
    Settings {
        demo: true,
        grace: Duration::from_millis(200),
        allow_loopback: true,
        snapshot_timeout: Duration::from_secs(10),
        ..Settings::default()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.server.shutdown();
    }
}

#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics (test failure) with the body when it is not.
    pub fn json(&self) -> Value {
        json::parse_bytes(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text()))
    }

    /// The `detail` of a JSON error, checking the content type too.
    pub fn detail(&self) -> String {
        assert_eq!(
            self.header("Content-Type"),
            Some("application/json"),
            "{self:?}"
        );
        self.json()
            .get("detail")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no detail: {}", self.text()))
            .to_string()
    }
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

fn write_request(
    s: &mut TcpStream,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> io::Result<()> {
    // The address it talks to, as a browser or curl would send it (changes
    // addressed to another name are refused: DNS rebinding), unless the
    // caller names a Host of its own.
    let host = s
        .peer_addr()
        .map_or_else(|_| "localhost".to_string(), |a| a.to_string());
    let mut head = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("Host")) {
        head.push_str(&format!("Host: {host}\r\n"));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        head.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    if let Some(b) = body {
        s.write_all(b)?;
    }
    s.flush()
}

/// One request on a fresh connection; reads the whole response.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> HttpResponse {
    let mut s = connect(addr);
    write_request(&mut s, method, path, headers, body).expect("send request");
    let mut r = BufReader::new(s);
    let (status, headers) = read_head(&mut r).expect("response head");
    let body = read_body(&mut r, &headers).expect("response body");
    HttpResponse {
        status,
        headers,
        body,
    }
}

fn read_line(r: &mut impl BufRead) -> io::Result<String> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Status line and headers up to the blank line.
pub fn read_head(r: &mut impl BufRead) -> io::Result<(u16, Vec<(String, String)>)> {
    let status_line = read_line(r)?;
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, status_line.clone()))?;
    let mut headers = Vec::new();
    loop {
        let line = read_line(r)?;
        if line.is_empty() {
            return Ok((status, headers));
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
}

fn find<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn read_body(r: &mut impl BufRead, headers: &[(String, String)]) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    if let Some(len) = find(headers, "Content-Length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(len, 0);
        r.read_exact(&mut body)?;
    } else if find(headers, "Transfer-Encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let size = usize::from_str_radix(read_line(r)?.trim(), 16)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            if size == 0 {
                read_line(r)?;
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            r.read_exact(&mut body[start..])?;
            read_line(r)?;
        }
    } else {
        r.read_to_end(&mut body)?;
    }
    Ok(body)
}

/// A `stream.mp4` viewer, past the response head (200, video/mp4).
pub fn open_mp4_viewer(addr: SocketAddr, path: &str) -> BufReader<TcpStream> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut r = BufReader::new(s);
    let (status, headers) = read_head(&mut r).unwrap();
    assert_eq!(status, 200, "{headers:?}");
    let kind = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"));
    assert_eq!(kind.map(|(_, v)| v.as_str()), Some("video/mp4"));
    r
}

/// `d` of an MP4 stream, cut after its last whole box.
pub fn read_mp4_for(r: &mut BufReader<TcpStream>, d: Duration) -> Vec<u8> {
    let start = Instant::now();
    let mut data = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    while start.elapsed() < d {
        let n = r.read(&mut buf).expect("the stream goes on");
        assert!(n > 0, "the stream ended");
        data.extend_from_slice(&buf[..n]);
    }
    let mut whole = 0;
    while let Some(head) = data.get(whole..whole + 4) {
        let size = u32::from_be_bytes(head.try_into().unwrap()) as usize;
        if size < 8 || whole + size > data.len() {
            break;
        }
        whole += size;
    }
    data.truncate(whole);
    data
}

/// While printer `id`'s `stream.mp4` plays, its snapshot (the MJPEG side)
/// is a picture decoded from the same session (the caller counts the
/// camera's clients), and its status names no `secret`.
pub fn assert_snapshot_shares_the_mp4_session(ts: &TestServer, id: i64, secret: &str) {
    let snap = ts.get(&format!("/printers/{id}/camera/snapshot"));
    assert_eq!(snap.status, 200, "{}", snap.text());
    assert!(is_jpeg(&snap.body));
    let status = ts.get(&format!("/printers/{id}/camera/status")).text();
    assert!(status.contains(r#""decodes":"keyframes""#), "{status}");
    assert!(!status.contains(secret), "{status}");
}

/// The answer to a stream request when it is refused; None when the
/// stream is served (and is not read).
pub fn refused_stream(addr: SocketAddr, path: &str) -> Option<HttpResponse> {
    let mut s = connect(addr);
    write_request(&mut s, "GET", path, &[], None).expect("send request");
    let mut r = BufReader::new(s);
    let (status, headers) = read_head(&mut r).expect("response head");
    if status == 200 {
        return None;
    }
    let body = read_body(&mut r, &headers).expect("response body");
    Some(HttpResponse {
        status,
        headers,
        body,
    })
}

/// A viewer of an MJPEG stream, reading one part at a time.
pub struct MjpegReader {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    reader: BufReader<TcpStream>,
}

impl MjpegReader {
    pub fn open(addr: SocketAddr, path: &str) -> MjpegReader {
        MjpegReader::request(connect(addr), path)
    }

    /// `open` on a connection made already.
    pub fn request(mut s: TcpStream, path: &str) -> MjpegReader {
        write_request(&mut s, "GET", path, &[], None).expect("send request");
        let mut reader = BufReader::new(s);
        let (status, headers) = read_head(&mut reader).expect("stream head");
        MjpegReader {
            status,
            headers,
            reader,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        find(&self.headers, name)
    }

    /// The next part's JPEG: `--frame`, its headers, `Content-Length` bytes, CRLF.
    pub fn next_part(&mut self) -> io::Result<Vec<u8>> {
        let boundary = read_line(&mut self.reader)?;
        if boundary != "--frame" {
            return Err(io::Error::new(io::ErrorKind::InvalidData, boundary));
        }
        let mut len = None;
        loop {
            let line = read_line(&mut self.reader)?;
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.trim().eq_ignore_ascii_case("Content-Length") {
                    len = v.trim().parse::<usize>().ok();
                }
            }
        }
        let len =
            len.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "part without length"))?;
        let mut jpeg = vec![0; len];
        self.reader.read_exact(&mut jpeg)?;
        let end = read_line(&mut self.reader)?;
        if !end.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "part not followed by CRLF",
            ));
        }
        Ok(jpeg)
    }

    /// Reads until the server closes the connection; error on timeout.
    pub fn read_to_end(&mut self) -> io::Result<Vec<u8>> {
        let mut rest = Vec::new();
        self.reader.read_to_end(&mut rest)?;
        Ok(rest)
    }
}

/// A complete JPEG: starts with SOI, ends with EOI.
pub fn is_jpeg(b: &[u8]) -> bool {
    b.len() > 4 && b.starts_with(&[0xFF, 0xD8]) && b.ends_with(&[0xFF, 0xD9])
}
