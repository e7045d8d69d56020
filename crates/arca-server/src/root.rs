//! The root token's lifecycle, and rekeying, each from a quorum of unseal shares.
//!
//! - **Generate root** (Vault's flow): whoever starts brings a one-time pad; key holders add their
//!   shares under the attempt's nonce; when the threshold is reached and the shares open the keyring,
//!   a new root token is minted and returned XORed with the pad, so only the starter can read it.
//! - **Revoke**: any token by its accessor (the root token's own included) stops working at once.
//! - **Rekey**: a quorum of the current shares gives a new root key split into new shares; the
//!   keyring is wrapped under the new key, so the old shares no longer open anything. Unsealed nodes
//!   take the new root key up through the barrier they hold; a node that unseals from a key file needs
//!   the new unseal key in that file.

use arca_crypto::shamir::{self, Share};
use arca_crypto::{Key32, RootKey};
use arca_proto::v1 as pb;
use arca_types::{ArcaError, ErrorCode};
use zeroize::Zeroizing;

use crate::api::Api;
use crate::engine::{SystemCommand, SystemOutcome};
use crate::quorum::{Progress, Quorum};

/// Bytes of the one-time pad a root generation starts with (the token is shorter).
pub const ROOT_OTP_BYTES: usize = 64;

/// What a rekey's starter asked for.
pub struct RekeyParams {
    shares: u8,
    threshold: u8,
    auto_unseal_key: bool,
}

/// The root generation and the rekey in progress on this node.
pub struct RootOps {
    generate: Quorum<Zeroizing<Vec<u8>>>,
    rekey: Quorum<RekeyParams>,
}

impl Default for RootOps {
    fn default() -> Self {
        Self {
            generate: Quorum::new("root token generation", "arca operator generate-root"),
            rekey: Quorum::new("rekey", "arca operator rekey"),
        }
    }
}

fn parse_share(raw: &str) -> Result<Share, ArcaError> {
    if raw.starts_with("00") {
        return Err(ArcaError::bad_parameter(
            "share",
            "an unseal key cannot stand in for a quorum of shares here; pass Shamir shares",
        ));
    }
    Share::parse(raw).map_err(|e| ArcaError::bad_parameter("share", e.to_string()))
}

fn counts(shares: u32, threshold: u32) -> Result<(u8, u8), ArcaError> {
    let shares = if shares == 0 { 5 } else { shares };
    let threshold = if threshold == 0 { 3.min(shares) } else { threshold };
    match (u8::try_from(shares), u8::try_from(threshold)) {
        (Ok(s), Ok(t)) if (1..=16).contains(&s) && t >= 1 && t <= s && (t > 1 || s == 1) => Ok((s, t)),
        _ => Err(ArcaError::bad_parameter(
            "secret_threshold",
            "secret_shares must be 1-16 and secret_threshold 2-secret_shares (1 only with one share)",
        )),
    }
}

impl RootOps {
    /// One step of a root token generation.
    pub async fn generate_root(
        &self,
        api: &Api,
        r: pb::GenerateRootRequest,
    ) -> Result<pb::GenerateRootStatus, ArcaError> {
        let seal = &api.engine.seal;
        seal.admit_unseal_request()?;
        let init = seal.init_record_or_error()?;
        let status = |nonce: String, progress: usize| pb::GenerateRootStatus {
            nonce,
            progress: progress as u32,
            threshold: init.threshold.into(),
            ..Default::default()
        };
        if r.cancel {
            self.generate.cancel(&r.nonce)?;
            return Ok(status(String::new(), 0));
        }
        let share = parse_share(&r.share)?;
        let start = || {
            let otp = Zeroizing::new(hex::decode(r.otp.trim()).unwrap_or_default());
            if otp.len() != ROOT_OTP_BYTES {
                return Err(ArcaError::bad_parameter(
                    "otp",
                    format!("the first call needs a one-time pad of {ROOT_OTP_BYTES} random bytes as hex"),
                ));
            }
            Ok(otp)
        };
        let (shares, otp) =
            match self.generate.submit(&r.nonce, share, init.threshold, seal.entropy().as_ref(), start)? {
                Progress::Collecting { nonce, progress } => return Ok(status(nonce, progress)),
                Progress::Complete { shares, params } => (shares, params),
            };
        seal.open_keyring(&shares)?;
        let token = format!("arca.{}", crate::seal::hex_of(&seal.entropy().bytes16()));
        let command = SystemCommand::StoreRootToken { token: token.clone() };
        let SystemOutcome::Token { accessor } = api.engine.execute_system(command).await? else {
            return Err(ArcaError::internal("the leader answered a token with another outcome"));
        };
        let encoded: Vec<u8> = token.bytes().zip(otp.iter()).map(|(t, p)| t ^ p).collect();
        tracing::info!(%accessor, "generated a new root token from a quorum of unseal shares");
        Ok(pb::GenerateRootStatus {
            complete: true,
            encoded_token: hex::encode(encoded),
            accessor,
            ..status(String::new(), shares.len())
        })
    }

    /// One step of a rekey.
    pub async fn rekey(&self, api: &Api, r: pb::RekeyRequest) -> Result<pb::RekeyStatus, ArcaError> {
        let seal = &api.engine.seal;
        seal.admit_unseal_request()?;
        let init = seal.init_record_or_error()?;
        let status = |nonce: String, progress: usize| pb::RekeyStatus {
            nonce,
            progress: progress as u32,
            threshold: init.threshold.into(),
            ..Default::default()
        };
        if r.cancel {
            self.rekey.cancel(&r.nonce)?;
            return Ok(status(String::new(), 0));
        }
        let share = parse_share(&r.share)?;
        let start = || {
            let (shares, threshold) = counts(r.secret_shares, r.secret_threshold)?;
            Ok(RekeyParams { shares, threshold, auto_unseal_key: r.auto_unseal_key })
        };
        let (old, params) = match self.rekey.submit(&r.nonce, share, init.threshold, seal.entropy().as_ref(), start)? {
            Progress::Collecting { nonce, progress } => return Ok(status(nonce, progress)),
            Progress::Complete { shares, params } => (shares, params),
        };
        seal.open_keyring(&old)?;
        let entropy = seal.entropy().as_ref();
        let root = RootKey(Key32::generate(entropy));
        let shares = shamir::split(&root.0, params.shares, params.threshold, entropy)
            .map_err(|e| ArcaError::bad_parameter("secret_threshold", e.to_string()))?;
        let unseal_key = if params.auto_unseal_key {
            Some(shamir::split(&root.0, 1, 1, entropy).map_err(|e| ArcaError::internal(e.to_string()))?.remove(0))
        } else {
            None
        };
        let command =
            SystemCommand::Rekey { root: *root.0.expose(), shares: params.shares, threshold: params.threshold };
        let outcome_unknown = match api.engine.execute_system(command).await {
            Ok(_) => false,
            // Whether the new key is in force is unknown: the new shares are the only way in if it is,
            // so they are returned, and the caller is told to keep the old ones too.
            Err(e) if e.code == ErrorCode::OutcomeUnknown => true,
            Err(e) => return Err(e),
        };
        Ok(pb::RekeyStatus {
            complete: !outcome_unknown,
            outcome_unknown,
            shares: shares.iter().map(|s| s.expose().to_owned()).collect(),
            unseal_key: unseal_key.map(|k| k.expose().to_owned()).unwrap_or_default(),
            ..status(String::new(), old.len())
        })
    }
}

/// Every token's accessor, policy and creation time.
pub fn list_tokens(keyspace: &crate::keyspace::Keyspace) -> Result<pb::ListTokensResponse, ArcaError> {
    let tokens = keyspace
        .tokens()?
        .into_iter()
        .map(|t| pb::TokenInfo {
            accessor: t.record.accessor,
            policy: t.record.policy,
            create_time: Some(prost_types::Timestamp { seconds: t.record.created, nanos: 0 }),
        })
        .collect();
    Ok(pb::ListTokensResponse { tokens })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_counts_follow_init_rules() {
        assert_eq!(counts(0, 0), Ok((5, 3)));
        assert_eq!(counts(1, 1), Ok((1, 1)));
        assert_eq!(counts(16, 16), Ok((16, 16)));
        assert_eq!(counts(2, 0), Ok((2, 2)));
        for (s, t) in [(17, 3), (3, 4), (3, 1)] {
            assert!(counts(s, t).is_err(), "{s} {t}");
        }
    }
}
