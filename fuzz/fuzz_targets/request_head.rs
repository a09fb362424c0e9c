//! The request head reader on any bytes, delivered in input-chosen pieces:
//! no panic, the same head end however the bytes arrive, and a head that is
//! accepted keeps the limits printcam promises.
#![no_main]

use libfuzzer_sys::fuzz_target;
use printcam::http::request::{head_end, parse_head, MAX_HEAD, MAX_HEADERS};

const MAX_BODY: usize = 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&step, bytes)) = data.split_first() else {
        return;
    };
    let whole = head_end(bytes, 0).map_err(|r| r.status);
    // As conn.rs calls it: once per read, telling how far it looked before.
    let step = usize::from(step).max(1);
    let (mut piecemeal, mut from) = (Ok(None), 0);
    while from < bytes.len() && matches!(piecemeal, Ok(None)) {
        let to = (from + step).min(bytes.len());
        piecemeal = head_end(&bytes[..to], from).map_err(|r| r.status);
        from = to;
    }
    assert_eq!(piecemeal, whole);
    let Ok(Some(end)) = whole else {
        return;
    };
    assert!(end <= MAX_HEAD);
    match parse_head(&bytes[..end]) {
        Ok(head) => {
            assert!(head.target.bytes().all(|b| b.is_ascii_graphic()));
            assert!(head.headers.len() <= MAX_HEADERS);
            let hosts = head
                .headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case("host"));
            assert!(head.http10 || hosts.count() == 1);
            if let Ok(len) = head.body_length(MAX_BODY) {
                assert!(len <= MAX_BODY);
                assert!(head.header_bytes("transfer-encoding").is_none());
            }
        }
        Err(reply) => assert!(matches!(reply.status, 400 | 431 | 505), "{}", reply.status),
    }
});
