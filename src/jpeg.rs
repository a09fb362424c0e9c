//! JPEG frame splitting and inspection.
// TEMP until merge: a simple splitter so the ffmpeg branch's tests run.

/// The largest frame printcam accepts from any camera.
pub const MAX_FRAME: usize = 4 * 1024 * 1024;

/// Splits a byte stream (a multipart body, ffmpeg's stdout, anything) into
/// complete JPEGs, whatever lies between them. Memory stays bounded.
pub struct Splitter {
    _max_frame: usize,
    buf: Vec<u8>,
}

impl Splitter {
    pub fn new(max_frame: usize) -> Self {
        Splitter {
            _max_frame: max_frame,
            buf: Vec::new(),
        }
    }

    /// Feeds one chunk; pushes every JPEG it completes onto `out`, in order.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<Vec<u8>>) {
        self.buf.extend_from_slice(chunk);
        loop {
            let Some(start) = memchr::memmem::find(&self.buf, b"\xff\xd8") else {
                let keep = usize::from(self.buf.last() == Some(&0xff));
                self.buf.drain(..self.buf.len() - keep);
                return;
            };
            self.buf.drain(..start);
            let Some(end) = memchr::memmem::find(&self.buf[2..], b"\xff\xd9") else {
                if self.buf.len() > self._max_frame {
                    self.buf.clear();
                }
                return;
            };
            out.push(self.buf.drain(..end + 4).collect());
        }
    }

    /// Bytes held waiting for the rest of a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Frames thrown away because they outgrew the bound.
    pub fn oversized(&self) -> u64 {
        todo!()
    }
}

/// Width and height from the first SOF0/SOF1/SOF2 marker.
pub fn resolution(jpeg: &[u8]) -> Option<(u16, u16)> {
    let mut i = 2;
    while i + 9 < jpeg.len() {
        if jpeg[i] != 0xff {
            return None;
        }
        let marker = jpeg[i + 1];
        let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
        if matches!(marker, 0xc0..=0xc2) {
            let h = u16::from_be_bytes([jpeg[i + 5], jpeg[i + 6]]);
            let w = u16::from_be_bytes([jpeg[i + 7], jpeg[i + 8]]);
            return Some((w, h));
        }
        i += 2 + len;
    }
    None
}

/// True if `b` starts with SOI (`FF D8`) and ends with EOI (`FF D9`).
pub fn looks_complete(b: &[u8]) -> bool {
    b.starts_with(&[0xff, 0xd8]) && b.ends_with(&[0xff, 0xd9])
}
