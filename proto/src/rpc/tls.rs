//! TLS for xrepl connections, with rustls (the `ring` provider).
//!
//! A listener is in one of three modes ([`ServerTls`]): plain text only, TLS only
//! (`enableTLS=true`), or both on the same port, where a peer greeting as a slave must have
//! come over TLS (`enableClusterReplicationSSL=true` on a master). The mode is told from the
//! first byte a peer sends: a TLS handshake record starts with 22, an xrepl frame with the
//! high byte of its length, which is 0 for every greeting.
//!
//! A client ([`ClientTls`]) verifies the server's certificate against the CA file it was
//! given, for the host it dialled (an IP address or a DNS name, as in the `host:port`).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use xrepl_core::cluster_key::ClusterKey;
use xrepl_core::config::{ReplicationMode, TlsSettings};

/// The first byte of a TLS handshake record.
pub const TLS_HANDSHAKE: u8 = 22;

/// A byte stream a connection runs over: a TCP socket, or TLS over one.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// A connection's byte stream, boxed so that plain and TLS connections share one code path.
pub type BoxedIo = Box<dyn Io>;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(file: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not a PEM certificate file: {e}", file.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: holds no PEM certificate", file.display()));
    }
    Ok(certs)
}

/// What a listener asks of the peers that connect to it.
#[derive(Clone)]
pub enum ServerTls {
    /// Plain text only; a TLS client is told nothing and closed.
    Plain,
    /// TLS only (`enableTLS=true`); a plain-text client gets a refusal it can read.
    Required(tokio_rustls::TlsAcceptor),
    /// Both; a peer greeting as a slave must have come over TLS
    /// (`enableClusterReplicationSSL=true` on a master cluster without `enableTLS`).
    SlavesOnly(tokio_rustls::TlsAcceptor),
}

impl ServerTls {
    /// The acceptor for a certificate chain and its private key, both PEM files.
    pub fn acceptor(
        cert_file: &Path,
        key_file: &Path,
    ) -> Result<tokio_rustls::TlsAcceptor, String> {
        let certs = read_certs(cert_file)?;
        let key = PrivateKeyDer::from_pem_file(key_file)
            .map_err(|e| format!("{}: cannot read a PEM private key: {e}", key_file.display()))?;
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| {
                format!(
                    "{} and {}: the certificate and the key do not make a usable pair: {e}",
                    cert_file.display(),
                    key_file.display()
                )
            })?;
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }

    pub fn is_plain(&self) -> bool {
        matches!(self, ServerTls::Plain)
    }
}

/// How a client connects: in plain text, or over TLS verifying the server against a CA.
#[derive(Clone, Default)]
pub struct ClientTls(Option<tokio_rustls::TlsConnector>);

impl ClientTls {
    /// Plain text.
    pub fn plain() -> ClientTls {
        ClientTls(None)
    }

    /// TLS, trusting the certificates in the PEM file `ca_file` (one or more CAs).
    pub fn with_ca(ca_file: &Path) -> Result<ClientTls, String> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in read_certs(ca_file)? {
            roots
                .add(cert)
                .map_err(|e| format!("{}: not a usable CA certificate: {e}", ca_file.display()))?;
        }
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(ClientTls(Some(tokio_rustls::TlsConnector::from(Arc::new(
            config,
        )))))
    }

    pub fn is_tls(&self) -> bool {
        self.0.is_some()
    }

    /// Wraps a connected socket: the TLS handshake with `addr`'s host, or the socket itself.
    pub async fn wrap(&self, addr: &str, socket: TcpStream) -> Result<BoxedIo, String> {
        let Some(connector) = &self.0 else {
            return Ok(Box::new(socket));
        };
        let host = addr
            .rsplit_once(':')
            .map_or(addr, |(h, _)| h)
            .trim_start_matches('[')
            .trim_end_matches(']');
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| format!("'{host}' cannot be checked against a certificate: {e}"))?;
        let stream = connector.connect(name, socket).await.map_err(|e| {
            format!("TLS handshake failed: {e} (does that cluster set enableTLS=true, or enableClusterReplicationSSL=true on a master, and is its certificate signed by this CA for this host?)")
        })?;
        Ok(Box::new(stream))
    }
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.is_tls() {
            "ClientTls(tls)"
        } else {
            "ClientTls(plain)"
        })
    }
}

/// A node's TLS, as its configuration says: how it listens, how it reaches the nodes of its
/// own cluster, and how it reaches the master cluster (a slave's links).
#[derive(Clone, Debug)]
pub struct NodeTls {
    pub server: ServerTls,
    pub cluster: ClientTls,
    pub master: ClientTls,
}

impl NodeTls {
    /// Everything in plain text.
    pub fn plain() -> NodeTls {
        NodeTls {
            server: ServerTls::Plain,
            cluster: ClientTls::plain(),
            master: ClientTls::plain(),
        }
    }

    /// Reads the certificate, key and CA files the settings name (checked by the config
    /// loader to be there when needed); `mode` is the cluster's replication role.
    pub fn load(s: &TlsSettings, mode: Option<ReplicationMode>) -> Result<NodeTls, String> {
        let acceptor = || match (&s.cert_file, &s.key_file) {
            (Some(c), Some(k)) => ServerTls::acceptor(c, k),
            _ => Err("tlsCertFile and tlsKeyFile are required".into()),
        };
        let ca = || match &s.ca_file {
            Some(f) => ClientTls::with_ca(f),
            None => Err("tlsCAFile is required".into()),
        };
        let server = if s.enabled {
            ServerTls::Required(acceptor()?)
        } else if s.replication_ssl && mode == Some(ReplicationMode::Master) {
            ServerTls::SlavesOnly(acceptor()?)
        } else {
            ServerTls::Plain
        };
        let cluster = if s.enabled { ca()? } else { ClientTls::plain() };
        let master = if s.replication_ssl && mode == Some(ReplicationMode::Slave) {
            ca()?
        } else {
            ClientTls::plain()
        };
        Ok(NodeTls {
            server,
            cluster,
            master,
        })
    }
}

/// What a node needs to start besides its configuration: the cluster key and its TLS. The
/// error names the key at fault (`clusterKeyFile: ...` or `TLS: ...`).
pub fn node_secrets(
    cluster_key_file: &Path,
    tls: &TlsSettings,
    mode: Option<ReplicationMode>,
) -> Result<(ClusterKey, NodeTls), String> {
    let key = ClusterKey::load(cluster_key_file).map_err(|e| format!("clusterKeyFile: {e}"))?;
    let tls = NodeTls::load(tls, mode).map_err(|e| format!("TLS: {e}"))?;
    Ok((key, tls))
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ServerTls::Plain => "ServerTls::Plain",
            ServerTls::Required(_) => "ServerTls::Required",
            ServerTls::SlavesOnly(_) => "ServerTls::SlavesOnly",
        })
    }
}
