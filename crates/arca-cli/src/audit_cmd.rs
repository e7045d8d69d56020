//! `arca audit verify FILE [--cluster]`: checks a node's audit log: every record a link of one hash
//! chain, and (with `--cluster`) no record missing from the end and every record the node anchored in
//! the cluster where it was, with the node's signature.

use std::path::PathBuf;

use anyhow::{bail, Context};
use arca_audit::verify::{verify, Anchor, SignedAnchor};
use arca_client::{pb, ArcaClient, ClientError};
use clap::Subcommand;
use serde_json::json;

#[derive(Subcommand)]
pub enum AuditCmd {
    /// Check an audit log file; exits non-zero naming the first bad record.
    Verify {
        file: PathBuf,
        /// Also check it against the anchors the cluster holds for the node that wrote it.
        #[arg(long)]
        cluster: bool,
    },
}

fn hex_array<const N: usize>(raw: &str) -> anyhow::Result<[u8; N]> {
    let bytes = hex::decode(raw).context("an anchor field is not hex")?;
    bytes.try_into().map_err(|_| anyhow::anyhow!("an anchor field has the wrong length"))
}

/// The anchors the cluster holds for `node_id`, each checked against the node's signature.
async fn anchors(client: &ArcaClient, node_id: u64) -> anyhow::Result<Vec<Anchor>> {
    let r =
        client.audit().list_anchors(pb::ListAnchorsRequest { node_id }).await.map_err(ClientError::from)?.into_inner();
    let cluster_id: [u8; 16] = hex_array(&r.cluster_id)?;
    let mut out = Vec::new();
    for a in r.anchors {
        let signed = SignedAnchor {
            node_id: a.node_id,
            seq: a.seq,
            hash: hex_array(&a.hash)?,
            time: a.time.map_or(0, |t| t.seconds),
            public_key: hex::decode(&a.public_key)?,
            signature: hex::decode(&a.signature)?,
        };
        if signed.node_id != node_id || !signed.verifies(&cluster_id) {
            bail!("the cluster's anchor of record {} is not signed by node {node_id}", signed.seq);
        }
        out.push(signed.anchor());
    }
    Ok(out)
}

/// The node that wrote a log: the `node_id` of its first record.
/// The node that wrote the log: the one its records name (records written before the node knew its
/// id name 0). A log naming two nodes is refused rather than checked against either one's anchors.
fn node_of(bytes: &[u8]) -> anyhow::Result<u64> {
    let mut node = None;
    for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let Ok(record) = serde_json::from_slice::<serde_json::Value>(line) else { continue };
        match (record["node_id"].as_u64(), node) {
            (Some(0) | None, _) => {}
            (Some(id), None) => node = Some(id),
            (Some(id), Some(seen)) if id != seen => bail!("the log names two nodes ({seen} and {id})"),
            _ => {}
        }
    }
    node.context("no record of the log names the node that wrote it")
}

pub async fn audit(client: &ArcaClient, command: AuditCmd) -> anyhow::Result<()> {
    let AuditCmd::Verify { file, cluster } = command;
    let bytes = std::fs::read(&file).with_context(|| format!("read {}", file.display()))?;
    let anchors = if cluster { anchors(client, node_of(&bytes)?).await? } else { Vec::new() };
    let report = verify(&bytes[..], &anchors);
    let last = report.last.map(|h| h.seq);
    match report.problem {
        None => {
            println!(
                "{}",
                json!({ "records": report.records, "lastRecord": last, "anchorsChecked": anchors.len(), "valid": true })
            );
            Ok(())
        }
        Some(problem) => {
            println!(
                "{}",
                json!({ "records": report.records, "lastRecord": last, "valid": false,
                        "firstBad": { "line": problem.line, "reason": problem.reason } })
            );
            bail!("{}: line {}: {}", file.display(), problem.line, problem.reason)
        }
    }
}
