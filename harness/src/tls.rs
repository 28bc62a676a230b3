//! FTPS in the harness: a throw-away PKI per scenario (a test CA and a
//! server certificate for every address in the scenario, generated at run
//! time with rcgen — nothing secret is committed), and the rustls client
//! configuration the built-in client uses (trusting only that CA).

use std::{net::IpAddr, path::Path, path::PathBuf, sync::Arc};

use rustls::{
    client::Resumption,
    pki_types::{CertificateDer, ServerName},
    ClientConfig, RootCertStore,
};

/// A generated CA and server certificate, written as PEM files.
#[derive(Debug, Clone)]
pub struct TestPki {
    /// The CA certificate (DER), trusted by the scenario's clients.
    pub ca_der: CertificateDer<'static>,
    /// `ca.pem` (for curl and lftp).
    pub ca_pem: PathBuf,
    /// `server.pem`: the server certificate followed by the CA.
    pub cert_pem: PathBuf,
    /// `server.key`.
    pub key_pem: PathBuf,
}

impl TestPki {
    /// Generates a CA and a server certificate valid for `ips` (and the name
    /// `ftp.example.test`) into `dir`.
    pub fn generate(dir: &Path, ips: &[IpAddr]) -> Result<TestPki, String> {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
        let err = |e: rcgen::Error| format!("generating the test certificates: {e}");
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let ca_key = KeyPair::generate().map_err(err)?;
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        ca.distinguished_name
            .push(DnType::CommonName, "ftpnat test CA (throw-away)");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).map_err(err)?;
        let key = KeyPair::generate().map_err(err)?;
        let mut leaf = CertificateParams::new(vec!["ftp.example.test".to_string()]).map_err(err)?;
        leaf.distinguished_name
            .push(DnType::CommonName, "ftp.example.test");
        let mut seen = Vec::new();
        for ip in ips {
            if !seen.contains(ip) {
                seen.push(*ip);
                leaf.subject_alt_names.push(SanType::IpAddress(*ip));
            }
        }
        let leaf_cert = leaf.signed_by(&key, &ca_cert, &ca_key).map_err(err)?;
        let write = |name: &str, text: String| -> Result<PathBuf, String> {
            let p = dir.join(name);
            std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))?;
            Ok(p)
        };
        let ca_pem = write("ca.pem", ca_cert.pem())?;
        let cert_pem = write(
            "server.pem",
            format!("{}{}", leaf_cert.pem(), ca_cert.pem()),
        )?;
        let key_pem = write("server.key", key.serialize_pem())?;
        Ok(TestPki {
            ca_der: ca_cert.der().clone(),
            ca_pem,
            cert_pem,
            key_pem,
        })
    }
}

/// The built-in client's TLS settings for one FTP session: one
/// configuration for the control connection and the data connections, so
/// data connections resume the control connection's TLS session (as FTPS
/// servers require), and one without resumption (to show a server refusing
/// such a data connection).
#[derive(Debug, Clone)]
pub struct ClientTls {
    /// With an in-memory session store (resumption).
    pub resuming: Arc<ClientConfig>,
    /// Without resumption.
    pub fresh: Arc<ClientConfig>,
}

impl ClientTls {
    /// Trusting only `ca`.
    pub fn new(ca: &CertificateDer<'static>) -> Result<ClientTls, String> {
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone()).map_err(|e| format!("test CA: {e}"))?;
        let build = |resumption: Resumption| -> Result<Arc<ClientConfig>, String> {
            let mut c = ClientConfig::builder_with_provider(ftpnat_server::tls::provider())
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots.clone())
                .with_no_client_auth();
            c.resumption = resumption;
            Ok(Arc::new(c))
        };
        Ok(ClientTls {
            resuming: build(Resumption::in_memory_sessions(64))?,
            fresh: build(Resumption::disabled())?,
        })
    }

    /// The name the server certificate is checked against: the address the
    /// control connection went to.
    pub fn server_name(ip: IpAddr) -> ServerName<'static> {
        ServerName::IpAddress(ip.into())
    }
}
