//! The statements both engines run as they are (sqlx binds `$N` on SQLite too). What
//! differs per engine (locking, bulk writes) is in the engine's module.

/// The columns of `sessions`, in the order [`crate::convert::session_row`] reads them.
macro_rules! session_columns {
    () => {
        "session_id, org_id, owner, key_sha256, title, state, created_at, \
         last_activity_at, last_seq, preview, metadata, assistant"
    };
}
pub(crate) use session_columns;

/// `$1..$7`: session_id, org_id, owner, key_sha256, created_at (also the first
/// activity), metadata, assistant; a new session is active, untitled, without entries.
pub(crate) const CREATE_SESSION: &str = "INSERT INTO sessions \
     (session_id, org_id, owner, key_sha256, title, state, created_at, last_activity_at, \
      last_seq, preview, metadata, assistant) \
     VALUES ($1, $2, $3, $4, NULL, 'active', $5, $5, 0, NULL, $6, $7) \
     ON CONFLICT (session_id) DO NOTHING";

/// `$1`: session_id.
pub(crate) const DELETE_SESSION: &str = "DELETE FROM sessions WHERE session_id = $1";

/// `$1..$4`: session_id, after (exclusive), before (exclusive, NULL: none), limit.
pub(crate) const TRANSCRIPT: &str = "SELECT seq, ts, kind, event FROM transcript \
     WHERE session_id = $1 AND seq > $2 AND ($3 IS NULL OR seq < $3) \
     ORDER BY seq LIMIT $4";

/// `$1, $2`: org_id, days.
pub(crate) const SET_RETENTION: &str = "INSERT INTO org_retention (org_id, days) VALUES ($1, $2) \
     ON CONFLICT (org_id) DO UPDATE SET days = excluded.days";

/// `$1`: org_id.
pub(crate) const CLEAR_RETENTION: &str = "DELETE FROM org_retention WHERE org_id = $1";

/// `$1`: org_id.
pub(crate) const RETENTION: &str = "SELECT days FROM org_retention WHERE org_id = $1";

/// Sessions idle past their org's retention (the default where the org has none), the
/// longest idle first.
macro_rules! expired {
    () => {
        "SELECT s.session_id FROM sessions s \
         LEFT JOIN org_retention r ON r.org_id = s.org_id \
         WHERE s.last_activity_at < $1 - COALESCE(r.days, $2) * 86400000 \
         ORDER BY s.last_activity_at, s.session_id LIMIT $3"
    };
}

/// `$1..$3`: now, default days, limit.
pub(crate) const EXPIRED: &str = expired!();

/// [`EXPIRED`], locking the sessions against writes until the transaction ends
/// (PostgreSQL).
pub(crate) const EXPIRED_FOR_UPDATE: &str = concat!(expired!(), " FOR UPDATE OF s");

/// The ids of an owner's sessions in an org.
macro_rules! owned {
    () => {
        "SELECT session_id FROM sessions WHERE org_id = $1 AND owner = $2 ORDER BY session_id"
    };
}

/// `$1, $2`: org_id, owner.
pub(crate) const OWNED: &str = owned!();

/// [`OWNED`], locking the sessions against writes until the transaction ends
/// (PostgreSQL).
pub(crate) const OWNED_FOR_UPDATE: &str = concat!(owned!(), " FOR UPDATE");

/// `$1, $2`: org_id, owner.
pub(crate) const OWNED_ENTRIES: &str = "SELECT COUNT(*) FROM transcript t \
     JOIN sessions s ON s.session_id = t.session_id \
     WHERE s.org_id = $1 AND s.owner = $2";

/// `$1, $2`: org_id, owner.
pub(crate) const DELETE_OWNED: &str = "DELETE FROM sessions WHERE org_id = $1 AND owner = $2";

/// `$1`: session_id.
pub(crate) const SESSION: &str = concat!(
    "SELECT ",
    session_columns!(),
    " FROM sessions WHERE session_id = $1"
);

/// `$1..$3`: title (NULL: kept), state (NULL: kept), session_id; returns the row.
pub(crate) const UPDATE_SESSION: &str = concat!(
    "UPDATE sessions SET title = COALESCE($1, title), state = COALESCE($2, state) \
     WHERE session_id = $3 RETURNING ",
    session_columns!()
);
