//! JSON forms the API carries as bytes: JSON Web Keys (RFC 7517, members base64url-encoded), ISO-8601
//! durations (rotation policies) and PEM (exported public keys).

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Map, Value};

use crate::pb;

const BYTE_MEMBERS: [&str; 12] = ["n", "e", "d", "p", "q", "dp", "dq", "qi", "k", "x", "y", "key_hsm"];

fn member<'a>(jwk: &'a mut pb::JsonWebKey, name: &str) -> &'a mut Vec<u8> {
    match name {
        "n" => &mut jwk.n,
        "e" => &mut jwk.e,
        "d" => &mut jwk.d,
        "p" => &mut jwk.p,
        "q" => &mut jwk.q,
        "dp" => &mut jwk.dp,
        "dq" => &mut jwk.dq,
        "qi" => &mut jwk.qi,
        "k" => &mut jwk.k,
        "x" => &mut jwk.x,
        "y" => &mut jwk.y,
        _ => &mut jwk.key_hsm,
    }
}

/// Parses a JWK in JSON (`{"kty":"RSA","n":"…",…}`); byte members are base64url, padded or not.
/// `key_hsm` (a BYOK blob) may be the blob's JSON object itself or its base64url encoding.
pub fn jwk_from_json(text: &str) -> Result<pb::JsonWebKey, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("the JWK is not JSON: {e}"))?;
    let obj = value.as_object().ok_or("a JWK is a JSON object")?;
    let mut jwk = pb::JsonWebKey {
        kid: obj.get("kid").and_then(Value::as_str).unwrap_or_default().to_owned(),
        kty: obj.get("kty").and_then(Value::as_str).ok_or("the JWK has no kty")?.to_owned(),
        crv: obj.get("crv").and_then(Value::as_str).unwrap_or_default().to_owned(),
        key_ops: match obj.get("key_ops") {
            Some(Value::Array(ops)) => ops
                .iter()
                .map(|o| o.as_str().map(str::to_owned).ok_or("key_ops holds strings"))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err("key_ops is a list of strings".into()),
            None => Vec::new(),
        },
        ..pb::JsonWebKey::default()
    };
    for name in BYTE_MEMBERS {
        match obj.get(name) {
            None => {}
            Some(v) if name == "key_hsm" && v.is_object() => *member(&mut jwk, name) = v.to_string().into_bytes(),
            Some(Value::String(s)) => {
                let bytes = URL_SAFE_NO_PAD
                    .decode(s.trim_end_matches('='))
                    .map_err(|_| format!("JWK member '{name}' is not base64url"))?;
                *member(&mut jwk, name) = bytes;
            }
            Some(_) => return Err(format!("JWK member '{name}' must be a base64url string")),
        }
    }
    Ok(jwk)
}

/// The public JWK as JSON, members base64url without padding.
pub fn jwk_to_json(jwk: &pb::JsonWebKey) -> Value {
    let mut out = Map::new();
    out.insert("kid".into(), json!(jwk.kid));
    out.insert("kty".into(), json!(jwk.kty));
    out.insert("key_ops".into(), json!(jwk.key_ops));
    if !jwk.crv.is_empty() {
        out.insert("crv".into(), json!(jwk.crv));
    }
    let mut copy = jwk.clone();
    for name in ["n", "e", "x", "y"] {
        let bytes = member(&mut copy, name);
        if !bytes.is_empty() {
            out.insert(name.into(), json!(URL_SAFE_NO_PAD.encode(bytes)));
        }
    }
    Value::Object(out)
}

/// PEM text of a DER body (`label` e.g. "PUBLIC KEY").
pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Seconds in an ISO-8601 duration such as `P90D`, `P1Y2M`, `P2W` or `PT12H`. Years count 365 days
/// and months 30 days (Azure's policies are whole days in practice).
pub fn iso8601_seconds(text: &str) -> Result<i64, String> {
    let bad = || format!("'{text}' is not an ISO-8601 duration such as P90D, P1Y, P2M, P4W or PT12H");
    let rest = text.strip_prefix('P').ok_or_else(bad)?;
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let mut total: i64 = 0;
    let mut any = false;
    let mut add = |part: &str, units: &[(char, i64)]| -> Result<(), String> {
        let mut number = String::new();
        for ch in part.chars() {
            if ch.is_ascii_digit() {
                number.push(ch);
                continue;
            }
            let unit = units.iter().find(|(u, _)| *u == ch).ok_or_else(bad)?.1;
            let n: i64 = number.parse().map_err(|_| bad())?;
            total = total.checked_add(n.checked_mul(unit).ok_or_else(bad)?).ok_or_else(bad)?;
            number.clear();
            any = true;
        }
        if number.is_empty() {
            Ok(())
        } else {
            Err(bad())
        }
    };
    const DAY: i64 = 86_400;
    add(date, &[('Y', 365 * DAY), ('M', 30 * DAY), ('W', 7 * DAY), ('D', DAY)])?;
    if let Some(t) = time {
        add(t, &[('H', 3600), ('M', 60), ('S', 1)])?;
    }
    if !any {
        return Err(bad());
    }
    Ok(total)
}

/// An ISO-8601 duration for `seconds`: whole days as `P{n}D`, anything else as `PT{n}S`.
pub fn seconds_to_iso8601(seconds: i64) -> String {
    if seconds % 86_400 == 0 {
        format!("P{}D", seconds / 86_400)
    } else {
        format!("PT{seconds}S")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_durations() {
        assert_eq!(iso8601_seconds("P90D"), Ok(90 * 86_400));
        assert_eq!(iso8601_seconds("P1Y"), Ok(365 * 86_400));
        assert_eq!(iso8601_seconds("P2M"), Ok(60 * 86_400));
        assert_eq!(iso8601_seconds("P1DT12H"), Ok(86_400 + 12 * 3600));
        for bad in ["90D", "P", "PT", "P1X", "P1", "PD"] {
            assert!(iso8601_seconds(bad).is_err(), "{bad}");
        }
        assert_eq!(seconds_to_iso8601(28 * 86_400), "P28D");
    }

    #[test]
    fn jwk_round_trips_members() {
        let jwk = jwk_from_json(r#"{"kty":"oct","k":"GawgguFyGrWKav7AX4VKUg","key_ops":["wrapKey"]}"#).unwrap();
        assert_eq!(jwk.k.len(), 16);
        assert_eq!(jwk.key_ops, vec!["wrapKey"]);
        assert!(jwk_from_json(r#"{"k":"AA"}"#).is_err());
        assert!(jwk_from_json(r#"{"kty":"oct","k":"!!"}"#).is_err());
    }
}
