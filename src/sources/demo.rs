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
            return Err(SourceError::fatal("this build has no demo camera"));
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
