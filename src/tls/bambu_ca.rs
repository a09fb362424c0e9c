//! Bambu Lab's own CAs, against which a printer's certificate can be
//! checked: the older RSA "BBL CA", the newer "BBL CA2" RSA and ECC roots
//! and the per-family device CAs under them (assets/bambu-ca/README.md).
//!
//! Printers' leaves are often X.509 v1, which webpki refuses, so the chain
//! is walked here with the DER reader of `tls::der`: the issuer name must
//! equal the CA's subject byte for byte and the CA's key must verify the
//! signature. Validity dates are not checked: printers' clocks and
//! printcam's own (a router without a real-time clock) cannot be relied on,
//! and what identifies the printer is the CA's signature over its serial.

use std::fmt;

use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use super::der::{expect_tlv, public_key, read_tlv, KeyKind, BIT_STRING, OID, SEQUENCE};

/// The certificates shipped with printcam, one DER certificate after
/// another: `assets/bambu-ca/bambu-ca.pem` decoded (a test keeps the two
/// equal). DER rather than the PEM text: 3 968 bytes less in the binary, and
/// nothing to decode at start.
const BAMBU_DER: &[u8] = include_bytes!("../../assets/bambu-ca/bambu-ca.der");

/// Intermediates a printer may send between its leaf and a known CA.
const MAX_PRESENTED_INTERMEDIATES: usize = 2;

/// A set of CA certificates trusted for printers.
#[derive(Clone, PartialEq, Eq)]
pub struct CaSet {
    cas: Vec<Vec<u8>>,
}

impl fmt::Debug for CaSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CaSet({} certificates)", self.cas.len())
    }
}

impl CaSet {
    /// Bambu's CAs as shipped.
    pub fn bambu() -> CaSet {
        let mut cas = Vec::new();
        let mut rest = BAMBU_DER;
        // Ends at the end of the file; a test checks it reads whole.
        while let Ok(cert) = expect_tlv(rest, SEQUENCE) {
            cas.push(cert.whole.to_vec());
            rest = cert.rest;
        }
        CaSet { cas }
    }

    /// Bambu's CAs and those of the PEM file `extra`.
    pub fn bambu_and(extra: &[u8]) -> Result<CaSet, String> {
        let mut set = CaSet::bambu();
        set.cas.extend(CaSet::from_pem(extra)?.cas);
        Ok(set)
    }

    /// Every certificate of a PEM text; each must be one this module can read.
    pub fn from_pem(pem: &[u8]) -> Result<CaSet, String> {
        let mut cas = Vec::new();
        for (i, cert) in CertificateDer::pem_slice_iter(pem).enumerate() {
            let der = cert
                .map_err(|e| format!("certificate {} is not valid PEM: {e}", i + 1))?
                .to_vec();
            parts(&der).map_err(|e| format!("certificate {} cannot be read: {e}", i + 1))?;
            cas.push(der);
        }
        if cas.is_empty() {
            return Err("no certificate found (expected PEM `BEGIN CERTIFICATE` blocks)".into());
        }
        Ok(CaSet { cas })
    }

    pub fn len(&self) -> usize {
        self.cas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cas.is_empty()
    }

    /// Checks that `leaf` is `serial`'s certificate issued under one of the
    /// CAs, directly or through `presented` intermediates (which must be CA
    /// certificates). The error says why not, for the debug log.
    pub fn verify(&self, leaf: &[u8], presented: &[&[u8]], serial: &str) -> Result<(), String> {
        let p = parts(leaf).map_err(|e| format!("the certificate cannot be read: {e}"))?;
        let cn = common_name(p.subject).ok_or("the certificate has no common name")?;
        if cn != serial {
            return Err(format!(
                "the certificate is for {cn:?}, not the serial {serial:?}"
            ));
        }
        if self.chains(&p, presented, MAX_PRESENTED_INTERMEDIATES) {
            Ok(())
        } else {
            Err("the certificate is not issued by a known Bambu CA".into())
        }
    }

    fn chains(&self, cert: &Parts<'_>, presented: &[&[u8]], depth: usize) -> bool {
        if self.cas.iter().any(|ca| issued_by(cert, ca)) {
            return true;
        }
        depth > 0
            && presented.iter().any(|der| {
                parts(der).is_ok_and(|inter| {
                    inter.is_ca && issued_by(cert, der) && self.chains(&inter, presented, depth - 1)
                })
            })
    }
}

/// What the chain check needs of one certificate.
struct Parts<'a> {
    /// The whole DER TBSCertificate, which the signature covers.
    tbs: &'a [u8],
    /// The contents of the signature algorithm's OID.
    sig_alg: &'a [u8],
    sig: &'a [u8],
    /// Whole DER Names, compared byte for byte.
    issuer: &'a [u8],
    subject: &'a [u8],
    /// basicConstraints says cA (v3 only; a v1 certificate is never a CA).
    is_ca: bool,
}

const INTEGER: u8 = 0x02;
const BOOLEAN: u8 = 0x01;
const OCTET_STRING: u8 = 0x04;
const VERSION: u8 = 0xa0;
const EXTENSIONS: u8 = 0xa3;

const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
const OID_BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x13];
const OID_SHA256_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b];
const OID_SHA384_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c];
const OID_SHA512_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d];
const OID_ECDSA_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
const OID_ECDSA_SHA384: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];

/// Certificate → TBSCertificate (version?, serial, signature, issuer,
/// validity, subject, subjectPublicKeyInfo, [1]?, [2]?, [3] extensions?),
/// signatureAlgorithm, signatureValue.
fn parts(cert: &[u8]) -> Result<Parts<'_>, &'static str> {
    let certificate = expect_tlv(cert, SEQUENCE)?;
    let tbs = expect_tlv(certificate.value, SEQUENCE)?;
    let alg = expect_tlv(tbs.rest, SEQUENCE)?;
    let sig_alg = expect_tlv(alg.value, OID)?.value;
    let sig = match expect_tlv(alg.rest, BIT_STRING)?.value.split_first() {
        Some((0, sig)) => sig,
        _ => return Err("malformed signature"),
    };
    let mut rest = tbs.value;
    let first = read_tlv(rest)?;
    if first.tag == VERSION {
        rest = first.rest;
    }
    rest = expect_tlv(rest, INTEGER)?.rest; // serial
    rest = expect_tlv(rest, SEQUENCE)?.rest; // signature algorithm
    let issuer = expect_tlv(rest, SEQUENCE)?;
    let validity = expect_tlv(issuer.rest, SEQUENCE)?;
    let subject = expect_tlv(validity.rest, SEQUENCE)?;
    let spki = expect_tlv(subject.rest, SEQUENCE)?;
    Ok(Parts {
        tbs: tbs.whole,
        sig_alg,
        sig,
        issuer: issuer.whole,
        subject: subject.whole,
        is_ca: basic_constraints_ca(spki.rest)?,
    })
}

/// Whether the extensions after the key (if any) mark a CA.
fn basic_constraints_ca(mut rest: &[u8]) -> Result<bool, &'static str> {
    while !rest.is_empty() {
        let field = read_tlv(rest)?;
        rest = field.rest;
        if field.tag != EXTENSIONS {
            continue; // issuerUniqueID, subjectUniqueID
        }
        let mut list = expect_tlv(field.value, SEQUENCE)?.value;
        while !list.is_empty() {
            let ext = expect_tlv(list, SEQUENCE)?;
            list = ext.rest;
            let oid = expect_tlv(ext.value, OID)?;
            if oid.value != OID_BASIC_CONSTRAINTS {
                continue;
            }
            let mut value = read_tlv(oid.rest)?;
            if value.tag == BOOLEAN {
                value = read_tlv(value.rest)?; // critical
            }
            if value.tag != OCTET_STRING {
                return Err("malformed basic constraints");
            }
            let constraints = expect_tlv(value.value, SEQUENCE)?;
            return Ok(match read_tlv(constraints.value) {
                Ok(ca) if ca.tag == BOOLEAN => ca.value.first().is_some_and(|b| *b != 0),
                _ => false,
            });
        }
    }
    Ok(false)
}

/// The first common name of a DER Name, as text.
fn common_name(name: &[u8]) -> Option<&str> {
    let mut rdns = expect_tlv(name, SEQUENCE).ok()?.value;
    while !rdns.is_empty() {
        let set = read_tlv(rdns).ok()?;
        rdns = set.rest;
        let attr = expect_tlv(set.value, SEQUENCE).ok()?;
        let oid = expect_tlv(attr.value, OID).ok()?;
        if oid.value == OID_CN {
            return std::str::from_utf8(read_tlv(oid.rest).ok()?.value).ok();
        }
    }
    None
}

/// Whether `issuer_der` issued `cert`: names match and its key verifies
/// the signature.
fn issued_by(cert: &Parts<'_>, issuer_der: &[u8]) -> bool {
    let Ok(issuer) = parts(issuer_der) else {
        return false;
    };
    if issuer.subject != cert.issuer {
        return false;
    }
    let Ok((kind, key)) = public_key(issuer_der) else {
        return false;
    };
    let Some(alg) = signature_algorithm(cert.sig_alg, kind) else {
        return false;
    };
    UnparsedPublicKey::new(alg, key)
        .verify(cert.tbs, cert.sig)
        .is_ok()
}

fn signature_algorithm(oid: &[u8], key: KeyKind) -> Option<&'static dyn VerificationAlgorithm> {
    let alg: &'static dyn VerificationAlgorithm = match (oid, key) {
        (OID_SHA256_RSA, KeyKind::Rsa) => &signature::RSA_PKCS1_2048_8192_SHA256,
        (OID_SHA384_RSA, KeyKind::Rsa) => &signature::RSA_PKCS1_2048_8192_SHA384,
        (OID_SHA512_RSA, KeyKind::Rsa) => &signature::RSA_PKCS1_2048_8192_SHA512,
        (OID_ECDSA_SHA256, KeyKind::EcP256) => &signature::ECDSA_P256_SHA256_ASN1,
        (OID_ECDSA_SHA384, KeyKind::EcP256) => &signature::ECDSA_P256_SHA384_ASN1,
        (OID_ECDSA_SHA256, KeyKind::EcP384) => &signature::ECDSA_P384_SHA256_ASN1,
        (OID_ECDSA_SHA384, KeyKind::EcP384) => &signature::ECDSA_P384_SHA384_ASN1,
        _ => return None,
    };
    Some(alg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ders(pem: &str) -> Vec<Vec<u8>> {
        CaSet::from_pem(pem.as_bytes()).unwrap().cas
    }

    fn cn(der: &[u8]) -> String {
        common_name(parts(der).unwrap().subject)
            .unwrap()
            .to_string()
    }

    const BAMBU_PEM: &str = include_str!("../../assets/bambu-ca/bambu-ca.pem");

    #[test]
    fn the_shipped_der_is_the_shipped_pem_decoded() {
        let from_pem = ders(BAMBU_PEM);
        assert_eq!(from_pem.concat(), BAMBU_DER);
        assert_eq!(CaSet::bambu().cas, from_pem);
    }

    #[test]
    fn the_shipped_file_has_the_five_roots_and_three_device_cas() {
        let all = CaSet::bambu().cas;
        let names: Vec<String> = all.iter().map(|d| cn(d)).collect();
        assert_eq!(
            names,
            [
                "BBL CA2 RSA",
                "BBL CA2 ECC",
                "BBL CA2 RSA",
                "BBL CA2 ECC",
                "BBL CA",
                "BBL Device CA N7-V2",
                "BBL Device CA N6-V2",
                "BBL Device CA O1C2-V2",
            ]
        );
        assert!(all.iter().all(|d| parts(d).unwrap().is_ca));
        assert_eq!(
            crate::tls::cert_sha256_hex(&all[4]),
            "030bca81cece18b7eff3cfd2b75d09d3efca893bc069609e37fa04257fe4d840"
        );
    }

    #[test]
    fn the_shipped_device_cas_chain_to_bbl_ca2_rsa() {
        let all = ders(BAMBU_PEM);
        let (ca2_rsa, ca2_ecc, bbl_ca) = (&all[0], &all[1], &all[4]);
        for device in &all[5..] {
            let p = parts(device).unwrap();
            assert!(issued_by(&p, ca2_rsa), "{}", cn(device));
            assert!(!issued_by(&p, bbl_ca) && !issued_by(&p, ca2_ecc));
        }
        // The cross-signed CA2 roots: RSA-signed by the old root, an EC key
        // in the second.
        for cross in &all[2..4] {
            assert!(issued_by(&parts(cross).unwrap(), bbl_ca));
        }
        assert!(issued_by(&parts(ca2_ecc).unwrap(), ca2_ecc));
        assert_eq!(public_key(ca2_ecc).unwrap().0, KeyKind::EcP256);
        // A changed byte in the signed part breaks the signature.
        let mut bad = all[5].clone();
        let at = bad.len() / 2;
        bad[at] ^= 1;
        assert!(!parts(&bad).is_ok_and(|p| issued_by(&p, ca2_rsa)));
    }

    const TEST_CA: &str = include_str!("../../tests/data/bbl_test_ca.crt");
    const TEST_DEVICE_CA: &str = include_str!("../../tests/data/bbl_test_device_ca.crt");
    const SERIAL: &str = "01P00A000000001";

    fn der(pem: &str) -> Vec<u8> {
        ders(pem).remove(0)
    }

    fn private_ca() -> CaSet {
        CaSet::bambu_and(TEST_CA.as_bytes()).unwrap()
    }

    #[test]
    fn a_v1_leaf_issued_to_the_serial_is_verified() {
        let cas = private_ca();
        let leaf = der(include_str!("../../tests/data/bbl_leaf.crt"));
        assert_eq!(cas.verify(&leaf, &[], SERIAL), Ok(()));
        let reissued = der(include_str!("../../tests/data/bbl_leaf_reissued.crt"));
        assert_eq!(cas.verify(&reissued, &[], SERIAL), Ok(()));
        // Bambu's CAs alone do not know the private one.
        let err = CaSet::bambu().verify(&leaf, &[], SERIAL).unwrap_err();
        assert!(err.contains("not issued by a known Bambu CA"), "{err}");
    }

    #[test]
    fn another_serial_or_issuer_is_not_verified() {
        let cas = private_ca();
        let other = der(include_str!("../../tests/data/bbl_leaf_other.crt"));
        let err = cas.verify(&other, &[], SERIAL).unwrap_err();
        assert!(err.contains("01P00A000000002"), "{err}");
        assert_eq!(cas.verify(&other, &[], "01P00A000000002"), Ok(()));
        // A self-made certificate naming the serial.
        let printer_a = der(include_str!("../../tests/data/printer_a.crt"));
        let cn = cn(&printer_a);
        assert!(cas.verify(&printer_a, &[], &cn).is_err());
        // Signed by another printer's (genuine) leaf: a leaf is no CA, even
        // when the server presents it as an intermediate.
        let by_leaf = der(include_str!("../../tests/data/bbl_leaf_by_leaf.crt"));
        assert!(cas.verify(&by_leaf, &[&other], SERIAL).is_err());
    }

    #[test]
    fn a_v3_leaf_verifies_through_its_device_ca() {
        let leaf = der(include_str!("../../tests/data/bbl_leaf_v3.crt"));
        let device = der(TEST_DEVICE_CA);
        let cas = private_ca();
        // The printer sends the device CA: leaf → device CA → root.
        assert_eq!(cas.verify(&leaf, &[&device], SERIAL), Ok(()));
        // It does not: only a set that has the device CA verifies it.
        assert!(cas.verify(&leaf, &[], SERIAL).is_err());
        let with_device = CaSet::bambu_and(TEST_DEVICE_CA.as_bytes()).unwrap();
        assert_eq!(with_device.verify(&leaf, &[], SERIAL), Ok(()));
        assert!(parts(&device).unwrap().is_ca);
        assert!(!parts(&leaf).unwrap().is_ca);
    }

    #[test]
    fn garbage_never_panics() {
        let der = ders(BAMBU_PEM).remove(5);
        for cut in 0..der.len() {
            let _ = parts(&der[..cut]);
        }
        for i in (0..der.len()).step_by(7) {
            let mut bad = der.clone();
            bad[i] ^= 0xff;
            if let Ok(p) = parts(&bad) {
                let _ = common_name(p.subject);
                let _ = CaSet::bambu().chains(&p, &[&bad], 2);
            }
        }
        assert!(CaSet::from_pem(b"nothing").is_err());
    }
}
