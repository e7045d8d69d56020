//! The suite every [`AuditSink`] passes: records come back whole, in order, as JSON lines, and the
//! fields of a request from nobody stay bounded; a sink that chains its records keeps a chain that
//! [`crate::verify`] accepts, and its head is its last record's.

use crate::{AuditDurability, AuditEvent, AuditSink, AuditStage};

/// A record as a request's audit leaves it.
pub fn event(stage: AuditStage, request_id: &str) -> AuditEvent {
    AuditEvent {
        time: 1_800_000_000,
        request_id: request_id.to_owned(),
        stage,
        node_id: 3,
        operation: "SecretSet",
        caller: Some("accessor".into()),
        principal: Some("11111111-1111-1111-1111-111111111111".into()),
        principal_type: Some("ServicePrincipal"),
        auth_method: Some("client_secret"),
        client_id: Some("22222222-2222-2222-2222-222222222222".into()),
        caller_address: Some("192.0.2.7".into()),
        tls_version: Some("TLSv1_3".into()),
        action: Some("Microsoft.KeyVault/vaults/secrets/setSecret/action"),
        granted_by: Some("33333333-3333-3333-3333-333333333333".into()),
        role: Some("Key Vault Secrets Officer".into()),
        vault: Some("demo".into()),
        objects: vec!["0a1b".into(), "2c3d".into()],
        result: (stage == AuditStage::Response).then_some("success"),
        code: None,
        duration_ms: (stage == AuditStage::Response).then_some(4),
    }
}

/// `read` returns everything the sink holds so far.
pub fn run(sink: &dyn AuditSink, read: &dyn Fn() -> Vec<u8>) {
    sink.record(&event(AuditStage::Request, "r1"), AuditDurability::Synced).unwrap();
    sink.record(&event(AuditStage::Response, "r1"), AuditDurability::Synced).unwrap();
    sink.record(&event(AuditStage::Response, "r2"), AuditDurability::Buffered).unwrap();
    let bytes = read();
    let text = String::from_utf8(bytes.clone()).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[0]["stage"], "request");
    assert_eq!(lines[1]["stage"], "response");
    assert_eq!(lines[0]["request_id"], lines[1]["request_id"]);
    assert_eq!(lines[1]["objects"].as_array().map(Vec::len), Some(2));
    assert_eq!(lines[2]["request_id"], "r2");
    if let Some(head) = sink.head() {
        let report = crate::verify::verify(&bytes[..], &[]);
        assert_eq!(report.problem, None, "{text}");
        assert_eq!((report.records, report.last), (3, Some(head)));
    }
}
