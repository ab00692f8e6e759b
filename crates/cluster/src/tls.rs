//! Mutual TLS between members: the cluster listener accepts only clients whose certificate
//! the cluster's CA signed, and calls to other members present this member's certificate
//! and trust only that CA (never the system roots). One certificate per member serves both
//! sides; its names must cover the host in the member's advertised address.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Both halves of mutual TLS, ready for the listener and the peer client.
#[derive(Clone)]
pub struct MutualTls {
    pub server: Arc<rustls::ServerConfig>,
    pub client: rustls::ClientConfig,
}

impl std::fmt::Debug for MutualTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MutualTls").finish_non_exhaustive()
    }
}

impl MutualTls {
    /// Reads the PEM files; every problem names the file it is in.
    pub fn load(cert: &Path, key: &Path, ca: &Path) -> anyhow::Result<Self> {
        let chain = read_certs(cert)?;
        let key = PrivateKeyDer::from_pem_file(key)
            .with_context(|| format!("reading the private key in {}", key.display()))?;
        let ca_certs = read_certs(ca)?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in ca_certs {
            roots
                .add(cert)
                .with_context(|| format!("{} holds a certificate that is not a usable CA", ca.display()))?;
        }
        let roots = Arc::new(roots);
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());

        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .context("the cluster CA cannot verify client certificates")?;
        let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .with_context(|| format!("{} and its key do not make a usable certificate", cert.display()))?;
        server.alpn_protocols = vec![b"http/1.1".to_vec()];

        let mut client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .with_context(|| format!("{} and its key do not make a usable certificate", cert.display()))?;
        client.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            server: Arc::new(server),
            client,
        })
    }

    /// The acceptor the cluster listener wraps each connection in.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.server.clone())
    }
}

fn read_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{} is not a PEM certificate file", path.display()))?;
    if certs.is_empty() {
        bail!("{} holds no certificate", path.display());
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every way the files can be wrong stops the start with the file named.
    #[test]
    fn unusable_files_are_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let empty = dir.path().join("empty.pem");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&empty, "").unwrap();
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        for cert in [&missing, &empty, &garbage] {
            let e = MutualTls::load(cert, &missing, &missing).unwrap_err();
            let text = format!("{e:#}");
            assert!(text.contains(&cert.display().to_string()), "{text}");
        }
    }
}
