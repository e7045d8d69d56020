//! Deliberate faults, so the simulation can prove its checkers catch real bugs.
//!
//! Every switch is compiled in only with the `danger-faults` feature, which no normal build enables;
//! without it [`active`] is a constant `false` and the code paths behind it vanish. The switches are
//! process-wide: the simulation runs one seed at a time in one thread and sets them before a run, and
//! an `arcad` built with its danger-faults feature takes them from a hidden `--danger-fault` flag.

/// A bug that can be switched on in Arca itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// The leader answers a write as soon as it has proposed it, before a quorum has committed it.
    AckBeforeCommit,
    /// Linearizable reads are served from the local replica without a ReadIndex round.
    ReadWithoutReadIndex,
    /// The Raft vote is written without fsync, so a crash can make a node forget whom it voted for.
    SkipVoteFsync,
    /// Bounded-staleness reads on a node that believes it leads are served from its replica however
    /// long ago a quorum last heard from it (the bug of a partitioned ex-leader).
    StaleLeaderReads,
    /// A node joining as a voter stops after it was added as a learner, as if it crashed before it
    /// asked to be promoted (for the test that it resumes after a restart).
    JoinStopsAfterLearner,
    /// Not a bug but a test hook: the leader logs every forwarded envelope it receives (barrier
    /// ciphertext, hex) so the replay test can send a captured one again.
    LogForwardedEnvelopes,
    /// Not a bug but a test hook: every call's deadline is [`SHORT_REQUEST_DURATION_MS`] instead of
    /// [`crate::limits::REQUEST_DURATION_S_MAX`], so a test can watch the deadline cut a call.
    ShortRequestDeadline,
    /// Raft log entries are appended without fsync and reported durable at once, so an entry can be
    /// committed, applied and acknowledged while it is only in the OS's buffers.
    ApplyBeforeLogDurable,
    /// The primary's leader takes writes and confirms read indexes without a lease on the epoch, as
    /// if failover were not set up (the bug of a primary that ignores its lease).
    IgnoreLease,
}

/// The per-call deadline under [`Fault::ShortRequestDeadline`].
pub const SHORT_REQUEST_DURATION_MS: u64 = 3_000;

impl Fault {
    pub const ALL: [Fault; 9] = [
        Fault::AckBeforeCommit,
        Fault::ReadWithoutReadIndex,
        Fault::SkipVoteFsync,
        Fault::StaleLeaderReads,
        Fault::JoinStopsAfterLearner,
        Fault::LogForwardedEnvelopes,
        Fault::ShortRequestDeadline,
        Fault::ApplyBeforeLogDurable,
        Fault::IgnoreLease,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::AckBeforeCommit => "ack-before-commit",
            Fault::ReadWithoutReadIndex => "read-without-read-index",
            Fault::SkipVoteFsync => "skip-vote-fsync",
            Fault::StaleLeaderReads => "stale-leader-reads",
            Fault::JoinStopsAfterLearner => "join-stops-after-learner",
            Fault::LogForwardedEnvelopes => "log-forwarded-envelopes",
            Fault::ShortRequestDeadline => "short-request-deadline",
            Fault::ApplyBeforeLogDurable => "apply-before-log-durable",
            Fault::IgnoreLease => "ignore-lease",
        }
    }

    pub fn parse(name: &str) -> Option<Fault> {
        Fault::ALL.into_iter().find(|f| f.name() == name)
    }

    #[cfg(feature = "danger-faults")]
    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

#[cfg(feature = "danger-faults")]
static ACTIVE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Whether `fault` is switched on. Always `false` without the `danger-faults` feature.
#[inline]
pub fn active(fault: Fault) -> bool {
    #[cfg(feature = "danger-faults")]
    {
        ACTIVE.load(std::sync::atomic::Ordering::Relaxed) & fault.bit() != 0
    }
    #[cfg(not(feature = "danger-faults"))]
    {
        let _ = fault;
        false
    }
}

/// Switches exactly the given faults on (and every other one off).
#[cfg(feature = "danger-faults")]
pub fn set_active(faults: &[Fault]) {
    let bits = faults.iter().fold(0, |acc, f| acc | f.bit());
    ACTIVE.store(bits, std::sync::atomic::Ordering::Relaxed);
}

/// Whether this build can inject faults at all.
pub const COMPILED_IN: bool = cfg!(feature = "danger-faults");
