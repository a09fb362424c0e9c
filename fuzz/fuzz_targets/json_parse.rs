//! The JSON parser on any bytes: no panic, and what it accepts comes back
//! the same after printing and parsing again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use printcam::json::{parse, parse_bytes, MAX_INPUT};

fuzz_target!(|data: &[u8]| {
    let Ok(value) = parse_bytes(data) else {
        return;
    };
    let text = value.to_json();
    // Printing may grow a number (`1e9` is printed whole).
    if text.len() <= MAX_INPUT {
        assert_eq!(parse(&text).as_ref(), Ok(&value), "{text}");
    }
});
