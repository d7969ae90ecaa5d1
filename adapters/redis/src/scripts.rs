//! The Lua scripts (`lua/*.lua`), loaded once per process and by every connect.

use std::sync::LazyLock;

use redis::Script;

const APPEND_LUA: &str = include_str!("lua/append.lua");
const READ_LUA: &str = include_str!("lua/read.lua");
const RECORD_PUT_LUA: &str = include_str!("lua/record_put.lua");
const RECORD_REPLACE_LUA: &str = include_str!("lua/record_replace.lua");
const RECORD_LIST_LUA: &str = include_str!("lua/record_list.lua");
const ENSURE_SEQ_LUA: &str = include_str!("lua/ensure_seq.lua");

/// Every script's source, for `SCRIPT LOAD` at connect.
pub(crate) const ALL: [&str; 6] = [
    APPEND_LUA,
    READ_LUA,
    RECORD_PUT_LUA,
    RECORD_REPLACE_LUA,
    RECORD_LIST_LUA,
    ENSURE_SEQ_LUA,
];

/// Assigns `seq` and `ts`, stores, trims and publishes one event, atomically.
pub(crate) static APPEND: LazyLock<Script> = LazyLock::new(|| Script::new(APPEND_LUA));
/// Reads retained history after a seq, with the head and the trimmed mark.
pub(crate) static READ: LazyLock<Script> = LazyLock::new(|| Script::new(READ_LUA));
/// Raises a stream's seq (and trimmed mark) to a floor if it is below.
pub(crate) static ENSURE_SEQ: LazyLock<Script> = LazyLock::new(|| Script::new(ENSURE_SEQ_LUA));
/// `SET [NX] [PX]` of a record plus its namespace index.
pub(crate) static RECORD_PUT: LazyLock<Script> = LazyLock::new(|| Script::new(RECORD_PUT_LUA));
/// Compare-and-set of a record by value (`GET`, then `SET [PX]` or `DEL`) plus its
/// namespace index.
pub(crate) static RECORD_REPLACE: LazyLock<Script> =
    LazyLock::new(|| Script::new(RECORD_REPLACE_LUA));
/// Prunes a namespace's index, then reads every indexed key.
pub(crate) static RECORD_LIST: LazyLock<Script> = LazyLock::new(|| Script::new(RECORD_LIST_LUA));

/// The Lua source of the append script: what a direct publisher runs with `EVAL` (or
/// `EVALSHA` [`append_script_sha1`]) to append an event with the same atomic `seq`
/// assignment as the gateway. Arguments: `docs/backplanes.md`, "Publishing without a
/// gateway".
pub fn append_script_source() -> &'static str {
    APPEND_LUA
}

/// The SHA1 of [`append_script_source`], for `EVALSHA` (load it once with
/// `SCRIPT LOAD`, or fall back to `EVAL` on `NOSCRIPT`).
pub fn append_script_sha1() -> &'static str {
    APPEND.get_hash()
}
