//! The local token endpoint's wire shape, as Azure's Instance Metadata Service has it: `GET
//! /metadata/identity/oauth2/token?resource=…[&client_id=…]` with the header `Metadata: true`, and a
//! JSON answer with `access_token`, `expires_in`, `expires_on` (strings, as Azure sends them), …
//!
//! Pure: parsing a request head and writing a response. Only what this endpoint needs of HTTP/1.1 is
//! understood; anything else is refused. As Azure's, a request carrying a proxy header
//! (`X-Forwarded-For`, `Forwarded`) is refused, so a server-side request forgery through a local web
//! proxy cannot reach it, and `Metadata: true` is required, which a browser cannot be made to send.

/// The path of the token endpoint.
pub const TOKEN_PATH: &str = "/metadata/identity/oauth2/token";
/// Largest request head read, in bytes; a longer one is refused.
pub const REQUEST_HEAD_BYTES_MAX: usize = 16 * 1024;
/// Longest `resource` or identity parameter, in bytes.
pub const PARAMETER_BYTES_MAX: usize = 1024;

/// A token request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenQuery {
    /// What the token is for, echoed in the answer (Arca's tokens are for the cluster, whatever it says).
    pub resource: String,
    /// The managed identity asked for (`client_id`, `object_id` or `msi_res_id`), if any.
    pub identity: Option<String>,
    /// A Kubernetes service account token the workload presented (header
    /// [`SERVICE_ACCOUNT_TOKEN_HEADER`]), for bindings that require one; passed on unverified.
    pub service_account_token: Option<String>,
}

/// The header a workload presents its Kubernetes service account token in.
pub const SERVICE_ACCOUNT_TOKEN_HEADER: &str = "X-Arca-Service-Account-Token";
/// The longest service account token taken, in bytes.
pub const SERVICE_ACCOUNT_TOKEN_BYTES_MAX: usize = 8 * 1024;

/// Why a request was refused: an HTTP status and a message for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub error: &'static str,
    pub description: String,
}

impl Refusal {
    fn bad(description: impl Into<String>) -> Self {
        Self { status: 400, error: "invalid_request", description: description.into() }
    }
}

/// The end of the head (after `\r\n\r\n`) if `buffer` holds all of it.
pub fn head_end(buffer: &[u8]) -> Option<usize> {
    buffer.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// Parses a request head (the request line and headers, up to and including the blank line).
pub fn parse(head: &[u8]) -> Result<TokenQuery, Refusal> {
    if head.len() > REQUEST_HEAD_BYTES_MAX {
        return Err(Refusal::bad(format!("the request head is longer than {REQUEST_HEAD_BYTES_MAX} bytes")));
    }
    let text = std::str::from_utf8(head).map_err(|_| Refusal::bad("the request is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let (method, target, version) = (parts.next(), parts.next(), parts.next());
    let (Some(method), Some(target), Some(version), None) = (method, target, version, parts.next()) else {
        return Err(Refusal::bad("the request line is not METHOD TARGET HTTP/1.1"));
    };
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(Refusal::bad("only HTTP/1.1 and HTTP/1.0 are spoken"));
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if path != TOKEN_PATH {
        return Err(Refusal { status: 404, error: "not_found", description: format!("only {TOKEN_PATH} is served") });
    }
    if method != "GET" {
        return Err(Refusal { status: 405, error: "method_not_allowed", description: "only GET is served".into() });
    }
    let mut metadata = false;
    let mut service_account_token: Option<String> = None;
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').ok_or_else(|| Refusal::bad("a header line has no colon"))?;
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("x-forwarded-for") || name.eq_ignore_ascii_case("forwarded") {
            return Err(Refusal::bad("requests through a proxy are refused"));
        }
        if name.eq_ignore_ascii_case("metadata") {
            metadata = value.eq_ignore_ascii_case("true");
        }
        if name.eq_ignore_ascii_case(SERVICE_ACCOUNT_TOKEN_HEADER) {
            if value.len() > SERVICE_ACCOUNT_TOKEN_BYTES_MAX {
                return Err(Refusal::bad(format!(
                    "the service account token is longer than {SERVICE_ACCOUNT_TOKEN_BYTES_MAX} bytes"
                )));
            }
            if service_account_token.replace(value.to_owned()).is_some() {
                return Err(Refusal::bad("send one service account token"));
            }
        }
    }
    if !metadata {
        return Err(Refusal::bad("Required metadata header not specified (send Metadata: true)"));
    }
    let mut resource = None;
    let mut identity = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, raw) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(raw).ok_or_else(|| Refusal::bad(format!("{name} is not well-formed")))?;
        if value.len() > PARAMETER_BYTES_MAX {
            return Err(Refusal::bad(format!("{name} is longer than {PARAMETER_BYTES_MAX} bytes")));
        }
        let slot = match name {
            "resource" => &mut resource,
            "client_id" | "object_id" | "msi_res_id" => &mut identity,
            _ => continue,
        };
        if slot.replace(value).is_some() {
            return Err(Refusal::bad("name the resource once, and at most one of client_id, object_id, msi_res_id"));
        }
    }
    let resource = resource.filter(|r| !r.is_empty()).ok_or_else(|| Refusal::bad("resource is required"))?;
    Ok(TokenQuery {
        resource,
        identity: identity.filter(|i| !i.is_empty()),
        service_account_token: service_account_token.filter(|t| !t.is_empty()),
    })
}

/// `%XX` and `+` decoded; `None` for a bad escape or a result that is not UTF-8.
fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// A whole HTTP/1.1 response with a JSON body; the connection closes after it.
pub fn response(status: u16, body: &serde_json::Value) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        429 => "Too Many Requests",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let body = body.to_string();
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The body of a refusal, as Azure's IMDS writes one.
pub fn refusal_body(refusal: &Refusal) -> serde_json::Value {
    serde_json::json!({ "error": refusal.error, "error_description": refusal.description })
}

/// The body of a token, as Azure's IMDS writes one (numbers as strings).
pub fn token_body(token: &str, client_id: &str, resource: &str, expires_in: i64, expires_on: i64) -> serde_json::Value {
    serde_json::json!({
        "access_token": token,
        "client_id": client_id,
        "expires_in": expires_in.to_string(),
        "expires_on": expires_on.to_string(),
        "not_before": (expires_on - expires_in).to_string(),
        "resource": resource,
        "token_type": "Bearer",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(target: &str, headers: &[&str]) -> Vec<u8> {
        let mut h = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n");
        for line in headers {
            h.push_str(line);
            h.push_str("\r\n");
        }
        h.push_str("\r\n");
        h.into_bytes()
    }

    #[test]
    fn a_well_formed_request_names_its_resource_and_identity() {
        let q = parse(&head(
            &format!("{TOKEN_PATH}?api-version=2018-02-01&resource=https%3A%2F%2Farca&client_id=ab-c"),
            &["Metadata: true"],
        ))
        .unwrap();
        assert_eq!(
            q,
            TokenQuery { resource: "https://arca".into(), identity: Some("ab-c".into()), service_account_token: None }
        );
        let q = parse(&head(&format!("{TOKEN_PATH}?resource=arca"), &["metadata: TRUE"])).unwrap();
        assert_eq!(q.identity, None);
    }

    #[test]
    fn a_service_account_token_is_taken_once_and_up_to_its_limit() {
        let target = format!("{TOKEN_PATH}?resource=arca");
        let at = "t".repeat(SERVICE_ACCOUNT_TOKEN_BYTES_MAX);
        let header = format!("{SERVICE_ACCOUNT_TOKEN_HEADER}: {at}");
        let q = parse(&head(&target, &["Metadata: true", &header])).unwrap();
        assert_eq!(q.service_account_token.as_deref(), Some(at.as_str()));
        let past = format!("{SERVICE_ACCOUNT_TOKEN_HEADER}: {at}t");
        assert_eq!(parse(&head(&target, &["Metadata: true", &past])).unwrap_err().status, 400);
        let once = format!("{SERVICE_ACCOUNT_TOKEN_HEADER}: a");
        assert_eq!(parse(&head(&target, &["Metadata: true", &once, &once])).unwrap_err().status, 400);
    }

    #[test]
    fn requests_without_the_header_through_a_proxy_or_elsewhere_are_refused() {
        let target = format!("{TOKEN_PATH}?resource=arca");
        assert_eq!(parse(&head(&target, &[])).unwrap_err().status, 400);
        assert_eq!(parse(&head(&target, &["Metadata: false"])).unwrap_err().status, 400);
        assert_eq!(parse(&head(&target, &["Metadata: true", "X-Forwarded-For: 10.0.0.1"])).unwrap_err().status, 400);
        assert_eq!(parse(&head(&target, &["Metadata: true", "Forwarded: for=10.0.0.1"])).unwrap_err().status, 400);
        assert_eq!(parse(&head("/metadata/instance", &["Metadata: true"])).unwrap_err().status, 404);
        let post = format!("POST {target} HTTP/1.1\r\nMetadata: true\r\n\r\n");
        assert_eq!(parse(post.as_bytes()).unwrap_err().status, 405);
        assert_eq!(parse(&head(TOKEN_PATH, &["Metadata: true"])).unwrap_err().status, 400, "no resource");
        let twice = format!("{TOKEN_PATH}?resource=a&client_id=x&object_id=y");
        assert_eq!(parse(&head(&twice, &["Metadata: true"])).unwrap_err().status, 400);
        for bad in ["GET / HTTP/1.1 extra\r\n\r\n", "GET\r\n\r\n", "\u{0}\r\n\r\n", "GET /x HTTP/2\r\n\r\n"] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
        assert!(parse(&head(&format!("{TOKEN_PATH}?resource=%zz"), &["Metadata: true"])).is_err());
        assert!(parse(&head(&format!("{TOKEN_PATH}?resource=%e2%28"), &["Metadata: true"])).is_err());
    }

    #[test]
    fn limits_hold_at_the_limit_and_refuse_one_past_it() {
        let at = format!("{TOKEN_PATH}?resource={}", "r".repeat(PARAMETER_BYTES_MAX));
        assert!(parse(&head(&at, &["Metadata: true"])).is_ok());
        let past = format!("{TOKEN_PATH}?resource={}", "r".repeat(PARAMETER_BYTES_MAX + 1));
        assert!(parse(&head(&past, &["Metadata: true"])).is_err());
        let mut long = head(&format!("{TOKEN_PATH}?resource=a"), &["Metadata: true"]);
        let pad = format!("X-Pad: {}\r\n\r\n", "p".repeat(REQUEST_HEAD_BYTES_MAX));
        long.truncate(long.len() - 2);
        long.extend_from_slice(pad.as_bytes());
        assert!(long.len() > REQUEST_HEAD_BYTES_MAX);
        assert_eq!(parse(&long).unwrap_err().status, 400);
    }

    #[test]
    fn responses_carry_their_length_and_azure_shaped_bodies() {
        let body = token_body("t", "c", "arca", 3600, 1_700_003_600);
        assert_eq!(body["expires_in"], "3600");
        assert_eq!(body["not_before"], "1700000000");
        let r = String::from_utf8(response(200, &body)).unwrap();
        let (head, json) = r.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK"));
        assert!(head.contains(&format!("Content-Length: {}", json.len())));
        assert_eq!(head_end(r.as_bytes()), Some(head.len() + 4));
    }
}
