//! Identity on the request path: the cluster's token keys, issuing access tokens at the token
//! endpoint, and turning a presented access token into a caller.

use arca_core::identity::{parse_uuid, PrincipalId, PrincipalKind, PrincipalRecord};
use arca_crypto::cluster_pki::Ed25519Key;
use arca_crypto::Entropy;
use arca_identity::access_token::{self, AccessClaims, TokenKey, TOKEN_VERSION};
use arca_identity::AuthMethod;
use arca_rbac::RoleDefinition;
use arca_storage::Op;
use arca_types::{ArcaError, ErrorCode};

use crate::access::{Identity, Principal};
use crate::keyspace::Keyspace;

fn unauthorized(why: &str) -> ArcaError {
    ArcaError::new(ErrorCode::Unauthorized, format!("{why}; get a new one (arca login, or the token endpoint)"))
}

/// The public token keys, newest last.
pub fn token_keys(keyspace: &Keyspace) -> Result<Vec<TokenKey>, ArcaError> {
    keyspace.token_keys()
}

/// The name this cluster's tokens are issued by and for.
pub fn issuer(keyspace: &Keyspace) -> Result<String, ArcaError> {
    let (_, cluster) = crate::membership::cluster_record(keyspace.store())?
        .ok_or_else(|| ArcaError::unavailable("this node does not know its cluster yet; retry"))?;
    Ok(access_token::issuer(&cluster.cluster_id))
}

/// The writes that give a cluster its first token key: the private key under the barrier, the
/// public one in the clear.
pub fn new_token_key(keyspace: &Keyspace, entropy: &dyn Entropy) -> Result<Vec<Op>, ArcaError> {
    let key = Ed25519Key::generate(entropy);
    Ok(vec![keyspace.put_token_signing_key(key.pkcs8_der())?, keyspace.put_token_keys(&[TokenKey::of(&key)])?])
}

/// An access token just signed.
pub struct Issued {
    pub token: String,
    pub expires: i64,
    /// Its accessor (the first half of its id), as audit records name it.
    pub accessor: String,
}

/// What an access token is issued for.
pub struct Grant<'a> {
    pub principal: &'a PrincipalRecord,
    pub method: AuthMethod,
    /// In seconds from now.
    pub lifetime: i64,
    /// The certificate (its SHA-256) the token is bound to, for a sign-in over mutual TLS.
    pub bound_to: Option<&'a [u8; 32]>,
    /// Arca groups a provider's groups claim made the principal a member of (a user's sign-in).
    pub external_groups: &'a [PrincipalId],
}

/// Signs an access token for `grant`, valid from `now`.
pub fn issue(keyspace: &Keyspace, grant: Grant<'_>, now: i64, entropy: &dyn Entropy) -> Result<Issued, ArcaError> {
    let Grant { principal, method, lifetime, bound_to, external_groups } = grant;
    let der = keyspace
        .token_signing_key()?
        .ok_or_else(|| ArcaError::unavailable("the cluster has no token key yet; retry"))?;
    let key = Ed25519Key::from_pkcs8(&der).map_err(|e| ArcaError::internal(format!("the token key: {e}")))?;
    let issuer = issuer(keyspace)?;
    let expires = now.saturating_add(lifetime);
    let jti = entropy.bytes16();
    let claims = AccessClaims {
        iss: issuer.clone(),
        aud: issuer,
        sub: arca_core::identity::uuid(&principal.id),
        appid: principal.app_id.as_ref().map(arca_core::identity::uuid),
        idtyp: principal.kind.azure_name().to_owned(),
        amr: vec![method],
        iat: now,
        nbf: now,
        exp: expires,
        jti: arca_core::identity::uuid(&jti),
        gen: principal.token_generation,
        ver: TOKEN_VERSION.to_owned(),
        cnf: bound_to.map(|thumbprint| arca_identity::Confirmation { x5t_s256: thumbprint_text(thumbprint) }),
        grp: external_groups.iter().map(arca_core::identity::uuid).collect(),
    };
    Ok(Issued { token: access_token::issue(&key, &claims), expires, accessor: hex::encode(&jti[..8]) })
}

/// The caller an access token names: its signature, issuer, audience and lifetime check out, its
/// principal still exists, and neither it nor every token of its principal was revoked.
/// A certificate thumbprint as `x5t#S256` writes it: base64url without padding.
pub fn thumbprint_text(thumbprint: &[u8; 32]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(thumbprint)
}

/// The caller an access token names (see below), on a connection that presented the certificate
/// `presented` (its SHA-256), if any: a token bound to a certificate is refused on any other.
pub fn principal_of_access_token(
    keyspace: &Keyspace,
    token: &str,
    presented: Option<&[u8; 32]>,
    now: i64,
) -> Result<Principal, ArcaError> {
    let claims = access_token::verify(token, &token_keys(keyspace)?, &issuer(keyspace)?, now).map_err(|e| {
        tracing::debug!("an access token was refused: {e}");
        unauthorized("the token is not valid")
    })?;
    let id = parse_uuid("sub", &claims.sub).map_err(|_| unauthorized("the token is not valid"))?;
    let jti = parse_uuid("jti", &claims.jti).map_err(|_| unauthorized("the token is not valid"))?;
    let record = keyspace.principal(&id)?.ok_or_else(|| unauthorized("the token's principal no longer exists"))?;
    if claims.gen != record.token_generation || keyspace.access_token_revoked(&jti)? {
        return Err(unauthorized("the token was revoked"));
    }
    if let Some(cnf) = &claims.cnf {
        let shown = presented.map(thumbprint_text);
        let same =
            shown.as_deref().is_some_and(|s| arca_crypto::constant_time_eq(s.as_bytes(), cnf.x5t_s256.as_bytes()));
        if !same {
            return Err(unauthorized(
                "the token is bound to a client certificate this connection did not present; call over mutual TLS \
                 with that certificate",
            ));
        }
    }
    let method = *claims.amr.first().ok_or_else(|| unauthorized("the token is not valid"))?;
    // Groups the provider's groups claim gave count while the group still stands for a group of a
    // provider the user signs in through: deleting the group's link, or the user's, ends them on
    // the next request.
    let issuers: Vec<&str> = record.discovered_issuers_at(now).collect();
    let mut groups = record.groups.clone();
    for group in &claims.grp {
        let group = parse_uuid("grp", group).map_err(|_| unauthorized("the token is not valid"))?;
        if groups.contains(&group) {
            continue;
        }
        let linked = keyspace
            .principal(&group)?
            .is_some_and(|g| g.kind == PrincipalKind::Group && g.linked_to_any_at(&issuers, now));
        if linked {
            groups.push(group);
        }
    }
    Ok(Principal {
        accessor: hex::encode(&jti[..8]),
        identity: Identity::Principal { id, kind: record.kind, groups, app_id: record.app_id, method },
    })
}

/// A role by id: built-in, or custom from the replica.
pub fn role(keyspace: &Keyspace, id: &str) -> Option<RoleDefinition> {
    match arca_rbac::role::find_built_in(id) {
        Some(r) if r.id.eq_ignore_ascii_case(id) => Some(r.clone()),
        _ => keyspace.custom_role(&id.to_ascii_lowercase()).ok().flatten(),
    }
}
