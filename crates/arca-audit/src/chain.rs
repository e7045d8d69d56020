//! The hash chain of audit records: each line is a JSON object holding `seq` (1, 2, 3, …), `prev` (the
//! hash of the record before, 64 zero digits for the first) and, last, `hash`: the SHA-256 of the
//! line's bytes up to that field, as written (the JSON object without `hash`, keys in sorted order).

use arca_crypto::cluster_pki::sha256;
use serde::{Deserialize, Serialize};

/// Where a chain stands: its last record's sequence number and hash (0 and zeros before any).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ChainHead {
    pub seq: u64,
    pub hash: [u8; 32],
}

/// Why a line is not a link of a chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("it is not a JSON object")]
    NotJson,
    #[error("it has no chain fields (seq, prev, hash)")]
    Unchained,
    #[error("its hash does not match its contents")]
    Altered,
}

const HASH_FIELD: &str = "hash";

/// The line that records `record` (a JSON object) after `head`, and the chain's new head.
pub fn seal(mut record: serde_json::Map<String, serde_json::Value>, head: &ChainHead) -> (Vec<u8>, ChainHead) {
    let seq = head.seq + 1;
    record.insert("seq".into(), seq.into());
    record.insert("prev".into(), hex::encode(head.hash).into());
    record.remove(HASH_FIELD);
    let mut line = serde_json::to_vec(&record).expect("a JSON map serializes");
    let hash = sha256(&line);
    line.pop(); // the closing brace
    line.extend_from_slice(format!(",\"{HASH_FIELD}\":\"{}\"}}\n", hex::encode(hash)).as_bytes());
    (line, ChainHead { seq, hash })
}

/// One line read back.
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    pub seq: u64,
    pub prev: [u8; 32],
    pub hash: [u8; 32],
    pub record: serde_json::Map<String, serde_json::Value>,
}

fn hash_of(value: Option<&serde_json::Value>) -> Option<[u8; 32]> {
    hex::decode(value?.as_str()?).ok()?.try_into().ok()
}

/// Reads a line (without its newline) and checks that its hash covers the rest of it.
pub fn open(line: &[u8]) -> Result<Link, ChainError> {
    let value: serde_json::Value = serde_json::from_slice(line).map_err(|_| ChainError::NotJson)?;
    let serde_json::Value::Object(mut record) = value else { return Err(ChainError::NotJson) };
    let hash = hash_of(record.get(HASH_FIELD)).ok_or(ChainError::Unchained)?;
    let prev = hash_of(record.get("prev")).ok_or(ChainError::Unchained)?;
    let seq = record.get("seq").and_then(|s| s.as_u64()).ok_or(ChainError::Unchained)?;
    record.remove(HASH_FIELD);
    let body = serde_json::to_vec(&record).map_err(|_| ChainError::NotJson)?;
    if sha256(&body) != hash {
        return Err(ChainError::Altered);
    }
    // The line as written is exactly the body with the hash appended: anything else (another key
    // order, spaces, a second hash field) was not written by a sink.
    let mut expected = body;
    expected.pop();
    expected.extend_from_slice(format!(",\"{HASH_FIELD}\":\"{}\"}}", hex::encode(hash)).as_bytes());
    if expected != line {
        return Err(ChainError::Altered);
    }
    record.remove("seq");
    record.remove("prev");
    Ok(Link { seq, prev, hash, record })
}
