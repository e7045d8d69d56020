//! The file sink: chained JSON lines, appended, fsync'd for the records that must be durable.
//!
//! Records that must be durable are synced by group commit: a record is written under the file's lock,
//! then synced outside it, and one `fsync` covers every record written before it, so concurrent
//! callers share syncs instead of queueing one `fsync` each behind a lock.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arca_types::ArcaError;

use crate::chain::{self, ChainHead};
use crate::{AuditDurability, AuditEvent, AuditSink};

/// How far back from the end of an existing log the sink looks for its last whole record, in bytes.
const TAIL_BYTES_MAX: u64 = 1024 * 1024;

struct Open {
    file: Arc<std::fs::File>,
    /// Bytes of whole records in the file.
    len: u64,
    head: ChainHead,
}

/// How far the file is known to be on disk: the file being synced and the bytes of it synced.
#[derive(Default)]
struct Synced {
    file: Option<Arc<std::fs::File>>,
    len: u64,
    /// A sync failed. The kernel reports a failed writeback once, so a later sync may succeed over
    /// records that never reached the disk: from then on the sink refuses every record (fail-closed)
    /// until the node restarts and takes the chain up from what the file holds.
    failed: bool,
}

/// Appends chained JSON lines to a file (0600), fsync'ing the records that must be durable. It
/// takes up the chain where the file ends, cutting off a last line a crash left half written.
pub struct FileAuditSink {
    path: PathBuf,
    file: Mutex<Option<Open>>,
    /// Held while syncing; callers whose record a finished sync covered return without one.
    synced: Mutex<Synced>,
    /// How a file is synced: `File::sync_data`, or a failing one in tests.
    sync: fn(&std::fs::File) -> std::io::Result<()>,
}

impl FileAuditSink {
    pub fn new(path: PathBuf) -> Self {
        Self::with_sync(path, std::fs::File::sync_data)
    }

    fn with_sync(path: PathBuf, sync: fn(&std::fs::File) -> std::io::Result<()>) -> Self {
        Self { path, file: Mutex::new(None), synced: Mutex::new(Synced::default()), sync }
    }

    fn refuse_after_failed_sync(&self) -> Result<(), ArcaError> {
        if self.synced.lock().unwrap_or_else(|p| p.into_inner()).failed {
            return Err(ArcaError::internal(
                "failed to sync the audit log earlier, so records written since cannot be known to be on disk; \
                 no record is taken until arcad restarts",
            ));
        }
        Ok(())
    }

    /// Returns once the first `len` bytes of `file` are on disk: at once if a sync since covered them,
    /// else after one `fsync` that also covers every record written meanwhile.
    fn sync_upto(&self, file: &Arc<std::fs::File>, len: u64) -> Result<(), ArcaError> {
        let mut synced = self.synced.lock().unwrap_or_else(|p| p.into_inner());
        if synced.failed {
            return Err(ArcaError::internal("failed to sync the audit log (an earlier sync failed)"));
        }
        let same_file = synced.file.as_ref().is_some_and(|f| Arc::ptr_eq(f, file));
        if same_file && synced.len >= len {
            return Ok(());
        }
        // Everything written before this point is covered; read the length first so no byte counted
        // here was written after the sync started.
        let written = self.file.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map_or(len, |o| o.len.max(len));
        if let Err(e) = (self.sync)(file) {
            synced.failed = true;
            return Err(failure("sync", e));
        }
        *synced = Synced { file: Some(file.clone()), len: written, failed: false };
        Ok(())
    }

    fn open(&self) -> Result<Open, ArcaError> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(|e| failure("open", e))?;
        let size = file.metadata().map_err(|e| failure("read", e))?.len();
        let start = size.saturating_sub(TAIL_BYTES_MAX);
        let mut tail = Vec::new();
        file.seek(SeekFrom::Start(start)).map_err(|e| failure("read", e))?;
        file.read_to_end(&mut tail).map_err(|e| failure("read", e))?;
        // Whole records end with a newline; anything after the last one was cut off by a crash.
        let whole = tail.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let len = start + whole as u64;
        if len < size {
            file.set_len(len).map_err(|e| failure("repair", e))?;
        }
        let last = tail[..whole].strip_suffix(b"\n").and_then(|t| t.rsplit(|b| *b == b'\n').next());
        let head = match last.map(chain::open) {
            None => ChainHead::default(),
            Some(Ok(link)) => ChainHead { seq: link.seq, hash: link.hash },
            Some(Err(e)) => {
                // A log from before records were chained (or one whose end was damaged): kept whole
                // beside the new one, which starts a new chain. The cluster's anchors still name the
                // old chain's records, so `verify --cluster` on the new log shows the break.
                drop(file);
                let aside = self.aside_path();
                std::fs::rename(&self.path, &aside).map_err(|e| failure("move aside", e))?;
                tracing::warn!(
                    "the audit log {} did not end with a chained record ({e}); it is kept as {} and a new chain starts",
                    self.path.display(),
                    aside.display()
                );
                return self.open();
            }
        };
        Ok(Open { file: Arc::new(file), len, head })
    }
}

impl FileAuditSink {
    /// A free name beside the log for an old log moved aside: `<log>.unchained`, `.unchained.2`, ….
    fn aside_path(&self) -> PathBuf {
        let base = self.path.with_extension("log.unchained");
        (1..)
            .map(|n| if n == 1 { base.clone() } else { PathBuf::from(format!("{}.{n}", base.display())) })
            .find(|p| !p.exists())
            .expect("some name is free")
    }
}

fn failure(what: &str, e: std::io::Error) -> ArcaError {
    ArcaError::internal(format!("failed to {what} the audit log: {e}"))
}

impl AuditSink for FileAuditSink {
    fn record(&self, event: &AuditEvent, durability: AuditDurability) -> Result<(), ArcaError> {
        let serde_json::Value::Object(record) =
            serde_json::to_value(event).map_err(|e| ArcaError::internal(format!("audit encode: {e}")))?
        else {
            return Err(ArcaError::internal("an audit record is not a JSON object"));
        };
        self.refuse_after_failed_sync()?;
        let (file, len) = {
            let mut guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
            if guard.is_none() {
                *guard = Some(self.open()?);
            }
            let open = guard.as_mut().expect("opened above");
            let (line, head) = chain::seal(record, &open.head);
            if let Err(e) = (&*open.file).write_all(&line) {
                // A full disk can leave part of the line: cut back to the last whole record.
                let _ = open.file.set_len(open.len);
                return Err(failure("write", e));
            }
            open.len += line.len() as u64;
            open.head = head;
            (open.file.clone(), open.len)
        };
        match durability {
            AuditDurability::Synced => self.sync_upto(&file, len),
            AuditDurability::Buffered => Ok(()),
        }
    }

    fn head(&self) -> Option<ChainHead> {
        let mut guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            *guard = self.open().ok();
        }
        Some(guard.as_ref().map(|o| o.head).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::event;
    use crate::AuditStage;

    #[test]
    fn file_sink_passes_the_conformance_suite_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let sink = FileAuditSink::new(path.clone());
        crate::conformance::run(&sink, &|| std::fs::read(&path).unwrap());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn after_a_failed_sync_every_record_is_refused_until_the_sink_is_reopened() {
        fn failing(_: &std::fs::File) -> std::io::Result<()> {
            Err(std::io::Error::other("injected: the device failed the writeback"))
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let sink = FileAuditSink::with_sync(path.clone(), failing);
        sink.record(&event(AuditStage::Request, "buffered"), AuditDurability::Buffered).unwrap();
        let e = sink.record(&event(AuditStage::Request, "synced"), AuditDurability::Synced).unwrap_err();
        assert!(e.message.contains("sync"), "{}", e.message);
        for durability in [AuditDurability::Buffered, AuditDurability::Synced] {
            let e = sink.record(&event(AuditStage::Request, "after"), durability).unwrap_err();
            assert!(e.message.contains("restarts"), "{}", e.message);
        }
        drop(sink);
        // A restarted node takes the chain up from what the file holds, whole.
        let reopened = FileAuditSink::new(path.clone());
        reopened.record(&event(AuditStage::Request, "next"), AuditDurability::Synced).unwrap();
        let report = crate::verify::verify(&std::fs::read(&path).unwrap()[..], &[]);
        assert_eq!((report.records, report.problem), (3, None));
    }

    #[test]
    fn a_sink_that_cannot_write_fails_the_record() {
        let dir = tempfile::tempdir().unwrap();
        let sink = FileAuditSink::new(dir.path().join("missing-dir").join("audit.log"));
        assert!(sink.record(&event(AuditStage::Request, "r"), AuditDurability::Synced).is_err());
    }

    #[test]
    fn a_reopened_sink_takes_up_the_chain_and_drops_a_half_written_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let first = FileAuditSink::new(path.clone());
        for i in 0..3 {
            first.record(&event(AuditStage::Request, &format!("r{i}")), AuditDurability::Synced).unwrap();
        }
        drop(first);
        let mut torn = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        torn.write_all(b"{\"stage\":\"requ").unwrap();
        let second = FileAuditSink::new(path.clone());
        assert_eq!(second.head().unwrap().seq, 3);
        second.record(&event(AuditStage::Request, "r3"), AuditDurability::Synced).unwrap();
        let report = crate::verify::verify(&std::fs::read(&path).unwrap()[..], &[]);
        assert_eq!((report.records, report.problem), (4, None));
    }

    #[test]
    fn a_log_from_before_chains_is_kept_aside_and_a_new_chain_starts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        std::fs::write(&path, b"{\"old\":\"unchained\"}\n").unwrap();
        let sink = FileAuditSink::new(path.clone());
        sink.record(&event(AuditStage::Request, "r"), AuditDurability::Synced).unwrap();
        assert_eq!(std::fs::read(dir.path().join("audit.log.unchained")).unwrap(), b"{\"old\":\"unchained\"}\n");
        let report = crate::verify::verify(&std::fs::read(&path).unwrap()[..], &[]);
        assert_eq!((report.records, report.problem), (1, None));
    }
}
