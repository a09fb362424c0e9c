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
        let Err(why) = check_text(text, policy) else {
            continue;
        };
        let Some(pw) = url::Url::parse(text)
            .ok()
            .and_then(|u| u.password().map(str::to_string))
            .filter(|p| p.len() >= 4 && text.matches(p.as_str()).count() == 1)
        else {
            continue;
        };
        if !why.contains(&pw) {
            continue;
        }
        // Only a leak if the words came from the password, not from the
        // message's own wording ("use http, https, …"): the same URL with
        // the password changed must then not say them.
        let other = check_text(&text.replacen(&pw, "x", 1), policy).err();
        assert!(other.is_some_and(|w| w.contains(&pw)), "{why}");
    }
});
