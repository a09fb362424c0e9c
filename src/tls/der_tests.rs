use super::*;
use crate::tls::test_certs::{cert, V1_EC, V1_RSA, V3_RSA};

#[test]
fn der_walk_finds_the_key_in_a_v1_certificate() {
    let der = cert(V1_RSA);
    // A v1 certificate has no [0] version: the TBS starts with the serial.
    let tbs = read_tlv(read_tlv(&der).unwrap().value).unwrap();
    assert_eq!(read_tlv(tbs.value).unwrap().tag, INTEGER);
    assert_eq!(
        subject_public_key_info(&der).unwrap(),
        include_bytes!("../../tests/data/printer_a.spki.der")
    );
    assert_eq!(public_key(&der).unwrap().0, KeyKind::Rsa);
    assert_eq!(public_key(&cert(V1_EC)).unwrap().0, KeyKind::EcP256);
}

#[test]
fn der_walk_finds_the_key_in_a_v3_certificate() {
    let der = cert(V3_RSA);
    let tbs = read_tlv(read_tlv(&der).unwrap().value).unwrap();
    assert_eq!(read_tlv(tbs.value).unwrap().tag, VERSION);
    assert_eq!(
        subject_public_key_info(&der).unwrap(),
        include_bytes!("../../tests/data/v3.spki.der")
    );
}

#[test]
fn der_walk_rejects_garbage_without_panicking() {
    let der = cert(V1_RSA);
    for cut in 0..der.len() {
        let _ = public_key(&der[..cut]);
    }
    for i in 0..der.len() {
        let mut bad = der.clone();
        bad[i] ^= 0xff;
        let _ = public_key(&bad);
    }
    assert!(public_key(&[]).is_err());
    assert!(public_key(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_err());
    assert!(public_key(&[0x30, 0x80]).is_err());
}

mod damaged {
    use super::*;
    use proptest::prelude::*;
    use proptest::sample::Index;

    fn inside(part: &[u8], whole: &[u8]) -> bool {
        let range = whole.as_ptr_range();
        part.is_empty() || (range.contains(&part.as_ptr()) && part.as_ptr_range().end <= range.end)
    }

    proptest! {
        #[test]
        fn der_walk_of_a_damaged_certificate_stays_inside_it(
            pem in prop::sample::select(vec![V1_RSA, V1_EC, V3_RSA]),
            flips in prop::collection::vec((any::<Index>(), any::<u8>()), 0..4),
            cut in any::<Index>(),
        ) {
            let mut der = cert(pem);
            for (at, byte) in flips {
                let i = at.index(der.len());
                der[i] = byte;
            }
            der.truncate(cut.index(der.len() + 1));
            if let Ok(spki) = subject_public_key_info(&der) {
                prop_assert!(inside(spki, &der));
            }
            if let Ok((_, key)) = public_key(&der) {
                prop_assert!(inside(key, &der));
            }
        }
    }
}
