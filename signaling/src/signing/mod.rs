//! Signatures of the act: the server's certificate authority ([`ca`]), detached CMS
//! ([`cms`]), the [`Signer`] interface, key registration with proof of possession and the
//! certificates issued to officials and businesses ([`http`]).
//!
//! The browser keeps a non-extractable WebCrypto ECDSA P-256 key; the server never sees a
//! private key. What such a signature proves (and does not) is in docs/evidence.md.

pub mod ca;
pub mod cms;
pub mod http;

pub use self::cms::CmsError;

/// A way of signing acts. Today one: [`WebCryptoP256`]. A qualified GOST R 34.10-2012
/// signature (CryptoPro CSP's browser plug-in, Госключ) would be another implementation: its
/// device builds the whole CAdES structure itself, so `to_be_signed` would hand it the act's
/// digest and `finish` would only verify the result against the accredited CAs.
pub trait Signer: Send + Sync {
    /// Stable name recorded in `act_signed`.
    fn scheme(&self) -> &'static str;

    /// What the signing device must sign for the act with this SHA-256, at `now` (seconds
    /// since the epoch).
    fn to_be_signed(&self, act_sha256: &[u8; 32], now: u64) -> Result<Vec<u8>, CmsError>;

    /// Checks what the device returned and turns it into a detached CMS signature (DER) over
    /// the act. Nothing that does not verify comes out.
    fn finish(
        &self,
        certificate_der: &[u8],
        act_sha256: &[u8; 32],
        to_be_signed: &[u8],
        signature: &[u8],
        now: u64,
    ) -> Result<Vec<u8>, CmsError>;
}

/// A WebCrypto ECDSA P-256 key in the browser, certified by the server's CA: the server
/// prepares CMS signed attributes, the browser signs their DER (P1363 output), the server
/// verifies and assembles the CMS.
#[derive(Debug, Default, Clone, Copy)]
pub struct WebCryptoP256;

/// How far the signing time may lie behind the moment the signature arrives.
pub const MAX_SIGNING_DELAY_SECS: u64 = 600;

impl Signer for WebCryptoP256 {
    fn scheme(&self) -> &'static str {
        "p256-webcrypto-cms"
    }

    fn to_be_signed(&self, act_sha256: &[u8; 32], now: u64) -> Result<Vec<u8>, CmsError> {
        cms::signed_attributes(act_sha256, now)
    }

    fn finish(
        &self,
        certificate_der: &[u8],
        act_sha256: &[u8; 32],
        to_be_signed: &[u8],
        signature: &[u8],
        now: u64,
    ) -> Result<Vec<u8>, CmsError> {
        let seen = cms::read_signed_attributes(to_be_signed)?;
        if seen.digest != act_sha256 {
            return Err(CmsError::Attributes("the message digest is not the act's"));
        }
        if seen.signing_time > now + 60 || seen.signing_time + MAX_SIGNING_DELAY_SECS < now {
            return Err(CmsError::Attributes("the signing time is not now"));
        }
        // Only the exact encoding the server makes is accepted.
        if cms::signed_attributes(act_sha256, seen.signing_time)? != to_be_signed {
            return Err(CmsError::Attributes(
                "not the attributes the server prepared",
            ));
        }
        cms::assemble(certificate_der, to_be_signed, signature)
    }
}

/// The CA and the signer, shared by the handlers.
pub struct Signing {
    /// The certificate authority.
    pub ca: ca::Ca,
    /// The signature scheme.
    pub signer: Box<dyn Signer>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

    /// A P-256 key standing in for the browser's WebCrypto key: same curve, same P1363 output.
    pub(crate) fn browser_key() -> (EcdsaKeyPair, Vec<u8>) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let spki = spki_of(key.public_key().as_ref());
        (key, spki)
    }

    /// SubjectPublicKeyInfo DER of an uncompressed P-256 point (what WebCrypto exports as `spki`).
    pub(crate) fn spki_of(point: &[u8]) -> Vec<u8> {
        use der::asn1::{Any, BitString};
        use der::Encode;
        x509_cert::spki::SubjectPublicKeyInfoOwned {
            algorithm: x509_cert::spki::AlgorithmIdentifierOwned {
                oid: cms::ID_EC_PUBLIC_KEY,
                parameters: Some(Any::encode_from(&cms::ID_P256).unwrap()),
            },
            subject_public_key: BitString::from_bytes(point).unwrap(),
        }
        .to_der()
        .unwrap()
    }

    fn subject() -> ca::Subject {
        ca::Subject {
            common_name: "Иванов Иван Иванович".into(),
            organization: Some("Управление надзорной деятельности".into()),
            title: Some("инспектор".into()),
            inn: None,
            uris: vec!["urn:inspector:user:1".into()],
        }
    }

    fn openssl_verify(dir: &std::path::Path, p7s: &str, content: &str) -> std::process::Output {
        std::process::Command::new("openssl")
            .current_dir(dir)
            .args([
                "cms", "-verify", "-binary", "-inform", "DER", "-in", p7s, "-content", content,
            ])
            .args(["-CAfile", "ca.pem", "-out", "/dev/null"])
            .output()
            .expect("openssl runs")
    }

    #[test]
    fn detached_cms_verifies_with_openssl_and_offline() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca::Ca::load_or_create(dir.path(), "Тестовый орган").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("ca-key.pem"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "the CA key is private");
        }
        // Loading again gives the same CA.
        let again = ca::Ca::load_or_create(dir.path(), "Тестовый орган").unwrap();
        assert_eq!(again.cert_der(), ca.cert_der());

        let (key, spki) = browser_key();
        let cert = ca.issue(&spki, &subject(), 365).unwrap();
        let pdf = b"%PDF-1.7 a stand-in act\n".repeat(100);
        let digest: [u8; 32] = ring::digest::digest(&ring::digest::SHA256, &pdf)
            .as_ref()
            .try_into()
            .unwrap();
        let now = chrono::Utc::now().timestamp() as u64;
        let signer = WebCryptoP256;
        let tbs = signer.to_be_signed(&digest, now).unwrap();
        let rng = SystemRandom::new();
        let sig = key.sign(&rng, &tbs).unwrap();
        assert_eq!(sig.as_ref().len(), 64, "P1363");
        let p7s = signer
            .finish(&cert.der, &digest, &tbs, sig.as_ref(), now)
            .unwrap();

        std::fs::write(dir.path().join("act.pdf"), &pdf).unwrap();
        std::fs::write(dir.path().join("act.p7s"), &p7s).unwrap();
        let out = openssl_verify(dir.path(), "act.p7s", "act.pdf");
        assert!(
            out.status.success(),
            "openssl cms -verify: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v = cms::verify_detached(&p7s, &pdf, ca.cert_der()).unwrap();
        assert_eq!(v.certificate_der, cert.der);

        // One byte of the content changed: both refuse.
        let mut bad = pdf.clone();
        bad[10] ^= 1;
        std::fs::write(dir.path().join("bad.pdf"), &bad).unwrap();
        assert!(!openssl_verify(dir.path(), "act.p7s", "bad.pdf")
            .status
            .success());
        assert_eq!(
            cms::verify_detached(&p7s, &bad, ca.cert_der()),
            Err(CmsError::DigestMismatch)
        );

        // Another CA: the certificate is untrusted.
        let other = tempfile::tempdir().unwrap();
        let other_ca = ca::Ca::load_or_create(other.path(), "Чужой").unwrap();
        assert_eq!(
            cms::verify_detached(&p7s, &pdf, other_ca.cert_der()),
            Err(CmsError::UntrustedCertificate)
        );
    }

    #[test]
    fn bad_signatures_and_attributes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca::Ca::load_or_create(dir.path(), "Орган").unwrap();
        let (key, spki) = browser_key();
        let (other_key, _) = browser_key();
        let cert = ca.issue(&spki, &subject(), 30).unwrap();
        let digest = [7u8; 32];
        let now = 1_800_000_000;
        let signer = WebCryptoP256;
        let tbs = signer.to_be_signed(&digest, now).unwrap();
        let rng = SystemRandom::new();
        // Signed with another key.
        let sig = other_key.sign(&rng, &tbs).unwrap();
        assert_eq!(
            signer.finish(&cert.der, &digest, &tbs, sig.as_ref(), now),
            Err(CmsError::BadSignature)
        );
        // For another act.
        let sig = key.sign(&rng, &tbs).unwrap();
        assert!(matches!(
            signer.finish(&cert.der, &[8u8; 32], &tbs, sig.as_ref(), now),
            Err(CmsError::Attributes(_))
        ));
        // Too late.
        assert!(matches!(
            signer.finish(&cert.der, &digest, &tbs, sig.as_ref(), now + 3600),
            Err(CmsError::Attributes(_))
        ));
        // Not 64 bytes.
        assert!(signer
            .finish(&cert.der, &digest, &tbs, &sig.as_ref()[..63], now)
            .is_err());
        // And the right one passes.
        assert!(signer
            .finish(&cert.der, &digest, &tbs, sig.as_ref(), now)
            .is_ok());
        // A non-P-256 key is refused at registration.
        assert_eq!(
            cms::p256_point(b"\x30\x03\x02\x01\x01"),
            Err(CmsError::Malformed("public key"))
        );
    }
}
