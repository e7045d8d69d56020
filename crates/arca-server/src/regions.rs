//! Regions: which region is the primary (the one whose nodes vote), and how far each replica trails
//! the leader, in entries and in time.
//!
//! Only the leader knows how much of the log each node holds. To say how *long* a node is behind, the
//! leader samples its last log index every [`LAG_SAMPLE_INTERVAL_MS`] into a [`LagClock`]: a node
//! lacking entry `i` is as far behind as the time since the first sample that held `i`.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use arca_raft::ClusterView;
use tokio::time::Instant;

/// How often the leader samples its last log index, in milliseconds: the precision of a lag in time.
pub const LAG_SAMPLE_INTERVAL_MS: u64 = 100;
/// How many samples the leader keeps (10 minutes at one per interval); a node further behind is
/// reported as behind by at least the age of the oldest sample.
pub const LAG_SAMPLES_MAX: usize = 6_000;

/// When the leader's log reached which index.
#[derive(Default)]
pub struct LagClock {
    samples: Mutex<VecDeque<(u64, Instant)>>,
}

impl LagClock {
    /// Notes that the log ended at `last_index` at `at`. A log that got shorter (a new leader
    /// truncated entries that never committed) starts the record again.
    pub fn record(&self, last_index: u64, at: Instant) {
        let mut samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        match samples.back() {
            Some(&(newest, _)) if newest == last_index => return,
            Some(&(newest, _)) if newest > last_index => samples.clear(),
            _ => {}
        }
        samples.push_back((last_index, at));
        while samples.len() > LAG_SAMPLES_MAX {
            samples.pop_front();
        }
    }

    /// How long a node holding the log up to `matched` has lacked the entry after it: zero if it
    /// holds everything sampled so far.
    pub fn lag(&self, matched: u64, now: Instant) -> Duration {
        let samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        samples
            .iter()
            .find(|(index, _)| *index > matched)
            .map_or(Duration::ZERO, |(_, at)| now.saturating_duration_since(*at))
    }

    /// Forgets every sample (this node stopped leading: its successor keeps its own).
    pub fn clear(&self) {
        self.samples.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// What status says about one region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionSummary {
    pub name: String,
    pub primary: bool,
    pub node_ids: Vec<u64>,
    /// The most any of its nodes trails the leader, in entries and in time (leader's view only).
    pub lag_entries: u64,
    pub lag: Duration,
}

/// The primary region: the region of the voters (the leader's, if this node knows the leader).
pub fn primary_region(view: &ClusterView) -> Option<String> {
    let leader = view.leader_id.and_then(|id| view.nodes.iter().find(|n| n.node_id == id));
    leader.or_else(|| view.nodes.iter().find(|n| n.voter)).map(|n| n.node.region.clone())
}

/// Every region with a member, the primary first, then by name; `lag_of(matched)` converts a node's
/// matched index into time.
pub fn summarize(view: &ClusterView, lag_of: impl Fn(u64) -> Duration) -> Vec<RegionSummary> {
    let primary = primary_region(view);
    let mut regions: Vec<RegionSummary> = Vec::new();
    for node in &view.nodes {
        let (entries, time) = match node.matched_index {
            Some(m) => (view.last_log_index.saturating_sub(m), lag_of(m)),
            None => (0, Duration::ZERO),
        };
        let name = &node.node.region;
        let region = match regions.iter_mut().find(|r| &r.name == name) {
            Some(r) => r,
            None => {
                regions.push(RegionSummary {
                    name: name.clone(),
                    primary: primary.as_deref() == Some(name.as_str()),
                    node_ids: Vec::new(),
                    lag_entries: 0,
                    lag: Duration::ZERO,
                });
                regions.last_mut().expect("just pushed")
            }
        };
        region.node_ids.push(node.node_id);
        region.lag_entries = region.lag_entries.max(entries);
        region.lag = region.lag.max(time);
    }
    regions.sort_by(|a, b| b.primary.cmp(&a.primary).then_with(|| a.name.cmp(&b.name)));
    regions
}

#[cfg(test)]
mod tests {
    use super::*;
    use arca_raft::{ArcaNode, NodeView};

    fn node(id: u64, region: &str, voter: bool, matched: Option<u64>) -> NodeView {
        NodeView {
            node_id: id,
            node: ArcaNode { api_addr: String::new(), cluster_addr: String::new(), region: region.to_owned() },
            voter,
            matched_index: matched,
        }
    }

    #[test]
    fn a_node_is_as_far_behind_as_the_first_sample_holding_what_it_lacks() {
        let clock = LagClock::default();
        let t0 = Instant::now();
        clock.record(10, t0);
        clock.record(10, t0 + Duration::from_millis(100)); // no new entry: no new sample
        clock.record(15, t0 + Duration::from_millis(200));
        clock.record(20, t0 + Duration::from_millis(300));
        let now = t0 + Duration::from_millis(1_000);
        assert_eq!(clock.lag(20, now), Duration::ZERO);
        assert_eq!(clock.lag(25, now), Duration::ZERO);
        assert_eq!(clock.lag(19, now), Duration::from_millis(700));
        assert_eq!(clock.lag(15, now), Duration::from_millis(700));
        assert_eq!(clock.lag(14, now), Duration::from_millis(800));
        assert_eq!(clock.lag(9, now), Duration::from_millis(1_000));
        assert_eq!(clock.lag(0, now), Duration::from_millis(1_000));
    }

    #[test]
    fn samples_are_bounded_and_a_shorter_log_starts_again() {
        let clock = LagClock::default();
        let t0 = Instant::now();
        for i in 0..=LAG_SAMPLES_MAX as u64 {
            clock.record(i + 1, t0 + Duration::from_millis(i));
        }
        // The first sample (index 1 at t0) is gone: index 2 at t0 + 1 ms is the oldest kept.
        let now = t0 + Duration::from_secs(60);
        assert_eq!(clock.lag(0, now), Duration::from_secs(60) - Duration::from_millis(1));
        clock.record(3, now);
        assert_eq!(clock.lag(2, now + Duration::from_millis(5)), Duration::from_millis(5));
        assert_eq!(clock.lag(3, now + Duration::from_millis(5)), Duration::ZERO);
        clock.clear();
        assert_eq!(clock.lag(0, now), Duration::ZERO);
    }

    #[test]
    fn regions_are_summarized_primary_first_with_their_worst_lag() {
        let view = ClusterView {
            node_id: 1,
            leader_id: Some(2),
            term: 3,
            state: "follower",
            last_log_index: 50,
            commit_index: 50,
            applied_index: 50,
            nodes: vec![
                node(1, "west", true, Some(50)),
                node(2, "west", true, Some(50)),
                node(3, "west", true, Some(48)),
                node(4, "east", false, Some(40)),
                node(5, "east", false, Some(45)),
                node(6, "alpha", false, None),
            ],
        };
        assert_eq!(primary_region(&view).as_deref(), Some("west"));
        let regions = summarize(&view, |m| Duration::from_millis(50 - m));
        let names: Vec<&str> = regions.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["west", "alpha", "east"]);
        assert!(regions[0].primary && !regions[1].primary && !regions[2].primary);
        assert_eq!(regions[0].node_ids, [1, 2, 3]);
        assert_eq!((regions[0].lag_entries, regions[0].lag), (2, Duration::from_millis(2)));
        assert_eq!((regions[2].lag_entries, regions[2].lag), (10, Duration::from_millis(10)));
        assert_eq!((regions[1].lag_entries, regions[1].lag), (0, Duration::ZERO));
    }

    #[test]
    fn without_a_known_leader_the_voters_name_the_primary() {
        let view = ClusterView {
            node_id: 4,
            leader_id: None,
            term: 3,
            state: "learner",
            last_log_index: 5,
            commit_index: 5,
            applied_index: 5,
            nodes: vec![node(4, "east", false, None), node(1, "west", true, None)],
        };
        assert_eq!(primary_region(&view).as_deref(), Some("west"));
    }
}
