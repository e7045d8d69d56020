//! Join tokens: what an operator hands a new node so that it may join one cluster, once.
//!
//! `arca-join-v1.<cluster id>.<CA pin>.<token id>.<secret>` (lowercase hex). The cluster id and the
//! SHA-256 of the cluster CA certificate let the joining node check that it is talking to that cluster
//! before it sends the secret (as kubeadm's discovery hash does); the token id names the token's
//! record in replicated state, which holds a hash of the secret, its expiry and who used it.

use std::fmt;

/// The prefix every join token starts with.
pub const JOIN_TOKEN_PREFIX: &str = "arca-join-v1";
/// Length of a join token, in characters.
pub const JOIN_TOKEN_CHARS: usize = JOIN_TOKEN_PREFIX.len() + 4 + 32 + 64 + 16 + 64;

/// Which cluster a joining node may talk to: its id and the SHA-256 of its CA certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinPin {
    pub cluster_id: [u8; 16],
    pub ca_sha256: [u8; 32],
}

/// A parsed join token. `Debug` and `Display` never show the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    pub pin: JoinPin,
    pub token_id: [u8; 8],
    pub secret: [u8; 32],
}

impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JoinToken({})", hex::encode(self.token_id))
    }
}

impl Drop for JoinToken {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.secret);
    }
}

/// Why a string is not a join token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a join token: it must look like {JOIN_TOKEN_PREFIX}.<32 hex>.<64 hex>.<16 hex>.<64 hex>, as `arca cluster join-token create` prints it")]
pub struct BadJoinToken;

fn hex_field<const N: usize>(text: &str) -> Result<[u8; N], BadJoinToken> {
    if text.len() != N * 2 || text.bytes().any(|b| !matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(BadJoinToken);
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).map_err(|_| BadJoinToken)?;
    Ok(out)
}

impl JoinToken {
    pub fn parse(text: &str) -> Result<Self, BadJoinToken> {
        let text = text.trim();
        if text.len() != JOIN_TOKEN_CHARS {
            return Err(BadJoinToken);
        }
        let mut parts = text.split('.');
        if parts.next() != Some(JOIN_TOKEN_PREFIX) {
            return Err(BadJoinToken);
        }
        let mut next = || parts.next().ok_or(BadJoinToken);
        let cluster_id = hex_field::<16>(next()?)?;
        let ca_sha256 = hex_field::<32>(next()?)?;
        let token_id = hex_field::<8>(next()?)?;
        let secret = hex_field::<32>(next()?)?;
        if parts.next().is_some() {
            return Err(BadJoinToken);
        }
        Ok(Self { pin: JoinPin { cluster_id, ca_sha256 }, token_id, secret })
    }

    /// The token as the operator copies it. Holds the secret: print it only to whoever asked for it.
    pub fn expose(&self) -> String {
        format!(
            "{JOIN_TOKEN_PREFIX}.{}.{}.{}.{}",
            hex::encode(self.pin.cluster_id),
            hex::encode(self.pin.ca_sha256),
            hex::encode(self.token_id),
            hex::encode(self.secret)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> JoinToken {
        JoinToken {
            pin: JoinPin { cluster_id: [0x1a; 16], ca_sha256: [0x2b; 32] },
            token_id: [0x3c; 8],
            secret: [0x4d; 32],
        }
    }

    #[test]
    fn a_token_round_trips_and_never_prints_its_secret() {
        let text = token().expose();
        assert_eq!(text.len(), JOIN_TOKEN_CHARS);
        assert_eq!(JoinToken::parse(&text), Ok(token()));
        assert_eq!(JoinToken::parse(&format!("  {text}\n")), Ok(token()));
        assert!(!format!("{:?}", token()).contains("4d4d"));
    }

    #[test]
    fn anything_else_is_refused() {
        let text = token().expose();
        let upper = text.to_uppercase().replace("ARCA-JOIN-V1", JOIN_TOKEN_PREFIX);
        let mut bad = vec![
            String::new(),
            text[..text.len() - 1].to_owned(),
            format!("{text}0"),
            text.replace(JOIN_TOKEN_PREFIX, "arca-join-v2"),
            upper,
            text.replacen('.', ":", 2),
        ];
        bad.push(format!("{}g", &text[..text.len() - 1]));
        for b in bad {
            assert_eq!(JoinToken::parse(&b), Err(BadJoinToken), "{b}");
        }
    }
}
