//! Retries that cannot act twice: every call carries a request id (`x-arca-request-id`), and a call
//! that failed without saying it changed nothing is sent again with the same id, which the cluster
//! answers with the first outcome (for ten minutes) instead of acting again.
//!
//! Retried: `UNAVAILABLE` (nothing happened: no leader, a node catching up), `DEADLINE_EXCEEDED`
//! (`OUTCOME_UNKNOWN`: the write may have happened, the id makes the retry safe) and failures to
//! reach the node at all. A sealed node is not retried: it needs an operator. When every try failed,
//! the answer is never more certain than the tries were: an `UNAVAILABLE` or `SEALED` after an
//! attempt that may have acted is answered with that attempt's `OUTCOME_UNKNOWN` (or its transport
//! error), never as "nothing happened".

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
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

/// A channel that names every call and retries it as described above. Over several nodes (the
/// addresses a client was given), it sends to one at a time and moves on to the next when a try
/// could not reach its node or the node answered `UNAVAILABLE` (no leader, or a read-only region
/// during a failover), so a client given every node of both regions follows the cluster through a
/// failover without knowing which region is the primary.
#[derive(Clone)]
pub struct Retrying {
    nodes: Arc<[Channel]>,
    current: Arc<AtomicUsize>,
    attempts: u32,
}

impl Retrying {
    pub fn new(inner: Channel, attempts: u32) -> Self {
        Self::over(vec![inner], attempts)
    }

    /// Over several nodes, starting with the first.
    pub fn over(nodes: Vec<Channel>, attempts: u32) -> Self {
        Self { nodes: nodes.into(), current: Arc::default(), attempts: attempts.max(1) }
    }

    /// The node tries go to now, and its index.
    fn pick(&self) -> (usize, Channel) {
        let i = self.current.load(Ordering::Relaxed) % self.nodes.len().max(1);
        (i, self.nodes[i].clone())
    }

    /// Moves on from node `from` (unless another call already has).
    fn move_on(&self, from: usize) {
        if self.nodes.len() > 1 {
            let next = (from + 1) % self.nodes.len();
            let _ = self.current.compare_exchange(from, next, Ordering::Relaxed, Ordering::Relaxed);
        }
    }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A request id unique to this process run (not a secret).
fn new_request_id() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("c{:x}-{:x}-{:x}", std::process::id(), nanos, COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// What one attempt's answer says about the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    /// An answer to keep: success, or an error that another try would only repeat.
    Final,
    /// `UNAVAILABLE` (not sealed): this attempt changed nothing.
    ChangedNothing,
    /// `OUTCOME_UNKNOWN`, or the node could not be reached or stopped answering: it may have acted.
    MayHaveActed,
    /// `SEALED`: this attempt changed nothing, and only an operator can change that. The node did
    /// not look at the request, so the answer says nothing about an earlier attempt.
    Sealed,
    /// `RESOURCE_EXHAUSTED` (throttled: too many calls, or too many writers waiting for one object):
    /// this attempt changed nothing, and trying again at once would only add to the load, so it is
    /// not retried here. Like `SEALED`, it says nothing about an earlier attempt.
    Throttled,
}

/// Reads an answer's headers (errors come without a body, their status in the headers).
fn attempt_of(headers: &http::HeaderMap) -> Attempt {
    let Some(status) = tonic::Status::from_header_map(headers) else { return Attempt::Final };
    let sealed = status.get_error_details().error_info().is_some_and(|i| i.reason == "SEALED");
    match status.code() {
        tonic::Code::Unavailable if sealed => Attempt::Sealed,
        tonic::Code::Unavailable => Attempt::ChangedNothing,
        tonic::Code::DeadlineExceeded => Attempt::MayHaveActed,
        tonic::Code::ResourceExhausted => Attempt::Throttled,
        _ => Attempt::Final,
    }
}

/// What to do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    Return,
    /// Return the first answer that said the call may have acted: the last attempt only knows that
    /// *it* changed nothing, and answering that would tell the caller the call never happened.
    ReturnTheUncertainOne,
    Retry,
}

fn next(attempt: Attempt, last: bool, an_earlier_one_may_have_acted: bool) -> Next {
    match attempt {
        Attempt::Final => Next::Return,
        Attempt::Sealed | Attempt::Throttled if an_earlier_one_may_have_acted => Next::ReturnTheUncertainOne,
        Attempt::Sealed | Attempt::Throttled => Next::Return,
        _ if !last => Next::Retry,
        Attempt::ChangedNothing if an_earlier_one_may_have_acted => Next::ReturnTheUncertainOne,
        _ => Next::Return,
    }
}

impl tonic::codegen::Service<http::Request<Body>> for Retrying {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Each try waits for its own node's channel to be ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let this = self.clone();
        let attempts = self.attempts;
        Box::pin(async move {
            if attempts == 1 {
                let (_, mut inner) = this.pick();
                std::future::poll_fn(|cx| tonic::codegen::Service::poll_ready(&mut inner, cx)).await?;
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
            let mut uncertain = None;
            for attempt in 1..=attempts {
                let mut request = http::Request::new(Body::new(http_body_util::Full::new(bytes.clone())));
                *request.method_mut() = parts.method.clone();
                *request.uri_mut() = parts.uri.clone();
                *request.headers_mut() = parts.headers.clone();
                let (used, mut inner) = this.pick();
                let answer = std::future::poll_fn(|cx| tonic::codegen::Service::poll_ready(&mut inner, cx)).await;
                let result = match answer {
                    Ok(()) => inner.call(request).await,
                    Err(e) => Err(e),
                };
                let last = attempt == attempts;
                let kind = match &result {
                    Ok(response) => attempt_of(response.headers()),
                    Err(_) => Attempt::MayHaveActed,
                };
                match next(kind, last, uncertain.is_some()) {
                    Next::Return => return result.map_err(Into::into),
                    Next::ReturnTheUncertainOne => return uncertain.unwrap_or(result).map_err(Into::into),
                    Next::Retry => {
                        if result.is_err() || kind == Attempt::ChangedNothing {
                            this.move_on(used);
                        }
                        if kind == Attempt::MayHaveActed && uncertain.is_none() {
                            uncertain = Some(result);
                        }
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_secs(2));
                    }
                }
            }
            unreachable!("the last attempt returns")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_final_answer_is_returned_at_once() {
        for last in [false, true] {
            for earlier in [false, true] {
                assert_eq!(next(Attempt::Final, last, earlier), Next::Return);
            }
        }
    }

    #[test]
    fn uncertain_and_unavailable_answers_are_retried_until_the_last_attempt() {
        for attempt in [Attempt::ChangedNothing, Attempt::MayHaveActed] {
            for earlier in [false, true] {
                assert_eq!(next(attempt, false, earlier), Next::Retry);
            }
        }
    }

    #[test]
    fn the_last_unavailable_never_hides_an_earlier_attempt_that_may_have_acted() {
        assert_eq!(next(Attempt::ChangedNothing, true, true), Next::ReturnTheUncertainOne);
        assert_eq!(next(Attempt::ChangedNothing, true, false), Next::Return);
        assert_eq!(next(Attempt::MayHaveActed, true, true), Next::Return);
        assert_eq!(next(Attempt::MayHaveActed, true, false), Next::Return);
    }

    fn headers_of(status: tonic::Status) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        status.add_header(&mut headers).expect("a status fits in headers");
        headers
    }

    #[test]
    fn answers_are_read_as_arca_promises() {
        assert_eq!(attempt_of(&http::HeaderMap::new()), Attempt::Final);
        assert_eq!(attempt_of(&headers_of(tonic::Status::unavailable("no leader"))), Attempt::ChangedNothing);
        assert_eq!(attempt_of(&headers_of(tonic::Status::deadline_exceeded("unknown"))), Attempt::MayHaveActed);
        assert_eq!(attempt_of(&headers_of(tonic::Status::not_found("gone"))), Attempt::Final);
        let sealed = tonic::Status::with_error_details(
            tonic::Code::Unavailable,
            "sealed",
            tonic_types::ErrorDetails::with_error_info("SEALED", "arca", std::collections::HashMap::new()),
        );
        assert_eq!(attempt_of(&headers_of(sealed)), Attempt::Sealed);
    }

    #[test]
    fn a_sealed_node_is_not_retried_and_never_hides_an_earlier_attempt_that_may_have_acted() {
        for last in [false, true] {
            assert_eq!(next(Attempt::Sealed, last, false), Next::Return);
            assert_eq!(next(Attempt::Sealed, last, true), Next::ReturnTheUncertainOne);
        }
    }

    /// A throttled retry (the object's queue was full, or the wait ran out) must not tell the caller
    /// that nothing happened when an earlier attempt may still commit.
    #[test]
    fn a_throttled_answer_is_not_retried_and_never_hides_an_earlier_attempt_that_may_have_acted() {
        for last in [false, true] {
            assert_eq!(next(Attempt::Throttled, last, false), Next::Return);
            assert_eq!(next(Attempt::Throttled, last, true), Next::ReturnTheUncertainOne);
        }
        let mut headers = http::HeaderMap::new();
        tonic::Status::resource_exhausted("throttled").add_header(&mut headers).unwrap();
        assert_eq!(attempt_of(&headers), Attempt::Throttled);
    }
}
