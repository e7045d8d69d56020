//! Every vault and secret rule, driven through `decide` and `read` against the in-memory model.

use arca_core::mem_view::MemView;
use arca_core::read;
use arca_core::*;
use arca_types::{ErrorCode, ObjectName, SecretString, VaultName, VersionId};

const DAY: i64 = 86_400;
const T0: i64 = 1_800_000_000;

struct World {
    view: MemView,
    now: i64,
    next_id: u8,
}

impl World {
    fn new() -> Self {
        Self { view: MemView::default(), now: T0, next_id: 0 }
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

    fn version(&mut self) -> VersionId {
        self.next_id += 1;
        VersionId::from_bytes([self.next_id; 16])
    }

    fn create_vault(&mut self, name: &str, retention: u32, protection: bool) -> Result<Outcome, ErrorCode> {
        self.next_id += 1;
        let id = [self.next_id; 16];
        self.run(Command::CreateVault {
            name: vault(name),
            id,
            sku: Sku::Standard,
            retention_days: retention,
            purge_protection: protection,
            tags: Tags::new(),
        })
    }

    fn set(&mut self, v: &str, n: &str, value: &str) -> Result<VersionId, ErrorCode> {
        let version = self.version();
        self.run(set_cmd(v, n, version.clone(), value))?;
        Ok(version)
    }

    fn get(&self, v: &str, n: &str) -> Result<String, ErrorCode> {
        read::get_secret(&self.view, &vault(v), &name(n), None)
            .map(|s| s.version.value.expose().to_owned())
            .map_err(|e| e.code)
    }
}

fn vault(s: &str) -> VaultName {
    VaultName::parse(s).unwrap()
}

fn name(s: &str) -> ObjectName {
    ObjectName::parse("name", s).unwrap()
}

fn set_cmd(v: &str, n: &str, version: VersionId, value: &str) -> Command {
    Command::SetSecret {
        vault: vault(v),
        name: name(n),
        version,
        value: SecretString::new(value.to_owned()),
        content_type: None,
        tags: Tags::new(),
        enabled: true,
        not_before: None,
        expires: None,
    }
}

#[test]
fn vault_names_are_unique_even_when_deleted() {
    let mut w = World::new();
    w.create_vault("team-a", 90, false).unwrap();
    assert_eq!(w.create_vault("TEAM-A", 90, false).unwrap_err(), ErrorCode::VaultAlreadyExists);
    w.run(Command::DeleteVault { name: vault("team-a") }).unwrap();
    assert_eq!(w.create_vault("team-a", 90, false).unwrap_err(), ErrorCode::VaultAlreadyExists);
    w.run(Command::PurgeVault { name: vault("team-a") }).unwrap();
    w.create_vault("team-a", 90, false).unwrap();
}

#[test]
fn retention_is_bounded_and_recovery_level_follows() {
    let mut w = World::new();
    assert_eq!(w.create_vault("vault6", 6, false).unwrap_err(), ErrorCode::BadParameter);
    assert_eq!(w.create_vault("vault91", 91, false).unwrap_err(), ErrorCode::BadParameter);
    for (n, days, prot, level) in [
        ("vault7", 7, false, RecoveryLevel::CustomizedRecoverablePurgeable),
        ("vault89", 89, true, RecoveryLevel::CustomizedRecoverable),
        ("vault90", 90, false, RecoveryLevel::RecoverablePurgeable),
        ("vault90p", 90, true, RecoveryLevel::Recoverable),
    ] {
        let Outcome::Vault(v) = w.create_vault(n, days, prot).unwrap() else { panic!() };
        assert_eq!(v.recovery_level(), level);
    }
}

#[test]
fn purge_protection_turns_on_never_off() {
    let mut w = World::new();
    w.create_vault("vault", 90, false).unwrap();
    let upd = |p| Command::UpdateVault { name: vault("vault"), tags: None, purge_protection: Some(p) };
    w.run(upd(true)).unwrap();
    assert_eq!(w.run(upd(false)).unwrap_err(), ErrorCode::BadParameter);
    assert!(read::get_vault(&w.view, &vault("vault")).unwrap().purge_protection);
}

#[test]
fn vault_delete_recover_purge() {
    let mut w = World::new();
    w.create_vault("vault", 30, false).unwrap();
    w.set("vault", "s", "v1").unwrap();
    assert_eq!(w.run(Command::RecoverVault { name: vault("vault") }).unwrap_err(), ErrorCode::VaultNotFound);
    assert_eq!(w.run(Command::PurgeVault { name: vault("vault") }).unwrap_err(), ErrorCode::VaultNotFound);
    let Outcome::Vault(v) = w.run(Command::DeleteVault { name: vault("vault") }).unwrap() else { panic!() };
    assert_eq!(v.deleted.unwrap().scheduled_purge_at, T0 + 30 * DAY);
    assert_eq!(w.get("vault", "s").unwrap_err(), ErrorCode::VaultNotFound);
    assert_eq!(read::get_deleted_vault(&w.view, &vault("vault")).unwrap().name, vault("vault"));
    w.run(Command::RecoverVault { name: vault("vault") }).unwrap();
    assert_eq!(w.get("vault", "s").unwrap(), "v1", "recovering a vault restores its secrets");
    w.run(Command::DeleteVault { name: vault("vault") }).unwrap();
    w.run(Command::PurgeVault { name: vault("vault") }).unwrap();
    assert_eq!(w.view.version_count(), 0, "purging a vault removes every secret version");
    assert!(w.view.purge_index.is_empty());
}

#[test]
fn every_set_makes_a_new_version_and_latest_wins() {
    let mut w = World::new();
    w.create_vault("vault", 90, false).unwrap();
    let v1 = w.set("vault", "db", "one").unwrap();
    let v2 = w.set("vault", "DB", "two").unwrap();
    assert_ne!(v1, v2);
    assert_eq!(w.get("vault", "db").unwrap(), "two");
    let old = read::get_secret(&w.view, &vault("vault"), &name("db"), Some(&v1)).unwrap();
    assert_eq!(old.version.value.expose(), "one");
    assert_eq!(old.secret.name.as_str(), "db", "the first creator's casing is kept");
    let (_, _, versions) = read::secret_versions(&w.view, &vault("vault"), &name("db")).unwrap();
    assert_eq!(versions.len(), 2);
    let missing = VersionId::from_bytes([0xee; 16]);
    assert_eq!(
        read::get_secret(&w.view, &vault("vault"), &name("db"), Some(&missing)).unwrap_err().code,
        ErrorCode::SecretNotFound
    );
}

#[test]
fn value_limit_and_limit_plus_one() {
    let mut w = World::new();
    w.create_vault("vault", 90, false).unwrap();
    w.set("vault", "big", &"x".repeat(25_600)).unwrap();
    assert_eq!(w.set("vault", "big", &"x".repeat(25_601)).unwrap_err(), ErrorCode::BadParameter);
    let (_, _, versions) = read::secret_versions(&w.view, &vault("vault"), &name("big")).unwrap();
    assert_eq!(versions.len(), 1, "a refused set changes nothing");
}

#[test]
fn sixteen_tags_and_long_content_type_are_refused() {
    let mut w = World::new();
    w.create_vault("vault", 90, false).unwrap();
    let version = w.version();
    let mut cmd = set_cmd("vault", "s", version, "v");
    if let Command::SetSecret { tags, .. } = &mut cmd {
        *tags = (0..16).map(|i| (format!("k{i}"), "v".into())).collect();
    }
    assert_eq!(w.run(cmd.clone()).unwrap_err(), ErrorCode::BadParameter);
    if let Command::SetSecret { tags, content_type, .. } = &mut cmd {
        tags.clear();
        *content_type = Some("c".repeat(256));
    }
    assert_eq!(w.run(cmd).unwrap_err(), ErrorCode::BadParameter);
    assert_eq!(w.get("vault", "s").unwrap_err(), ErrorCode::SecretNotFound);
}

#[test]
fn update_changes_attributes_not_value() {
    let mut w = World::new();
    w.create_vault("vault", 90, false).unwrap();
    w.set("vault", "s", "value").unwrap();
    w.now += 10;
    let upd = Command::UpdateSecret {
        vault: vault("vault"),
        name: name("s"),
        version: None,
        content_type: Some(Some("text/plain".into())),
        tags: Some([("env".to_owned(), "prod".to_owned())].into()),
        enabled: Some(false),
        not_before: None,
        expires: Some(Some(T0 + DAY)),
    };
    let Outcome::Secret { version, .. } = w.run(upd).unwrap() else { panic!() };
    assert_eq!(version.attributes.updated, T0 + 10);
    assert_eq!(version.attributes.created, T0);
    assert_eq!(version.content_type.as_deref(), Some("text/plain"));
    assert_eq!(w.get("vault", "s").unwrap_err(), ErrorCode::SecretDisabled, "a disabled secret hides its value");
    let meta = read::secret_metadata(&w.view, &vault("vault"), &name("s"), None).unwrap();
    assert!(!meta.version.attributes.enabled, "metadata of a disabled secret is still readable");
    let bad_window = Command::UpdateSecret {
        vault: vault("vault"),
        name: name("s"),
        version: None,
        content_type: None,
        tags: None,
        enabled: None,
        not_before: Some(Some(T0 + 2 * DAY)),
        expires: None,
    };
    assert_eq!(w.run(bad_window).unwrap_err(), ErrorCode::BadParameter);
}

#[test]
fn expired_secret_is_still_readable() {
    let mut w = World::new();
    w.create_vault("vault", 90, false).unwrap();
    let version = w.version();
    let mut cmd = set_cmd("vault", "s", version, "value");
    if let Command::SetSecret { expires, .. } = &mut cmd {
        *expires = Some(T0 - 1);
    }
    w.run(cmd).unwrap();
    assert_eq!(w.get("vault", "s").unwrap(), "value", "nbf/exp are informational for secrets");
}

#[test]
fn soft_delete_table_for_secrets() {
    let mut w = World::new();
    w.create_vault("vault", 7, false).unwrap();
    let v1 = w.set("vault", "s", "one").unwrap();
    w.set("vault", "s", "two").unwrap();
    let del = || Command::DeleteSecret { vault: vault("vault"), name: name("s") };
    let rec = || Command::RecoverSecret { vault: vault("vault"), name: name("s") };
    let purge = || Command::PurgeSecret { vault: vault("vault"), name: name("s") };
    // Active: recover and purge are 404.
    assert_eq!(w.run(rec()).unwrap_err(), ErrorCode::SecretNotFound);
    assert_eq!(w.run(purge()).unwrap_err(), ErrorCode::SecretNotFound);
    let Outcome::Secret { secret, .. } = w.run(del()).unwrap() else { panic!() };
    assert_eq!(secret.deleted.unwrap().scheduled_purge_at, T0 + 7 * DAY);
    // Deleted: reads and writes are refused, the name is held.
    assert_eq!(w.get("vault", "s").unwrap_err(), ErrorCode::SecretNotFound);
    assert_eq!(w.run(del()).unwrap_err(), ErrorCode::SecretNotFound);
    assert_eq!(w.set("vault", "s", "three").unwrap_err(), ErrorCode::ObjectIsDeletedButRecoverable);
    assert_eq!(read::get_deleted_secret(&w.view, &vault("vault"), &name("s")).unwrap().version.value.expose(), "two");
    let listed = read::list_secrets(&w.view, &vault("vault"), true, None, 25).unwrap();
    assert_eq!(listed.items.len(), 1);
    // Recover brings back every version with the same ids.
    w.run(rec()).unwrap();
    assert_eq!(w.get("vault", "s").unwrap(), "two");
    let old = read::get_secret(&w.view, &vault("vault"), &name("s"), Some(&v1)).unwrap();
    assert_eq!(old.version.value.expose(), "one");
    // Delete then purge frees the name.
    w.run(del()).unwrap();
    w.run(purge()).unwrap();
    assert_eq!(w.run(purge()).unwrap_err(), ErrorCode::SecretNotFound);
    assert_eq!(w.view.version_count(), 0);
    w.set("vault", "s", "fresh").unwrap();
    assert!(w.view.purge_index.is_empty(), "recover and purge leave no purge schedule behind");
}

#[test]
fn purge_protection_blocks_purge_until_retention_ends() {
    let mut w = World::new();
    w.create_vault("vault", 7, true).unwrap();
    w.set("vault", "s", "v").unwrap();
    w.run(Command::DeleteSecret { vault: vault("vault"), name: name("s") }).unwrap();
    let purge = || Command::PurgeSecret { vault: vault("vault"), name: name("s") };
    assert_eq!(w.run(purge()).unwrap_err(), ErrorCode::PurgeProtected);
    w.now += 7 * DAY;
    w.run(purge()).unwrap();
}

#[test]
fn scheduled_purge_happens_by_itself_once_due() {
    let mut w = World::new();
    w.create_vault("vault", 7, true).unwrap();
    w.set("vault", "s", "v").unwrap();
    w.run(Command::DeleteSecret { vault: vault("vault"), name: name("s") }).unwrap();
    let (at, target) = w.view.purge_index[0].clone();
    assert_eq!(
        w.run(Command::PurgeDue { target: target.clone(), scheduled_purge_at: at }).unwrap_err(),
        ErrorCode::BadParameter
    );
    w.now = at;
    w.run(Command::PurgeDue { target: target.clone(), scheduled_purge_at: at }).unwrap();
    assert_eq!(w.view.version_count(), 0);
    assert!(w.view.purge_index.is_empty());
    // A stale entry (already purged) is simply dropped.
    w.run(Command::PurgeDue { target, scheduled_purge_at: at }).unwrap();
}

#[test]
fn restore_needs_a_free_name_and_keeps_version_ids() {
    let mut w = World::new();
    w.create_vault("vault", 90, false).unwrap();
    w.create_vault("other", 90, false).unwrap();
    let v1 = w.set("vault", "s", "one").unwrap();
    w.set("vault", "s", "two").unwrap();
    let (secret, versions) = read::backup_secret(&w.view, &vault("vault"), &name("s")).unwrap();
    let restore =
        |v: &str| Command::RestoreSecret { vault: vault(v), name: secret.name.clone(), versions: versions.clone() };
    assert_eq!(w.run(restore("vault")).unwrap_err(), ErrorCode::Conflict);
    w.run(restore("other")).unwrap();
    let old = read::get_secret(&w.view, &vault("other"), &name("s"), Some(&v1)).unwrap();
    assert_eq!(old.version.value.expose(), "one");
    w.run(Command::DeleteSecret { vault: vault("vault"), name: name("s") }).unwrap();
    assert_eq!(w.run(restore("vault")).unwrap_err(), ErrorCode::ObjectIsDeletedButRecoverable);
    w.run(Command::PurgeSecret { vault: vault("vault"), name: name("s") }).unwrap();
    w.run(restore("vault")).unwrap();
    w.create_vault("third", 90, false).unwrap();
    let mut twice = versions.clone();
    twice.push(versions[0].clone());
    for bad in [twice, Vec::new()] {
        let cmd = Command::RestoreSecret { vault: vault("third"), name: secret.name.clone(), versions: bad };
        assert_eq!(w.run(cmd).unwrap_err(), ErrorCode::BadParameter);
    }
    assert_eq!(w.get("third", "s").unwrap_err(), ErrorCode::SecretNotFound, "a refused restore changes nothing");
}

#[test]
fn the_version_index_keeps_creation_order_and_a_purge_clears_it() {
    let mut w = World::new();
    w.create_vault("vault", 90, false).unwrap();
    let first = w.set("vault", "s", "v0").unwrap();
    let mut ids = vec![first];
    for i in 1..60 {
        ids.push(w.set("vault", "s", &format!("v{i}")).unwrap());
    }
    let (_, secret, versions) = read::secret_versions(&w.view, &vault("vault"), &name("s")).unwrap();
    assert_eq!(secret.version_count, 60);
    assert_eq!(versions.iter().map(|v| v.version.clone()).collect::<Vec<_>>(), ids, "creation order");
    // Purged and made again, the name starts a fresh index.
    w.run(Command::DeleteSecret { vault: vault("vault"), name: name("s") }).unwrap();
    w.run(Command::PurgeSecret { vault: vault("vault"), name: name("s") }).unwrap();
    assert_eq!(w.view.version_count(), 0);
    let again = w.set("vault", "s", "again").unwrap();
    let (_, secret, versions) = read::secret_versions(&w.view, &vault("vault"), &name("s")).unwrap();
    assert_eq!((secret.version_count, versions.len()), (1, 1));
    assert_eq!(versions[0].version, again);
    assert!(read::get_secret(&w.view, &vault("vault"), &name("s"), Some(&ids[0])).is_err(), "purged versions are gone");
}

#[test]
fn operations_on_missing_vaults_and_secrets_are_not_found() {
    let mut w = World::new();
    assert_eq!(w.set("nowhere", "s", "v").unwrap_err(), ErrorCode::VaultNotFound);
    w.create_vault("vault", 90, false).unwrap();
    assert_eq!(w.get("vault", "s").unwrap_err(), ErrorCode::SecretNotFound);
    assert_eq!(
        w.run(Command::DeleteSecret { vault: vault("vault"), name: name("s") }).unwrap_err(),
        ErrorCode::SecretNotFound
    );
    assert_eq!(w.run(Command::DeleteVault { name: vault("nowhere") }).unwrap_err(), ErrorCode::VaultNotFound);
}

#[test]
fn listing_pages_through_everything() {
    let mut w = World::new();
    w.create_vault("vault", 90, false).unwrap();
    for i in 0..7 {
        w.set("vault", &format!("s{i}"), "v").unwrap();
    }
    let mut seen = 0;
    let mut cursor: Option<Vec<u8>> = None;
    loop {
        let page = read::list_secrets(&w.view, &vault("vault"), false, cursor.as_deref(), 3).unwrap();
        seen += page.items.len();
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, 7);
}

#[test]
fn a_set_decided_again_after_it_applied_answers_the_same_and_changes_nothing() {
    let mut w = World::new();
    w.create_vault("kvault", 7, false).unwrap();
    let version = w.version();
    let first = w.run(set_cmd("kvault", "s", version.clone(), "one")).unwrap();
    let again = decide(&w.view, &set_cmd("kvault", "s", version.clone(), "one"), w.now).unwrap();
    assert!(again.mutations.is_empty(), "a replay changes nothing");
    assert_eq!(again.outcome, first, "a replay answers what the first decision answered");
    assert_eq!(w.run(set_cmd("kvault", "s", version, "two")), Err(ErrorCode::Conflict), "another value is refused");
    // A replay is answered even after the secret was deleted since: the write did happen.
    let version = w.version();
    w.run(set_cmd("kvault", "t", version.clone(), "v")).unwrap();
    w.run(Command::DeleteSecret { vault: vault("kvault"), name: name("t") }).unwrap();
    assert!(w.run(set_cmd("kvault", "t", version, "v")).is_ok());
}

#[test]
fn a_secret_takes_versions_up_to_its_limit_and_not_one_more() {
    use arca_types::limits::SECRET_VERSIONS_MAX;
    let mut w = World::new();
    w.create_vault("many", 7, false).unwrap();
    for i in 0..SECRET_VERSIONS_MAX as u128 {
        let version = VersionId::from_bytes((i + 1_000_000).to_be_bytes());
        w.run(set_cmd("many", "s", version, "v")).unwrap();
    }
    let over = VersionId::from_bytes(u128::MAX.to_be_bytes());
    assert_eq!(w.run(set_cmd("many", "s", over, "v")).unwrap_err(), ErrorCode::BadParameter);
    assert_eq!(w.get("many", "s").unwrap(), "v");
}

/// Sets of one secret decided as a batch (each against the secret as the ones before it left it, all
/// applied together) give the answers and the state that deciding and applying them one at a time
/// gives: new versions, a retry of one of them (the same minted version id), a reuse of an id with
/// another value, a set refused for its content type, and the first set of a secret creating it.
#[test]
fn a_batch_of_sets_decides_as_the_sets_one_at_a_time() {
    for existing in [true, false] {
        let mut w = World::new();
        w.create_vault("batch", 90, false).unwrap();
        if existing {
            let v = w.version();
            w.run(set_cmd("batch", "hot", v, "before")).unwrap();
        }
        let ids: Vec<VersionId> = (0..4).map(|_| w.version()).collect();
        let mut too_long = set_cmd("batch", "HOT", w.version(), "refused");
        if let Command::SetSecret { content_type, .. } = &mut too_long {
            *content_type = Some("x".repeat(arca_types::limits::CONTENT_TYPE_CHARS_MAX + 1));
        }
        let commands = [
            set_cmd("batch", "hot", ids[0].clone(), "one"),
            set_cmd("batch", "Hot", ids[1].clone(), "two"),
            set_cmd("batch", "hot", ids[0].clone(), "one"),
            too_long,
            set_cmd("batch", "hot", ids[1].clone(), "not two"),
            set_cmd("BATCH", "hot", ids[2].clone(), "three"),
            set_cmd("batch", "hot", ids[3].clone(), "four"),
        ];
        let mut one_by_one = World { view: w.view.clone(), now: w.now, next_id: w.next_id };
        let expected: Vec<_> = commands.iter().map(|c| one_by_one.run(c.clone())).collect();
        let refs: Vec<&Command> = commands.iter().collect();
        let decided = decide_sets(&w.view, &refs, w.now);
        let mut answers = Vec::new();
        for d in decided {
            match d {
                Ok(d) => {
                    w.view.apply(&d.mutations);
                    answers.push(Ok(d.outcome));
                }
                Err(e) => answers.push(Err(e.code)),
            }
        }
        assert_eq!(answers, expected, "existing secret: {existing}");
        assert_eq!(format!("{:?}", w.view), format!("{:?}", one_by_one.view), "existing secret: {existing}");
        assert_eq!(answers.iter().filter(|a| a.is_ok()).count(), 5);
    }
    // A batch holds sets of one secret only.
    let w = World::new();
    let one = set_cmd("batch", "a", VersionId::from_bytes([1; 16]), "1");
    let other = set_cmd("batch", "b", VersionId::from_bytes([2; 16]), "2");
    let decided = decide_sets(&w.view, &[&one, &other], w.now);
    assert_eq!(decided[1].as_ref().err().map(|e| e.code), Some(ErrorCode::Internal));
}
