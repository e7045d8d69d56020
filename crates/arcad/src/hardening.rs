//! What `arcad` does to its own process before it holds any key: no core dumps, not dumpable (no
//! ptrace attach or `/proc/<pid>/mem` reads by other processes of the same user), and memory locked so
//! keys are never written to swap; and enough file descriptors for every connection its listeners
//! accept. What could not be done is reported, with what to change.

use std::fmt;

use arca_types::limits::{API_CONNECTIONS_MAX, CLUSTER_CONNECTIONS_MAX};

/// Whether memory locking is attempted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MlockMode {
    /// Lock when the process may (root, or an unlimited `RLIMIT_MEMLOCK`).
    Auto,
    /// Lock or refuse to start.
    On,
    /// Never lock (keys may reach swap).
    Off,
}

/// What hardening achieved.
pub struct Report {
    pub core_dumps: Result<(), String>,
    pub not_dumpable: Result<(), String>,
    pub memory_locked: Result<(), String>,
    pub file_descriptors: Result<u64, String>,
}

impl Report {
    /// Whether every measure took.
    pub fn all_done(&self) -> bool {
        self.core_dumps.is_ok()
            && self.not_dumpable.is_ok()
            && self.memory_locked.is_ok()
            && self.file_descriptors.is_ok()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |r: &Result<(), String>| match r {
            Ok(()) => "yes".to_owned(),
            Err(why) => format!("NO ({why})"),
        };
        write!(
            f,
            "core dumps off: {}; not dumpable: {}; memory locked: {}; file descriptors: {}",
            show(&self.core_dumps),
            show(&self.not_dumpable),
            show(&self.memory_locked),
            match &self.file_descriptors {
                Ok(n) => n.to_string(),
                Err(why) => format!("TOO FEW ({why})"),
            }
        )
    }
}

fn memlock_unlimited() -> bool {
    rlimit::getrlimit(rlimit::Resource::MEMLOCK).is_ok_and(|(soft, _)| soft == rlimit::INFINITY)
}

/// Hardens this process. Fails only when `mlock` is `On` and memory could not be locked.
pub fn harden(mlock: MlockMode) -> Result<Report, String> {
    let core_dumps = rlimit::setrlimit(rlimit::Resource::CORE, 0, 0).map_err(|e| e.to_string());
    let not_dumpable = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .map_err(|e| e.to_string());
    let may_lock = rustix::process::geteuid().is_root() || memlock_unlimited();
    let memory_locked = match mlock {
        MlockMode::Off => Err("turned off with --mlock off".to_owned()),
        MlockMode::Auto if !may_lock => {
            Err("RLIMIT_MEMLOCK is limited and arcad is not root: run as root, give it CAP_IPC_LOCK with an unlimited \
             memlock limit, or pass --mlock off to accept the risk"
                .to_owned())
        }
        MlockMode::Auto | MlockMode::On => {
            use rustix::mm::MlockAllFlags;
            // ONFAULT: pages are locked as they are touched, so the process does not grow by locking.
            rustix::mm::mlockall(MlockAllFlags::CURRENT | MlockAllFlags::FUTURE | MlockAllFlags::ONFAULT)
                .map_err(|e| format!("mlockall failed: {e}"))
        }
    };
    if mlock == MlockMode::On {
        if let Err(why) = &memory_locked {
            return Err(format!("--mlock on, but memory could not be locked: {why}"));
        }
    }
    Ok(Report { core_dumps, not_dumpable, memory_locked, file_descriptors: raise_file_descriptors() })
}

/// File descriptors arcad wants: every connection both listeners hold, and as many again for RocksDB,
/// the audit log and outgoing channels.
const FILE_DESCRIPTORS_WANTED: u64 = 2 * (API_CONNECTIONS_MAX + CLUSTER_CONNECTIONS_MAX) as u64;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (systemd and most shells start services at 1,024),
/// and says so if even that is fewer than arcad wants.
fn raise_file_descriptors() -> Result<u64, String> {
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).map_err(|e| e.to_string())?;
    let soft = if soft < hard {
        rlimit::setrlimit(rlimit::Resource::NOFILE, hard, hard).map_err(|e| e.to_string())?;
        hard
    } else {
        soft
    };
    if soft < FILE_DESCRIPTORS_WANTED {
        return Err(format!(
            "{soft}, fewer than the {FILE_DESCRIPTORS_WANTED} the listeners may need: raise the hard RLIMIT_NOFILE \
             (LimitNOFILE= in a systemd unit)"
        ));
    }
    Ok(soft)
}
