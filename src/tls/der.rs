//! A minimal DER walk of X.509 certificates, v1 included (webpki refuses
//! v1): just enough to find a certificate's public key, and the reader
//! `bambu_ca` walks chains with.

/// The kinds of public key a printer certificate may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
}

/// One DER element: its tag, its contents, and what follows it.
pub(crate) struct Tlv<'a> {
    pub(crate) tag: u8,
    pub(crate) value: &'a [u8],
    pub(crate) whole: &'a [u8],
    pub(crate) rest: &'a [u8],
}

/// Reads one DER element. Only what certificates use: single-byte tags and
/// definite lengths of up to four bytes.
pub(crate) fn read_tlv(input: &[u8]) -> Result<Tlv<'_>, &'static str> {
    let (&tag, after_tag) = input.split_first().ok_or("truncated element")?;
    if tag & 0x1f == 0x1f {
        return Err("multi-byte tag");
    }
    let (&first, after_len0) = after_tag.split_first().ok_or("truncated length")?;
    let (len, body) = if first < 0x80 {
        (first as usize, after_len0)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            return Err("unsupported length");
        }
        let bytes = after_len0.get(..n).ok_or("truncated length")?;
        let len = bytes.iter().fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, &after_len0[n..])
    };
    if len > body.len() {
        return Err("element longer than its container");
    }
    let header = input.len() - body.len();
    Ok(Tlv {
        tag,
        value: &body[..len],
        whole: &input[..header + len],
        rest: &body[len..],
    })
}

/// Reads one element that must carry `tag`.
pub(crate) fn expect_tlv(input: &[u8], tag: u8) -> Result<Tlv<'_>, &'static str> {
    let tlv = read_tlv(input)?;
    if tlv.tag != tag {
        return Err("unexpected element");
    }
    Ok(tlv)
}

pub(crate) const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
pub(crate) const BIT_STRING: u8 = 0x03;
pub(crate) const OID: u8 = 0x06;
const VERSION: u8 = 0xa0; // [0] EXPLICIT, absent in v1 certificates

/// The DER SubjectPublicKeyInfo of a certificate, found by walking
/// Certificate → TBSCertificate → (version?) serial, signature, issuer,
/// validity, subject → subjectPublicKeyInfo.
pub fn subject_public_key_info(cert: &[u8]) -> Result<&[u8], &'static str> {
    let certificate = expect_tlv(cert, SEQUENCE)?;
    let tbs = expect_tlv(certificate.value, SEQUENCE)?;
    let mut rest = tbs.value;
    let first = read_tlv(rest)?;
    if first.tag == VERSION {
        rest = first.rest;
    }
    rest = expect_tlv(rest, INTEGER)?.rest; // serial
    for _ in 0..4 {
        // signature algorithm, issuer, validity, subject
        rest = expect_tlv(rest, SEQUENCE)?.rest;
    }
    Ok(expect_tlv(rest, SEQUENCE)?.whole)
}

const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];

/// The key kind and the key bytes ring expects (RSAPublicKey DER, an EC
/// point, or a raw Ed25519 key) from a certificate.
pub fn public_key(cert: &[u8]) -> Result<(KeyKind, &[u8]), &'static str> {
    let spki = expect_tlv(subject_public_key_info(cert)?, SEQUENCE)?;
    let alg = expect_tlv(spki.value, SEQUENCE)?;
    let bits = expect_tlv(alg.rest, BIT_STRING)?;
    let oid = expect_tlv(alg.value, OID)?;
    let kind = match oid.value {
        OID_RSA => KeyKind::Rsa,
        OID_ED25519 => KeyKind::Ed25519,
        OID_EC => match expect_tlv(oid.rest, OID)?.value {
            OID_P256 => KeyKind::EcP256,
            OID_P384 => KeyKind::EcP384,
            _ => return Err("unsupported elliptic curve"),
        },
        _ => return Err("unsupported public key algorithm"),
    };
    match bits.value.split_first() {
        Some((0, key)) => Ok((kind, key)),
        _ => Err("malformed public key"),
    }
}

#[cfg(test)]
#[path = "der_tests.rs"]
mod tests;
