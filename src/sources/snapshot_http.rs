//! An external camera that serves one JPEG per request, polled at the rate the
//! fastest viewer wants.

use std::time::{Duration, Instant};

use super::http_client::{HttpCamera, SILENCE_TIMEOUT};
use crate::jpeg::looks_complete;
use crate::source::{Source, SourceError, Upstream};
use crate::urlguard::Policy;

pub struct SnapshotHttp {
    camera: HttpCamera,
}

impl SnapshotHttp {
    pub fn new(url: String, policy: Policy) -> Self {
        SnapshotHttp {
            camera: HttpCamera::new(url, policy),
        }
    }
}

impl Source for SnapshotHttp {
    fn describe(&self) -> String {
        self.camera.describe()
    }

    fn run(&self, up: &dyn Upstream) -> Result<(), SourceError> {
        // A picture must arrive whole in this time, however slowly it drips.
        let client = self.camera.client(up, Some(SILENCE_TIMEOUT));
        while !up.stopping() {
            let started = Instant::now();
            let Some(body) = client.get(up)? else {
                return Ok(());
            };
            let jpeg = match client.read_picture(body) {
                Ok(jpeg) => jpeg,
                Err(_) if up.stopping() => return Ok(()),
                Err(e) => return Err(e),
            };
            if !looks_complete(&jpeg) {
                return Err(SourceError::transient(format!(
                    "the camera at {} did not return a JPEG",
                    self.camera.label()
                )));
            }
            if !up.emit(jpeg) {
                return Ok(());
            }
            let period = Duration::from_secs(1) / up.wanted_fps().clamp(1, 30);
            if !up.sleep(period.saturating_sub(started.elapsed())) {
                return Ok(());
            }
        }
        Ok(())
    }
}
