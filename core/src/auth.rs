//! Passwords and session tokens.
//!
//! Passwords are stored as salted argon2id hashes in PHC string form, never in clear. After a
//! login the controller hands out a token, `user.generation.expires.key.nonce.mac`, where
//! `mac` is HMAC-SHA256 over everything before it with key number `key` of the controller's
//! metadata. The controller checks every call's token: its MAC, its expiry, and the user's
//! generation, which a changed password or a deleted user moves on, so that every token issued
//! before is refused at once. Tokens survive a controller restart.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// A new salted hash of `password`.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// A hash of a random password nobody knows: checked for unknown users, so that they cost
/// what a wrong password costs.
pub fn decoy_hash() -> String {
    let mut secret = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    hash_password(&hex::encode(secret)).unwrap_or_default()
}

/// Whether `password` matches a hash made by [`hash_password`]. A damaged hash never matches.
pub fn verify_password(password: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(h) => Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok(),
        Err(_) => false,
    }
}

/// User names: a letter, then letters, digits or `_`; at most 64 characters.
pub fn check_user_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid user name '{name}': a letter, then letters, digits or '_', at most 64 characters"
        ))
    }
}

/// Bytes of a replay attempt's nonce.
pub const ATTEMPT_NONCE_BYTES: usize = 16;

/// The secret that signs session tokens (and replay attempts' nonces).
#[derive(Clone)]
pub struct TokenKey([u8; 32]);

impl TokenKey {
    pub fn generate() -> TokenKey {
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        TokenKey(k)
    }

    /// Rebuilds a key from stored bytes; `None` when they are not 32 bytes.
    pub fn from_bytes(b: &[u8]) -> Option<TokenKey> {
        Some(TokenKey(b.try_into().ok()?))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    fn mac(&self, msg: &str) -> Option<Hmac<Sha256>> {
        let mut m = Hmac::<Sha256>::new_from_slice(&self.0).ok()?;
        m.update(msg.as_bytes());
        Some(m)
    }

    /// The HMAC of a token's body.
    fn token_tag(&self, body: &str) -> Vec<u8> {
        self.mac(body)
            .map(|m| m.finalize().into_bytes().to_vec())
            .unwrap_or_default()
    }

    /// A new token for `user` at `generation`, signed as key number `key_id`, valid until
    /// `expires_ms` (milliseconds since the epoch).
    pub fn issue(&self, user: &str, generation: u64, expires_ms: i64, key_id: u32) -> String {
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let body = format!(
            "{user}.{generation}.{expires_ms}.{key_id}.{}",
            hex::encode(nonce)
        );
        let tag = hex::encode(self.token_tag(&body));
        format!("{body}.{tag}")
    }

    fn attempt_mac(&self, node: &str, started_ns: i64) -> Option<Hmac<Sha256>> {
        // A token's body starts with a user name, never with a 0 byte: the two cannot meet.
        let mut m = Hmac::<Sha256>::new_from_slice(&self.0).ok()?;
        m.update(b"\0xrepl replay attempt v1\0");
        m.update(&(node.len() as u64).to_be_bytes());
        m.update(node.as_bytes());
        m.update(&started_ns.to_be_bytes());
        Some(m)
    }

    /// The nonce of the replay attempt handed to data node `node` at `started_ns`: 16 bytes
    /// only this controller can make, which every report of the attempt must bring back.
    pub fn attempt_nonce(&self, node: &str, started_ns: i64) -> Vec<u8> {
        self.attempt_mac(node, started_ns)
            .map(|m| m.finalize().into_bytes()[..ATTEMPT_NONCE_BYTES].to_vec())
            .unwrap_or_default()
    }

    /// Whether `nonce` is [`Self::attempt_nonce`] of that attempt (compared in constant time).
    pub fn check_attempt_nonce(&self, node: &str, started_ns: i64, nonce: &[u8]) -> bool {
        nonce.len() == ATTEMPT_NONCE_BYTES
            && self
                .attempt_mac(node, started_ns)
                .is_some_and(|m| m.verify_truncated_left(nonce).is_ok())
    }

    /// What a token says, if this key signed it and it is untouched (its expiry and the
    /// user's generation are for the caller to check).
    pub fn verify(&self, token: &str) -> Option<TokenClaims> {
        let (claims, body, tag) = TokenClaims::parse(token)?;
        self.signed(body, &tag).then_some(claims)
    }

    /// Whether `tag` is this key's MAC of a token's `body` (compared in constant time): the
    /// check of [`Self::verify`] on a token already split by [`TokenClaims::parse`].
    pub fn signed(&self, body: &str, tag: &[u8]) -> bool {
        self.mac(body).is_some_and(|m| m.verify_slice(tag).is_ok())
    }
}

/// What a session token says about itself; believed only after [`TokenKey::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    pub user: String,
    /// The user's generation when the token was issued.
    pub generation: u64,
    /// Milliseconds since the epoch.
    pub expires_ms: i64,
    /// Which signing key made it.
    pub key_id: u32,
    /// 24 hex digits, unique to the token (a logout revokes it by this).
    pub nonce: String,
}

impl TokenClaims {
    /// Splits a token into its claims, the signed body and the MAC; `None` when it does not
    /// have the shape of a token.
    pub fn parse(token: &str) -> Option<(TokenClaims, &str, Vec<u8>)> {
        let (body, tag) = token.rsplit_once('.')?;
        let mut it = body.split('.');
        let user = it.next()?;
        let generation = it.next()?.parse().ok()?;
        let expires_ms = it.next()?.parse().ok()?;
        let key_id = it.next()?.parse().ok()?;
        let nonce = it.next()?;
        if it.next().is_some() || check_user_name(user).is_err() || nonce.len() != 24 {
            return None;
        }
        let tag = hex::decode(tag).ok()?;
        Some((
            TokenClaims {
                user: user.to_string(),
                generation,
                expires_ms,
                key_id,
                nonce: nonce.to_string(),
            },
            body,
            tag,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempt_nonces_verify_only_for_their_node_time_and_key() {
        let k = TokenKey::generate();
        let n = k.attempt_nonce("dnode1", 42);
        assert_eq!(n.len(), ATTEMPT_NONCE_BYTES);
        assert!(k.check_attempt_nonce("dnode1", 42, &n));
        assert!(!k.check_attempt_nonce("dnode2", 42, &n));
        assert!(!k.check_attempt_nonce("dnode1", 43, &n));
        assert!(!k.check_attempt_nonce("dnode1", 42, &n[..15]));
        assert!(!k.check_attempt_nonce("dnode1", 42, &[0; 16]));
        assert!(!TokenKey::generate().check_attempt_nonce("dnode1", 42, &n));
    }

    #[test]
    fn hashes_are_salted_and_verify() {
        let a = hash_password("123456").expect("hash");
        let b = hash_password("123456").expect("hash");
        assert_ne!(a, b, "two hashes of one password must differ (salt)");
        assert!(!a.contains("123456"));
        assert!(verify_password("123456", &a));
        assert!(!verify_password("1234567", &a));
        assert!(!verify_password("123456", "not a hash"));
    }

    #[test]
    fn tokens_verify_only_with_their_key_and_untouched() {
        let k = TokenKey::generate();
        let t = k.issue("admin", 3, 1_000, 7);
        let c = k.verify(&t).expect("genuine");
        assert_eq!(
            (c.user.as_str(), c.generation, c.expires_ms, c.key_id),
            ("admin", 3, 1_000, 7)
        );
        assert_eq!(c.nonce.len(), 24);
        assert_eq!(TokenKey::generate().verify(&t), None);
        for (from, to) in [("admin", "root"), (".3.", ".4."), (".1000.", ".9999.")] {
            assert_eq!(k.verify(&t.replacen(from, to, 1)), None, "{from} -> {to}");
        }
        assert_eq!(k.verify("garbage"), None);
        assert_eq!(k.verify("a.b.zz"), None);
        assert_eq!(k.verify(""), None);
        let again = TokenKey::from_bytes(k.as_bytes()).expect("32 bytes");
        assert_eq!(again.verify(&t), Some(c));
        assert_ne!(
            k.issue("admin", 3, 1_000, 7),
            t,
            "two tokens differ by their nonce"
        );
    }

    #[test]
    fn user_names_are_checked() {
        assert!(check_user_name("admin").is_ok());
        assert!(check_user_name("u_1").is_ok());
        assert!(check_user_name("").is_err());
        assert!(check_user_name("1a").is_err());
        assert!(check_user_name("a.b").is_err());
    }
}
