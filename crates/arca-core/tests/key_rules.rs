//! The key rules against the in-memory model: versions, key_ops, HSM on premium only, soft delete,
//! restore, rotation policies with Azure's minimums, and lifetime actions on driven time.

use arca_core::decide::keys::{due_actions, validate_policy};
use arca_core::mem_view::MemView;
use arca_core::read;
use arca_core::*;
use arca_types::keys::{Curve, KeyOp, KeySpec};
use arca_types::limits::KEY_VERSIONS_MAX;
use arca_types::{ErrorCode, ObjectName, SecretBytes, VaultName, VersionId};

const DAY: i64 = 86_400;
const T0: i64 = 1_800_000_000;

struct World {
    view: MemView,
    now: i64,
    next_id: u8,
}

fn vault(s: &str) -> VaultName {
    VaultName::parse(s).unwrap()
}

fn name(s: &str) -> ObjectName {
    ObjectName::parse("name", s).unwrap()
}

impl World {
    fn new(sku: Sku) -> Self {
        let mut w = Self { view: MemView::default(), now: T0, next_id: 0 };
        w.run(Command::CreateVault {
            name: vault("vault"),
            id: [200; 16],
            sku,
            retention_days: 7,
            purge_protection: false,
            tags: Tags::new(),
        })
        .unwrap();
        w
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

    fn create(&mut self, n: &str, spec: KeySpec, hsm: bool, ops: Option<Vec<KeyOp>>) -> Result<VersionId, ErrorCode> {
        self.next_id += 1;
        let version = VersionId::from_bytes([self.next_id; 16]);
        self.run(Command::CreateKey {
            vault: vault("vault"),
            name: name(n),
            version: version.clone(),
            spec,
            hsm,
            material: SecretBytes::new(vec![self.next_id; 40]),
            key_ops: ops,
            tags: Tags::new(),
            enabled: true,
            not_before: None,
            expires: None,
            rotate_from: None,
        })?;
        Ok(version)
    }

    fn rotate(&mut self, n: &str, from: &VersionId) -> Result<KeyVersionRecord, ErrorCode> {
        self.next_id += 1;
        let latest = read::get_key(&self.view, &vault("vault"), &name(n), None).map_err(|e| e.code)?.version;
        match self.run(Command::CreateKey {
            vault: vault("vault"),
            name: name(n),
            version: VersionId::from_bytes([self.next_id; 16]),
            spec: latest.spec,
            hsm: latest.hsm,
            material: SecretBytes::new(vec![self.next_id; 40]),
            key_ops: Some(latest.key_ops.clone()),
            tags: latest.tags.clone(),
            enabled: true,
            not_before: None,
            expires: None,
            rotate_from: Some(from.clone()),
        })? {
            Outcome::Key { version, .. } => Ok(version),
            other => panic!("unexpected {other:?}"),
        }
    }
}

const RSA: KeySpec = KeySpec::Rsa { bits: 2048 };

#[test]
fn create_makes_versions_and_defaults_key_ops_by_type() {
    let mut w = World::new(Sku::Standard);
    let v1 = w.create("k", RSA, false, None).unwrap();
    let v2 = w.create("k", RSA, false, None).unwrap();
    let got = read::get_key(&w.view, &vault("vault"), &name("k"), None).unwrap();
    assert_eq!(got.version.version, v2);
    let vault_rec = read::get_vault(&w.view, &vault("vault")).unwrap();
    assert_eq!(read::version_ids(&w.view, ObjectKind::Key, &vault_rec, &got.key).unwrap(), vec![v1.clone(), v2]);
    assert_eq!(got.version.key_ops, RSA.default_ops());
    assert!(!got.version.key_ops.contains(&KeyOp::Import));
    let ec = KeySpec::Ec(Curve::P256);
    w.create("e", ec, false, None).unwrap();
    assert_eq!(
        read::get_key(&w.view, &vault("vault"), &name("e"), None).unwrap().version.key_ops,
        vec![KeyOp::Sign, KeyOp::Verify]
    );
    assert_eq!(w.create("bad", ec, false, Some(vec![KeyOp::Encrypt])), Err(ErrorCode::BadParameter));
    assert_eq!(w.create("bad", KeySpec::Rsa { bits: 1024 }, false, None), Err(ErrorCode::BadParameter));
    // Secrets and keys have separate namespaces.
    assert!(read::get_secret(&w.view, &vault("vault"), &name("k"), None).is_err());
}

#[test]
fn hsm_keys_need_a_premium_vault() {
    let mut standard = World::new(Sku::Standard);
    assert_eq!(standard.create("h", RSA, true, None), Err(ErrorCode::BadParameter));
    let mut premium = World::new(Sku::Premium);
    premium.create("h", RSA, true, None).unwrap();
    assert!(read::get_key(&premium.view, &vault("vault"), &name("h"), None).unwrap().version.hsm);
}

#[test]
fn update_changes_ops_and_attributes_but_never_material() {
    let mut w = World::new(Sku::Standard);
    let v1 = w.create("k", RSA, false, None).unwrap();
    let before = read::get_key(&w.view, &vault("vault"), &name("k"), None).unwrap().version;
    let update = |ops: Option<Vec<KeyOp>>, enabled| Command::UpdateKey {
        vault: vault("vault"),
        name: name("k"),
        version: Some(v1.clone()),
        key_ops: ops,
        tags: None,
        enabled,
        not_before: None,
        expires: Some(Some(T0 + DAY)),
    };
    w.run(update(Some(vec![KeyOp::Sign]), Some(false))).unwrap();
    let after = read::get_key(&w.view, &vault("vault"), &name("k"), None).unwrap().version;
    assert_eq!(after.key_ops, vec![KeyOp::Sign]);
    assert!(!after.attributes.enabled);
    assert_eq!(after.material, before.material);
    assert_eq!(w.run(update(Some(vec![KeyOp::Sign, KeyOp::Import]), None)), Err(ErrorCode::BadParameter));
}

#[test]
fn soft_delete_recover_purge_and_restore() {
    let mut w = World::new(Sku::Standard);
    w.create("k", RSA, false, None).unwrap();
    w.create("k", RSA, false, None).unwrap();
    let (header, versions, policy) = read::backup_key(&w.view, &vault("vault"), &name("k")).unwrap();
    let del = || Command::DeleteKey { vault: vault("vault"), name: name("k") };
    w.run(del()).unwrap();
    assert_eq!(read::get_key(&w.view, &vault("vault"), &name("k"), None).unwrap_err().code, ErrorCode::KeyNotFound);
    assert!(read::get_deleted_key(&w.view, &vault("vault"), &name("k")).is_ok());
    assert_eq!(w.create("k", RSA, false, None), Err(ErrorCode::ObjectIsDeletedButRecoverable));
    w.run(Command::RecoverKey { vault: vault("vault"), name: name("k") }).unwrap();
    w.run(del()).unwrap();
    w.run(Command::PurgeKey { vault: vault("vault"), name: name("k") }).unwrap();
    assert!(read::get_deleted_key(&w.view, &vault("vault"), &name("k")).is_err());
    let restore = Command::RestoreKey { vault: vault("vault"), name: header.name, versions: versions.clone(), policy };
    w.run(restore.clone()).unwrap();
    assert_eq!(read::key_versions(&w.view, &vault("vault"), &name("k")).unwrap().len(), 2);
    assert_eq!(w.run(restore), Err(ErrorCode::Conflict));
}

/// A restore brings back at most as many versions as a key may have: a backup blob is sealed by the
/// cluster, but its contents are checked like any other input.
#[test]
fn a_key_restore_takes_up_to_its_version_limit_and_not_one_more() {
    let mut w = World::new(Sku::Standard);
    w.create("k", RSA, false, None).unwrap();
    let (_, versions, policy) = read::backup_key(&w.view, &vault("vault"), &name("k")).unwrap();
    let many = |n: usize| {
        (0..n)
            .map(|i| {
                let mut v = versions[0].clone();
                v.version = VersionId::parse(&format!("{i:032x}")).unwrap();
                v
            })
            .collect::<Vec<_>>()
    };
    let restore = |n: usize, name: &str| Command::RestoreKey {
        vault: vault("vault"),
        name: ObjectName::parse("name", name).unwrap(),
        versions: many(n),
        policy: policy.clone(),
    };
    assert_eq!(w.run(restore(KEY_VERSIONS_MAX + 1, "over")), Err(ErrorCode::BadParameter));
    assert!(read::get_key(&w.view, &vault("vault"), &name("over"), None).is_err(), "a refusal changes nothing");
    w.run(restore(KEY_VERSIONS_MAX, "at")).unwrap();
    assert_eq!(read::key_versions(&w.view, &vault("vault"), &name("at")).unwrap().len(), KEY_VERSIONS_MAX);
}

#[test]
fn the_sweeper_purges_deleted_keys_when_due() {
    let mut w = World::new(Sku::Standard);
    w.create("k", RSA, false, None).unwrap();
    w.run(Command::DeleteKey { vault: vault("vault"), name: name("k") }).unwrap();
    let (at, target) = w.view.purge_index[0].clone();
    w.now = at;
    w.run(Command::PurgeDue { target, scheduled_purge_at: at }).unwrap();
    assert!(read::get_deleted_key(&w.view, &vault("vault"), &name("k")).is_err());
    assert_eq!(w.view.version_count(), 0);
}

fn policy(actions: Vec<LifetimeAction>, expiry: Option<i64>) -> RotationPolicy {
    RotationPolicy { lifetime_actions: actions, expiry_time: expiry, created: 0, updated: 0 }
}

fn rotate_after(d: i64) -> LifetimeAction {
    LifetimeAction { trigger: Trigger::AfterCreate(d), action: LifetimeActionType::Rotate }
}

fn notify_before(d: i64) -> LifetimeAction {
    LifetimeAction { trigger: Trigger::BeforeExpiry(d), action: LifetimeActionType::Notify }
}

#[test]
fn rotation_policy_minimums_at_the_limit_and_past_it() {
    assert!(validate_policy(&policy(vec![rotate_after(7 * DAY)], None)).is_ok());
    assert!(validate_policy(&policy(vec![rotate_after(7 * DAY - 1)], None)).is_err());
    assert!(validate_policy(&policy(vec![], Some(28 * DAY))).is_ok());
    assert!(validate_policy(&policy(vec![], Some(28 * DAY - 1))).is_err());
    // A rotation must land at least 7 days before expiry.
    assert!(validate_policy(&policy(vec![rotate_after(83 * DAY)], Some(90 * DAY))).is_ok());
    assert!(validate_policy(&policy(vec![rotate_after(83 * DAY + 1)], Some(90 * DAY))).is_err());
    assert!(validate_policy(&policy(vec![rotate_after(8 * DAY), rotate_after(9 * DAY)], None)).is_err());
    let notify_after = LifetimeAction { trigger: Trigger::AfterCreate(30 * DAY), action: LifetimeActionType::Notify };
    assert!(validate_policy(&policy(vec![notify_after], None)).is_err());
}

#[test]
fn lifetime_actions_fire_on_driven_time() {
    let mut w = World::new(Sku::Standard);
    let v1 = w.create("k", RSA, false, None).unwrap();
    let p = policy(vec![rotate_after(30 * DAY), notify_before(10 * DAY)], Some(90 * DAY));
    w.run(Command::SetRotationPolicy { vault: vault("vault"), name: name("k"), policy: p }).unwrap();
    let due_at = |w: &World, now: i64| {
        let record = read::get_policy(&w.view, &vault("vault"), &name("k")).unwrap();
        let latest = read::get_key(&w.view, &vault("vault"), &name("k"), None).unwrap().version;
        due_actions(&record, &latest, now)
    };
    assert!(!due_at(&w, T0 + 30 * DAY - 1).rotate);
    assert!(due_at(&w, T0 + 30 * DAY).rotate);
    w.now = T0 + 30 * DAY;
    let rotated = w.rotate("k", &v1).unwrap();
    // The rotated version expires expiry_time after its creation, and keeps the key's type and ops.
    assert_eq!(rotated.attributes.expires, Some(w.now + 90 * DAY));
    assert_eq!((rotated.spec, rotated.key_ops.clone()), (RSA, RSA.default_ops()));
    assert!(!due_at(&w, w.now + DAY).rotate);
    // A second rotation from the old version loses: someone else rotated first.
    assert_eq!(w.rotate("k", &v1).unwrap_err(), ErrorCode::Conflict);
    // Notify fires 10 days before the new version expires, once.
    let exp = rotated.attributes.expires.unwrap();
    assert!(!due_at(&w, exp - 10 * DAY - 1).notify);
    assert!(due_at(&w, exp - 10 * DAY).notify);
    w.run(Command::MarkKeyNotified { vault: vault("vault"), name: name("k"), version: rotated.version.clone() })
        .unwrap();
    assert!(!due_at(&w, exp - 10 * DAY).notify);
}

#[test]
fn policy_durations_are_bounded_and_never_overflow() {
    use arca_types::limits::POLICY_DURATION_S_MAX;
    assert!(validate_policy(&policy(vec![], Some(POLICY_DURATION_S_MAX))).is_ok());
    assert!(validate_policy(&policy(vec![], Some(POLICY_DURATION_S_MAX + 1))).is_err());
    assert!(validate_policy(&policy(vec![], Some(i64::MAX))).is_err());
    assert!(validate_policy(&policy(vec![rotate_after(POLICY_DURATION_S_MAX - 8 * DAY)], None)).is_ok());
    assert!(validate_policy(&policy(vec![rotate_after(POLICY_DURATION_S_MAX + 1)], None)).is_err());
    assert!(validate_policy(&policy(vec![notify_before(i64::MAX)], Some(30 * DAY))).is_err());
}
