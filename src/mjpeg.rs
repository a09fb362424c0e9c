//! The multipart MJPEG wire format printcam serves to viewers.

use std::io::{self, Write};

/// The part boundary; browsers take any, clients written for the service
/// printcam replaces expect this one.
pub const BOUNDARY: &str = "frame";

/// The `Content-Type` of a stream response.
pub const CONTENT_TYPE: &str = "multipart/x-mixed-replace; boundary=frame";

/// The headers that introduce one part carrying `len` bytes of JPEG.
pub fn part_header(len: usize) -> String {
    format!("--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len}\r\n\r\n")
}

/// Writes one complete part (headers, JPEG, trailing CRLF) and flushes, so
/// the viewer sees the frame now rather than when a buffer fills.
pub fn write_part<W: Write + ?Sized>(w: &mut W, jpeg: &[u8]) -> io::Result<()> {
    w.write_all(part_header(jpeg.len()).as_bytes())?;
    w.write_all(jpeg)?;
    w.write_all(b"\r\n")?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_is_byte_exact() {
        let mut out = Vec::new();
        write_part(&mut out, &[0xFF, 0xD8, 0x01, 0xFF, 0xD9]).unwrap();
        let mut want = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: 5\r\n\r\n".to_vec();
        want.extend_from_slice(&[0xFF, 0xD8, 0x01, 0xFF, 0xD9]);
        want.extend_from_slice(b"\r\n");
        assert_eq!(out, want);
    }

    #[test]
    fn content_type_names_the_boundary() {
        assert!(CONTENT_TYPE.ends_with(&format!("boundary={BOUNDARY}")));
    }
}
