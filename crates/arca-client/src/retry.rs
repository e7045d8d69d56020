//! Retries that cannot act twice: every call carries a request id (`x-arca-request-id`), and a call
//! that failed without saying it changed nothing is sent again with the same id, which the cluster
//! answers with the first outcome (for ten minutes) instead of acting again.
//!
//! Retried: `UNAVAILABLE` (nothing happened: no leader, a node catching up), `DEADLINE_EXCEEDED`
//! (`OUTCOME_UNKNOWN`: the write may have happened, the id makes the retry safe) and failures to
//! reach the node at all. A sealed node is not retried: it needs an operator.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tonic::body::Body;
use tonic::codegen::http;
use tonic::transport::Channel;
use tonic_types::StatusExt;

/// Tries one call gets (the first included), and the pause before the second, doubling after.
pub const CALL_ATTEMPTS_DEFAULT: u32 = 5;
pub const RETRY_PAUSE_MS: u64 = 250;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A channel that names every call and retries it as described above.
#[derive(Clone)]
pub struct Retrying {
    inner: Channel,
    attempts: u32,
}

impl Retrying {
    pub fn new(inner: Channel, attempts: u32) -> Self {
        Self { inner, attempts: attempts.max(1) }
    }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A request id unique to this process run (not a secret).
fn new_request_id() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("c{:x}-{:x}-{:x}", std::process::id(), nanos, COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Whether an answer (its headers, for errors sent without a body) leaves the call worth repeating.
fn worth_retrying(headers: &http::HeaderMap) -> bool {
    let Some(status) = tonic::Status::from_header_map(headers) else { return false };
    let sealed = status.get_error_details().error_info().is_some_and(|i| i.reason == "SEALED");
    matches!(status.code(), tonic::Code::Unavailable | tonic::Code::DeadlineExceeded) && !sealed
}

impl tonic::codegen::Service<http::Request<Body>> for Retrying {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        tonic::codegen::Service::poll_ready(&mut self.inner, cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        let attempts = self.attempts;
        Box::pin(async move {
            if attempts == 1 {
                return inner.call(request).await.map_err(Into::into);
            }
            let (mut parts, body) = request.into_parts();
            if !parts.headers.contains_key("x-arca-request-id") {
                if let Ok(id) = http::HeaderValue::from_str(&new_request_id()) {
                    parts.headers.insert("x-arca-request-id", id);
                }
            }
            let bytes =
                http_body_util::BodyExt::collect(body).await.map_err(|e| -> BoxError { Box::new(e) })?.to_bytes();
            let mut pause = Duration::from_millis(RETRY_PAUSE_MS);
            for attempt in 1..=attempts {
                let mut request = http::Request::new(Body::new(http_body_util::Full::new(bytes.clone())));
                *request.method_mut() = parts.method.clone();
                *request.uri_mut() = parts.uri.clone();
                *request.headers_mut() = parts.headers.clone();
                let answer = std::future::poll_fn(|cx| tonic::codegen::Service::poll_ready(&mut inner, cx)).await;
                let result = match answer {
                    Ok(()) => inner.call(request).await,
                    Err(e) => Err(e),
                };
                let last = attempt == attempts;
                match result {
                    Ok(response) if last || !worth_retrying(response.headers()) => return Ok(response),
                    Err(e) if last => return Err(e.into()),
                    _ => {
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_secs(2));
                    }
                }
            }
            unreachable!("the last attempt returns")
        })
    }
}
