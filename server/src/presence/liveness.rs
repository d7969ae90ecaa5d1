//! Which replicas' presence entries count: those whose presence heartbeat
//! (`presence-replicas/<id>`, expiring `--turn-lease-lapse` after its last renewal) is
//! alive. Each replica lists the heartbeats every beat.
//!
//! A replica writes its heartbeat before any entry, so an entry seen before a listing
//! started belongs to a replica that listing names, unless that replica is dead. An
//! entry of a replica first seen after the last listing started is shown until the
//! next listing decides. A replica that sends a hint is alive.

use std::collections::{HashMap, HashSet};

use tokio::time::Instant;

#[derive(Debug)]
pub(super) struct Liveness {
    own: String,
    /// The replicas of the last listing, and those that sent a hint since, with when
    /// that was (the listing's start, or the hint).
    alive: HashMap<String, Instant>,
    /// When the last listing started.
    listed_at: Option<Instant>,
    /// Replicas seen in a record but not in `alive`, and when first seen: not decided
    /// yet when seen after `listed_at`, dead when seen before.
    unlisted: HashMap<String, Instant>,
}

impl Liveness {
    pub(super) fn new(own: &str) -> Liveness {
        Liveness {
            own: own.to_string(),
            alive: HashMap::new(),
            listed_at: None,
            unlisted: HashMap::new(),
        }
    }

    /// `replica`'s entry was seen in a record at `now`.
    pub(super) fn saw(&mut self, replica: &str, now: Instant) {
        if replica != self.own && !self.alive.contains_key(replica) {
            self.unlisted.entry(replica.to_string()).or_insert(now);
        }
    }

    /// `replica` sent a hint at `now`: it is alive.
    pub(super) fn heard_from(&mut self, replica: &str, now: Instant) {
        if replica != self.own {
            self.unlisted.remove(replica);
            self.alive.insert(replica.to_string(), now);
        }
    }

    /// Whether `replica` is known dead: absent from a listing that started after (or
    /// as) its entry was first seen.
    pub(super) fn is_dead(&self, replica: &str) -> bool {
        replica != self.own
            && !self.alive.contains_key(replica)
            && match (self.unlisted.get(replica), self.listed_at) {
                // Equal instants only happen on a paused clock; in order, the entry
                // was read before the listing started.
                (Some(seen), Some(listed)) => *seen <= listed,
                // Never seen: nothing is known about it (a caller always records what
                // it saw first).
                (None, _) => false,
                (Some(_), None) => false,
            }
    }

    /// Whether any of `replicas` is neither alive nor known dead: a listing now would
    /// decide (a joiner's first snapshot should not show a dead replica's members).
    pub(super) fn any_undecided<'a>(&self, mut replicas: impl Iterator<Item = &'a str>) -> bool {
        replicas.any(|r| r != self.own && !self.alive.contains_key(r) && !self.is_dead(r))
    }

    /// A listing that started at `started` found `alive`. `still_named` tells which
    /// replicas some local record still names, so forgotten dead ones are dropped.
    /// Returns whether what is shown may have changed.
    pub(super) fn listed(
        &mut self,
        alive: HashSet<String>,
        started: Instant,
        still_named: impl Fn(&str) -> bool,
    ) -> bool {
        let mut changed = !self.unlisted.is_empty();
        // Alive before, absent now: dead since, as of when it was last proven alive.
        for (replica, proven) in self.alive.drain() {
            if !alive.contains(&replica) {
                changed = true;
                self.unlisted.entry(replica).or_insert(proven);
            }
        }
        for replica in &alive {
            changed |= self.unlisted.remove(replica).is_some();
            self.alive.insert(replica.clone(), started);
        }
        // Forget dead replicas no record names any more; keep those seen since the
        // previous listing (a join about to take the record that names them).
        let previous = self.listed_at.replace(started);
        self.unlisted.retain(|replica, seen| {
            still_named(replica) || previous.is_none_or(|previous| *seen >= previous)
        });
        changed
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn set(ids: &[&str]) -> HashSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    /// A replica absent from a listing made after its entry was seen is dead; one
    /// seen after the listing started is not decided yet, and the next listing names
    /// it if it lives.
    #[tokio::test(start_paused = true)]
    async fn a_listing_decides_only_what_was_seen_before_it() {
        let mut liveness = Liveness::new("p_me");
        liveness.listed(set(&["p_me", "p_a"]), Instant::now(), |_| true);
        tokio::time::advance(Duration::from_millis(10)).await;
        liveness.saw("p_a", Instant::now());
        liveness.saw("p_ghost", Instant::now());
        assert!(!liveness.is_dead("p_a"));
        assert!(!liveness.is_dead("p_ghost"), "seen after the listing");
        assert!(liveness.any_undecided(["p_ghost"].into_iter()));
        assert!(!liveness.any_undecided(["p_a", "p_me"].into_iter()));

        tokio::time::advance(Duration::from_millis(10)).await;
        let changed = liveness.listed(set(&["p_me", "p_a"]), Instant::now(), |_| true);
        assert!(changed, "the ghost is decided dead");
        assert!(liveness.is_dead("p_ghost"));
        assert!(!liveness.any_undecided(["p_ghost"].into_iter()));
        assert!(!liveness.is_dead("p_me"), "never dead to itself");

        // A newborn seen after that listing is shown until the next one.
        tokio::time::advance(Duration::from_millis(10)).await;
        liveness.saw("p_new", Instant::now());
        assert!(!liveness.is_dead("p_new"));
        tokio::time::advance(Duration::from_millis(10)).await;
        liveness.listed(set(&["p_me", "p_a", "p_new"]), Instant::now(), |_| true);
        assert!(!liveness.is_dead("p_new"));

        // p_a's heartbeat lapses: dead at the first listing without it.
        tokio::time::advance(Duration::from_millis(10)).await;
        let changed = liveness.listed(set(&["p_me", "p_new"]), Instant::now(), |_| true);
        assert!(changed);
        assert!(liveness.is_dead("p_a"));
    }

    /// A hint proves its sender alive at once; dead replicas no record names any more
    /// are forgotten.
    #[tokio::test(start_paused = true)]
    async fn hints_prove_life_and_forgotten_replicas_are_dropped() {
        let mut liveness = Liveness::new("p_me");
        liveness.saw("p_b", Instant::now());
        tokio::time::advance(Duration::from_millis(10)).await;
        liveness.listed(set(&["p_me"]), Instant::now(), |_| true);
        assert!(liveness.is_dead("p_b"));
        liveness.heard_from("p_b", Instant::now());
        assert!(!liveness.is_dead("p_b"));

        // p_b, alive by its hint, is absent from the next listing: dead.
        liveness.saw("p_c", Instant::now());
        tokio::time::advance(Duration::from_millis(10)).await;
        liveness.listed(set(&["p_me"]), Instant::now(), |r| r != "p_c");
        assert!(liveness.is_dead("p_b"));
        assert!(
            liveness.is_dead("p_c"),
            "kept: seen since the previous listing"
        );

        tokio::time::advance(Duration::from_millis(10)).await;
        liveness.listed(set(&["p_me"]), Instant::now(), |r| r != "p_c");
        assert!(
            !liveness.is_dead("p_c"),
            "forgotten: no record names it any more"
        );
        assert!(liveness.is_dead("p_b"), "still named");
    }
}
