//! The built-in camera of a printer whose model printcam does not know (or
//! that has none): the RTSPS camera is tried first (TLS, then an RTSP
//! `OPTIONS`, which needs no access code), then the chamber camera, whose
//! first frame proves it. What answered is reported once (stored in the
//! registry by the caller) and used from then on. One connection at a time:
//! the probe is closed before anything else connects.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::tofu::Tofu;
use crate::camera::BuiltIn;
use crate::source::{OnFirstFrame, Source, SourceError, Upstream};
use crate::tls;
use crate::urlguard::Policy;

/// Called with the kind that answered, once per source.
pub type OnFound = Box<dyn Fn(BuiltIn) + Send + Sync>;

/// Where to look, and the two cameras that may be there.
pub struct Detect {
    host: String,
    rtsps_port: u16,
    chamber_port: u16,
    /// The printer's pinned certificate, if any: a probe must not talk to
    /// an impostor either. A probe never pins (it has proved nothing).
    pin: Option<String>,
    policy: Policy,
    rtsps: Arc<dyn Source>,
    chamber: Arc<dyn Source>,
    found: Mutex<Option<BuiltIn>>,
    on_found: OnFound,
    timeout: Duration,
}

/// What the RTSPS probe sends: any RTSP server answers it, with or without
/// credentials, and the Bambu path is what a printer serves.
fn options_request(label: &str) -> String {
    format!(
        "OPTIONS rtsps://{label}/streaming/live/1 RTSP/1.0\r\nCSeq: 1\r\n\
         User-Agent: printcam\r\n\r\n"
    )
}

/// The start of every RTSP response.
const RTSP_REPLY: &[u8] = b"RTSP/1.0 ";

pub struct Ports {
    pub rtsps: u16,
    pub chamber: u16,
}

impl Detect {
    pub fn new(
        host: String,
        ports: Ports,
        pin: Option<String>,
        policy: Policy,
        cameras: [Arc<dyn Source>; 2],
        on_found: OnFound,
    ) -> Detect {
        let [rtsps, chamber] = cameras;
        Detect {
            host,
            rtsps_port: ports.rtsps,
            chamber_port: ports.chamber,
            pin,
            policy,
            rtsps,
            chamber,
            found: Mutex::new(None),
            on_found,
            timeout: Duration::from_secs(5),
        }
    }

    fn found(&self) -> Option<BuiltIn> {
        *crate::sync::lock(&self.found)
    }

    fn camera(&self, kind: BuiltIn) -> &Arc<dyn Source> {
        match kind {
            BuiltIn::Rtsps => &self.rtsps,
            BuiltIn::Chamber => &self.chamber,
        }
    }

    fn settle(&self, kind: BuiltIn) {
        *crate::sync::lock(&self.found) = Some(kind);
        log::info!(
            "{}: the model is not known; detected the {} camera",
            self.camera(kind).describe(),
            kind.as_str()
        );
        (self.on_found)(kind);
    }

    /// TLS to the RTSPS port, an `OPTIONS`, and an RTSP answer; the reason
    /// when there is none.
    fn probe_rtsps(&self, up: &dyn Upstream) -> Result<(), String> {
        let target = super::printer_target(&self.host, self.rtsps_port, self.policy)
            .map_err(|e| e.message)?;
        let dialer = Tofu::new(self.pin.clone(), None).check().dialer;
        let mut stream = tls::connect_with(&target, &dialer, self.timeout).map_err(String::from)?;
        if let Ok(canceller) = stream.sock.try_clone() {
            up.on_cancel(Box::new(move || {
                let _ = canceller.shutdown(Shutdown::Both);
            }));
        }
        let answer = ask_options(&mut stream, &target.label());
        let _ = stream.sock.shutdown(Shutdown::Both);
        answer.map_err(|why| format!("{}: {why}", target.label()))
    }
}

/// Sends the `OPTIONS` request and reads until the answer's first bytes
/// show whether it is RTSP. The stream has read and write timeouts.
fn ask_options<S: Read + Write>(stream: &mut S, label: &str) -> Result<(), String> {
    stream
        .write_all(options_request(label).as_bytes())
        .and_then(|()| stream.flush())
        .map_err(|e| format!("sending an RTSP request failed: {e}"))?;
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while got.len() < RTSP_REPLY.len() {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("no RTSP answer ({e})")),
        }
    }
    if got.starts_with(RTSP_REPLY) {
        Ok(())
    } else if got.is_empty() {
        Err("the connection closed without an RTSP answer".into())
    } else {
        Err("the answer is not RTSP".into())
    }
}

impl Source for Detect {
    fn describe(&self) -> String {
        match self.found() {
            Some(kind) => self.camera(kind).describe(),
            None => format!(
                "printer camera at {} (model unknown: RTSPS on port {}, else chamber on port {})",
                super::label(&self.host, self.rtsps_port),
                self.rtsps_port,
                self.chamber_port
            ),
        }
    }

    fn run(&self, up: &dyn Upstream) -> Result<(), SourceError> {
        if let Some(kind) = self.found() {
            return self.camera(kind).run(up);
        }
        let rtsps_failed = match self.probe_rtsps(up) {
            Ok(()) => {
                self.settle(BuiltIn::Rtsps);
                return self.rtsps.run(up);
            }
            Err(why) => why,
        };
        if up.stopping() {
            return Ok(());
        }
        let watched = OnFirstFrame::new(up, || self.settle(BuiltIn::Chamber));
        match self.chamber.run(&watched) {
            Err(e) if !watched.fired() && !up.stopping() => Err(SourceError {
                message: format!(
                    "no camera answered (the printer's model is not known, so both kinds were \
                     tried): the RTSPS camera on port {}: {rtsps_failed}; the chamber camera on \
                     port {}: {}",
                    self.rtsps_port, self.chamber_port, e.message
                ),
                retry: e.retry,
            }),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// Reads from `answer`, records what was written.
    struct Peer {
        answer: Cursor<Vec<u8>>,
        sent: Vec<u8>,
    }

    impl Read for Peer {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            // One byte at a time: the answer may come in any pieces.
            let n = buf.len().min(1);
            self.answer.read(&mut buf[..n])
        }
    }

    impl Write for Peer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.sent.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn ask(answer: &[u8]) -> (Result<(), String>, String) {
        let mut peer = Peer {
            answer: Cursor::new(answer.to_vec()),
            sent: Vec::new(),
        };
        let r = ask_options(&mut peer, "[fd00::50]:322");
        (r, String::from_utf8(peer.sent).unwrap())
    }

    #[test]
    fn an_rtsp_answer_of_any_status_is_an_rtsp_camera() {
        for answer in [
            &b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n"[..],
            b"RTSP/1.0 401 Unauthorized\r\n",
        ] {
            let (r, sent) = ask(answer);
            assert_eq!(r, Ok(()));
            assert!(
                sent.starts_with("OPTIONS rtsps://[fd00::50]:322/streaming/live/1 RTSP/1.0\r\n")
                    && sent.contains("CSeq: 1\r\n")
                    && sent.ends_with("\r\n\r\n"),
                "{sent}"
            );
        }
    }

    #[test]
    fn anything_else_is_not() {
        assert!(ask(b"").0.unwrap_err().contains("closed"));
        assert!(ask(b"RTSP/1").0.unwrap_err().contains("not RTSP"));
        assert!(ask(b"HTTP/1.1 400 Bad Request\r\n")
            .0
            .unwrap_err()
            .contains("not RTSP"));
        assert!(ask(&[0x10, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0])
            .0
            .unwrap_err()
            .contains("not RTSP"));
    }
}
