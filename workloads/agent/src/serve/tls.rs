//! The frontend's TLS material: PEM files, or a self-signed certificate generated in memory at start
//! (the image has a read-only root filesystem and the repository holds no private key).

use std::sync::Arc;

use anyhow::Context as _;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::TlsFiles;

/// Names the generated certificate is valid for (clients of the stack do not verify it, but a browser
/// or `curl` without `-k` shows a sensible name).
fn generated_names() -> Vec<String> {
    let mut names = vec![
        "frontend".to_owned(),
        "frontend.frontend".to_owned(),
        "frontend.frontend.svc".to_owned(),
        "frontend.frontend.svc.cluster.local".to_owned(),
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if let Ok(host) = std::env::var("HOSTNAME")
        && !host.is_empty()
        && !names.contains(&host)
    {
        names.push(host);
    }
    names
}

/// Builds the TLS acceptor (HTTP/1.1 over TLS 1.2 or 1.3).
///
/// # Errors
/// When only one of the files is given, a file cannot be read, or the key does not match.
pub(super) fn acceptor(files: &TlsFiles) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    let (chain, key) = match (&files.cert, &files.key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .with_context(|| format!("cannot read {}", cert.display()))?
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("cannot parse {}", cert.display()))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .with_context(|| format!("cannot read the private key {}", key.display()))?;
            (chain, key)
        }
        (None, None) => {
            let generated = rcgen::generate_simple_self_signed(generated_names())
                .context("cannot generate a self-signed certificate")?;
            let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                generated.signing_key.serialize_der(),
            ));
            (vec![generated.cert.der().clone()], key)
        }
        _ => anyhow::bail!("--tls-cert and --tls-key go together"),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the certificate and key do not form a usable pair")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
