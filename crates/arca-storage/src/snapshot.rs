//! Snapshots as files: the streamed format of an exported state, and where a node keeps its snapshot
//! files.
//!
//! A snapshot is never held whole in memory. A state store writes its export record by record into
//! an [`ExportSink`] (the [`SnapshotEncoder`] writes it to a [`SnapshotWriter`], a file on disk), and
//! an install reads it back record by record ([`SnapshotDecoder`]) into the store, which replaces its
//! state atomically. Every length in the stream is checked against a record limit the caller names
//! before anything is allocated, and the stream ends with a trailer (record count and checksum), so a
//! truncated or altered snapshot is refused before the store switches to it.
//!
//! The format, all integers little-endian:
//! ```text
//! magic "ARCASNP1"
//! applied metadata: u8 0 (none) | u8 1, u32 length, bytes
//! records:          u8 1, u32 key length, key, u64 modified_at, u32 value length, value   (key order)
//! trailer:          u8 0, u64 record count, u64 FNV-1a checksum of every byte before the trailer
//! ```

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::{StorageError, Versioned};

const MAGIC: &[u8; 8] = b"ARCASNP1";
const TAG_END: u8 = 0;
const TAG_RECORD: u8 = 1;
/// The name of the current snapshot in a snapshot directory; anything else there is a leftover.
const CURRENT: &str = "current";

/// Where an export goes, record by record: the applied metadata first, then every key in key order.
pub trait ExportSink {
    fn applied_meta(&mut self, meta: Option<&[u8]>) -> Result<(), StorageError>;
    fn record(&mut self, key: &[u8], modified_at: u64, value: &[u8]) -> Result<(), StorageError>;
}

/// What an import reads: every record of a snapshot, in key order, or the error that stopped it.
pub type Records<'a> = dyn Iterator<Item = Result<(Vec<u8>, Versioned), StorageError>> + 'a;

/// FNV-1a, 64 bits: catches a truncated or damaged file. Not a defence against a forger (the
/// stream comes from this node's own disk or from a member over mutual TLS, and every value in it is
/// sealed under the barrier).
#[derive(Clone, Copy)]
struct Checksum(u64);

impl Checksum {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    fn update(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

fn write_err(e: io::Error) -> StorageError {
    StorageError::Io(format!("write a snapshot: {e}"))
}

/// Writes an export in the snapshot format to `W`.
pub struct SnapshotEncoder<W: Write> {
    out: W,
    checksum: Checksum,
    records: u64,
    meta_written: bool,
}

impl<W: Write> SnapshotEncoder<W> {
    pub fn new(out: W) -> Self {
        Self { out, checksum: Checksum::new(), records: 0, meta_written: false }
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        self.checksum.update(bytes);
        self.out.write_all(bytes).map_err(write_err)
    }

    fn put_len(&mut self, len: usize, what: &str) -> Result<(), StorageError> {
        let len = u32::try_from(len).map_err(|_| StorageError::Contract(format!("{what} is over 4 GiB")))?;
        self.put(&len.to_le_bytes())
    }

    /// Writes the trailer and hands back the writer.
    pub fn finish(mut self) -> Result<W, StorageError> {
        if !self.meta_written {
            return Err(StorageError::Contract("a snapshot was finished before its applied metadata".into()));
        }
        let (records, checksum) = (self.records, self.checksum.0);
        self.out.write_all(&[TAG_END]).map_err(write_err)?;
        self.out.write_all(&records.to_le_bytes()).map_err(write_err)?;
        self.out.write_all(&checksum.to_le_bytes()).map_err(write_err)?;
        Ok(self.out)
    }
}

impl<W: Write> ExportSink for SnapshotEncoder<W> {
    fn applied_meta(&mut self, meta: Option<&[u8]>) -> Result<(), StorageError> {
        if self.meta_written {
            return Err(StorageError::Contract("a snapshot's applied metadata was written twice".into()));
        }
        self.put(MAGIC)?;
        match meta {
            None => self.put(&[0])?,
            Some(meta) => {
                self.put(&[1])?;
                self.put_len(meta.len(), "applied metadata")?;
                self.put(meta)?;
            }
        }
        self.meta_written = true;
        Ok(())
    }

    fn record(&mut self, key: &[u8], modified_at: u64, value: &[u8]) -> Result<(), StorageError> {
        if !self.meta_written {
            return Err(StorageError::Contract("a snapshot record came before the applied metadata".into()));
        }
        self.put(&[TAG_RECORD])?;
        self.put_len(key.len(), "a key")?;
        self.put(key)?;
        self.put(&modified_at.to_le_bytes())?;
        self.put_len(value.len(), "a value")?;
        self.put(value)?;
        self.records += 1;
        Ok(())
    }
}

fn corrupt(what: impl std::fmt::Display) -> StorageError {
    StorageError::Corrupt(format!("snapshot: {what}"))
}

/// Reads a snapshot stream: the applied metadata at once, then the records as an iterator that ends
/// with an error unless the trailer matches what was read.
pub struct SnapshotDecoder<R: Read> {
    input: R,
    checksum: Checksum,
    records: u64,
    record_bytes_max: usize,
    done: bool,
}

impl<R: Read> SnapshotDecoder<R> {
    /// Reads the header. `record_bytes_max` bounds the applied metadata and every key and value: a
    /// length above it is refused before anything is allocated.
    pub fn open(input: R, record_bytes_max: usize) -> Result<(Self, Option<Vec<u8>>), StorageError> {
        let mut decoder = Self { input, checksum: Checksum::new(), records: 0, record_bytes_max, done: false };
        let magic: [u8; 8] = decoder.array()?;
        if &magic != MAGIC {
            return Err(corrupt("it does not start with the snapshot format's marker"));
        }
        let meta = match decoder.array::<1>()? {
            [0] => None,
            [1] => Some(decoder.bytes("applied metadata")?),
            [other] => return Err(corrupt(format_args!("unknown metadata tag {other}"))),
        };
        Ok((decoder, meta))
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), StorageError> {
        self.input.read_exact(buf).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => corrupt("it ends before its trailer"),
            _ => StorageError::Io(format!("read a snapshot: {e}")),
        })
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], StorageError> {
        let mut buf = [0u8; N];
        self.read_exact(&mut buf)?;
        self.checksum.update(&buf);
        Ok(buf)
    }

    fn bytes(&mut self, what: &str) -> Result<Vec<u8>, StorageError> {
        let len = u32::from_le_bytes(self.array()?) as usize;
        if len > self.record_bytes_max {
            return Err(corrupt(format_args!(
                "{what} of {len} bytes is over the limit of {} bytes",
                self.record_bytes_max
            )));
        }
        // Read as it arrives rather than allocated up front: a length prefix is a claim, not a size.
        let mut buf = Vec::with_capacity(len.min(64 * 1024));
        let read = (&mut self.input)
            .take(len as u64)
            .read_to_end(&mut buf)
            .map_err(|e| StorageError::Io(format!("read a snapshot: {e}")))?;
        if read != len {
            return Err(corrupt("it ends before its trailer"));
        }
        self.checksum.update(&buf);
        Ok(buf)
    }

    fn next_record(&mut self) -> Result<Option<(Vec<u8>, Versioned)>, StorageError> {
        let expected = self.checksum.0;
        match self.array::<1>()? {
            [TAG_RECORD] => {
                let key = self.bytes("a key")?;
                let modified_at = u64::from_le_bytes(self.array()?);
                let value = self.bytes("a value")?;
                self.records += 1;
                Ok(Some((key, Versioned { modified_at, value })))
            }
            [TAG_END] => {
                let mut trailer = [0u8; 16];
                self.read_exact(&mut trailer)?;
                let (count, sum) = trailer.split_at(8);
                let count = u64::from_le_bytes(count.try_into().expect("split at 8 of 16 bytes"));
                let sum = u64::from_le_bytes(sum.try_into().expect("split at 8 of 16 bytes"));
                if count != self.records || sum != expected {
                    return Err(corrupt("its trailer does not match its contents"));
                }
                let mut extra = [0u8; 1];
                match self.input.read(&mut extra) {
                    Ok(0) => Ok(None),
                    Ok(_) => Err(corrupt("bytes follow its trailer")),
                    Err(e) => Err(StorageError::Io(format!("read a snapshot: {e}"))),
                }
            }
            [other] => Err(corrupt(format_args!("unknown record tag {other}"))),
        }
    }
}

impl<R: Read> Iterator for SnapshotDecoder<R> {
    type Item = Result<(Vec<u8>, Versioned), StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let next = self.next_record();
        if !matches!(next, Ok(Some(_))) {
            self.done = true;
        }
        next.transpose()
    }
}

/// A node's snapshot files: the current snapshot, kept across restarts, and the files being built or
/// received. On disk in production (a directory of the data dir, 0700, files 0600); in memory for
/// the simulation, where a clone kept outside a simulated host survives the host's crash. Cheap to
/// clone: clones share one place.
#[derive(Clone)]
pub struct SnapshotFiles(Arc<Place>);

/// In memory: what the simulation's disks and tests use.
impl Default for SnapshotFiles {
    fn default() -> Self {
        Self::in_memory()
    }
}

enum Place {
    Dir(PathBuf),
    Memory(Mutex<Option<SnapshotFile>>),
}

fn fs_err(what: &str, e: io::Error) -> StorageError {
    StorageError::Io(format!("{what}: {e}"))
}

impl SnapshotFiles {
    /// Snapshot files in `dir`, created if missing. Files a crash left behind (a snapshot half built
    /// or half received) are removed.
    pub fn in_dir(dir: impl Into<PathBuf>) -> Result<Self, StorageError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| fs_err("create the snapshot directory", e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| fs_err("make the snapshot directory private", e))?;
        }
        for entry in std::fs::read_dir(&dir).map_err(|e| fs_err("list the snapshot directory", e))? {
            let entry = entry.map_err(|e| fs_err("list the snapshot directory", e))?;
            if entry.file_name() != CURRENT {
                std::fs::remove_file(entry.path()).map_err(|e| fs_err("remove an unfinished snapshot", e))?;
            }
        }
        Ok(Self(Arc::new(Place::Dir(dir))))
    }

    pub fn in_memory() -> Self {
        Self(Arc::new(Place::Memory(Mutex::new(None))))
    }

    /// Whether these files live in memory (nothing survives the process).
    pub fn is_in_memory(&self) -> bool {
        matches!(&*self.0, Place::Memory(_))
    }

    /// A new, empty snapshot file that refuses to grow past `bytes_max`.
    pub fn create(&self, bytes_max: u64) -> Result<SnapshotWriter, StorageError> {
        let kept = match &*self.0 {
            Place::Dir(dir) => Kept::File(
                tempfile::Builder::new()
                    .prefix(".building-")
                    .tempfile_in(dir)
                    .map_err(|e| fs_err("create a snapshot file", e))?,
                dir.clone(),
            ),
            Place::Memory(_) => Kept::Memory(Vec::new()),
        };
        Ok(SnapshotWriter { kept, len: 0, bytes_max })
    }

    /// Makes `file` the current snapshot, durably: it replaces the previous one in one rename. A file
    /// made in another place (another node's directory, say) is copied here first.
    pub fn keep(&self, file: &SnapshotFile) -> Result<(), StorageError> {
        match (&*self.0, &*file.0) {
            (Place::Dir(dir), FileInner::Disk { unnamed, home, .. }) if home == dir => {
                // A file that is already the current one (read back by `current`) has no name to give.
                let Some(temp) = lock(unnamed).take() else { return Ok(()) };
                temp.persist(dir.join(CURRENT)).map_err(|e| fs_err("keep a snapshot", e.error))?;
                File::open(dir).and_then(|d| d.sync_all()).map_err(|e| fs_err("sync the snapshot directory", e))
            }
            (Place::Memory(current), FileInner::Memory(_)) => {
                *lock(current) = Some(file.clone());
                Ok(())
            }
            _ => {
                let mut copy = self.create(u64::MAX)?;
                io::copy(&mut file.reader(), &mut copy).map_err(|e| fs_err("copy a snapshot", e))?;
                self.keep(&copy.finish()?)
            }
        }
    }

    /// The current snapshot, if one was ever kept.
    pub fn current(&self) -> Result<Option<SnapshotFile>, StorageError> {
        match &*self.0 {
            Place::Dir(dir) => match File::open(dir.join(CURRENT)) {
                Ok(file) => {
                    let len = file.metadata().map_err(|e| fs_err("read the current snapshot", e))?.len();
                    let home = dir.clone();
                    Ok(Some(SnapshotFile(Arc::new(FileInner::Disk { file, len, home, unnamed: Mutex::new(None) }))))
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(fs_err("open the current snapshot", e)),
            },
            Place::Memory(current) => Ok(lock(current).clone()),
        }
    }

    /// Every byte of the current snapshot held in memory, for plaintext scans in tests (a directory's
    /// files are scanned as files).
    pub fn memory_bytes(&self) -> Vec<u8> {
        match &*self.0 {
            Place::Memory(current) => match &*lock(current) {
                Some(SnapshotFile(inner)) => match &**inner {
                    FileInner::Memory(bytes) => bytes.clone(),
                    FileInner::Disk { .. } => Vec::new(),
                },
                None => Vec::new(),
            },
            Place::Dir(_) => Vec::new(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

enum Kept {
    /// A temporary file, and the directory it was made in.
    File(tempfile::NamedTempFile, PathBuf),
    Memory(Vec<u8>),
}

/// A snapshot file being written (built or received). Writing past its limit fails with
/// [`io::ErrorKind::FileTooLarge`]; a writer dropped before [`SnapshotWriter::finish`] leaves nothing.
pub struct SnapshotWriter {
    kept: Kept,
    len: u64,
    bytes_max: u64,
}

impl SnapshotWriter {
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Flushes the file to stable storage and opens it for reading.
    pub fn finish(self) -> Result<SnapshotFile, StorageError> {
        let inner = match self.kept {
            Kept::File(temp, home) => {
                temp.as_file().sync_all().map_err(|e| fs_err("sync a snapshot file", e))?;
                let (file, path) = temp.into_parts();
                FileInner::Disk { file, len: self.len, home, unnamed: Mutex::new(Some(path)) }
            }
            Kept::Memory(bytes) => FileInner::Memory(bytes),
        };
        Ok(SnapshotFile(Arc::new(inner)))
    }
}

impl Write for SnapshotWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.len.saturating_add(buf.len() as u64) > self.bytes_max {
            return Err(io::Error::new(
                io::ErrorKind::FileTooLarge,
                format!("the snapshot is larger than {} bytes, the most this node accepts", self.bytes_max),
            ));
        }
        match &mut self.kept {
            Kept::File(temp, _) => temp.as_file_mut().write_all(buf)?,
            Kept::Memory(bytes) => bytes.extend_from_slice(buf),
        }
        self.len += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.kept {
            Kept::File(temp, _) => temp.as_file_mut().flush(),
            Kept::Memory(_) => Ok(()),
        }
    }
}

enum FileInner {
    /// An open file: readers read it by offset, so it stays readable when a newer snapshot replaces
    /// it. `unnamed` holds its temporary name until it is kept (it is removed if it never is).
    Disk {
        file: File,
        len: u64,
        home: PathBuf,
        unnamed: Mutex<Option<tempfile::TempPath>>,
    },
    Memory(Vec<u8>),
}

/// A finished snapshot file, read-only. Cheap to clone; each [`SnapshotFile::reader`] reads it from
/// the start on its own.
#[derive(Clone)]
pub struct SnapshotFile(Arc<FileInner>);

impl std::fmt::Debug for SnapshotFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SnapshotFile({} bytes)", self.len())
    }
}

impl SnapshotFile {
    pub fn len(&self) -> u64 {
        match &*self.0 {
            FileInner::Disk { len, .. } => *len,
            FileInner::Memory(bytes) => bytes.len() as u64,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn reader(&self) -> SnapshotReader {
        SnapshotReader { file: self.clone(), position: 0 }
    }

    /// A snapshot held in memory (tests, and the fuzz targets' inputs).
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(Arc::new(FileInner::Memory(bytes)))
    }
}

/// Reads a [`SnapshotFile`] from its start.
pub struct SnapshotReader {
    file: SnapshotFile,
    position: u64,
}

impl Read for SnapshotReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match &*self.file.0 {
            FileInner::Disk { file, len, .. } => {
                let left = len.saturating_sub(self.position);
                let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                read_at(file, &mut buf[..want], self.position)?
            }
            FileInner::Memory(bytes) => {
                let start = usize::try_from(self.position).unwrap_or(usize::MAX).min(bytes.len());
                let n = buf.len().min(bytes.len() - start);
                buf[..n].copy_from_slice(&bytes[start..start + n]);
                n
            }
        };
        self.position += n as u64;
        Ok(n)
    }
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

/// Exports `store` into memory in the snapshot format (tests, the simulation's checks, fuzz seeds).
pub fn export_bytes(store: &dyn crate::StateStore) -> Result<Vec<u8>, StorageError> {
    let mut encoder = SnapshotEncoder::new(Vec::new());
    store.export_to(&mut encoder)?;
    encoder.finish()
}

/// Replaces `store`'s state with a snapshot held in memory.
pub fn import_bytes(
    store: &dyn crate::StateStore,
    snapshot: &[u8],
    record_bytes_max: usize,
) -> Result<(), StorageError> {
    let (mut records, meta) = SnapshotDecoder::open(snapshot, record_bytes_max)?;
    store.import_from(meta.as_deref(), &mut records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(meta: Option<&[u8]>, records: &[(&[u8], u64, &[u8])]) -> Vec<u8> {
        let mut encoder = SnapshotEncoder::new(Vec::new());
        encoder.applied_meta(meta).unwrap();
        for (k, m, v) in records {
            encoder.record(k, *m, v).unwrap();
        }
        encoder.finish().unwrap()
    }

    /// A snapshot's applied metadata and records.
    type Decoded = (Option<Vec<u8>>, Vec<(Vec<u8>, Versioned)>);

    fn decoded(bytes: &[u8], max: usize) -> Result<Decoded, StorageError> {
        let (records, meta) = SnapshotDecoder::open(bytes, max)?;
        Ok((meta, records.collect::<Result<Vec<_>, _>>()?))
    }

    #[test]
    fn a_snapshot_stream_round_trips() {
        let bytes = encoded(Some(b"meta"), &[(b"a", 3, b"1"), (b"b", 4, b"")]);
        let (meta, records) = decoded(&bytes, 16).unwrap();
        assert_eq!(meta.as_deref(), Some(&b"meta"[..]));
        assert_eq!(records.len(), 2);
        assert_eq!((records[1].0.as_slice(), records[1].1.modified_at), (&b"b"[..], 4));
        assert_eq!(decoded(&encoded(None, &[]), 16).unwrap(), (None, vec![]));
    }

    #[test]
    fn a_record_at_its_limit_is_read_and_one_byte_more_is_refused_before_allocating() {
        let at = encoded(None, &[(b"k", 1, &[7; 16])]);
        assert!(decoded(&at, 16).is_ok());
        assert!(matches!(decoded(&at, 15), Err(StorageError::Corrupt(m)) if m.contains("over the limit of 15 bytes")));
        // A length prefix of 4 GiB - 1 with nothing behind it is refused by the limit, not by allocating.
        let mut huge = encoded(None, &[]);
        huge.truncate(9);
        huge.extend_from_slice(&[TAG_RECORD, 0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(decoded(&huge, 1 << 20), Err(StorageError::Corrupt(m)) if m.contains("over the limit")));
    }

    #[test]
    fn truncated_altered_or_extended_streams_are_refused() {
        let bytes = encoded(Some(b"m"), &[(b"a", 1, b"one"), (b"b", 2, b"two")]);
        for cut in 0..bytes.len() {
            assert!(decoded(&bytes[..cut], 64).is_err(), "cut at {cut} of {}", bytes.len());
        }
        for at in 0..bytes.len() {
            let mut altered = bytes.clone();
            altered[at] ^= 0x01;
            assert!(decoded(&altered, 64).is_err(), "a flipped bit at {at} went unnoticed");
        }
        let mut extended = bytes.clone();
        extended.push(0);
        assert!(decoded(&extended, 64).is_err());
    }

    #[test]
    fn encoders_refuse_records_out_of_order_of_the_format() {
        let mut encoder = SnapshotEncoder::new(Vec::new());
        assert!(encoder.record(b"k", 1, b"v").is_err());
        assert!(SnapshotEncoder::new(Vec::new()).finish().is_err());
        encoder.applied_meta(None).unwrap();
        assert!(encoder.applied_meta(None).is_err());
    }

    /// Both places keep a file the same way: built, kept, read back (after a reopen, on disk).
    #[test]
    fn files_are_kept_read_back_and_bounded_in_both_places() {
        let dir = tempfile::tempdir().unwrap();
        let places = [SnapshotFiles::in_dir(dir.path().join("snaps")).unwrap(), SnapshotFiles::in_memory()];
        for files in places {
            assert!(files.current().unwrap().is_none());
            let mut writer = files.create(1000).unwrap();
            writer.write_all(&[7; 600]).unwrap();
            writer.write_all(&[8; 400]).unwrap();
            let err = writer.write_all(&[9; 1]).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::FileTooLarge);
            let file = writer.finish().unwrap();
            assert!(files.current().unwrap().is_none(), "a finished file is not current until kept");
            files.keep(&file).unwrap();
            let mut back = Vec::new();
            files.current().unwrap().unwrap().reader().read_to_end(&mut back).unwrap();
            assert_eq!((back.len(), back[0], back[999]), (1000, 7, 8));

            // A newer file replaces it; a reader of the old one still reads the old bytes.
            let mut old_reader = files.current().unwrap().unwrap().reader();
            let mut writer = files.create(1000).unwrap();
            writer.write_all(b"newer").unwrap();
            files.keep(&writer.finish().unwrap()).unwrap();
            let mut old = Vec::new();
            old_reader.read_to_end(&mut old).unwrap();
            assert_eq!(old.len(), 1000);
            let mut new = Vec::new();
            files.current().unwrap().unwrap().reader().read_to_end(&mut new).unwrap();
            assert_eq!(new, b"newer");
        }
        let reopened = SnapshotFiles::in_dir(dir.path().join("snaps")).unwrap();
        let mut back = Vec::new();
        reopened.current().unwrap().unwrap().reader().read_to_end(&mut back).unwrap();
        assert_eq!(back, b"newer");
        let names: Vec<_> =
            std::fs::read_dir(dir.path().join("snaps")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from(CURRENT)], "only the current snapshot stays");
    }

    #[test]
    fn a_file_made_elsewhere_is_copied_when_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (one, two) = (dir.path().join("one"), dir.path().join("two"));
        let places =
            [SnapshotFiles::in_dir(&one).unwrap(), SnapshotFiles::in_dir(&two).unwrap(), SnapshotFiles::in_memory()];
        let mut writer = places[0].create(100).unwrap();
        writer.write_all(b"made in one").unwrap();
        let file = writer.finish().unwrap();
        places[0].keep(&file).unwrap();
        for place in &places[1..] {
            place.keep(&places[0].current().unwrap().unwrap()).unwrap();
            let mut back = Vec::new();
            place.current().unwrap().unwrap().reader().read_to_end(&mut back).unwrap();
            assert_eq!(back, b"made in one");
        }
        places[0].keep(&places[2].current().unwrap().unwrap()).unwrap();
        assert!(std::fs::read(one.join(CURRENT)).unwrap() == b"made in one");
    }

    #[test]
    fn files_a_crash_left_half_written_are_removed_at_open_and_dropped_writers_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let files = SnapshotFiles::in_dir(dir.path()).unwrap();
        let mut writer = files.create(100).unwrap();
        writer.write_all(b"half").unwrap();
        drop(writer);
        let unkept = files.create(100).unwrap().finish().unwrap();
        drop(unkept);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        std::fs::write(dir.path().join(".building-left-by-a-crash"), b"x").unwrap();
        SnapshotFiles::in_dir(dir.path()).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
