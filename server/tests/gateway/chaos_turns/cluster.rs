//! The replicas under chaos: gateways on one backplane that the driver kills
//! (SIGKILL) and starts again, and a backplane it freezes. Clients and the publisher
//! pick a live replica from the [`Roster`].

use std::collections::VecDeque;
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use rand::Rng;
use rand::seq::IndexedRandom;

use crate::support::Gateway;
use crate::support::replicas::{Backing, Backplane, SHORT_LEASE, replica_paced};

/// The offline agent's pause between deltas: answers take about 100 to 300 ms.
const AGENT_DELAY: &str = "8ms";

/// How many killed gateways are kept, so their logs are printed when the test fails.
const FALLEN_KEPT: usize = 3;

/// Where a live replica answers.
#[derive(Debug, Clone)]
pub struct Urls {
    pub ws: String,
    pub http: String,
}

/// The live replicas, by slot.
#[derive(Default)]
pub struct Roster(RwLock<Vec<Option<Urls>>>);

impl Roster {
    /// A live replica, at random.
    pub fn pick(&self, rng: &mut impl Rng) -> Option<Urls> {
        let slots = self.0.read().unwrap();
        let live: Vec<&Urls> = slots.iter().flatten().collect();
        live.choose(rng).map(|u| (*u).clone())
    }

    fn set(&self, slot: usize, urls: Option<Urls>) {
        let mut slots = self.0.write().unwrap();
        if slots.len() <= slot {
            slots.resize(slot + 1, None);
        }
        slots[slot] = urls;
    }
}

/// Wall-clock milliseconds, comparable with events' `ts`.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

pub struct Cluster {
    backplane: Backplane,
    slots: Vec<Option<Gateway>>,
    pub roster: Arc<Roster>,
    fallen: VecDeque<Gateway>,
}

impl Cluster {
    pub fn start(backing: Backing, size: usize) -> Cluster {
        let mut cluster = Cluster {
            backplane: Backplane::start(backing),
            slots: (0..size).map(|_| None).collect(),
            roster: Arc::default(),
            fallen: VecDeque::new(),
        };
        for slot in 0..size {
            cluster.restart(slot);
        }
        cluster
    }

    fn launch(&self, slot: usize) -> Gateway {
        let mut args = SHORT_LEASE.to_vec();
        // Every event stays in history, for the audit.
        args.extend(["--history-max-events", "100000"]);
        replica_paced(
            &self.backplane,
            &format!("replica-{slot}"),
            AGENT_DELAY,
            &args,
        )
    }

    /// Start the gateway of an empty `slot` (blocks this thread until it listens).
    pub fn restart(&mut self, slot: usize) {
        assert!(self.slots[slot].is_none(), "slot {slot} is running");
        let gw = tokio::task::block_in_place(|| self.launch(slot));
        self.roster.set(
            slot,
            Some(Urls {
                ws: gw.ws_url(),
                http: gw.http_url(),
            }),
        );
        self.slots[slot] = Some(gw);
    }

    /// SIGKILL the gateway of `slot`; returns the wall-clock ms once it is gone.
    pub fn kill(&mut self, slot: usize) -> u64 {
        self.roster.set(slot, None);
        let mut gw = self.slots[slot].take().expect("a running slot");
        gw.kill();
        let at = now_ms();
        self.fallen.push_back(gw);
        if self.fallen.len() > FALLEN_KEPT {
            self.fallen.pop_front();
        }
        at
    }

    /// Start every slot that is down.
    pub fn restart_all(&mut self) {
        for slot in 0..self.slots.len() {
            if self.slots[slot].is_none() {
                self.restart(slot);
            }
        }
    }

    /// The slots running now.
    pub fn live(&self) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&s| self.slots[s].is_some())
            .collect()
    }

    /// Some running gateway.
    pub fn any(&self) -> &Gateway {
        self.slots
            .iter()
            .flatten()
            .next()
            .expect("a running gateway")
    }

    /// Pause the backplane server (SIGSTOP).
    pub fn freeze(&self) {
        self.backplane.freeze();
    }

    pub fn thaw(&self) {
        self.backplane.thaw();
    }
}
