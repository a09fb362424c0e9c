//! The camera URL checker on any text: no panic, and a refusal never
//! repeats the URL's password.
#![no_main]

use libfuzzer_sys::fuzz_target;
use printcam::urlguard::{check_text, Policy};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for allow_loopback in [false, true] {
        let policy = Policy { allow_loopback };
        if let Err(why) = check_text(text, policy) {
            if let Ok(url) = url::Url::parse(text) {
                if let Some(pw) = url.password().filter(|p| p.len() >= 4 && text.matches(*p).count() == 1) {
                    assert!(!why.contains(pw), "{why}");
                }
            }
        }
    }
});
