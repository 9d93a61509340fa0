//! The server's own certificate authority: an ECDSA P-256 key and a self-signed certificate,
//! created at first start in the data directory (`signing/ca-key.pem`, mode 0600, never in the
//! database) and used to issue certificates for keys that officials and businesses create in
//! their browsers.

use std::io::Write;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber, SubjectPublicKeyInfo,
};
use sha2::{Digest, Sha256};

/// The INN attribute of a distinguished name (OID 1.2.643.3.131.1.1, as Russian certificates
/// carry it).
const OID_INN: [u64; 7] = [1, 2, 643, 3, 131, 1, 1];

/// Who a certificate names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// Person's or organisation's name (CN).
    pub common_name: String,
    /// Organisation (O): the control body, or the business.
    pub organization: Option<String>,
    /// Position or role (title).
    pub title: Option<String>,
    /// The business's INN.
    pub inn: Option<String>,
    /// URIs naming the account or the invitation (`urn:inspector:…`).
    pub uris: Vec<String>,
}

/// A certificate the CA issued.
#[derive(Debug, Clone)]
pub struct Issued {
    /// DER.
    pub der: Vec<u8>,
    /// PEM.
    pub pem: String,
    /// SHA-256 of the DER, hex (the fingerprint recorded in the log).
    pub fingerprint: String,
}

/// The certificate authority.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    cert_der: Vec<u8>,
    cert_pem: String,
}

/// Where the CA lives in the data directory.
pub fn ca_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("signing")
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn write_public(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn hex_sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn random_serial() -> SerialNumber {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    // Positive and without a leading zero byte.
    b[0] = (b[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&b)
}

impl Ca {
    /// Loads the CA from `dir`, creating it (key 0600 + certificate) on first start.
    pub fn load_or_create(dir: &Path, name: &str) -> anyhow::Result<Ca> {
        std::fs::create_dir_all(dir)?;
        let key_path = dir.join("ca-key.pem");
        let cert_path = dir.join("ca.pem");
        if key_path.exists() && cert_path.exists() {
            let key = KeyPair::from_pem(&std::fs::read_to_string(&key_path)?)
                .map_err(|e| anyhow::anyhow!("CA key {}: {e}", key_path.display()))?;
            let cert_pem = std::fs::read_to_string(&cert_path)?;
            let der = pem_to_der(&cert_pem)?;
            let issuer = Issuer::from_ca_cert_der(&der.clone().into(), key)
                .map_err(|e| anyhow::anyhow!("CA certificate {}: {e}", cert_path.display()))?;
            return Ok(Ca {
                issuer,
                cert_der: der,
                cert_pem,
            });
        }
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| anyhow::anyhow!("CA key: {e}"))?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            DnValue::Utf8String(format!("{name} — Inspector CA")),
        );
        dn.push(
            DnType::OrganizationName,
            DnValue::Utf8String(name.to_string()),
        );
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(365 * 20);
        params.serial_number = Some(random_serial());
        let cert = params
            .self_signed(&key)
            .map_err(|e| anyhow::anyhow!("CA certificate: {e}"))?;
        let cert_pem = cert.pem();
        // Key first: a certificate without its key would be useless on the next start.
        write_private(&key_path, key.serialize_pem().as_bytes())?;
        write_public(&cert_path, cert_pem.as_bytes())?;
        let der = cert.der().to_vec();
        Ok(Ca {
            issuer: Issuer::new(params, key),
            cert_der: der,
            cert_pem,
        })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// Issues a signing certificate for a P-256 public key (SubjectPublicKeyInfo DER).
    pub fn issue(&self, spki_der: &[u8], subject: &Subject, days: i64) -> anyhow::Result<Issued> {
        let public = SubjectPublicKeyInfo::from_der(spki_der)
            .map_err(|e| anyhow::anyhow!("public key: {e}"))?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            DnValue::Utf8String(subject.common_name.clone()),
        );
        if let Some(o) = &subject.organization {
            dn.push(DnType::OrganizationName, DnValue::Utf8String(o.clone()));
        }
        if let Some(t) = &subject.title {
            // X.520 title (2.5.4.12).
            dn.push(
                DnType::CustomDnType(vec![2, 5, 4, 12]),
                DnValue::Utf8String(t.clone()),
            );
        }
        if let Some(inn) = &subject.inn {
            dn.push(
                DnType::CustomDnType(OID_INN.to_vec()),
                DnValue::Utf8String(inn.clone()),
            );
        }
        params.distinguished_name = dn;
        params.subject_alt_names = subject
            .uris
            .iter()
            .map(|u| {
                u.clone()
                    .try_into()
                    .map(SanType::URI)
                    .map_err(|e| anyhow::anyhow!("URI {u}: {e}"))
            })
            .collect::<anyhow::Result<_>>()?;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::ContentCommitment,
        ];
        params.use_authority_key_identifier_extension = true;
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = now + time::Duration::days(days);
        params.serial_number = Some(random_serial());
        let cert = params
            .signed_by(&public, &self.issuer)
            .map_err(|e| anyhow::anyhow!("issuing: {e}"))?;
        let der = cert.der().to_vec();
        Ok(Issued {
            fingerprint: hex_sha256(&der),
            pem: cert.pem(),
            der,
        })
    }
}

/// The DER inside a PEM certificate.
pub fn pem_to_der(pem: &str) -> anyhow::Result<Vec<u8>> {
    use base64::Engine;
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|e| anyhow::anyhow!("PEM: {e}"))
}

/// PEM of a DER certificate.
pub fn der_to_pem(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}
