//! Durability of acknowledged writes: every version a client was told was set is still there at the
//! end, on every node, unless a purge that could have removed it was attempted after it. This is the
//! promise "nothing acknowledged is ever lost", checked directly rather than through the search.

use std::collections::BTreeMap;

use crate::history::{Call, Op, Ret};

/// What the final phase read on one node: for each key, the version ids it lists (`None` if the
/// secret does not exist there).
pub type FinalVersions = BTreeMap<String, Option<Vec<String>>>;

pub fn check(history: &[Op], nodes: &BTreeMap<usize, FinalVersions>) -> Result<usize, Vec<String>> {
    let mut problems = Vec::new();
    let mut checked = 0;
    for set in history {
        let value = match (&set.call, &set.ret) {
            (Call::Set { value }, Ret::Version { .. }) => value.clone(),
            (Call::CreateKey | Call::RotateKey, Ret::Version { .. }) => "a key version".to_owned(),
            _ => continue,
        };
        let Ret::Version { version } = &set.ret else { continue };
        let purge_after = history.iter().any(|o| {
            o.key == set.key
                && o.call == Call::Purge
                && matches!(o.ret, Ret::Ok | Ret::Unknown)
                && o.returned > set.invoked
        });
        if purge_after {
            continue;
        }
        checked += 1;
        for (node, finals) in nodes {
            let present = finals.get(&set.key).cloned().flatten().is_some_and(|v| v.contains(version));
            if !present {
                problems.push(format!(
                    "node {node} lost acknowledged version {version} ({value}) of {}: set at {}, answered at {}",
                    set.key, set.invoked, set.returned
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(checked)
    } else {
        Err(problems)
    }
}
