//! The cluster key: a secret that every node of a cluster reads from the file `clusterKeyFile`
//! names (`cluster.key` in the config folder by default). A connection between two nodes of a
//! cluster proves, both ways, that the other end holds it: each side sends a fresh random
//! challenge and answers the other's with an HMAC-SHA256 of both challenges under the key
//! (see `xrepl_proto::rpc::server` for the exchange). The key itself never travels.

use std::fmt;
use std::path::Path;

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// Fewest bytes a key file may hold (`scripts/cluster.sh` writes 32 random bytes).
pub const MIN_KEY_BYTES: usize = 16;
/// Most bytes a key file may hold.
pub const MAX_KEY_BYTES: usize = 4096;
/// Bytes of a challenge.
pub const CHALLENGE_BYTES: usize = 32;

/// Which side of a connection a proof is for: the two proofs of one exchange differ, so
/// neither can be sent back as the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The side that accepted the connection.
    Server,
    /// The side that opened it.
    Client,
}

impl Side {
    fn label(self) -> &'static [u8] {
        match self {
            Side::Server => b"xrepl cluster key: server",
            Side::Client => b"xrepl cluster key: client",
        }
    }
}

/// A cluster's shared secret.
#[derive(Clone)]
pub struct ClusterKey(Vec<u8>);

impl fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClusterKey({} bytes)", self.0.len())
    }
}

impl ClusterKey {
    /// A key from the bytes of a key file: between [`MIN_KEY_BYTES`] and [`MAX_KEY_BYTES`].
    pub fn from_bytes(bytes: &[u8]) -> Result<ClusterKey, String> {
        if bytes.len() < MIN_KEY_BYTES {
            return Err(format!(
                "holds {} bytes; a cluster key needs at least {MIN_KEY_BYTES} (scripts/cluster.sh start writes 32 random bytes when the file is missing)",
                bytes.len()
            ));
        }
        if bytes.len() > MAX_KEY_BYTES {
            return Err(format!(
                "holds {} bytes; a cluster key is at most {MAX_KEY_BYTES}",
                bytes.len()
            ));
        }
        Ok(ClusterKey(bytes.to_vec()))
    }

    /// Reads the key file at `path`. The error says what is wrong and how to make one.
    pub fn load(path: &Path) -> Result<ClusterKey, String> {
        let bytes = std::fs::read(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                format!(
                    "{} does not exist; every node of the cluster needs the same key file (scripts/cluster.sh start makes one, or: head -c 32 /dev/urandom > {0}; chmod 600 {0})",
                    path.display()
                )
            } else {
                format!("cannot read {}: {e}", path.display())
            }
        })?;
        ClusterKey::from_bytes(&bytes).map_err(|e| format!("{} {e}", path.display()))
    }

    /// 32 random bytes, as a new key file holds.
    pub fn generate_bytes() -> Vec<u8> {
        let mut k = vec![0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        k
    }

    /// A fresh challenge.
    pub fn challenge() -> Vec<u8> {
        let mut c = vec![0u8; CHALLENGE_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut c);
        c
    }

    fn mac(&self, side: Side, client: &[u8], server: &[u8]) -> Hmac<Sha256> {
        // HMAC takes a key of any length.
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        m.update(side.label());
        m.update(&(client.len() as u64).to_be_bytes());
        m.update(client);
        m.update(server);
        m
    }

    /// `side`'s proof over the client's and the server's challenges.
    pub fn proof(&self, side: Side, client: &[u8], server: &[u8]) -> Vec<u8> {
        self.mac(side, client, server)
            .finalize()
            .into_bytes()
            .to_vec()
    }

    /// Whether `proof` is `side`'s proof over the two challenges (compared in constant time).
    pub fn verify(&self, side: Side, client: &[u8], server: &[u8], proof: &[u8]) -> bool {
        self.mac(side, client, server).verify_slice(proof).is_ok()
    }

    fn signer(&self, purpose: Purpose, message: &[u8]) -> Hmac<Sha256> {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        m.update(purpose.label());
        m.update(message);
        m
    }

    /// A MAC over `message` for `purpose`, which any node of the cluster can check (a fetch
    /// ticket the controller issues and a data node verifies, without a round trip).
    pub fn sign(&self, purpose: Purpose, message: &[u8]) -> Vec<u8> {
        self.signer(purpose, message)
            .finalize()
            .into_bytes()
            .to_vec()
    }

    /// Whether `mac` is [`Self::sign`] of `message` for `purpose` (compared in constant time).
    pub fn verify_signed(&self, purpose: Purpose, message: &[u8], mac: &[u8]) -> bool {
        self.signer(purpose, message).verify_slice(mac).is_ok()
    }
}

/// What a [`ClusterKey::sign`] MAC is for; each has its own label, so that a MAC made for one
/// purpose (or a membership proof) is never valid for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A slave's permission to read task data and checksums on the master's data nodes.
    FetchTicket,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::FetchTicket => b"xrepl signed: fetch ticket v1\n",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_messages_verify_only_with_the_same_key_purpose_and_message() {
        let k = ClusterKey::from_bytes(&[1; 32]).expect("key");
        let other = ClusterKey::from_bytes(&[2; 32]).expect("key");
        let mac = k.sign(Purpose::FetchTicket, b"slave|7|1000");
        assert!(k.verify_signed(Purpose::FetchTicket, b"slave|7|1000", &mac));
        assert!(!k.verify_signed(Purpose::FetchTicket, b"slave|8|1000", &mac));
        assert!(!other.verify_signed(Purpose::FetchTicket, b"slave|7|1000", &mac));
        assert!(!k.verify_signed(Purpose::FetchTicket, b"slave|7|1000", &mac[..31]));
        // A membership proof is no ticket.
        let proof = k.proof(Side::Server, b"slave|7|1000", b"");
        assert!(!k.verify_signed(Purpose::FetchTicket, b"slave|7|1000", &proof));
    }

    #[test]
    fn proofs_verify_only_with_the_same_key_the_same_challenges_and_the_same_side() {
        let k = ClusterKey::from_bytes(&ClusterKey::generate_bytes()).expect("key");
        let other = ClusterKey::from_bytes(&ClusterKey::generate_bytes()).expect("key");
        let (c, s) = (ClusterKey::challenge(), ClusterKey::challenge());
        let p = k.proof(Side::Client, &c, &s);
        assert!(k.verify(Side::Client, &c, &s, &p));
        assert!(!other.verify(Side::Client, &c, &s, &p), "another key");
        assert!(
            !k.verify(Side::Server, &c, &s, &p),
            "the other side's proof"
        );
        assert!(!k.verify(Side::Client, &s, &c, &p), "challenges swapped");
        assert!(!k.verify(Side::Client, &c, &ClusterKey::challenge(), &p));
        assert!(!k.verify(Side::Client, &c, &s, &p[..31]), "cut short");
        assert!(!k.verify(Side::Client, &c, &s, b""));
    }

    #[test]
    fn key_files_that_are_missing_short_or_huge_are_refused_with_the_path() {
        let d = tempfile::tempdir().expect("tmp");
        let path = d.path().join("cluster.key");
        let e = ClusterKey::load(&path).expect_err("missing");
        assert!(e.contains("cluster.key does not exist"), "{e}");
        assert!(e.contains("head -c 32 /dev/urandom"), "{e}");
        std::fs::write(&path, b"short").expect("write");
        let e = ClusterKey::load(&path).expect_err("short");
        assert!(
            e.contains("holds 5 bytes; a cluster key needs at least 16"),
            "{e}"
        );
        std::fs::write(&path, vec![1u8; MAX_KEY_BYTES + 1]).expect("write");
        assert!(ClusterKey::load(&path).is_err());
        std::fs::write(&path, ClusterKey::generate_bytes()).expect("write");
        let k = ClusterKey::load(&path).expect("a good key");
        assert_eq!(format!("{k:?}"), "ClusterKey(32 bytes)", "never printed");
    }
}
