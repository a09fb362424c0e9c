//! The port-6000 frame reader over any bytes, delivered in input-chosen
//! pieces: no panic, no frame over the bound, no incomplete JPEG.
#![no_main]

use libfuzzer_sys::fuzz_target;
use printcam::jpeg::looks_complete;
use printcam::sources::chamber::{read_frame, Payload};
use std::io::Read;

const MAX: usize = 256 * 1024;

/// Hands out at most `step` bytes per read, like TLS records would.
struct Pieces<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Pieces<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.step.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&step, stream)) = data.split_first() else {
        return;
    };
    let mut r = Pieces {
        data: stream,
        step: usize::from(step).max(1),
    };
    while let Ok(Some(payload)) = read_frame(&mut r, MAX) {
        match payload {
            Payload::Jpeg(frame) => {
                assert!(frame.len() <= MAX);
                assert!(looks_complete(&frame));
            }
            Payload::NotJpeg(len) => assert!((1..=MAX).contains(&len)),
        }
    }
});
