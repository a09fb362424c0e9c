//! The `printcam serve` running on a registry, as the CLI finds it: `serve`
//! writes `<db>.server` beside the database (mode 0600: where it listens,
//! its pid and its token, if it has one) and removes it when it stops in
//! order. `printcam snapshot` and `printcam test` then ask that server over
//! HTTP on loopback, so the printer sees the server's one connection rather
//! than one more (a P1S camera serves one or two clients; some X1 firmware
//! drops its stream when a second RTSP client connects).
//!
//! The token is as well kept in that file as in the database beside it,
//! which holds the printers' access codes with the same mode.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::json::{self, Value};

/// `<db>.server`: beside the database, named after it.
pub fn file_for(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(".server");
    db.with_file_name(name)
}

/// A running server: where to reach it and how to be let in.
#[derive(Clone, PartialEq, Eq)]
pub struct Running {
    pub pid: u32,
    /// Where the server listens; an unspecified address (0.0.0.0, ::) is
    /// reached on loopback.
    pub addr: SocketAddr,
    pub token: Option<String>,
}

impl fmt::Debug for Running {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Running")
            .field("pid", &self.pid)
            .field("addr", &self.addr)
            .field("token", &self.token.as_ref().map(|_| "****"))
            .finish()
    }
}

impl Running {
    fn text(&self) -> String {
        let mut t = format!(
            "# printcam serve on this database; removed when it stops\npid={}\naddr={}\n",
            self.pid, self.addr
        );
        if let Some(token) = &self.token {
            t.push_str(&format!("token={token}\n"));
        }
        t
    }

    fn parse(text: &str) -> Option<Running> {
        let (mut pid, mut addr, mut token) = (None, None, None);
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            match line.split_once('=')? {
                ("pid", v) => pid = v.parse().ok(),
                ("addr", v) => addr = v.parse().ok(),
                ("token", v) => token = Some(v.to_string()),
                _ => {}
            }
        }
        Some(Running {
            pid: pid?,
            addr: addr?,
            token,
        })
    }

    /// The address to connect to.
    pub fn reach(&self) -> SocketAddr {
        let ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        SocketAddr::new(ip, self.addr.port())
    }
}

/// The server file while `serve` runs; removed on drop, if it is still ours.
pub struct Published {
    path: PathBuf,
    pid: u32,
}

/// Writes `<db>.server` for this process (atomically, mode 0600).
pub fn publish(db: &Path, addr: SocketAddr, token: Option<String>) -> io::Result<Published> {
    let path = file_for(db);
    let pid = std::process::id();
    let text = Running { pid, addr, token }.text();
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(path.file_name().unwrap_or_default());
    tmp_name.push(format!(".tmp-{pid}"));
    let tmp = path.with_file_name(tmp_name);
    // A leftover of a crash of this very pid would make create_new fail.
    let _ = fs::remove_file(&tmp);
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .and_then(|()| fs::rename(&tmp, &path));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(Published { path, pid })
}

impl Published {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Published {
    fn drop(&mut self) {
        // Another server started on the same database since owns it now.
        let ours = read(&self.path).is_some_and(|r| r.pid == self.pid);
        if ours {
            if let Err(e) = fs::remove_file(&self.path) {
                log::warn!("could not remove {}: {e}", self.path.display());
            }
        }
    }
}

fn read(path: &Path) -> Option<Running> {
    Running::parse(&fs::read_to_string(path).ok()?)
}

/// The server running on `db`, if its file is there and its process alive;
/// a file left by a server that died is ignored, and so is one that another
/// user could have written (it would say where to send the request).
pub fn find(db: &Path) -> Option<Running> {
    let path = file_for(db);
    let meta = fs::symlink_metadata(&path).ok()?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let private = meta.is_file() && meta.uid() == me && meta.mode() & 0o022 == 0;
    if !private {
        return None;
    }
    read(&path).filter(|r| alive(r.pid))
}

fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Why asking the running server failed.
#[derive(Debug, PartialEq, Eq)]
pub enum AskError {
    /// Nothing listens where the file says: no server runs there after all.
    NotListening,
    /// The server answered with an error, or broke off; the message says which.
    Failed(String),
}

/// The largest answer read: a JPEG frame, or a small JSON object.
const MAX_ANSWER: u64 = crate::jpeg::MAX_FRAME as u64;

impl Running {
    /// GET `path`; the body of a 200 answer, else the answer's `detail`.
    ///
    /// A plain HTTP/1.1 exchange rather than ureq: the peer is printcam's
    /// own server on loopback, which ends every answer with `Connection:
    /// close` and gives its body's `Content-Length`, and ureq's default
    /// agent (its resolver thread, proxy and redirect code) was ~15 KB of
    /// the router binary for that (docs/sizes.md).
    fn get(&self, path: &str, timeout: Duration) -> Result<Vec<u8>, AskError> {
        let at = self.reach();
        let deadline = Instant::now() + timeout;
        let not_answered = |e: io::Error| {
            AskError::Failed(format!("the running server at {at} did not answer: {e}"))
        };
        let mut conn = TcpStream::connect_timeout(&at, timeout).map_err(|e| {
            if e.kind() == io::ErrorKind::ConnectionRefused {
                AskError::NotListening
            } else {
                not_answered(e)
            }
        })?;
        let mut head = format!(
            "GET {path} HTTP/1.1\r\nHost: {at}\r\nUser-Agent: printcam-cli\r\nConnection: close\r\n"
        );
        if let Some(token) = &self.token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        head.push_str("\r\n");
        conn.set_write_timeout(Some(timeout))
            .and_then(|()| conn.write_all(head.as_bytes()))
            .map_err(not_answered)?;
        let answer = read_all(&mut conn, deadline).map_err(not_answered)?;
        let (status, body) = split_answer(&answer)
            .map_err(|e| AskError::Failed(format!("reading the running server's answer: {e}")))?;
        if status == 200 {
            return Ok(body.to_vec());
        }
        let detail = json::parse(&String::from_utf8_lossy(body))
            .ok()
            .and_then(|v| v.get("detail").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| format!("the running server at {at} answered {status}"));
        Err(AskError::Failed(detail))
    }

    /// One JPEG from printer `id`'s camera, through the server's hub.
    pub fn snapshot(&self, id: i64, timeout: Duration) -> Result<Vec<u8>, AskError> {
        self.get(&format!("/printers/{id}/camera/snapshot"), timeout)
    }

    /// The server's test of printer `id`'s camera (its JSON answer).
    pub fn test(&self, id: i64, timeout: Duration) -> Result<Value, AskError> {
        let body = self.get(&format!("/printers/{id}/camera/test"), timeout)?;
        json::parse(&String::from_utf8_lossy(&body))
            .map_err(|e| AskError::Failed(format!("the running server's test answer: {e}")))
    }
}

/// The head of an answer may take this much beside its body.
const MAX_ANSWER_HEAD: u64 = 16 * 1024;

/// Everything the server sends until it closes, within `deadline` and the
/// size bounds.
fn read_all(conn: &mut TcpStream, deadline: Instant) -> io::Result<Vec<u8>> {
    let limit = MAX_ANSWER + MAX_ANSWER_HEAD;
    let mut answer = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"));
        }
        conn.set_read_timeout(Some(left))?;
        let n = match conn.read(&mut buf) {
            Ok(0) => return Ok(answer),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if answer.len() as u64 + n as u64 > limit {
            return Err(io::Error::other(format!(
                "the answer is larger than {limit} bytes"
            )));
        }
        answer.extend_from_slice(&buf[..n]);
    }
}

/// The status and body of a whole answer.
fn split_answer(answer: &[u8]) -> Result<(u16, &[u8]), String> {
    let mut slots = [httparse::EMPTY_HEADER; 32];
    let mut head = httparse::Response::new(&mut slots);
    let body_at = match head.parse(answer) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err("the answer ended in its head".into()),
        Err(e) => return Err(format!("a malformed head ({e})")),
    };
    let status = head.code.unwrap_or(0);
    let body = &answer[body_at..];
    let length = head
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .map(|h| {
            std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
        });
    match length {
        None => Ok((status, body)),
        Some(Some(n)) if n <= body.len() => Ok((status, &body[..n])),
        Some(Some(n)) => Err(format!(
            "the answer ended after {} of its {n} bytes",
            body.len()
        )),
        Some(None) => Err("a malformed Content-Length".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_named_after_the_database() {
        assert_eq!(
            file_for(Path::new("/etc/printcam/printcam.db")),
            PathBuf::from("/etc/printcam/printcam.db.server")
        );
        assert_eq!(
            file_for(Path::new("printcam.db")),
            PathBuf::from("printcam.db.server")
        );
    }

    #[test]
    fn the_file_round_trips_and_hides_the_token_in_debug() {
        let r = Running {
            pid: 42,
            addr: "[::]:8080".parse().unwrap(),
            token: Some("tok=en-1234567890abcdef".into()),
        };
        assert_eq!(Running::parse(&r.text()), Some(r.clone()));
        assert!(!format!("{r:?}").contains("tok=en"));
        let none = Running { token: None, ..r };
        assert_eq!(Running::parse(&none.text()), Some(none));
        assert_eq!(Running::parse("pid=1\n"), None);
        assert_eq!(Running::parse("pid=x\naddr=127.0.0.1:1\n"), None);
        assert_eq!(Running::parse("garbage"), None);
    }

    #[test]
    fn an_unspecified_listen_address_is_reached_on_loopback() {
        let reach = |a: &str| {
            Running {
                pid: 1,
                addr: a.parse().unwrap(),
                token: None,
            }
            .reach()
            .to_string()
        };
        assert_eq!(reach("0.0.0.0:8080"), "127.0.0.1:8080");
        assert_eq!(reach("[::]:8080"), "[::1]:8080");
        assert_eq!(reach("127.0.0.1:9"), "127.0.0.1:9");
    }

    #[test]
    fn an_answer_is_split_at_its_head_and_length() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabcdef";
        assert_eq!(split_answer(ok), Ok((200, &b"abc"[..])));
        let to_close = b"HTTP/1.1 404 Not Found\r\n\r\n{}";
        assert_eq!(split_answer(to_close), Ok((404, &b"{}"[..])));
        let short = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc";
        assert!(split_answer(short).unwrap_err().contains("3 of its 9"));
        assert!(split_answer(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n").is_err());
        assert!(split_answer(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(split_answer(b"garbage\r\n\r\n").is_err());
    }

    #[test]
    fn a_server_that_is_not_there_is_not_listening() {
        // A port just closed: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let r = Running {
            pid: 1,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            token: None,
        };
        assert_eq!(
            r.get("/", Duration::from_secs(5)),
            Err(AskError::NotListening)
        );
    }

    #[test]
    fn the_request_carries_the_token_and_the_answer_its_detail() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let r = Running {
            pid: 1,
            addr: listener.local_addr().unwrap(),
            token: Some("secret-token".into()),
        };
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            conn.set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap() == 1 {
                head.push(byte[0]);
            }
            let body = br#"{"detail":"Printer not found"}"#;
            let answer = format!(
                "HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            conn.write_all(answer.as_bytes()).unwrap();
            conn.write_all(body).unwrap();
            String::from_utf8(head).unwrap()
        });
        let answer = r.get("/printers/7/camera/test", Duration::from_secs(10));
        assert_eq!(answer, Err(AskError::Failed("Printer not found".into())));
        let head = server.join().unwrap();
        assert!(
            head.starts_with("GET /printers/7/camera/test HTTP/1.1\r\n"),
            "{head}"
        );
        assert!(
            head.contains("\r\nAuthorization: Bearer secret-token\r\n"),
            "{head}"
        );
        assert!(
            head.contains(&format!("\r\nHost: {}\r\n", r.addr)),
            "{head}"
        );
    }

    #[test]
    fn a_live_pid_and_a_gone_one() {
        assert!(alive(std::process::id()));
        assert!(!alive(0));
        assert!(!alive(u32::MAX));
    }
}
