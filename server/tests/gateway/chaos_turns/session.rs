//! One client per session, as a widget would behave under chaos: it sends messages
//! with `client_message_id`s at random intervals; whenever its socket drops it
//! reconnects to a random live replica and joins again with `after_seq` = the last
//! `seq` it received; a send not acknowledged (connection lost, no reply within
//! [`REPLY_PATIENCE`], `conflict`, `unavailable`, `rate_limited`) is sent again with
//! the same `client_message_id`. It records every session event it receives, every
//! acknowledgement, and what it saw go wrong.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;

use super::cluster::Roster;
use crate::support::knowledge::{REFUND_QUESTION, UNMATCHED_QUESTION};
use crate::support::link::{Link, Read};
use crate::support::{is_event, seq, ty};

/// What the clients ask: a long answer, a short one, one that matches nothing.
const QUESTIONS: [&str; 3] = [
    REFUND_QUESTION,
    "How long do parcels take to ship?",
    UNMATCHED_QUESTION,
];
/// The pause between one acknowledged message and the next, in ms.
const SEND_GAP_MS: std::ops::Range<u64> = 300..2500;
/// How long a send waits for its reply before it is sent again.
const REPLY_PATIENCE: Duration = Duration::from_secs(5);
/// How long a send keeps being retried before the client gives up on it.
const ABANDON: Duration = Duration::from_secs(40);
/// How long a client may take to reach the settled head of its session.
const CATCH_UP: Duration = Duration::from_secs(30);
const CONNECT: Duration = Duration::from_secs(3);

/// What the test tells the clients, and what they report while running.
pub struct Control {
    /// New messages may be sent.
    pub sending: AtomicBool,
    /// Sends neither acknowledged nor given up yet.
    pub in_flight: AtomicUsize,
    /// Every acknowledgement: session, `message_id`.
    pub acked: Mutex<Vec<(String, String)>>,
    /// Once set: the settled last `seq` of each session. A client returns when it
    /// received everything up to it.
    pub finish: watch::Sender<Option<Arc<HashMap<String, u64>>>>,
}

impl Control {
    pub fn new() -> Arc<Control> {
        Arc::new(Control {
            sending: AtomicBool::new(true),
            in_flight: AtomicUsize::new(0),
            acked: Mutex::default(),
            finish: watch::Sender::new(None),
        })
    }
}

/// A `message.accepted`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub message_id: String,
    pub seq: u64,
}

/// What one session's client did and saw.
#[derive(Debug, Default)]
pub struct SessionLog {
    pub session_id: String,
    pub key: Option<String>,
    /// The session events received, in order, over all its connections.
    pub received: Vec<Value>,
    /// `client_message_id` → its first acknowledgement.
    pub acked: BTreeMap<String, Ack>,
    /// Sends given up after [`ABANDON`]: `client_message_id`, last refusal.
    pub abandoned: Vec<(String, String)>,
    /// What broke a rule as it happened.
    pub problems: Vec<String>,
    pub connections: usize,
    /// Sends made again with the same `client_message_id`.
    pub resends: usize,
    /// Refusals by error code.
    pub refusals: BTreeMap<String, usize>,
}

impl SessionLog {
    pub fn new(session_id: String, key: Option<String>) -> SessionLog {
        SessionLog {
            session_id,
            key,
            ..SessionLog::default()
        }
    }

    fn last_seq(&self) -> u64 {
        self.received.last().map_or(0, seq)
    }
}

/// A send not acknowledged yet.
struct Pending {
    cmid: String,
    text: &'static str,
    since: Instant,
    /// When to send it (again).
    due: Instant,
    tries: usize,
    last_refusal: String,
}

struct Session {
    log: SessionLog,
    control: Arc<Control>,
    rng: StdRng,
    pending: Option<Pending>,
    next_send: Instant,
    sent: usize,
    /// Frame id → the `client_message_id` it carried.
    frame_ids: HashMap<String, String>,
    frames: u64,
}

/// What a frame means for the connection.
enum Next {
    Stay,
    Reconnect,
}

/// Run one session's client until the test's finish line; return what it saw.
pub async fn run(
    log: SessionLog,
    roster: Arc<Roster>,
    control: Arc<Control>,
    rng: StdRng,
) -> SessionLog {
    let mut session = Session {
        log,
        control,
        rng,
        pending: None,
        next_send: Instant::now(),
        sent: 0,
        frame_ids: HashMap::new(),
        frames: 0,
    };
    session.next_send = Instant::now() + session.gap();
    let mut finish = session.control.finish.subscribe();
    let mut finish_by: Option<Instant> = None;
    loop {
        if session.finished(&mut finish, &mut finish_by) {
            return session.log;
        }
        let Some(urls) = roster.pick(&mut session.rng) else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(mut link) = Link::connect(&urls.ws, CONNECT).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        session.log.connections += 1;
        if !session.serve(&mut link, &mut finish, &mut finish_by).await {
            return session.log;
        }
        tokio::time::sleep(Duration::from_millis(session.rng.random_range(10..100))).await;
    }
}

impl Session {
    fn gap(&mut self) -> Duration {
        Duration::from_millis(self.rng.random_range(SEND_GAP_MS))
    }

    fn id(&mut self) -> String {
        self.frames += 1;
        format!("f{}", self.frames)
    }

    /// Whether the client is done: finish announced, nothing pending, everything up
    /// to the head received (or no longer waited for).
    fn finished(
        &mut self,
        finish: &mut watch::Receiver<Option<Arc<HashMap<String, u64>>>>,
        finish_by: &mut Option<Instant>,
    ) -> bool {
        let Some(heads) = finish.borrow().clone() else {
            return false;
        };
        let head = heads.get(&self.log.session_id).copied().unwrap_or(0);
        let deadline = *finish_by.get_or_insert_with(|| Instant::now() + CATCH_UP);
        if self.pending.is_none() && self.log.last_seq() >= head {
            return true;
        }
        if Instant::now() >= deadline {
            self.log.problems.push(format!(
                "did not receive up to the settled head {head} within {CATCH_UP:?}: last seq {}",
                self.log.last_seq()
            ));
            return true;
        }
        false
    }

    /// Join on `link` and serve until it drops (`true`) or the client is done
    /// (`false`).
    async fn serve(
        &mut self,
        link: &mut Link,
        finish: &mut watch::Receiver<Option<Arc<HashMap<String, u64>>>>,
        finish_by: &mut Option<Instant>,
    ) -> bool {
        let join_id = self.id();
        let mut join = json!({
            "type": "session.join", "id": join_id, "session_id": self.log.session_id,
            "after_seq": self.log.last_seq(),
        });
        if let Some(key) = &self.log.key {
            join["session_key"] = json!(key);
        }
        if link.send(&join).await.is_err() {
            return true;
        }
        let mut joined = false;
        if let Some(p) = self.pending.as_mut() {
            p.due = Instant::now();
        }
        loop {
            if self.finished(finish, finish_by) {
                return false;
            }
            if joined && self.act(link).await.is_err() {
                return true;
            }
            let mut wake = Instant::now() + Duration::from_millis(100);
            if let Some(p) = &self.pending {
                wake = wake.min(p.due);
            } else if self.control.sending.load(Ordering::SeqCst) {
                wake = wake.min(self.next_send);
            }
            match link.read_until(wake).await {
                Read::Quiet => {}
                Read::Gone => return true,
                Read::Frame(frame) if frame["re"] == join_id.as_str() => {
                    if ty(&frame) != "session.joined" {
                        // e.g. `unavailable` while the backplane is frozen.
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        return true;
                    }
                    if frame["recovered"] != true {
                        self.log
                            .problems
                            .push(format!("join after {}: {frame}", self.log.last_seq()));
                    }
                    joined = true;
                }
                Read::Frame(frame) => {
                    if let Next::Reconnect = self.handle(frame) {
                        return true;
                    }
                }
            }
        }
    }

    /// Start a new message when it is time, and send the pending one when due.
    async fn act(&mut self, link: &mut Link) -> Result<(), String> {
        let now = Instant::now();
        if self.pending.is_none()
            && self.control.sending.load(Ordering::SeqCst)
            && now >= self.next_send
        {
            self.sent += 1;
            self.control.in_flight.fetch_add(1, Ordering::SeqCst);
            self.pending = Some(Pending {
                cmid: format!("c{}", self.sent),
                text: QUESTIONS.choose(&mut self.rng).unwrap(),
                since: now,
                due: now,
                tries: 0,
                last_refusal: String::new(),
            });
        }
        let Some(p) = self.pending.as_ref() else {
            return Ok(());
        };
        if now < p.due {
            return Ok(());
        }
        if now.duration_since(p.since) > ABANDON {
            let p = self.pending.take().unwrap();
            self.log.abandoned.push((p.cmid, p.last_refusal));
            self.control.in_flight.fetch_sub(1, Ordering::SeqCst);
            self.next_send = now + self.gap();
            return Ok(());
        }
        let id = self.id();
        let p = self.pending.as_mut().unwrap();
        self.frame_ids.insert(id.clone(), p.cmid.clone());
        let frame = json!({
            "type": "message.send", "id": id, "session_id": self.log.session_id,
            "text": p.text, "client_message_id": p.cmid,
        });
        if p.tries > 0 {
            self.log.resends += 1;
        }
        p.tries += 1;
        p.due = now + REPLY_PATIENCE;
        link.send(&frame).await
    }

    fn handle(&mut self, frame: Value) -> Next {
        if is_event(&frame) {
            if frame["session_id"] == self.log.session_id.as_str() {
                let (got, last) = (seq(&frame), self.log.last_seq());
                if got <= last {
                    self.log.problems.push(format!(
                        "received seq {got} after {last} (connection {}): {frame}",
                        self.log.connections
                    ));
                } else {
                    self.log.received.push(frame);
                }
            }
            return Next::Stay;
        }
        if ty(&frame) == "goaway" {
            return Next::Reconnect;
        }
        let Some(cmid) = frame["re"]
            .as_str()
            .and_then(|re| self.frame_ids.get(re))
            .cloned()
        else {
            return Next::Stay;
        };
        let is_pending = self.pending.as_ref().is_some_and(|p| p.cmid == cmid);
        match ty(&frame) {
            "message.accepted" => {
                let ack = Ack {
                    message_id: frame["message_id"].as_str().unwrap_or_default().to_string(),
                    seq: frame["seq"].as_u64().unwrap_or(0),
                };
                match self.log.acked.get(&cmid) {
                    Some(first) if *first != ack => self.log.problems.push(format!(
                        "{cmid} acknowledged twice, differently: {first:?} then {ack:?}"
                    )),
                    Some(_) => {}
                    None => {
                        self.control
                            .acked
                            .lock()
                            .unwrap()
                            .push((self.log.session_id.clone(), ack.message_id.clone()));
                        self.log.acked.insert(cmid, ack);
                    }
                }
                if is_pending {
                    self.pending = None;
                    self.control.in_flight.fetch_sub(1, Ordering::SeqCst);
                    self.next_send = Instant::now() + self.gap();
                }
            }
            "error" => {
                let code = frame["code"].as_str().unwrap_or_default().to_string();
                *self.log.refusals.entry(code.clone()).or_default() += 1;
                if !matches!(code.as_str(), "conflict" | "unavailable" | "rate_limited") {
                    self.log
                        .problems
                        .push(format!("message.send {cmid} refused: {frame}"));
                }
                if let Some(p) = self.pending.as_mut().filter(|_| is_pending) {
                    p.last_refusal = frame.to_string();
                    let pause = if code == "rate_limited" { 1000 } else { 300 };
                    p.due = Instant::now() + Duration::from_millis(pause);
                }
            }
            _ => {}
        }
        Next::Stay
    }
}
