//! One connection to a camera at a time, whichever of its hubs asks: the
//! MJPEG hub (ffmpeg) and the MP4 hub (native RTSP) of one printer share a
//! `Lease`, so the printer never sees two clients. Serving both outputs
//! from one session is the next step (issue 12).

use crate::source::{Source, SourceError, Upstream};
use crate::sync::lock;
use std::sync::{Arc, Mutex};

/// Who holds a camera's connection, if anyone.
#[derive(Default)]
pub struct Lease {
    holder: Mutex<Option<&'static str>>,
}

/// A held lease; given back when dropped (also on panic).
struct Held<'a>(&'a Lease);

impl Lease {
    fn take(&self, by: &'static str) -> Result<Held<'_>, &'static str> {
        let mut holder = lock(&self.holder);
        if let Some(other) = *holder {
            return Err(other);
        }
        *holder = Some(by);
        Ok(Held(self))
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        *lock(&self.0.holder) = None;
    }
}

/// `inner`, connecting only while no other holder of `lease` is connected.
pub struct Exclusive {
    inner: Arc<dyn Source>,
    lease: Arc<Lease>,
    /// What this connection serves, for the other's message ("MJPEG stream").
    serves: &'static str,
}

impl Exclusive {
    pub fn new(inner: Arc<dyn Source>, lease: Arc<Lease>, serves: &'static str) -> Exclusive {
        Exclusive {
            inner,
            lease,
            serves,
        }
    }
}

impl Source for Exclusive {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn warmup_frame(&self) -> bool {
        self.inner.warmup_frame()
    }

    fn run(&self, up: &dyn Upstream) -> Result<(), SourceError> {
        let _held = self.lease.take(self.serves).map_err(|other| {
            SourceError::transient(format!(
                "the camera is busy with its {other}: printcam opens one connection per \
                 camera, and the {} waits until that one closes",
                self.serves
            ))
        })?;
        self.inner.run(up)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_has_one_holder_until_it_is_given_back() {
        let lease = Lease::default();
        let held = lease.take("MJPEG stream").ok().unwrap();
        assert_eq!(lease.take("MP4 stream").err(), Some("MJPEG stream"));
        drop(held);
        assert!(lease.take("MP4 stream").is_ok());
    }
}
