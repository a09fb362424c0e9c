//! The certificate DER walk (src/tls/der.rs) on any bytes: no panic, and the
//! key and SubjectPublicKeyInfo it finds lie inside the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use printcam::tls::{public_key, subject_public_key_info};

fn inside(part: &[u8], whole: &[u8]) -> bool {
    let range = whole.as_ptr_range();
    part.is_empty() || (range.contains(&part.as_ptr()) && part.as_ptr_range().end <= range.end)
}

fuzz_target!(|data: &[u8]| {
    if let Ok(spki) = subject_public_key_info(data) {
        assert!(inside(spki, data));
        assert_eq!(spki.first(), Some(&0x30));
    }
    if let Ok((_, key)) = public_key(data) {
        assert!(inside(key, data));
    }
});
