//! A lake's own TLS material: a certificate authority made for one lake and a server
//! certificate it signs (ECDSA P-256, no expiry: rotate by deleting the Secret that holds
//! them). Clients verify the server with the CA's certificate, which is public.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// A server's TLS material, PEM-encoded.
pub struct ServerTls {
    /// The CA certificate clients trust.
    pub ca_certificate: String,
    /// The server's private key (PKCS#8), its certificate and the CA's: what Trino reads as a
    /// PEM keystore.
    pub keystore: String,
}

/// A new CA named `name` and a server certificate for `dns_names` signed by it.
pub fn server(name: &str, dns_names: Vec<String>) -> Result<ServerTls, rcgen::Error> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name
        .push(DnType::CommonName, format!("{name} CA"));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_certificate = ca.self_signed(&ca_key)?.pem();
    let key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(dns_names)?;
    leaf.distinguished_name.push(DnType::CommonName, name);
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let certificate = leaf.signed_by(&key, &Issuer::from_params(&ca, &ca_key))?;
    Ok(ServerTls {
        keystore: format!(
            "{}{}{ca_certificate}",
            key.serialize_pem(),
            certificate.pem()
        ),
        ca_certificate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keystore_holds_the_key_and_both_certificates() {
        let tls = server("sales-trino", vec!["sales-trino.team.svc".into()]).expect("made");
        assert!(tls.keystore.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_eq!(tls.keystore.matches("BEGIN CERTIFICATE").count(), 2);
        let ca = reqwest::Certificate::from_pem(tls.ca_certificate.as_bytes());
        assert!(ca.is_ok(), "the CA certificate parses");
    }
}
