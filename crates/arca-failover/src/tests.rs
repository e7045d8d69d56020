//! The rules one by one, then a model of three sites under partitions, crashes, restarts, message
//! delays and losses and clocks that run at different rates, checked for the one property that
//! matters: at no instant do two primaries hold a lease. Two deliberate bugs show the check can fail.

use super::*;

fn timing() -> Timing {
    Timing { lease_ms: 3_000, drift_margin_ms: 1_000, failover_after_ms: 3_000 }
}

fn ids(list: &[u64]) -> BTreeSet<u64> {
    list.iter().copied().collect()
}

fn sites() -> Sites {
    Sites::new([("a".to_owned(), ids(&[1, 2, 3])), ("b".to_owned(), ids(&[4, 5, 6])), ("w".to_owned(), ids(&[7]))])
        .unwrap()
}

#[test]
fn timing_limits_hold_at_the_limit_and_refuse_one_past_it() {
    assert!(Timing::default().check().is_ok());
    let t = |lease_ms, drift_margin_ms, failover_after_ms| Timing { lease_ms, drift_margin_ms, failover_after_ms };
    assert!(t(LEASE_MS_MIN, LEASE_MS_MIN / 10, LEASE_MS_MIN).check().is_ok());
    assert!(t(LEASE_MS_MIN - 1, LEASE_MS_MIN / 10, LEASE_MS_MIN).check().is_err());
    assert!(t(LEASE_MS_MAX, LEASE_MS_MAX, LEASE_MS_MAX).check().is_ok());
    assert!(t(LEASE_MS_MAX + 1, LEASE_MS_MAX, LEASE_MS_MAX + 1).check().is_err());
    assert!(t(3_000, 300, 3_000).check().is_ok());
    assert!(t(3_000, 299, 3_000).check().unwrap_err().contains("300-3000 ms"));
    assert!(t(3_000, 3_001, 3_000).check().is_err());
    assert!(t(3_000, 1_000, 2_999).check().is_err());
    assert!(t(3_000, 1_000, FAILOVER_AFTER_MS_MAX).check().is_ok());
    assert!(t(3_000, 1_000, FAILOVER_AFTER_MS_MAX + 1).check().is_err());
    // 1 s of margin on a 3 s lease tolerates clocks 14 % off.
    assert!((timing().max_drift_rate() - 1.0 / 7.0).abs() < 1e-9);
    assert_eq!(timing().renew_every_ms(), 1_000);
}

#[test]
fn an_acceptor_grants_its_epoch_refuses_others_and_takes_up_newer_ones_once_its_promise_ran_out() {
    let t = timing();
    let one = Epoch::first("a");
    let mut acceptor = Acceptor::start(one.clone(), 0, &t);
    assert_eq!(acceptor.renew(&one, 10, &t), (Renewal::Granted, false));
    assert_eq!(acceptor.promised_until(), 4_010);
    // Another region under the same number is not this epoch.
    let impostor = Epoch { number: 1, primary: "b".into(), founder: 0 };
    assert_eq!(acceptor.renew(&impostor, 20, &t), (Renewal::Refused { current: one.clone() }, false));
    // A newer epoch is not taken up by a renewal while the promise runs: a renewal proves nothing about
    // who won (a region whose promotion reached only some acceptors might renew it).
    let two = one.next("b");
    assert_eq!(acceptor.renew(&two, 4_009, &t), (Renewal::Refused { current: one.clone() }, false));
    assert_eq!(acceptor.accepted(), &one);
    assert_eq!(acceptor.renew(&two, 4_010, &t), (Renewal::Granted, true));
    assert_eq!(acceptor.accepted(), &two);
    assert_eq!(acceptor.renew(&one, 4_020, &t), (Renewal::Refused { current: two }, false));
}

#[test]
fn a_partial_promotion_renewed_later_cannot_take_over_the_witness_while_it_promised_the_primary() {
    // A-B cut: B's acceptors accepted {2, b} but the witness refused it. Later B renews {2, b} as if
    // it had won; the witness, still promising A, must not grant it.
    let t = timing();
    let one = Epoch::first("a");
    let two = one.next("b");
    let mut witness = Acceptor::start(one.clone(), 0, &t);
    let _ = witness.renew(&one, 10_000, &t);
    assert!(matches!(witness.promote(&two, 11_000, &t).0, Promotion::Refused { .. }));
    let _ = witness.renew(&one, 12_000, &t);
    assert_eq!(witness.renew(&two, 12_500, &t), (Renewal::Refused { current: one.clone() }, false));
    let s = sites();
    let mut b_lease = Lease::new(two.clone());
    let mut answers: BTreeMap<u64, Renewal> = [4, 5, 6].map(|id| (id, Renewal::Granted)).into_iter().collect();
    answers.insert(7, witness.renew(&two, 12_600, &t).0);
    b_lease.round(12_600, &answers, &s, &t);
    assert!(!b_lease.holds(12_601), "one site of three granted");
}

#[test]
fn an_acceptor_accepts_a_higher_epoch_only_once_its_promise_has_run_out() {
    let t = timing();
    let one = Epoch::first("a");
    let two = one.next("b");
    let mut acceptor = Acceptor::start(one.clone(), 0, &t);
    let _ = acceptor.renew(&one, 1_000, &t);
    assert_eq!(
        acceptor.promote(&two, 4_999, &t),
        (Promotion::Refused { current: one.clone(), retry_in_ms: 1 }, false),
        "a lease and a margin after the last renewal"
    );
    assert_eq!(acceptor.promote(&two, 5_000, &t), (Promotion::Accepted, true));
    assert_eq!(acceptor.promote(&two, 5_001, &t), (Promotion::Accepted, false), "the same promotion again");
    // Not back, not sideways.
    assert_eq!(
        acceptor.promote(&Epoch { number: 2, primary: "a".into(), founder: 0 }, 20_000, &t),
        (Promotion::Refused { current: two.clone(), retry_in_ms: 0 }, false)
    );
    assert_eq!(
        acceptor.promote(&one, 20_000, &t),
        (Promotion::Refused { current: two.clone(), retry_in_ms: 0 }, false)
    );
    // The promotion is the new primary's first promise.
    let three = two.next("a");
    assert_eq!(acceptor.promote(&three, 8_999, &t).0, Promotion::Refused { current: two.clone(), retry_in_ms: 1 });
    assert_eq!(acceptor.promote(&three, 9_000, &t), (Promotion::Accepted, true));
}

#[test]
fn a_restarted_acceptor_keeps_a_promise_it_may_have_made_before_it_stopped() {
    let t = timing();
    let one = Epoch::first("a");
    let mut acceptor = Acceptor::start(one.clone(), 50_000, &t);
    assert!(matches!(acceptor.promote(&one.next("b"), 53_999, &t).0, Promotion::Refused { retry_in_ms: 1, .. }));
    assert_eq!(acceptor.promote(&one.next("b"), 54_000, &t).0, Promotion::Accepted);
}

#[test]
fn sites_agree_by_a_majority_of_their_acceptors_and_decide_by_two_of_three() {
    let s = sites();
    assert!(s.is_majority(&ids(&[1, 2, 7])), "A and the witness");
    assert!(s.is_majority(&ids(&[1, 2, 4, 5])), "A and B");
    assert!(s.is_majority(&ids(&[4, 5, 7])), "B and the witness");
    assert!(!s.is_majority(&ids(&[1, 2, 3, 4])), "A alone, and one of B's three");
    assert!(!s.is_majority(&ids(&[1, 4, 7])), "one of A's three is not A");
    assert!(!s.is_majority(&ids(&[7])));
    assert_eq!(s.agreeing(&ids(&[1, 2, 4, 7, 99])), ["a", "w"]);
    assert!(s.site_agrees("b", &ids(&[5, 6])) && !s.site_agrees("b", &ids(&[6])));
    assert_eq!(s.site_of(5), Some("b"));
    assert_eq!(s.site_of(99), None);
    // Two acceptors of one site: both are needed.
    let even = Sites::new([("a".into(), ids(&[1, 2])), ("b".into(), ids(&[3])), ("w".into(), ids(&[4]))]).unwrap();
    assert!(!even.is_majority(&ids(&[1, 4])) && even.is_majority(&ids(&[1, 2, 4])));
}

#[test]
fn sites_must_be_three_non_empty_and_disjoint() {
    let site = |name: &str, list: &[u64]| (name.to_owned(), ids(list));
    assert!(Sites::new([site("a", &[1]), site("b", &[2])]).unwrap_err().contains("three sites"));
    assert!(Sites::new([site("a", &[1]), site("b", &[2]), site("c", &[3]), site("d", &[4])]).is_err());
    assert!(Sites::new([site("a", &[1]), site("b", &[]), site("w", &[3])]).unwrap_err().contains("no acceptor"));
    assert!(Sites::new([site("a", &[1]), site("a", &[2]), site("w", &[3])]).unwrap_err().contains("twice"));
    assert!(Sites::new([site("a", &[1, 2]), site("b", &[2]), site("w", &[3])]).unwrap_err().contains("two sites"));
}

#[test]
fn a_lease_runs_from_when_its_round_was_sent_and_needs_a_majority_of_sites() {
    let t = timing();
    let s = sites();
    let mut lease = Lease::new(Epoch::first("a"));
    assert!(!lease.holds(0), "no lease before a round");
    let answers = |granted: &[u64]| granted.iter().map(|id| (*id, Renewal::Granted)).collect::<BTreeMap<_, _>>();
    lease.round(100, &answers(&[1, 2, 3]), &s, &t);
    assert!(!lease.holds(150), "A alone is one site of three");
    lease.round(200, &answers(&[1, 2, 7]), &s, &t);
    assert!(lease.holds(3_199) && !lease.holds(3_200));
    assert_eq!(lease.remaining_ms(3_000), 200);
    // A late answer to an older round never shortens the lease.
    lease.round(1_200, &answers(&[1, 2, 4, 5]), &s, &t);
    lease.round(300, &answers(&[1, 2, 7]), &s, &t);
    assert!(lease.holds(4_199) && !lease.holds(4_200));
    // One site holding a higher epoch (a promotion that reached only it) fences nothing: A and the
    // witness still grant.
    let two = Epoch::first("a").next("b");
    let mut partly = answers(&[1, 2, 3, 7]);
    partly.extend([4, 5].map(|id| (id, Renewal::Refused { current: two.clone() })));
    lease.round(1_300, &partly, &s, &t);
    assert!(lease.holds(4_299) && lease.fenced_by().is_none());
    // Two sites holding it, even said in different rounds: that epoch won, and this one is fenced for
    // good.
    let mut later = answers(&[1, 2, 3]);
    later.insert(7, Renewal::Refused { current: two.clone() });
    let mut early = lease.clone();
    early.round(1_350, &later, &s, &t);
    assert_eq!(early.fenced_by(), Some(&two), "B said so in the round before, the witness in this one");
    let mut fenced = answers(&[1, 2, 3]);
    fenced.extend([4, 5, 7].map(|id| (id, Renewal::Refused { current: two.clone() })));
    lease.round(1_400, &fenced, &s, &t);
    assert!(!lease.holds(1_401));
    assert_eq!(lease.fenced_by(), Some(&two));
    lease.round(1_500, &answers(&[1, 2, 3, 7]), &s, &t);
    assert!(!lease.holds(1_501) && lease.remaining_ms(1_501) == 0);
}

#[test]
fn the_most_advanced_node_of_a_majority_of_the_region_promotes() {
    let region = ids(&[4, 5, 6]);
    let progress = |list: &[(u64, u64)]| list.iter().copied().collect::<BTreeMap<u64, u64>>();
    assert_eq!(candidate(&region, &progress(&[(4, 10), (5, 12), (6, 11)])), Some(5));
    assert_eq!(candidate(&region, &progress(&[(4, 12), (6, 12)])), Some(4), "lowest id on a tie");
    assert_eq!(candidate(&region, &progress(&[(6, 12)])), None, "one of three cannot know it is ahead");
    assert_eq!(candidate(&region, &progress(&[(6, 12), (1, 99)])), None, "a node of another region is not counted");
    assert_eq!(candidate(&ids(&[4]), &progress(&[(4, 3)])), Some(4));
    // Logs compare as Raft compares them: a longer log of an older term holds entries a later
    // leader replaced, the shorter one of the later term the ones it committed.
    let by_term: BTreeMap<u64, (u64, u64)> = [(4, (6, 103)), (5, (5, 105))].into();
    assert_eq!(candidate(&region, &by_term), Some(4));
}

// ---------------------------------------------------------------------------------------------------
// The model.

/// A small deterministic generator (xorshift64*), so a failing seed can be replayed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    /// A uniform value in `[-1, 1]`.
    fn unit(&mut self) -> f64 {
        (self.below(2_000_001) as f64 / 1_000_000.0) - 1.0
    }
}

/// A deliberate bug the model must catch.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Bug {
    None,
    /// Acceptors accept a promotion without waiting out their promise (B promotes without a valid majority).
    AcceptorsBreakPromises,
    /// The primary acknowledges writes without a lease (it ignores its lease running out).
    PrimaryIgnoresLease,
    /// A region promotes itself once its own acceptors agree, without a majority of the sites, and
    /// takes writes from then on.
    PromotesWithoutMajority,
}

#[derive(Clone, Debug)]
enum Msg {
    Renew { holder: usize, round: u64, epoch: Epoch },
    Promote { holder: usize, epoch: Epoch },
    Renewed { round: u64, from: u64, answer: Renewal },
    Promoted { from: u64, answer: Promotion },
}

#[derive(Clone, Copy, Debug)]
enum To {
    Acceptor(u64),
    Holder(usize),
}

/// A would-be primary: A's leader (holder 0, in site "a", on acceptor 1's clock) or B's candidate
/// (holder 1, in site "b", on acceptor 4's clock). Either may lose its lease and either may promote.
struct Holder {
    site: &'static str,
    clock_of: u64,
    lease: Option<Lease>,
    next_round_at: u64,
    rounds: BTreeMap<u64, (u64, BTreeMap<u64, Renewal>)>,
    round_seq: u64,
    /// The newest epoch this holder has seen.
    known: Epoch,
    /// A promotion under way: the epoch, who accepted it, when it was sent (local).
    promoting: Option<(Epoch, BTreeSet<u64>, u64)>,
    /// When (local) it last heard the current primary.
    last_heard_primary: u64,
}

const SITE_OF: [(u64, &str); 7] = [(1, "a"), (2, "a"), (3, "a"), (4, "b"), (5, "b"), (6, "b"), (7, "w")];

fn site_of(id: u64) -> &'static str {
    SITE_OF.iter().find(|(i, _)| *i == id).map(|(_, s)| *s).expect("a known acceptor")
}

struct Model {
    rng: Rng,
    bug: Bug,
    timing: Timing,
    sites: Sites,
    /// Each acceptor's clock: local = offset + rate × real.
    clocks: BTreeMap<u64, (f64, f64)>,
    acceptors: BTreeMap<u64, Acceptor>,
    persisted: BTreeMap<u64, Epoch>,
    /// Sites that are down (crashed), and links cut between sites.
    down: BTreeSet<&'static str>,
    cut: BTreeSet<(&'static str, &'static str)>,
    in_flight: Vec<(u64, To, Msg)>,
    holders: [Holder; 2],
    /// One weather pattern from 5 s on, instead of a random one every 2-12 s.
    fixed_weather: Option<u64>,
}

/// What a run saw.
#[derive(Default, Debug)]
struct Seen {
    /// A real time at which both holders held a lease, if any.
    overlap: Option<u64>,
    a_held: bool,
    b_held: bool,
    promotions: u64,
    /// When (real time) each holder last acknowledged, and when b first did.
    a_last: Option<u64>,
    b_first: Option<u64>,
}

impl Model {
    fn new(seed: u64, bug: Bug) -> Self {
        let mut rng = Rng::new(seed);
        let timing = timing();
        // Every clock runs within 95 % of the drift the timing tolerates, with its own offset.
        let rate_bound = timing.max_drift_rate() * 0.95;
        let clocks: BTreeMap<u64, (f64, f64)> =
            SITE_OF.iter().map(|(id, _)| (*id, (rng.below(1_000_000) as f64, 1.0 + rate_bound * rng.unit()))).collect();
        let first = Epoch::first("a");
        let local_zero = |id: u64| clocks[&id].0 as u64;
        let acceptors =
            SITE_OF.iter().map(|(id, _)| (*id, Acceptor::start(first.clone(), local_zero(*id), &timing))).collect();
        let persisted = SITE_OF.iter().map(|(id, _)| (*id, first.clone())).collect();
        let holder = |site, clock_of| Holder {
            site,
            clock_of,
            lease: None,
            next_round_at: 0,
            rounds: BTreeMap::new(),
            round_seq: 0,
            known: first.clone(),
            promoting: None,
            last_heard_primary: local_zero(clock_of),
        };
        let mut holders = [holder("a", 1), holder("b", 4)];
        holders[0].lease = Some(Lease::new(first));
        Self {
            rng,
            bug,
            timing,
            sites: sites(),
            clocks,
            acceptors,
            persisted,
            down: BTreeSet::new(),
            cut: BTreeSet::new(),
            in_flight: Vec::new(),
            holders,
            fixed_weather: None,
        }
    }

    fn with_weather(mut self, pattern: u64) -> Self {
        self.fixed_weather = Some(pattern);
        self
    }

    fn local(&self, id: u64, real: u64) -> u64 {
        let (offset, rate) = self.clocks[&id];
        (offset + rate * real as f64) as u64
    }

    fn linked(&self, a: &str, b: &str) -> bool {
        !self.down.contains(a)
            && !self.down.contains(b)
            && !self.cut.iter().any(|(x, y)| (*x, *y) == (a, b) || (*x, *y) == (b, a))
    }

    fn send(&mut self, now: u64, from: &'static str, to: To, msg: Msg) {
        let to_site = match to {
            To::Acceptor(id) => site_of(id),
            To::Holder(h) => self.holders[h].site,
        };
        if !self.linked(from, to_site) || self.rng.chance(3) {
            return;
        }
        let delay = 1 + self.rng.below(if from == to_site { 20 } else { 300 });
        self.in_flight.push((now + delay, to, msg));
    }

    /// Changes which sites are down and which links are cut; a site that comes back restarts its
    /// acceptors from what they persisted.
    fn weather(&mut self, now: u64) {
        let was_down = std::mem::take(&mut self.down);
        self.cut.clear();
        let pattern = match self.fixed_weather {
            Some(p) => p,
            None => self.rng.below(10),
        };
        match pattern {
            0 | 1 => {}
            2 => drop(self.cut.insert(("a", "b"))),
            3 => drop(self.cut.insert(("a", "w"))),
            4 => drop(self.cut.insert(("b", "w"))),
            5 => self.cut.extend([("a", "b"), ("a", "w")]),
            6 => drop(self.down.insert("a")),
            7 => drop(self.down.insert("w")),
            8 => self.cut.extend([("a", "b"), ("b", "w")]),
            _ => self.down.extend(["a", "w"]),
        }
        for site in was_down.difference(&self.down) {
            for (id, s) in SITE_OF {
                if s == *site {
                    let acceptor = Acceptor::start(self.persisted[&id].clone(), self.local(id, now), &self.timing);
                    self.acceptors.insert(id, acceptor);
                }
            }
            // Messages to a crashed site were lost with it.
        }
        let down = self.down.clone();
        let holders_sites = [self.holders[0].site, self.holders[1].site];
        self.in_flight.retain(|(_, to, _)| match to {
            To::Acceptor(id) => !down.contains(site_of(*id)),
            To::Holder(h) => !down.contains(holders_sites[*h]),
        });
    }

    fn at_acceptor(&mut self, now: u64, id: u64, msg: Msg) {
        let local = self.local(id, now);
        let timing = self.timing;
        let acceptor = self.acceptors.get_mut(&id).expect("a known acceptor");
        let (reply, holder) = match msg {
            Msg::Renew { holder, round, epoch } => {
                let (answer, changed) = acceptor.renew(&epoch, local, &timing);
                if changed {
                    self.persisted.insert(id, acceptor.accepted().clone());
                }
                (Msg::Renewed { round, from: id, answer }, holder)
            }
            Msg::Promote { holder, epoch } => {
                if self.bug == Bug::AcceptorsBreakPromises {
                    acceptor.promised_until = 0;
                }
                let (answer, changed) = acceptor.promote(&epoch, local, &timing);
                if changed {
                    self.persisted.insert(id, acceptor.accepted().clone());
                }
                (Msg::Promoted { from: id, answer }, holder)
            }
            _ => unreachable!("acceptors get requests"),
        };
        self.send(now, site_of(id), To::Holder(holder), reply);
    }

    fn at_holder(&mut self, now: u64, which: usize, msg: Msg, seen: &mut Seen) {
        if self.down.contains(self.holders[which].site) {
            return;
        }
        let local = self.local(self.holders[which].clock_of, now);
        let sites = self.sites.clone();
        let timing = self.timing;
        let h = &mut self.holders[which];
        match msg {
            Msg::Renewed { round, from, answer } => {
                if let Renewal::Refused { current } = &answer {
                    if current.number > h.known.number {
                        h.known = current.clone();
                        h.last_heard_primary = local;
                    }
                }
                let Some((sent, answers)) = h.rounds.get_mut(&round) else { return };
                answers.insert(from, answer);
                let (sent, answers) = (*sent, answers.clone());
                if let Some(lease) = h.lease.as_mut() {
                    lease.round(sent, &answers, &sites, &timing);
                }
            }
            Msg::Promoted { from, answer } => {
                let Some((epoch, accepted, _)) = h.promoting.as_mut() else { return };
                match answer {
                    Promotion::Accepted => drop(accepted.insert(from)),
                    Promotion::Refused { current, .. } => {
                        if current.number > h.known.number {
                            h.known = current;
                            h.last_heard_primary = local;
                        }
                        return;
                    }
                }
                let won = if self.bug == Bug::PromotesWithoutMajority {
                    sites.site_agrees(h.site, accepted)
                } else {
                    sites.is_majority(accepted)
                };
                if won {
                    let epoch = epoch.clone();
                    h.known = epoch.clone();
                    h.lease = Some(Lease::new(epoch));
                    h.promoting = None;
                    h.next_round_at = 0;
                    seen.promotions += 1;
                }
            }
            _ => unreachable!("holders get answers"),
        }
    }

    /// One holder's turn at real time `now`: renew its lease, or promote once the primary has been
    /// silent for the failover delay.
    fn act(&mut self, now: u64, which: usize) {
        let site = self.holders[which].site;
        if self.down.contains(site) {
            return;
        }
        let local = self.local(self.holders[which].clock_of, now);
        // It hears the other holder while that one leads and their sites are linked (its Raft traffic).
        let other = &self.holders[1 - which];
        let other_leads = other.lease.as_ref().is_some_and(|l| l.fenced_by().is_none());
        if other_leads && self.linked(site, other.site) {
            self.holders[which].last_heard_primary = local;
        }
        let acceptors: Vec<u64> = self.sites.acceptors().collect();
        let renew_every = self.timing.renew_every_ms();
        let h = &mut self.holders[which];
        let leads = h.lease.as_ref().is_some_and(|l| l.fenced_by().is_none());
        if leads {
            if local >= h.next_round_at {
                h.next_round_at = local + renew_every;
                h.round_seq += 1;
                let round = h.round_seq;
                h.rounds.insert(round, (local, BTreeMap::new()));
                if h.rounds.len() > 16 {
                    h.rounds.pop_first();
                }
                let epoch = h.lease.as_ref().expect("it leads").epoch().clone();
                for id in acceptors {
                    self.send(now, site, To::Acceptor(id), Msg::Renew { holder: which, round, epoch: epoch.clone() });
                }
            }
            return;
        }
        if local.saturating_sub(h.last_heard_primary) < self.timing.failover_after_ms {
            return;
        }
        if h.promoting.as_ref().is_some_and(|(_, _, sent)| local < sent + renew_every) {
            return;
        }
        let epoch = h.known.next(site);
        h.promoting = Some((epoch.clone(), BTreeSet::new(), local));
        for id in acceptors {
            self.send(now, site, To::Acceptor(id), Msg::Promote { holder: which, epoch: epoch.clone() });
        }
    }

    /// Whether holder `which` would acknowledge a write at real time `now`.
    fn acknowledges(&self, now: u64, which: usize) -> bool {
        let h = &self.holders[which];
        if self.down.contains(h.site) {
            return false;
        }
        let local = self.local(h.clock_of, now);
        match &h.lease {
            Some(lease) if self.bug == Bug::PrimaryIgnoresLease => lease.fenced_by().is_none() && lease.until.is_some(),
            Some(lease) if self.bug == Bug::PromotesWithoutMajority && lease.epoch().number > 1 => {
                lease.fenced_by().is_none()
            }
            Some(lease) => lease.holds(local),
            None => false,
        }
    }

    /// Runs `real_ms` of real time in steps of 5 ms.
    fn run(&mut self, real_ms: u64) -> Seen {
        let mut seen = Seen::default();
        let mut next_weather = 5_000;
        let mut now = 0;
        while now < real_ms {
            if now >= next_weather {
                self.weather(now);
                next_weather =
                    if self.fixed_weather.is_some() { u64::MAX } else { now + 2_000 + self.rng.below(10_000) };
            }
            let due: Vec<(u64, To, Msg)> = {
                let (due, later): (Vec<_>, Vec<_>) = self.in_flight.drain(..).partition(|(at, _, _)| *at <= now);
                self.in_flight = later;
                due
            };
            for (_, to, msg) in due {
                match to {
                    To::Acceptor(id) if !self.down.contains(site_of(id)) => self.at_acceptor(now, id, msg),
                    To::Acceptor(_) => {}
                    To::Holder(h) => self.at_holder(now, h, msg, &mut seen),
                }
            }
            self.act(now, 0);
            self.act(now, 1);
            let (a, b) = (self.acknowledges(now, 0), self.acknowledges(now, 1));
            seen.a_held |= a;
            seen.b_held |= b;
            if a {
                seen.a_last = Some(now);
            }
            if b && seen.b_first.is_none() {
                seen.b_first = Some(now);
            }
            if a && b && seen.overlap.is_none() {
                seen.overlap = Some(now);
            }
            now += 5;
        }
        seen
    }
}

const SEEDS: u64 = 150;
const RUN_MS: u64 = 120_000;

#[test]
fn at_no_instant_do_two_regions_hold_a_lease() {
    let (mut a_held, mut b_held, mut promotions) = (0, 0, 0);
    for seed in 0..SEEDS {
        let seen = Model::new(seed, Bug::None).run(RUN_MS);
        assert_eq!(seen.overlap, None, "seed {seed}: two primaries at once ({seen:?})");
        a_held += u64::from(seen.a_held);
        b_held += u64::from(seen.b_held);
        promotions += seen.promotions;
    }
    // Not vacuous: primaries held leases, and regions took over from each other many times.
    assert_eq!(a_held, SEEDS, "the first primary held its lease in every run");
    assert!(b_held > SEEDS / 2 && promotions > SEEDS, "b held a lease in {b_held} runs, {promotions} promotions");
}

#[test]
fn the_model_catches_acceptors_that_break_their_promises() {
    let caught =
        (0..SEEDS).filter(|seed| Model::new(*seed, Bug::AcceptorsBreakPromises).run(RUN_MS).overlap.is_some()).count();
    assert!(caught > 0, "no run caught it");
}

#[test]
fn the_model_catches_a_primary_that_ignores_its_lease() {
    let caught =
        (0..SEEDS).filter(|seed| Model::new(*seed, Bug::PrimaryIgnoresLease).run(RUN_MS).overlap.is_some()).count();
    assert!(caught > 0, "no run caught it");
}

#[test]
fn the_model_catches_a_region_that_promotes_without_a_majority() {
    let caught =
        (0..SEEDS).filter(|seed| Model::new(*seed, Bug::PromotesWithoutMajority).run(RUN_MS).overlap.is_some()).count();
    assert!(caught > 0, "no run caught it");
}

/// From 5 s on, one pattern for the rest of the run.
fn fixed(pattern: u64) -> impl Iterator<Item = Seen> {
    (0..20).map(move |seed| Model::new(seed, Bug::None).with_weather(pattern).run(30_000))
}

#[test]
fn a_cut_between_the_regions_or_a_lost_witness_changes_nothing() {
    // 2: A-B cut (A keeps its lease through W); 7: the witness lost (A keeps it through B); 4: B-W cut.
    for pattern in [2, 4, 7] {
        for (seed, seen) in fixed(pattern).enumerate() {
            assert_eq!(seen.promotions, 0, "pattern {pattern}, seed {seed}: {seen:?}");
            assert!(seen.a_last.is_some_and(|t| t >= 29_990), "pattern {pattern}, seed {seed}: A stopped: {seen:?}");
        }
    }
}

#[test]
fn with_the_primary_and_the_witness_lost_the_secondary_never_promotes_by_itself() {
    for (seed, seen) in fixed(9).enumerate() {
        assert!(!seen.b_held && seen.promotions == 0, "seed {seed}: {seen:?}");
    }
}

#[test]
fn the_secondary_takes_over_within_the_failover_delay_and_a_promise_when_the_primary_region_is_lost() {
    let t = timing();
    for (seed, seen) in fixed(6).enumerate() {
        let a_last = seen.a_last.expect("A held its lease before it was lost");
        assert!(a_last < 5_000, "seed {seed}: A acknowledged after it was lost: {seen:?}");
        let b_first = seen.b_first.unwrap_or_else(|| panic!("seed {seed}: B never took over: {seen:?}"));
        // The failover delay or a whole promise after the loss, whichever ends later; a promotion is
        // retried once a round (two retries allowed for lost messages); a round trip to win, another
        // to hold a lease; clocks up to 14 % slow.
        let bound = 5_000
            + ((t.failover_after_ms.max(t.promise_ms()) + 2 * t.renew_every_ms() + 2 * 300 + 100) as f64 * 1.15) as u64;
        assert!(b_first <= bound, "seed {seed}: B took over at {b_first} ms, bound {bound} ms");
        assert_eq!(seen.promotions, 1, "seed {seed}");
    }
}

/// How often each bug is caught, for the record (`cargo test -p arca-failover -- --ignored --nocapture`;
/// none in 150 runs without a bug; 112, 139 and 147 of 150 with each).
#[test]
#[ignore]
fn how_often_the_model_catches_each_bug() {
    for bug in [Bug::None, Bug::AcceptorsBreakPromises, Bug::PrimaryIgnoresLease, Bug::PromotesWithoutMajority] {
        let runs: Vec<Seen> = (0..SEEDS).map(|seed| Model::new(seed, bug).run(RUN_MS)).collect();
        let caught = runs.iter().filter(|s| s.overlap.is_some()).count();
        let b_held = runs.iter().filter(|s| s.b_held).count();
        let promotions: u64 = runs.iter().map(|s| s.promotions).sum();
        println!("{bug:?}: caught in {caught}/{SEEDS} runs; b held a lease in {b_held}; {promotions} promotions");
        assert_eq!(caught == 0, bug == Bug::None, "{bug:?}");
    }
}

#[test]
fn two_founders_of_one_number_cannot_both_win_it() {
    let t = Timing::default();
    let one = Epoch::first("a");
    let mut acceptor = Acceptor::start(one.clone(), 0, &t);
    let mine = one.next("b").founded_by(4);
    let theirs = one.next("b").founded_by(5);
    let later = t.promise_ms();
    assert_eq!(acceptor.promote(&mine, later, &t).0, Promotion::Accepted);
    assert!(matches!(acceptor.promote(&theirs, later, &t).0, Promotion::Refused { retry_in_ms: 0, .. }));
    assert_eq!(acceptor.promote(&mine, later + 1, &t).0, Promotion::Accepted, "asking again is answered the same");
    assert_eq!(acceptor.accepted(), &mine);
}
