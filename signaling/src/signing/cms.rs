//! Detached CMS SignedData (RFC 5652) over the act's bytes, built around a signature made
//! elsewhere (the browser): the server prepares the signed attributes, the device signs their
//! DER, the server checks the signature and assembles the structure OpenSSL verifies with
//! `openssl cms -verify -binary -inform DER -in act.p7s -content act.pdf -CAfile ca.pem`.

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedAttributes, SignedData, SignerIdentifier,
    SignerInfo, SignerInfos,
};
use der::asn1::{Any, ObjectIdentifier, OctetString, SetOfVec, UintRef, UtcTime};
use der::{Decode, Encode, Sequence};
use x509_cert::attr::Attribute;
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::Certificate;

/// id-signedData.
pub const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
/// id-data.
pub const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
/// id-contentType.
pub const ID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
/// id-messageDigest.
pub const ID_MESSAGE_DIGEST: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
/// id-signingTime.
pub const ID_SIGNING_TIME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.5");
/// id-sha256.
pub const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
/// ecdsa-with-SHA256.
pub const ID_ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
/// id-ecPublicKey.
pub const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// prime256v1 (P-256).
pub const ID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");

/// Why a CMS structure or a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CmsError {
    /// Not DER of the expected structure.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// The key is not an ECDSA P-256 public key.
    #[error("the public key is not ECDSA P-256")]
    NotP256,
    /// The signature does not verify.
    #[error("the signature does not verify")]
    BadSignature,
    /// The signed attributes are not what the server prepared for this act.
    #[error("the signed attributes do not match the act: {0}")]
    Attributes(&'static str),
    /// The signer's certificate was not issued by the CA.
    #[error("the certificate was not issued by this CA")]
    UntrustedCertificate,
    /// The digest of the content differs from the signed one.
    #[error("the signed digest does not match the content")]
    DigestMismatch,
}

/// Decodes what an `ANY` holds (re-encoded, so CHOICE types decode too).
fn decode_any<T: for<'a> Decode<'a>>(any: &Any) -> der::Result<T> {
    T::from_der(&any.to_der()?)
}

/// The uncompressed P-256 point of a SubjectPublicKeyInfo (DER), or `NotP256`.
pub fn p256_point(spki_der: &[u8]) -> Result<Vec<u8>, CmsError> {
    let spki = SubjectPublicKeyInfoOwned::from_der(spki_der)
        .map_err(|_| CmsError::Malformed("public key"))?;
    p256_point_of(&spki)
}

fn p256_point_of(spki: &SubjectPublicKeyInfoOwned) -> Result<Vec<u8>, CmsError> {
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| decode_any::<ObjectIdentifier>(p).ok());
    if spki.algorithm.oid != ID_EC_PUBLIC_KEY || curve != Some(ID_P256) {
        return Err(CmsError::NotP256);
    }
    let point = spki
        .subject_public_key
        .as_bytes()
        .ok_or(CmsError::Malformed("public key"))?;
    if point.len() != 65 || point[0] != 4 {
        return Err(CmsError::NotP256);
    }
    Ok(point.to_vec())
}

/// Checks an IEEE P1363 (r‖s, 64 bytes: what WebCrypto returns) ECDSA P-256 SHA-256
/// signature of `message` by the key `point`.
pub fn verify_p1363(point: &[u8], message: &[u8], signature: &[u8]) -> Result<(), CmsError> {
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, point)
        .verify(message, signature)
        .map_err(|_| CmsError::BadSignature)
}

fn verify_der(point: &[u8], message: &[u8], signature: &[u8]) -> Result<(), CmsError> {
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, point)
        .verify(message, signature)
        .map_err(|_| CmsError::BadSignature)
}

#[derive(Sequence)]
struct EcdsaSigValue<'a> {
    r: UintRef<'a>,
    s: UintRef<'a>,
}

/// Converts a P1363 signature (r‖s) to the DER `ECDSA-Sig-Value` CMS carries.
pub fn p1363_to_der(signature: &[u8]) -> Result<Vec<u8>, CmsError> {
    if signature.len() != 64 {
        return Err(CmsError::Malformed("signature (64 bytes r||s expected)"));
    }
    let bad = |_| CmsError::Malformed("signature");
    let v = EcdsaSigValue {
        r: UintRef::new(&signature[..32]).map_err(bad)?,
        s: UintRef::new(&signature[32..]).map_err(bad)?,
    };
    v.to_der().map_err(bad)
}

fn attribute(oid: ObjectIdentifier, value: Any) -> Result<Attribute, CmsError> {
    let values = SetOfVec::try_from(vec![value]).map_err(|_| CmsError::Malformed("attribute"))?;
    Ok(Attribute { oid, values })
}

/// The signed attributes for an act with this SHA-256, signed at `signing_time` (seconds since
/// the epoch): content type `data`, the message digest, the signing time. Returns their DER
/// (a SET), which is exactly what the device signs.
pub fn signed_attributes(act_sha256: &[u8; 32], signing_time: u64) -> Result<Vec<u8>, CmsError> {
    let bad = |_| CmsError::Malformed("signed attributes");
    let time =
        UtcTime::from_unix_duration(std::time::Duration::from_secs(signing_time)).map_err(bad)?;
    let attrs: SignedAttributes = SetOfVec::try_from(vec![
        attribute(ID_CONTENT_TYPE, Any::encode_from(&ID_DATA).map_err(bad)?)?,
        attribute(
            ID_MESSAGE_DIGEST,
            Any::encode_from(&OctetString::new(act_sha256.to_vec()).map_err(bad)?).map_err(bad)?,
        )?,
        attribute(ID_SIGNING_TIME, Any::encode_from(&time).map_err(bad)?)?,
    ])
    .map_err(bad)?;
    attrs.to_der().map_err(bad)
}

/// What signed attributes say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributesSeen {
    /// The message digest.
    pub digest: Vec<u8>,
    /// Signing time, seconds since the epoch.
    pub signing_time: u64,
}

/// Reads signed attributes back, requiring exactly the three [`signed_attributes`] makes.
pub fn read_signed_attributes(der: &[u8]) -> Result<AttributesSeen, CmsError> {
    let attrs =
        SignedAttributes::from_der(der).map_err(|_| CmsError::Malformed("signed attributes"))?;
    read_attrs(&attrs, true)
}

fn read_attrs(attrs: &SignedAttributes, exact: bool) -> Result<AttributesSeen, CmsError> {
    let one = |oid: ObjectIdentifier| -> Result<&Any, CmsError> {
        let a = attrs
            .iter()
            .find(|a| a.oid == oid)
            .ok_or(CmsError::Attributes("an attribute is missing"))?;
        if a.values.len() != 1 {
            return Err(CmsError::Attributes("an attribute has several values"));
        }
        a.values
            .iter()
            .next()
            .ok_or(CmsError::Attributes("empty attribute"))
    };
    if exact && attrs.len() != 3 {
        return Err(CmsError::Attributes("unexpected attributes"));
    }
    let ct = decode_any::<ObjectIdentifier>(one(ID_CONTENT_TYPE)?)
        .map_err(|_| CmsError::Attributes("content type"))?;
    if ct != ID_DATA {
        return Err(CmsError::Attributes("content type is not data"));
    }
    let digest = decode_any::<OctetString>(one(ID_MESSAGE_DIGEST)?)
        .map_err(|_| CmsError::Attributes("message digest"))?
        .as_bytes()
        .to_vec();
    let time = decode_any::<x509_cert::time::Time>(one(ID_SIGNING_TIME)?)
        .map_err(|_| CmsError::Attributes("signing time"))?;
    Ok(AttributesSeen {
        digest,
        signing_time: time.to_unix_duration().as_secs(),
    })
}

/// Assembles the detached SignedData: the signer's certificate, the signed attributes and the
/// signature (P1363, converted to DER). Checks the signature first: nothing that does not
/// verify is ever assembled.
pub fn assemble(
    certificate_der: &[u8],
    signed_attrs_der: &[u8],
    signature_p1363: &[u8],
) -> Result<Vec<u8>, CmsError> {
    let cert =
        Certificate::from_der(certificate_der).map_err(|_| CmsError::Malformed("certificate"))?;
    let point = p256_point_of(&cert.tbs_certificate.subject_public_key_info)?;
    verify_p1363(&point, signed_attrs_der, signature_p1363)?;
    let signed_attrs = SignedAttributes::from_der(signed_attrs_der)
        .map_err(|_| CmsError::Malformed("signed attributes"))?;
    let bad = |_| CmsError::Malformed("signed data");
    let signer = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: cert.tbs_certificate.issuer.clone(),
            serial_number: cert.tbs_certificate.serial_number.clone(),
        }),
        digest_alg: AlgorithmIdentifierOwned {
            oid: ID_SHA256,
            parameters: None,
        },
        signed_attrs: Some(signed_attrs),
        signature_algorithm: AlgorithmIdentifierOwned {
            oid: ID_ECDSA_SHA256,
            parameters: None,
        },
        signature: OctetString::new(p1363_to_der(signature_p1363)?).map_err(bad)?,
        unsigned_attrs: None,
    };
    let signed_data = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::try_from(vec![AlgorithmIdentifierOwned {
            oid: ID_SHA256,
            parameters: None,
        }])
        .map_err(bad)?,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: ID_DATA,
            econtent: None,
        },
        certificates: Some(CertificateSet(
            SetOfVec::try_from(vec![CertificateChoices::Certificate(cert)]).map_err(bad)?,
        )),
        crls: None,
        signer_infos: SignerInfos(SetOfVec::try_from(vec![signer]).map_err(bad)?),
    };
    ContentInfo {
        content_type: ID_SIGNED_DATA,
        content: Any::encode_from(&signed_data).map_err(bad)?,
    }
    .to_der()
    .map_err(bad)
}

/// What a verified detached signature says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The signer's certificate (DER).
    pub certificate_der: Vec<u8>,
    /// Signing time, seconds since the epoch.
    pub signing_time: u64,
}

/// Verifies a detached CMS signature over `content` whose signer certificate must be signed
/// by `ca_der`: the same checks `openssl cms -verify` makes for this profile, offline.
pub fn verify_detached(p7s: &[u8], content: &[u8], ca_der: &[u8]) -> Result<Verified, CmsError> {
    let ci = ContentInfo::from_der(p7s).map_err(|_| CmsError::Malformed("CMS"))?;
    if ci.content_type != ID_SIGNED_DATA {
        return Err(CmsError::Malformed("CMS (not SignedData)"));
    }
    let sd: SignedData = decode_any(&ci.content).map_err(|_| CmsError::Malformed("SignedData"))?;
    let si = sd
        .signer_infos
        .0
        .iter()
        .next()
        .ok_or(CmsError::Malformed("SignedData without signer"))?;
    let SignerIdentifier::IssuerAndSerialNumber(isn) = &si.sid else {
        return Err(CmsError::Malformed("signer identifier"));
    };
    let cert = sd
        .certificates
        .as_ref()
        .and_then(|set| {
            set.0.iter().find_map(|c| match c {
                CertificateChoices::Certificate(c)
                    if c.tbs_certificate.serial_number == isn.serial_number
                        && c.tbs_certificate.issuer == isn.issuer =>
                {
                    Some(c.clone())
                }
                _ => None,
            })
        })
        .ok_or(CmsError::Malformed("signer certificate missing"))?;
    let attrs = si
        .signed_attrs
        .as_ref()
        .ok_or(CmsError::Malformed("signed attributes missing"))?;
    let seen = read_attrs(attrs, false)?;
    let digest = ring::digest::digest(&ring::digest::SHA256, content);
    if seen.digest != digest.as_ref() {
        return Err(CmsError::DigestMismatch);
    }
    let point = p256_point_of(&cert.tbs_certificate.subject_public_key_info)?;
    let attrs_der = attrs
        .to_der()
        .map_err(|_| CmsError::Malformed("signed attributes"))?;
    verify_der(&point, &attrs_der, si.signature.as_bytes())?;
    // The certificate must be the CA's.
    let ca = Certificate::from_der(ca_der).map_err(|_| CmsError::Malformed("CA certificate"))?;
    let ca_point = p256_point_of(&ca.tbs_certificate.subject_public_key_info)?;
    let tbs = cert
        .tbs_certificate
        .to_der()
        .map_err(|_| CmsError::Malformed("certificate"))?;
    let sig = cert
        .signature
        .as_bytes()
        .ok_or(CmsError::Malformed("certificate signature"))?;
    if cert.tbs_certificate.issuer != ca.tbs_certificate.subject
        || verify_der(&ca_point, &tbs, sig).is_err()
    {
        return Err(CmsError::UntrustedCertificate);
    }
    Ok(Verified {
        certificate_der: cert
            .to_der()
            .map_err(|_| CmsError::Malformed("certificate"))?,
        signing_time: seen.signing_time,
    })
}
