//! A built-in camera that plays a few embedded frames: for trying printcam
//! without a printer, and for tests.

use std::time::{Duration, Instant};

use crate::source::{Source, SourceError, Upstream};

#[cfg(feature = "demo")]
static FRAMES: [&[u8]; 8] = [
    include_bytes!("../../assets/demo/frame1.jpg"),
    include_bytes!("../../assets/demo/frame2.jpg"),
    include_bytes!("../../assets/demo/frame3.jpg"),
    include_bytes!("../../assets/demo/frame4.jpg"),
    include_bytes!("../../assets/demo/frame5.jpg"),
    include_bytes!("../../assets/demo/frame6.jpg"),
    include_bytes!("../../assets/demo/frame7.jpg"),
    include_bytes!("../../assets/demo/frame8.jpg"),
];

#[cfg(not(feature = "demo"))]
static FRAMES: [&[u8]; 0] = [];

/// The embedded frames (none in a build without the `demo` feature).
pub fn demo_frames() -> &'static [&'static [u8]] {
    &FRAMES
}

/// Whether this build has the demo camera (the `demo` cargo feature).
pub fn available() -> bool {
    !FRAMES.is_empty()
}

/// Why a build without the `demo` feature cannot serve the demo camera.
pub const UNAVAILABLE: &str =
    "this build has no demo camera: it was built without the `demo` cargo feature";

#[derive(Debug, Default)]
pub struct Demo;

impl Demo {
    pub fn new() -> Self {
        Demo
    }
}

impl Source for Demo {
    fn describe(&self) -> String {
        "demo camera".to_string()
    }

    fn run(&self, up: &dyn Upstream) -> Result<(), SourceError> {
        let frames = demo_frames();
        if frames.is_empty() {
            return Err(SourceError::fatal(UNAVAILABLE));
        }
        for frame in frames.iter().cycle() {
            let started = Instant::now();
            if !up.emit(frame.to_vec()) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_feature_decides_whether_frames_are_embedded() {
        assert_eq!(available(), cfg!(feature = "demo"));
        assert_eq!(
            demo_frames().len(),
            if cfg!(feature = "demo") { 8 } else { 0 }
        );
    }
}
