//! An external camera's MJPEG stream over HTTP(S). The body is split by JPEG
//! structure, not by the multipart boundary, so any boundary string and any
//! Content-Type (even `application/octet-stream`) work.

use std::io::Read;

use super::http_client::HttpCamera;
use crate::jpeg::{Splitter, MAX_FRAME};
use crate::source::{Source, SourceError, Upstream};
use crate::urlguard::Policy;

/// Bytes asked of the body per read.
const READ_CHUNK: usize = 32 * 1024;

pub struct MjpegHttp {
    camera: HttpCamera,
}

impl MjpegHttp {
    pub fn new(url: String, policy: Policy) -> Self {
        MjpegHttp {
            camera: HttpCamera::new(url, policy),
        }
    }
}

impl Source for MjpegHttp {
    fn describe(&self) -> String {
        self.camera.describe()
    }

    fn warmup_frame(&self) -> bool {
        true
    }

    fn run(&self, up: &dyn Upstream) -> Result<(), SourceError> {
        let client = self.camera.client(up, None);
        let Some(mut body) = client.get(up)? else {
            return Ok(());
        };
        let mut splitter = Splitter::new(MAX_FRAME);
        let mut chunk = vec![0u8; READ_CHUNK];
        let mut frames = Vec::new();
        let mut oversized = 0;
        loop {
            if up.stopping() {
                return Ok(());
            }
            let n = match body.read(&mut chunk) {
                Ok(n) => n,
                Err(_) if up.stopping() => return Ok(()),
                Err(e) => return Err(client.io_error(e)),
            };
            if n == 0 {
                if up.stopping() {
                    return Ok(());
                }
                return Err(SourceError::transient("camera closed the stream"));
            }
            splitter.push(&chunk[..n], &mut frames);
            if splitter.oversized() != oversized {
                oversized = splitter.oversized();
                log::warn!(
                    "camera at {}: dropped a frame larger than {} bytes",
                    self.camera.label(),
                    MAX_FRAME
                );
            }
            for frame in frames.drain(..) {
                if !up.emit(frame) {
                    return Ok(());
                }
            }
        }
    }
}
