//! The multipart MJPEG wire format printcam serves to viewers.

use std::io::{self, IoSlice, Write};

/// The part boundary; browsers take any, clients written for the service
/// printcam replaces expect this one.
pub const BOUNDARY: &str = "frame";

/// The `Content-Type` of a stream response.
pub const CONTENT_TYPE: &str = "multipart/x-mixed-replace; boundary=frame";

/// The headers that introduce one part carrying `len` bytes of JPEG.
pub fn part_header(len: usize) -> String {
    format!("--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len}\r\n\r\n")
}

/// Calls `f` with one part (headers, JPEG, trailing CRLF) as three slices,
/// so it can go out in one writev: one trip through the TCP stack and one
/// wake-up of the viewer per frame instead of three.
pub fn with_part<R>(jpeg: &[u8], f: impl FnOnce(&mut [IoSlice<'_>]) -> R) -> R {
    let header = part_header(jpeg.len());
    let mut pieces = [
        IoSlice::new(header.as_bytes()),
        IoSlice::new(jpeg),
        IoSlice::new(b"\r\n"),
    ];
    f(&mut pieces)
}

/// Writes one complete part and flushes, so the viewer sees the frame now
/// rather than when a buffer fills.
pub fn write_part<W: Write + ?Sized>(w: &mut W, jpeg: &[u8]) -> io::Result<()> {
    write_part_from(w, jpeg, 0)
}

/// Writes the part of `jpeg` except its first `skip` bytes, which were
/// already sent (by a non-blocking write that could not take all of it).
pub fn write_part_from<W: Write + ?Sized>(w: &mut W, jpeg: &[u8], skip: usize) -> io::Result<()> {
    with_part(jpeg, |pieces| write_pieces_from(w, pieces, skip))
}

/// Writes `pieces` but their first `skip` bytes, and flushes.
pub fn write_pieces_from<W: Write + ?Sized>(
    w: &mut W,
    pieces: &mut [IoSlice<'_>],
    skip: usize,
) -> io::Result<()> {
    let total: usize = pieces.iter().map(|p| p.len()).sum();
    if skip >= total {
        return Ok(());
    }
    let mut rest = pieces;
    IoSlice::advance_slices(&mut rest, skip);
    write_all_vectored(w, rest)?;
    w.flush()
}

/// `Write::write_all_vectored`, which is not stable yet.
fn write_all_vectored<W: Write + ?Sized>(
    w: &mut W,
    mut bufs: &mut [IoSlice<'_>],
) -> io::Result<()> {
    // Drops leading empty slices: with nothing left to write, a zero-length
    // write would otherwise read as WriteZero.
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        match w.write_vectored(bufs) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
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

    /// A writer that takes at most `limit` bytes per call, like a socket
    /// whose buffer is nearly full.
    struct Trickle {
        out: Vec<u8>,
        limit: usize,
        calls: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.calls += 1;
            let n = buf.len().min(self.limit);
            self.out.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn short_writes_still_give_the_whole_part() {
        let jpeg: Vec<u8> = [0xFF, 0xD8]
            .into_iter()
            .chain(0..=250)
            .chain([0xFF, 0xD9])
            .collect();
        let mut whole = Vec::new();
        write_part(&mut whole, &jpeg).unwrap();
        for limit in [1, 3, 7, 64, 1000] {
            let mut t = Trickle {
                out: Vec::new(),
                limit,
                calls: 0,
            };
            write_part(&mut t, &jpeg).unwrap();
            assert_eq!(t.out, whole, "limit {limit}");
            assert!(t.calls >= whole.len() / limit);
        }
    }

    #[test]
    fn the_rest_of_a_part_completes_it_from_any_point() {
        let jpeg = [0xFF, 0xD8, 0x01, 0x02, 0xFF, 0xD9];
        let mut whole = Vec::new();
        write_part(&mut whole, &jpeg).unwrap();
        for skip in 0..=whole.len() + 1 {
            let mut rest = Vec::new();
            write_part_from(&mut rest, &jpeg, skip).unwrap();
            assert_eq!(rest, whole[skip.min(whole.len())..], "skip {skip}");
        }
    }

    #[test]
    fn a_writer_that_takes_nothing_is_an_error() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Ok(0)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let err = write_part(&mut Full, &[0xFF, 0xD8, 0xFF, 0xD9]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WriteZero);
    }

    #[test]
    fn content_type_names_the_boundary() {
        assert!(CONTENT_TYPE.ends_with(&format!("boundary={BOUNDARY}")));
    }
}
