//! A tiny HTTP camera for tests: one thread answering each connection with
//! canned bytes (a JPEG, a multipart stream, an error page).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// A one-thread HTTP server answering each connection with canned bytes.
/// Stopped and joined on drop.
pub struct TinyServer {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<usize>>,
}

impl TinyServer {
    /// `reply(n)` gives the bytes for the n-th connection (then it is closed);
    /// `linger` keeps the connection open (silent) after the reply.
    pub fn start(reply: impl Fn(usize) -> Vec<u8> + Send + 'static, linger: bool) -> TinyServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = thread::Builder::new()
            .name("tiny-http-camera".into())
            .spawn(move || serve(listener, &reply, linger, &flag))
            .unwrap();
        TinyServer {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://viewer:s3cr3t-pw@{}{path}", self.addr)
    }
}

impl Drop for TinyServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(
    listener: TcpListener,
    reply: &dyn Fn(usize) -> Vec<u8>,
    linger: bool,
    stop: &AtomicBool,
) -> usize {
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut served = 0;
    let mut kept = Vec::new();
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        let mut conn = match listener.accept() {
            Ok((conn, _)) => conn,
            Err(_) => {
                thread::sleep(Duration::from_millis(5));
                continue;
            }
        };
        conn.set_nonblocking(false).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        conn.set_write_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        read_request_head(&mut conn);
        // Write in small pieces so the client sees arbitrary chunking.
        for piece in reply(served).chunks(1500) {
            if conn.write_all(piece).is_err() {
                break;
            }
        }
        served += 1;
        if linger {
            kept.push(conn);
        } else {
            let _ = conn.shutdown(Shutdown::Write);
        }
    }
    served
}

fn read_request_head(conn: &mut TcpStream) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        match conn.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
}

pub fn response(status: &str, content_type: &str, body: &[u8], length: bool) -> Vec<u8> {
    let mut out =
        format!("HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nConnection: close\r\n");
    if length {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

pub fn multipart(boundary: &str, frames: &[&[u8]]) -> Vec<u8> {
    let mut body = Vec::new();
    for f in frames {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
                f.len()
            )
            .as_bytes(),
        );
        body.extend_from_slice(f);
        body.extend_from_slice(b"\r\n");
    }
    body
}
