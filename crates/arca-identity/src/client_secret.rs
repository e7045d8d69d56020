//! Client secrets: 256 bits from the node's entropy, shown once, kept only as a keyed hash.
//!
//! A secret reads `arcs_` followed by 43 base64url characters; the prefix lets secret scanners
//! recognise a leaked one. Its hint (what `credential list` shows) is its first three characters
//! after the prefix, as Azure shows the start of a client secret.

use arca_crypto::Entropy;
use arca_types::limits::CLIENT_SECRET_BYTES;
use arca_types::SecretString;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

pub const PREFIX: &str = "arcs_";

/// A new secret and its hint.
pub fn generate(entropy: &dyn Entropy) -> (SecretString, String) {
    let mut bytes = zeroize::Zeroizing::new([0u8; CLIENT_SECRET_BYTES]);
    entropy.fill(&mut bytes[..]);
    let secret = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(&bytes[..]));
    let hint = secret[PREFIX.len()..PREFIX.len() + 3].to_owned();
    (SecretString::new(secret), hint)
}

/// Whether `secret` has the shape of one Arca generates (`arcs_` and 43 base64url characters): anything
/// else cannot match and is refused before it costs a lookup.
pub fn well_formed(secret: &str) -> bool {
    secret.len() == PREFIX.len() + 43
        && secret.starts_with(PREFIX)
        && secret[PREFIX.len()..].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// What a secret's keyed hash is computed over: the secret bound to the principal's client id, so
/// that a hash copied to another principal matches nothing.
pub fn hash_input(app_id: &[u8; 16], secret: &str) -> Vec<u8> {
    let mut input = b"client-secret:".to_vec();
    input.extend_from_slice(app_id);
    input.push(b':');
    input.extend_from_slice(secret.as_bytes());
    input
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_carry_256_bits_and_a_short_hint() {
        let entropy = arca_crypto::entropy::DangerSeededEntropy::new(1);
        let (a, hint) = generate(&entropy);
        let (b, _) = generate(&entropy);
        assert_ne!(a.expose(), b.expose());
        assert!(a.expose().starts_with(PREFIX));
        assert_eq!(URL_SAFE_NO_PAD.decode(&a.expose()[PREFIX.len()..]).unwrap().len(), CLIENT_SECRET_BYTES);
        assert_eq!(hint, a.expose()[PREFIX.len()..PREFIX.len() + 3]);
        assert_ne!(hash_input(&[1; 16], a.expose()), hash_input(&[2; 16], a.expose()));
        assert!(well_formed(a.expose()));
        for bad in ["", "arcs_", &a.expose()[1..], &format!("{}A", a.expose()), &a.expose().replace('_', ".")] {
            assert!(!well_formed(bad), "{bad}");
        }
    }
}
