use super::*;
use crate::tls::test_certs::{cert, key, V1_EC, V1_EC_KEY, V1_RSA, V1_RSA_KEY};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, RsaKeyPair};

#[test]
fn fingerprint_is_lower_case_hex_sha256() {
    assert_eq!(
        cert_sha256_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(normalize_pin(" BA:78:16 "), "ba7816");
}

#[test]
fn rsa_signatures_are_checked_with_the_certificate_key() {
    let der = cert(V1_RSA);
    let pair = RsaKeyPair::from_pkcs8(&key(V1_RSA_KEY)).unwrap();
    let rng = SystemRandom::new();
    let msg = b"handshake transcript";
    let cases: [(SignatureScheme, &'static dyn signature::RsaEncoding); 4] = [
        (
            SignatureScheme::RSA_PKCS1_SHA256,
            &signature::RSA_PKCS1_SHA256,
        ),
        (
            SignatureScheme::RSA_PKCS1_SHA512,
            &signature::RSA_PKCS1_SHA512,
        ),
        (SignatureScheme::RSA_PSS_SHA256, &signature::RSA_PSS_SHA256),
        (SignatureScheme::RSA_PSS_SHA384, &signature::RSA_PSS_SHA384),
    ];
    for (scheme, encoding) in cases {
        let mut sig = vec![0; pair.public().modulus_len()];
        pair.sign(encoding, &rng, msg, &mut sig).unwrap();
        assert!(verify_signature(&der, scheme, msg, &sig, false).is_ok());
        assert!(verify_signature(&der, scheme, b"other", &sig, false).is_err());
        let is_pss = matches!(
            scheme,
            SignatureScheme::RSA_PSS_SHA256 | SignatureScheme::RSA_PSS_SHA384
        );
        // TLS 1.3 allows only PSS for RSA.
        assert_eq!(
            verify_signature(&der, scheme, msg, &sig, true).is_ok(),
            is_pss
        );
    }
    // Another printer's certificate does not vouch for this key.
    let other = cert(include_bytes!("../../tests/data/printer_b.crt"));
    let mut sig = vec![0; pair.public().modulus_len()];
    pair.sign(&signature::RSA_PSS_SHA256, &rng, msg, &mut sig)
        .unwrap();
    assert!(verify_signature(&other, SignatureScheme::RSA_PSS_SHA256, msg, &sig, true).is_err());
}

#[test]
fn ecdsa_signatures_are_checked_with_the_certificate_key() {
    let der = cert(V1_EC);
    let rng = SystemRandom::new();
    let pair = EcdsaKeyPair::from_pkcs8(
        &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        &key(V1_EC_KEY),
        &rng,
    )
    .unwrap();
    let msg = b"handshake transcript";
    let sig = pair.sign(&rng, msg).unwrap();
    let scheme = SignatureScheme::ECDSA_NISTP256_SHA256;
    assert!(verify_signature(&der, scheme, msg, sig.as_ref(), true).is_ok());
    assert!(verify_signature(&der, scheme, b"other", sig.as_ref(), true).is_err());
    // An RSA scheme with an EC key is refused.
    let rsa = SignatureScheme::RSA_PSS_SHA256;
    assert!(verify_signature(&der, rsa, msg, sig.as_ref(), true).is_err());
    // TLS 1.3 binds the scheme to the curve.
    let p384 = SignatureScheme::ECDSA_NISTP384_SHA384;
    assert!(verify_signature(&der, p384, msg, sig.as_ref(), true).is_err());
}

#[test]
fn every_advertised_scheme_maps_to_an_algorithm() {
    for scheme in SUPPORTED_SCHEMES {
        let some_kind = [
            KeyKind::Rsa,
            KeyKind::EcP256,
            KeyKind::EcP384,
            KeyKind::Ed25519,
        ]
        .iter()
        .any(|k| algorithm(scheme, *k, false).is_some());
        assert!(some_kind, "{scheme:?}");
    }
}

#[test]
fn pin_mismatch_names_the_command_to_accept_the_new_certificate() {
    let recorder = Arc::new(PinRecorder::default());
    let verifier = PinnedVerifier {
        expected: Some("00".repeat(32)),
        identity: None,
        recorder: Arc::clone(&recorder),
    };
    let der = CertificateDer::from(cert(V1_RSA));
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let err = verifier
        .verify_server_cert(&der, &[], &name, &[], UnixTime::now())
        .unwrap_err();
    let changed = cert_changed(&err).unwrap().to_string();
    assert!(changed.contains("certificate changed"), "{changed}");
    assert!(
        changed.contains("printcam printer forget-cert"),
        "{changed}"
    );
    assert_eq!(recorder.seen().unwrap(), cert_sha256_hex(&der));
    assert_eq!(recorder.refusal().unwrap(), changed);

    let ok = PinnedVerifier {
        expected: Some(cert_sha256_hex(&der).to_uppercase()),
        identity: None,
        recorder,
    };
    assert!(ok
        .verify_server_cert(&der, &[], &name, &[], UnixTime::now())
        .is_ok());
}
