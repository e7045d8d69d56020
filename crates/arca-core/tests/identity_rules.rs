//! The rules of principals, credentials, groups, custom roles and role assignments, driven through
//! `decide` against the in-memory model.

use arca_core::identity::*;
use arca_core::mem_view::MemView;
use arca_core::*;
use arca_rbac::role::{KEY_VAULT_READER, KEY_VAULT_SECRETS_USER};
use arca_rbac::Scope;
use arca_types::limits::{
    BOUND_CLAIMS_MAX, BOUND_CLAIM_NAME_CHARS_MAX, BOUND_CLAIM_VALUES_MAX, CREDENTIAL_LIFETIME_S_MAX, SECONDS_PER_DAY,
};
use arca_types::{DisplayName, ErrorCode, VaultName};

const T0: i64 = 1_800_000_000;

struct World {
    view: MemView,
    now: i64,
    next: u8,
}

impl World {
    fn new() -> Self {
        Self { view: MemView::default(), now: T0, next: 0 }
    }

    fn id(&mut self) -> [u8; 16] {
        self.next += 1;
        [self.next; 16]
    }

    fn run(&mut self, cmd: Command) -> Result<Outcome, ErrorCode> {
        match decide(&self.view, &cmd, self.now) {
            Ok(d) => {
                self.view.apply(&d.mutations);
                Ok(d.outcome)
            }
            Err(e) => Err(e.code),
        }
    }

    fn principal(&mut self, kind: PrincipalKind, name: &str) -> Result<PrincipalId, ErrorCode> {
        let id = self.id();
        let app_id = kind.is_application().then(|| self.id());
        let name = DisplayName::parse("name", name).map_err(|e| e.code)?;
        self.run(Command::CreatePrincipal { id, kind, name, app_id, credential: None })?;
        Ok(id)
    }

    fn secret(&mut self, days: i64) -> Credential {
        let key_id = self.id();
        Credential {
            key_id,
            kind: CredentialKind::Secret { hash: [key_id[0]; 32], hint: "abc".into() },
            start: self.now,
            end: self.now + days * SECONDS_PER_DAY,
        }
    }

    fn vault(&mut self, name: &str) {
        let id = self.id();
        self.run(Command::CreateVault {
            name: VaultName::parse(name).unwrap(),
            id,
            sku: Sku::Standard,
            retention_days: 7,
            purge_protection: false,
            tags: Tags::new(),
        })
        .unwrap();
    }

    fn assign(&mut self, principal: PrincipalId, role: &str, scope: &str) -> Result<[u8; 16], ErrorCode> {
        let id = self.id();
        self.run(Command::CreateRoleAssignment {
            id,
            principal,
            role_id: role.into(),
            scope: Scope::parse(scope).unwrap(),
        })?;
        Ok(id)
    }

    fn record(&self, id: &PrincipalId) -> PrincipalRecord {
        self.view.principal(id).unwrap().unwrap()
    }
}

#[test]
fn display_names_are_unique_by_their_normalised_key() {
    let mut w = World::new();
    w.principal(PrincipalKind::ServicePrincipal, "Payments API").unwrap();
    for same in ["payments api", "  PAYMENTS   API ", "Pаyments API"] {
        assert_eq!(w.principal(PrincipalKind::User, same), Err(ErrorCode::Conflict), "{same}");
    }
    assert!(w.principal(PrincipalKind::Group, "Payments API team").is_ok());
    assert_eq!(w.principal(PrincipalKind::User, "Root"), Err(ErrorCode::BadParameter));
}

#[test]
fn secrets_rotate_with_overlap_of_two_and_reset_replaces_them() {
    let mut w = World::new();
    let sp = w.principal(PrincipalKind::ServicePrincipal, "app").unwrap();
    let (a, b, c) = (w.secret(30), w.secret(30), w.secret(30));
    w.run(Command::ResetCredential { principal: sp, credential: a.clone(), append: false }).unwrap();
    w.run(Command::ResetCredential { principal: sp, credential: b.clone(), append: true }).unwrap();
    assert_eq!(w.record(&sp).credentials.len(), 2);
    assert_eq!(
        w.run(Command::ResetCredential { principal: sp, credential: c.clone(), append: true }),
        Err(ErrorCode::Conflict),
        "a third unexpired secret"
    );
    w.run(Command::DeleteCredential { principal: sp, key_id: a.key_id }).unwrap();
    w.run(Command::ResetCredential { principal: sp, credential: c.clone(), append: true }).unwrap();
    assert_eq!(w.record(&sp).credentials.iter().map(|c| c.key_id).collect::<Vec<_>>(), vec![b.key_id, c.key_id]);
    // An expired one does not count, and goes.
    w.now += 31 * SECONDS_PER_DAY;
    let d = w.secret(30);
    w.run(Command::ResetCredential { principal: sp, credential: d.clone(), append: true }).unwrap();
    assert_eq!(w.record(&sp).credentials.iter().map(|c| c.key_id).collect::<Vec<_>>(), vec![d.key_id]);
    // Without --append, a reset replaces every secret.
    let e = w.secret(30);
    let f = w.secret(30);
    w.run(Command::ResetCredential { principal: sp, credential: f, append: true }).unwrap();
    w.run(Command::ResetCredential { principal: sp, credential: e.clone(), append: false }).unwrap();
    assert_eq!(w.record(&sp).credentials.iter().map(|c| c.key_id).collect::<Vec<_>>(), vec![e.key_id]);
}

#[test]
fn credential_lifetimes_at_the_limit_and_one_second_past_it() {
    let mut w = World::new();
    let sp = w.principal(PrincipalKind::ServicePrincipal, "app").unwrap();
    let mut credential = w.secret(1);
    credential.end = credential.start + CREDENTIAL_LIFETIME_S_MAX;
    w.run(Command::ResetCredential { principal: sp, credential: credential.clone(), append: false }).unwrap();
    credential.end += 1;
    assert_eq!(
        w.run(Command::ResetCredential { principal: sp, credential, append: false }),
        Err(ErrorCode::BadParameter)
    );
    let mut past = w.secret(1);
    past.end = w.now;
    assert_eq!(
        w.run(Command::ResetCredential { principal: sp, credential: past, append: false }),
        Err(ErrorCode::BadParameter)
    );
    // Only service principals hold credentials.
    let user = w.principal(PrincipalKind::User, "alice").unwrap();
    let credential = w.secret(1);
    assert_eq!(
        w.run(Command::ResetCredential { principal: user, credential, append: false }),
        Err(ErrorCode::BadParameter)
    );
}

#[test]
fn assignments_are_unique_need_a_live_vault_and_go_with_their_principal_or_vault() {
    let mut w = World::new();
    w.vault("one");
    w.vault("two");
    let sp = w.principal(PrincipalKind::ServicePrincipal, "app").unwrap();
    let kept = w.assign(sp, KEY_VAULT_SECRETS_USER, "/vaults/one").unwrap();
    assert_eq!(w.assign(sp, KEY_VAULT_SECRETS_USER, "/vaults/ONE"), Err(ErrorCode::RoleAssignmentExists));
    w.assign(sp, KEY_VAULT_SECRETS_USER, "/vaults/one/secrets/db").unwrap();
    w.assign(sp, KEY_VAULT_READER, "/vaults/two").unwrap();
    assert_eq!(w.assign(sp, KEY_VAULT_READER, "/vaults/three"), Err(ErrorCode::VaultNotFound));
    assert_eq!(w.assign(sp, "00000000-0000-0000-0000-000000000000", "/"), Err(ErrorCode::RoleDefinitionNotFound));
    assert_eq!(w.assign([9; 16], KEY_VAULT_READER, "/"), Err(ErrorCode::PrincipalNotFound));
    assert_eq!(w.view.assignments_of(&sp).unwrap().len(), 3);

    // Deleting vault one removes the two assignments within it, not the one on vault two.
    w.run(Command::DeleteVault { name: VaultName::parse("one").unwrap() }).unwrap();
    let left = w.view.assignments_of(&sp).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].scope, Scope::parse("/vaults/two").unwrap());
    assert!(w.view.assignment(&kept).unwrap().is_none());
    w.run(Command::RecoverVault { name: VaultName::parse("one").unwrap() }).unwrap();
    assert_eq!(w.view.assignments_of(&sp).unwrap().len(), 1, "recovery does not bring assignments back");

    // Deleting the principal removes the rest.
    w.run(Command::DeletePrincipal { id: sp }).unwrap();
    assert!(w.view.assignments(None, 100).unwrap().items.is_empty());
    assert_eq!(w.run(Command::DeletePrincipal { id: sp }), Err(ErrorCode::PrincipalNotFound));
}

#[test]
fn groups_hold_members_without_nesting_and_deleting_either_side_cleans_up() {
    let mut w = World::new();
    let group = w.principal(PrincipalKind::Group, "readers").unwrap();
    let other = w.principal(PrincipalKind::Group, "writers").unwrap();
    let user = w.principal(PrincipalKind::User, "alice").unwrap();
    w.run(Command::SetGroupMember { group, member: user, add: true }).unwrap();
    w.run(Command::SetGroupMember { group, member: user, add: true }).unwrap();
    assert_eq!((w.record(&group).members.clone(), w.record(&user).groups.clone()), (vec![user], vec![group]));
    assert_eq!(w.run(Command::SetGroupMember { group, member: other, add: true }), Err(ErrorCode::BadParameter));
    assert_eq!(w.run(Command::SetGroupMember { group: user, member: user, add: true }), Err(ErrorCode::BadParameter));
    w.run(Command::DeletePrincipal { id: group }).unwrap();
    assert!(w.record(&user).groups.is_empty());
}

#[test]
fn a_custom_role_in_use_cannot_be_deleted_and_names_stay_unique() {
    let mut w = World::new();
    w.vault("one");
    let json = r#"{"Name": "Secret Lister", "DataActions": ["Microsoft.KeyVault/vaults/secrets/readMetadata/action"],
                   "AssignableScopes": ["/vaults/one"]}"#;
    let role = arca_rbac::role::parse_custom(json, "11111111-1111-1111-1111-111111111111").unwrap();
    w.run(Command::PutRoleDefinition { role: role.clone(), update: false }).unwrap();
    assert_eq!(w.run(Command::PutRoleDefinition { role: role.clone(), update: false }), Err(ErrorCode::Conflict));
    let mut twin = role.clone();
    twin.id = "22222222-2222-2222-2222-222222222222".into();
    twin.name = "secret lister".into();
    assert_eq!(w.run(Command::PutRoleDefinition { role: twin, update: false }), Err(ErrorCode::Conflict));
    let sp = w.principal(PrincipalKind::ServicePrincipal, "app").unwrap();
    assert_eq!(w.assign(sp, &role.id, "/"), Err(ErrorCode::BadParameter), "outside its assignable scopes");
    let assignment = w.assign(sp, &role.id, "/vaults/one").unwrap();
    assert_eq!(
        w.run(Command::DeleteRoleDefinition { id: role.id.clone() }),
        Err(ErrorCode::RoleDefinitionHasAssignments)
    );
    w.run(Command::DeleteRoleAssignment { id: assignment }).unwrap();
    w.run(Command::DeleteRoleDefinition { id: role.id.clone() }).unwrap();
    assert_eq!(w.run(Command::DeleteRoleDefinition { id: KEY_VAULT_READER.into() }), Err(ErrorCode::BadParameter));
}

#[test]
fn revoking_a_principals_tokens_moves_its_generation_on_whatever_the_clock_says() {
    let mut w = World::new();
    let sp = w.principal(PrincipalKind::ServicePrincipal, "app").unwrap();
    w.run(Command::RevokePrincipalTokens { principal: sp }).unwrap();
    assert_eq!(w.record(&sp).token_generation, 1);
    w.now -= 100;
    w.run(Command::RevokePrincipalTokens { principal: sp }).unwrap();
    assert_eq!(w.record(&sp).token_generation, 2, "a clock that went back changes nothing");
}

fn certificate(w: &mut World, start: i64, days: i64) -> Credential {
    let key_id = w.id();
    Credential {
        key_id,
        kind: CredentialKind::Certificate { thumbprint_sha256: [key_id[0]; 32], spki_der: vec![key_id[0]; 8] },
        start,
        end: start + days * SECONDS_PER_DAY,
    }
}

#[test]
fn revoking_a_credential_ends_what_was_won_with_it_and_appending_does_not() {
    let mut w = World::new();
    let sp = w.principal(PrincipalKind::ServicePrincipal, "app").unwrap();
    let (a, b, c) = (w.secret(30), w.secret(30), w.secret(30));
    w.run(Command::ResetCredential { principal: sp, credential: a.clone(), append: false }).unwrap();
    let generation = w.record(&sp).token_generation;
    w.run(Command::ResetCredential { principal: sp, credential: b, append: true }).unwrap();
    assert_eq!(w.record(&sp).token_generation, generation, "adding a secret for rotation revokes nothing");
    w.run(Command::DeleteCredential { principal: sp, key_id: a.key_id }).unwrap();
    assert_eq!(w.record(&sp).token_generation, generation + 1, "a deleted secret's tokens go with it");
    w.run(Command::ResetCredential { principal: sp, credential: c, append: false }).unwrap();
    assert_eq!(w.record(&sp).token_generation, generation + 2, "a replaced secret's tokens go with it");
}

#[test]
fn an_agent_enrolls_once_and_keeps_only_its_newest_certificate_beside_the_new_one() {
    let mut w = World::new();
    let agent = w.principal(PrincipalKind::Agent, "host").unwrap();
    let secret = w.secret(1);
    w.run(Command::ResetCredential { principal: agent, credential: secret, append: false }).unwrap();
    let generation = w.record(&agent).token_generation;
    let first = certificate(&mut w, T0, 1);
    w.run(Command::RegisterAgentCertificate { agent, credential: first.clone() }).unwrap();
    let record = w.record(&agent);
    assert!(record.credentials.iter().all(|c| !c.is_secret()), "enrolling removes the secret");
    assert_eq!(record.token_generation, generation + 1, "and every token won with it");
    // The same certificate again (a retry) changes nothing.
    w.run(Command::RegisterAgentCertificate { agent, credential: first.clone() }).unwrap();
    assert_eq!(w.record(&agent).credentials, vec![first.clone()]);
    // Rotations: the newest old one stays, older ones go at once, long before they expire.
    w.now += 60;
    let second = {
        let now = w.now;
        certificate(&mut w, now, 1)
    };
    w.run(Command::RegisterAgentCertificate { agent, credential: second.clone() }).unwrap();
    w.now += 60;
    let third = {
        let now = w.now;
        certificate(&mut w, now, 1)
    };
    w.run(Command::RegisterAgentCertificate { agent, credential: third.clone() }).unwrap();
    let record = w.record(&agent);
    assert_eq!(record.credentials, vec![second, third]);
    assert_eq!(record.token_generation, generation + 1, "a rotation does not end the agent's session");
    // Only an agent registers its own certificates; only a managed identity is bound to an agent.
    let sp = w.principal(PrincipalKind::ServicePrincipal, "app").unwrap();
    let cert = {
        let now = w.now;
        certificate(&mut w, now, 1)
    };
    assert_eq!(
        w.run(Command::RegisterAgentCertificate { agent: sp, credential: cert }),
        Err(ErrorCode::ForbiddenByRbac)
    );
    let mi = w.principal(PrincipalKind::ManagedIdentity, "job").unwrap();
    let binding = |w: &mut World, to: PrincipalId| Credential {
        key_id: w.id(),
        kind: CredentialKind::AgentBinding { agent: to, uid: Some(1000), executable: None },
        start: w.now,
        end: w.now + SECONDS_PER_DAY,
    };
    let to_sp = binding(&mut w, sp);
    assert_eq!(
        w.run(Command::ResetCredential { principal: mi, credential: to_sp, append: true }),
        Err(ErrorCode::BadParameter)
    );
    let bound = binding(&mut w, agent);
    assert_eq!(
        w.run(Command::ResetCredential { principal: sp, credential: bound.clone(), append: true }),
        Err(ErrorCode::BadParameter)
    );
    w.run(Command::ResetCredential { principal: mi, credential: bound, append: true }).unwrap();
    let secret = w.secret(1);
    assert_eq!(
        w.run(Command::ResetCredential { principal: mi, credential: secret, append: true }),
        Err(ErrorCode::BadParameter),
        "a managed identity holds no secret"
    );
}

fn federated(w: &mut World, issuer: &str, subject: &str, audiences: &[&str], jwks: &str) -> Credential {
    let key_id = w.id();
    Credential {
        key_id,
        kind: CredentialKind::Federated {
            name: format!("cred-{}", key_id[0]),
            issuer: issuer.into(),
            subject: subject.into(),
            audiences: audiences.iter().map(|a| a.to_string()).collect(),
            jwks: jwks.into(),
        },
        start: w.now,
        end: w.now + CREDENTIAL_LIFETIME_S_MAX,
    }
}

#[test]
fn a_sign_in_name_stands_for_one_user_and_a_provider_group_for_one_group() {
    const IDP: &str = "https://idp.example";
    let mut w = World::new();
    let alice = w.principal(PrincipalKind::User, "alice").unwrap();
    let twin = w.principal(PrincipalKind::User, "alice twin").unwrap();
    let readers = w.principal(PrincipalKind::Group, "readers").unwrap();
    let others = w.principal(PrincipalKind::Group, "others").unwrap();
    let add = |w: &mut World, principal, c: Credential| {
        w.run(Command::ResetCredential { principal, credential: c, append: true }).map(|_| ())
    };
    // A user's keys come by discovery (no JWKS) from an https issuer, or from a JWKS given.
    let c = federated(&mut w, IDP, "alice", &["arca"], "");
    add(&mut w, alice, c).unwrap();
    let c = federated(&mut w, IDP, "alice", &["arca"], "");
    assert_eq!(add(&mut w, twin, c), Err(ErrorCode::Conflict), "one user per issuer and subject");
    let c = federated(&mut w, "http://idp.example", "twin", &["arca"], "");
    assert_eq!(add(&mut w, twin, c), Err(ErrorCode::BadParameter), "discovery needs https");
    let c = federated(&mut w, "https://", "twin", &["arca"], "");
    assert_eq!(add(&mut w, twin, c), Err(ErrorCode::BadParameter), "discovery needs a host");
    let c = federated(&mut w, IDP, "twin", &[], "");
    assert_eq!(add(&mut w, twin, c), Err(ErrorCode::BadParameter), "a user's sign-in names its audience");
    // A group stands for one value of the groups claim, with no audience and no keys of its own.
    let c = federated(&mut w, IDP, "readers", &[], "");
    add(&mut w, readers, c).unwrap();
    let c = federated(&mut w, IDP, "readers", &[], "");
    assert_eq!(add(&mut w, others, c), Err(ErrorCode::Conflict));
    let c = federated(&mut w, IDP, "others", &["arca"], "");
    assert_eq!(add(&mut w, others, c), Err(ErrorCode::BadParameter));
    let c = federated(&mut w, IDP, "others", &[], "{\"keys\":[]}");
    assert_eq!(add(&mut w, others, c), Err(ErrorCode::BadParameter));
    // The same name at a user and at a group is no clash (they are looked up by kind).
    let c = federated(&mut w, IDP, "readers", &["arca"], "");
    add(&mut w, twin, c).unwrap();
    // Once the holder lets the name go, another may take it.
    let listed = w.view.principal(&alice).unwrap().unwrap().credentials[0].key_id;
    w.run(Command::DeleteCredential { principal: alice, key_id: listed }).unwrap();
    let c = federated(&mut w, IDP, "alice", &["arca"], "");
    add(&mut w, twin, c).unwrap();
    // An agent signs in with its certificate only.
    let agent = w.principal(PrincipalKind::Agent, "agent").unwrap();
    let c = federated(&mut w, IDP, "agent", &["arca"], "");
    assert_eq!(add(&mut w, agent, c), Err(ErrorCode::BadParameter));
}

#[test]
fn bound_claims_are_limited_and_never_rebind_what_the_credential_binds() {
    const IDP: &str = "https://idp.example";
    let mut w = World::new();
    let sp = w.principal(PrincipalKind::ServicePrincipal, "ci").unwrap();
    let group = w.principal(PrincipalKind::Group, "readers").unwrap();
    let bound = |pairs: &[(&str, usize)]| -> Vec<BoundClaim> {
        pairs
            .iter()
            .map(|(claim, n)| BoundClaim {
                claim: claim.to_string(),
                values: (0..*n).map(|i| format!("v{i}")).collect(),
            })
            .collect()
    };
    let mut n = 0u32;
    let mut add = |w: &mut World, principal, claims: Vec<BoundClaim>, audiences: Vec<String>| {
        n += 1;
        let credential = Credential {
            key_id: w.id(),
            kind: CredentialKind::Federation(Box::new(FederatedTrust {
                name: format!("cred-{n}"),
                issuer: IDP.into(),
                subject: format!("subject-{n}"),
                audiences,
                jwks: String::new(),
                claims,
            })),
            start: w.now,
            end: w.now + SECONDS_PER_DAY,
        };
        w.run(Command::ResetCredential { principal, credential, append: true }).map(|_| ())
    };
    let aud = || vec!["api://ArcaTokenExchange".to_owned()];
    let names: Vec<String> = (0..17).map(|i| format!("c{i}")).collect();
    let at = |k: usize| names[..k].iter().map(|c| (c.as_str(), 1)).collect::<Vec<_>>();
    add(&mut w, sp, bound(&at(BOUND_CLAIMS_MAX)), aud()).unwrap();
    assert_eq!(add(&mut w, sp, bound(&at(BOUND_CLAIMS_MAX + 1)), aud()), Err(ErrorCode::BadParameter));
    add(&mut w, sp, bound(&[("repo", BOUND_CLAIM_VALUES_MAX)]), aud()).unwrap();
    assert_eq!(add(&mut w, sp, bound(&[("repo", BOUND_CLAIM_VALUES_MAX + 1)]), aud()), Err(ErrorCode::BadParameter));
    assert_eq!(add(&mut w, sp, bound(&[("repo", 0)]), aud()), Err(ErrorCode::BadParameter));
    let empty = vec![BoundClaim { claim: "repo".into(), values: vec![String::new()] }];
    assert_eq!(
        add(&mut w, sp, empty, aud()),
        Err(ErrorCode::BadParameter),
        "an empty value would match an empty claim"
    );
    for reserved in ["iss", "sub", "aud", "exp", "/sub", "nbf", "iat", ""] {
        assert_eq!(add(&mut w, sp, bound(&[(reserved, 1)]), aud()), Err(ErrorCode::BadParameter), "{reserved:?}");
    }
    assert_eq!(add(&mut w, sp, bound(&[("repo", 1), ("repo", 1)]), aud()), Err(ErrorCode::BadParameter));
    let long = "x".repeat(BOUND_CLAIM_NAME_CHARS_MAX);
    add(&mut w, sp, bound(&[(long.as_str(), 1)]), aud()).unwrap();
    let longer = "x".repeat(BOUND_CLAIM_NAME_CHARS_MAX + 1);
    assert_eq!(add(&mut w, sp, bound(&[(longer.as_str(), 1)]), aud()), Err(ErrorCode::BadParameter));
    let big = vec![BoundClaim { claim: "big".into(), values: vec!["y".repeat(600); 14] }];
    assert_eq!(add(&mut w, sp, big, aud()), Err(ErrorCode::BadParameter), "more than 8 KiB in all");
    assert_eq!(add(&mut w, group, bound(&[("repo", 1)]), vec![]), Err(ErrorCode::BadParameter), "not for a group");
}
