//! A big-endian bit reader with the exp-Golomb codes H.264 headers use.

use super::MediaError;

/// Reads bits from an RBSP (emulation prevention already removed).
pub struct BitReader<'a> {
    data: &'a [u8],
    /// Position in bits from the start of `data`.
    pos: usize,
    what: &'static str,
}

impl<'a> BitReader<'a> {
    /// `what` names the structure in errors ("SPS").
    pub fn new(data: &'a [u8], what: &'static str) -> BitReader<'a> {
        BitReader { data, pos: 0, what }
    }

    fn short(&self) -> MediaError {
        MediaError::new(self.what, format!("ends early, at bit {}", self.pos))
    }

    pub fn bit(&mut self) -> Result<bool, MediaError> {
        let byte = self.data.get(self.pos / 8).ok_or_else(|| self.short())?;
        let bit = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Ok(bit == 1)
    }

    /// `n` (at most 32) bits as an unsigned number.
    pub fn bits(&mut self, n: u32) -> Result<u32, MediaError> {
        debug_assert!(n <= 32);
        let mut v: u32 = 0;
        for _ in 0..n {
            v = (v << 1) | u32::from(self.bit()?);
        }
        Ok(v)
    }

    /// ue(v). Values past 2^32 - 2 are refused: no H.264 field comes close.
    pub fn ue(&mut self) -> Result<u32, MediaError> {
        let mut zeros = 0;
        while !self.bit()? {
            zeros += 1;
            if zeros > 31 {
                return Err(MediaError::new(self.what, "exp-Golomb code too long"));
            }
        }
        let rest = self.bits(zeros)?;
        // 2^zeros - 1 + rest, computed in u64 so 31 zeros cannot overflow.
        let v = (1u64 << zeros) - 1 + u64::from(rest);
        u32::try_from(v).map_err(|_| MediaError::new(self.what, "exp-Golomb value too large"))
    }

    /// se(v): 0, 1, -1, 2, -2, ...
    pub fn se(&mut self) -> Result<i32, MediaError> {
        let k = i64::from(self.ue()?);
        let v = if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) };
        i32::try_from(v).map_err(|_| MediaError::new(self.what, "signed exp-Golomb out of range"))
    }

    /// ue(v) that must not exceed `max`; `field` names it in the error.
    pub fn ue_max(&mut self, max: u32, field: &str) -> Result<u32, MediaError> {
        let v = self.ue()?;
        if v > max {
            return Err(MediaError::new(
                self.what,
                format!("{field} is {v}, more than {max}"),
            ));
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_golomb_codes_from_the_standard_table() {
        // 1 | 010 | 011 | 00100 | 00101 | 00110 | 00111 | 0001000 -> 0..7
        let data = [
            0b1010_0110,
            0b0100_0010,
            0b1001_1000,
            0b1110_0010,
            0b0000_0000,
        ];
        let mut r = BitReader::new(&data, "test");
        let got: Vec<u32> = (0..8).map(|_| r.ue().unwrap()).collect();
        assert_eq!(got, [0, 1, 2, 3, 4, 5, 6, 7]);
    }

    #[test]
    fn signed_codes_alternate() {
        let data = [0b1010_0110, 0b0100_0010, 0b1001_1000];
        let mut r = BitReader::new(&data, "test");
        let got: Vec<i32> = (0..5).map(|_| r.se().unwrap()).collect();
        assert_eq!(got, [0, 1, -1, 2, -2]);
    }

    #[test]
    fn running_out_or_an_endless_prefix_is_an_error_not_a_panic() {
        assert!(BitReader::new(&[0b0000_0001], "test").ue().is_err());
        let zeros = [0u8; 8];
        let e = BitReader::new(&zeros, "SPS").ue().unwrap_err();
        assert!(e.to_string().starts_with("SPS: "), "{e}");
        let mut r = BitReader::new(&[0xFF], "test");
        assert_eq!(r.bits(8).unwrap(), 0xFF);
        assert!(r.bit().is_err());
    }

    #[test]
    fn the_largest_code_fits_and_bounds_are_checked() {
        // 31 zeros, a one, then 31 ones: 2^32 - 2.
        let data = [0, 0, 0, 1, 0xFF, 0xFF, 0xFF, 0xFE];
        assert_eq!(BitReader::new(&data, "t").ue().unwrap(), u32::MAX - 1);
        let mut r = BitReader::new(&[0b0001_0000], "t");
        assert!(r.ue_max(6, "x").is_err());
    }
}
