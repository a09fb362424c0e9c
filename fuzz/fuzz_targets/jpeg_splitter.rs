//! Any byte stream, cut into chunks chosen by the input itself: the splitter
//! never panics, never holds more than its bound, and only yields complete
//! `FF D8 … FF D9` frames.
#![no_main]

use libfuzzer_sys::fuzz_target;
use printcam::jpeg::{looks_complete, Splitter};

const MAX: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(cut).max(1);
    let mut splitter = Splitter::new(MAX);
    let mut frames = Vec::new();
    for piece in stream.chunks(chunk) {
        splitter.push(piece, &mut frames);
        assert!(splitter.buffered() <= MAX);
    }
    for f in &frames {
        assert!(looks_complete(f));
        assert!(f.len() <= MAX);
    }
});
