//! Secrecy at rest: no secret value or secret name the workload planted appears in plaintext in any
//! byte a node stored (Raft log, state, snapshots) or audited. Every planted string carries a marker,
//! so one scan per blob finds any of them.

/// Marker every planted value starts with.
pub const VALUE_MARKER: &[u8] = b"PlantedValue:";
/// Marker every planted secret name starts with (names are case-insensitive: scanned in lower case).
pub const NAME_MARKER: &[u8] = b"plantedname-";

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w.eq_ignore_ascii_case(needle))
}

/// `blobs`: (what it is, its bytes).
pub fn check(blobs: &[(String, Vec<u8>)]) -> Result<usize, Vec<String>> {
    let mut problems = Vec::new();
    let mut bytes = 0;
    for (what, blob) in blobs {
        bytes += blob.len();
        for marker in [VALUE_MARKER, NAME_MARKER] {
            if let Some(at) = find(blob, marker) {
                problems.push(format!(
                    "{what} holds a planted {} in plaintext at byte {at}",
                    String::from_utf8_lossy(marker)
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(bytes)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scan_finds_a_planted_value_and_passes_ciphertext() {
        let planted = [b"xx".as_slice(), VALUE_MARKER, b"c1-7"].concat();
        assert!(check(&[("log".into(), planted)]).is_err());
        assert!(check(&[("log".into(), b"PLANTEDNAME-A".to_vec())]).is_err(), "names match in any case");
        assert!(check(&[("log".into(), vec![0x5a; 4096])]).is_ok());
    }
}
