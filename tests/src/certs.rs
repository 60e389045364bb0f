//! A test CA and node certificates, made by the test itself (rcgen), for TLS clusters.

/// A certificate authority that lives for one test.
pub struct TestCa {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

/// `cluster.cfg` and `controller.cfg` lines of a TLS cluster using [`TestCa::files`].
pub const TLS_CFG: &str =
    "enableTLS=true\ntlsCertFile=node.pem\ntlsKeyFile=node.key\ntlsCAFile=ca.pem\n";

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let key = rcgen::KeyPair::generate().expect("CA key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let cert = params.self_signed(&key).expect("CA certificate");
        TestCa { cert, key }
    }

    /// The CA certificate (PEM).
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A node certificate for `hosts` (IP addresses or DNS names), signed by this CA: the
    /// certificate and its private key (PEM).
    pub fn issue(&self, hosts: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("node key");
        let names: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names).expect("node params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "xrepl node");
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("node certificate");
        (cert.pem(), key.serialize_pem())
    }

    /// `ca.pem`, and `node.pem` with `node.key` for 127.0.0.1 and localhost: the files
    /// [`TLS_CFG`] names.
    pub fn files(&self) -> Vec<(String, String)> {
        let (cert, key) = self.issue(&["127.0.0.1", "localhost"]);
        vec![
            ("ca.pem".into(), self.pem()),
            ("node.pem".into(), cert),
            ("node.key".into(), key),
        ]
    }
}
