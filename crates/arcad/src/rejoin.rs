//! A node that a newer lineage displaced (its region lost the primary role while it was down) files
//! its divergence with the new leader (`arca_server::divergence`) and is handed a join token. The
//! process then writes the plan to `rejoin.plan` in its data dir (mode 0600, synced) and starts
//! itself again with the same command line. At that start, before anything is opened, the old
//! node's state (`db/`, `snapshots/`, `cluster-tls/`) is moved into `displaced-epoch-<n>/` once,
//! and the node joins the new lineage's cluster with the token, under a new node id, as a replica of
//! the region that now leads; once it holds its new id the plan is removed. The old state is kept,
//! never deleted: what the record could not hold (beyond its size limit) is still there. (Starting
//! again runs the same program file: after an upgrade that replaced it, the start fails and the node
//! needs starting by hand, or by its supervisor, once; the plan then does the rest.)

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use arca_server::divergence::Rejoin;
use arca_server::JoinPlan;

/// The plan a displaced node leaves for its next start.
pub const PLAN_FILE: &str = "rejoin.plan";
/// What the old node's state is made of in a data dir.
const OLD_STATE: [&str; 3] = ["db", "snapshots", "cluster-tls"];

fn plan_path(data_dir: &Path) -> PathBuf {
    data_dir.join(PLAN_FILE)
}

/// Writes `rejoin` as the plan for the next start: readable by its owner alone, synced.
pub fn write_plan(data_dir: &Path, rejoin: &Rejoin) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |e: std::io::Error| format!("failed to write the rejoin plan: {e}");
    let tmp = data_dir.join(format!("{PLAN_FILE}.new"));
    let mut file =
        std::fs::OpenOptions::new().create(true).write(true).truncate(true).mode(0o600).open(&tmp).map_err(fail)?;
    file.write_all(format!("{}\n{}\n{}\n", rejoin.epoch, rejoin.peer, rejoin.token).as_bytes()).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    std::fs::rename(&tmp, plan_path(data_dir)).map_err(fail)?;
    std::fs::File::open(data_dir).and_then(|d| d.sync_all()).map_err(fail)
}

/// At start: when a plan waits, sets the old state aside (once per epoch: a crash half way resumes)
/// and returns the join it asks for.
pub fn take_plan(data_dir: &Path) -> Result<Option<JoinPlan>, String> {
    let text = match std::fs::read_to_string(plan_path(data_dir)) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("failed to read the rejoin plan: {e}")),
    };
    let corrupt =
        || format!("the rejoin plan {} is corrupt: remove it to start as before", plan_path(data_dir).display());
    let mut lines = text.lines();
    let epoch: u64 = lines.next().and_then(|l| l.parse().ok()).ok_or_else(corrupt)?;
    let peer = lines.next().filter(|l| !l.is_empty()).ok_or_else(corrupt)?.to_owned();
    let token = lines.next().filter(|l| !l.is_empty()).ok_or_else(corrupt)?.to_owned();
    let aside = data_dir.join(format!("displaced-epoch-{epoch}"));
    if !aside.exists() {
        let fail = |e: std::io::Error| format!("failed to set the displaced node's state aside: {e}");
        let partial = data_dir.join(format!("displaced-epoch-{epoch}.partial"));
        std::fs::create_dir_all(&partial).map_err(fail)?;
        for name in OLD_STATE {
            let from = data_dir.join(name);
            if from.exists() {
                std::fs::rename(&from, partial.join(name)).map_err(fail)?;
            }
        }
        std::fs::File::open(&partial).and_then(|d| d.sync_all()).map_err(fail)?;
        std::fs::rename(&partial, &aside).map_err(fail)?;
        std::fs::File::open(data_dir).and_then(|d| d.sync_all()).map_err(fail)?;
        tracing::warn!(
            epoch,
            aside = %aside.display(),
            "this node was displaced by a newer lineage: its old state is set aside; joining the new one"
        );
    }
    Ok(Some(JoinPlan { peer, token }))
}

/// Removes the plan once the node holds its new id: the token in it is spent, and a later start
/// must not join again (nor take `--bootstrap` for a join).
pub fn forget_plan(data_dir: &Path) -> Result<(), String> {
    match std::fs::remove_file(plan_path(data_dir)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("failed to remove the spent rejoin plan: {e}")),
    }
}

/// Replaces this process with a new start of the same command line. Returns only if that fails.
pub fn restart() -> String {
    match std::env::current_exe() {
        Ok(exe) => format!(
            "failed to start again: {}",
            std::process::Command::new(exe).args(std::env::args_os().skip(1)).exec()
        ),
        Err(e) => format!("failed to find this program to start it again: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_sets_the_old_state_aside_once_and_asks_for_the_join() {
        let dir = std::env::temp_dir().join(format!("arcad-rejoin-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("db")).unwrap();
        std::fs::write(dir.join("db").join("CURRENT"), b"old").unwrap();
        std::fs::create_dir_all(dir.join("cluster-tls")).unwrap();
        assert!(take_plan(&dir).unwrap().is_none(), "no plan: nothing moves");
        assert!(dir.join("db").exists());
        let rejoin = Rejoin { epoch: 2, peer: "127.0.0.1:9404".into(), token: "arca-join-x".into() };
        write_plan(&dir, &rejoin).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(dir.join(PLAN_FILE)).unwrap().permissions().mode() & 0o777, 0o600);
        let plan = take_plan(&dir).unwrap().unwrap();
        assert!(dir.join("displaced-epoch-2").is_dir() && !dir.join("displaced-epoch-2.partial").exists());
        assert_eq!((plan.peer.as_str(), plan.token.as_str()), ("127.0.0.1:9404", "arca-join-x"));
        assert!(!dir.join("db").exists() && !dir.join("cluster-tls").exists());
        assert_eq!(std::fs::read(dir.join("displaced-epoch-2/db/CURRENT")).unwrap(), b"old");
        // The new node's state, made after the move, stays where it is on the next start.
        std::fs::create_dir_all(dir.join("db")).unwrap();
        assert!(take_plan(&dir).unwrap().is_some());
        assert!(dir.join("db").exists());
        forget_plan(&dir).unwrap();
        assert!(take_plan(&dir).unwrap().is_none(), "a spent plan is gone");
        forget_plan(&dir).unwrap();
        std::fs::write(dir.join(PLAN_FILE), b"2\n").unwrap();
        assert!(take_plan(&dir).unwrap_err().contains("corrupt"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
