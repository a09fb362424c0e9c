//! The RTSP request-line rewriter over any client bytes in any chunking:
//! no panic, a bounded buffer, and the same output however it is cut.
#![no_main]

use libfuzzer_sys::fuzz_target;
use printcam::sources::rtsp::tls_proxy::{RequestRewriter, MAX_HEAD};

fn run(stream: &[u8], chunk: usize) -> (Vec<u8>, bool) {
    let mut rw = RequestRewriter::new(40000, "10.0.0.5", 322);
    let mut out = Vec::new();
    for piece in stream.chunks(chunk) {
        if rw.push(piece, &mut out).is_err() {
            return (out, false);
        }
        assert!(rw.buffered() <= MAX_HEAD);
    }
    (out, true)
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, stream)) = data.split_first() else {
        return;
    };
    let (whole, ok_whole) = run(stream, stream.len().max(1));
    let (pieces, ok_pieces) = run(stream, usize::from(cut).max(1));
    if ok_whole && ok_pieces {
        assert_eq!(whole, pieces);
    }
});
