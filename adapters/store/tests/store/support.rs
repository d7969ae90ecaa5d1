//! What the modules of this test binary share: scratch SQLite files, sessions and
//! entries.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;
use switchboard_store::{NewSession, TranscriptEntry, TranscriptWrite};
use switchboard_testkit::temp_path;

/// A scratch directory for SQLite files, removed when it drops after a passing test
/// (kept after a failing one, to look at).
pub struct ScratchDir {
    dir: PathBuf,
    next: AtomicUsize,
}

impl ScratchDir {
    pub fn new() -> ScratchDir {
        ScratchDir {
            dir: temp_path("store", "d"),
            next: AtomicUsize::new(0),
        }
    }

    /// A fresh database path in the directory (which may not exist yet: the store
    /// creates it).
    pub fn file(&self) -> PathBuf {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.dir.join(format!("conversations-{n}.sqlite"))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept the SQLite files in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// An anonymous session of `org`.
pub fn session(id: &str, org: &str, at: u64) -> NewSession {
    NewSession {
        session_id: id.into(),
        org_id: org.into(),
        owner: None,
        key_sha256: None,
        created_at: at,
        metadata: None,
        assistant: None,
    }
}

/// A delta-sized event of `session`.
pub fn entry(session: &str, seq: u64) -> TranscriptWrite {
    TranscriptWrite {
        session_id: session.into(),
        entry: TranscriptEntry {
            seq,
            ts: 1_780_000_000_000 + seq % 1_000_000,
            kind: "message".into(),
            event: json!({"type": "message", "seq": seq, "text": "x".repeat(200)}).to_string(),
        },
        preview: Some(format!("message {seq}")),
        title_hint: None,
    }
}
