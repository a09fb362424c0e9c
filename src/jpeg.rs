//! JPEG frame splitting and inspection. (STUB: being written; API fixed.)

/// The largest frame printcam accepts from any camera.
pub const MAX_FRAME: usize = 4 * 1024 * 1024;

/// Splits a byte stream (a multipart body, ffmpeg's stdout, anything) into
/// complete JPEGs, whatever lies between them. Memory stays bounded.
pub struct Splitter {
    _max_frame: usize,
}

impl Splitter {
    pub fn new(max_frame: usize) -> Self {
        Splitter {
            _max_frame: max_frame,
        }
    }

    /// Feeds one chunk; pushes every JPEG it completes onto `out`, in order.
    pub fn push(&mut self, _chunk: &[u8], _out: &mut Vec<Vec<u8>>) {
        todo!()
    }

    /// Bytes held waiting for the rest of a frame.
    pub fn buffered(&self) -> usize {
        todo!()
    }

    /// Frames thrown away because they outgrew the bound.
    pub fn oversized(&self) -> u64 {
        todo!()
    }
}

/// Width and height from the first SOF0/SOF1/SOF2 marker.
pub fn resolution(_jpeg: &[u8]) -> Option<(u16, u16)> {
    todo!()
}

/// True if `b` starts with SOI (`FF D8`) and ends with EOI (`FF D9`).
pub fn looks_complete(_b: &[u8]) -> bool {
    todo!()
}
