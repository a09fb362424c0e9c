//! The printer certificates and keys the unit tests of `tls` share.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

pub(super) fn cert(pem: &[u8]) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem).unwrap().to_vec()
}

pub(super) fn key(pem: &[u8]) -> Vec<u8> {
    PrivateKeyDer::from_pem_slice(pem)
        .unwrap()
        .secret_der()
        .to_vec()
}

pub(super) const V1_RSA: &[u8] = include_bytes!("../../tests/data/printer_a.crt");
pub(super) const V1_RSA_KEY: &[u8] = include_bytes!("../../tests/data/printer_a.key");
pub(super) const V1_EC: &[u8] = include_bytes!("../../tests/data/printer_ec.crt");
pub(super) const V1_EC_KEY: &[u8] = include_bytes!("../../tests/data/printer_ec.key");
pub(super) const V3_RSA: &[u8] = include_bytes!("../../tests/data/v3.crt");
