//! Looking inside the stores a gateway wrote, from the test, not through the gateway:
//! every key of a Redis server with its value as text (`redis-cli`), and rows of a
//! PostgreSQL database (`psql`, through the kit's server). For checks such as "after
//! an erase, nothing names the user's sessions anywhere".

use std::process::Command;

use switchboard_testkit::PostgresServer;

/// `redis-cli`: `$SWITCHBOARD_REDIS_CLI`, else Debian's `/usr/bin/redis-cli`.
fn redis_cli() -> String {
    std::env::var("SWITCHBOARD_REDIS_CLI").unwrap_or_else(|_| "/usr/bin/redis-cli".into())
}

/// Run `redis-cli -u url <args>`; its output as text. Panics when it fails.
fn redis(url: &str, args: &[&str]) -> String {
    let output = Command::new(redis_cli())
        .args(["--no-auth-warning", "-u", url])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {} (redis-tools): {e}", redis_cli()));
    assert!(
        output.status.success(),
        "redis-cli {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// One key of a Redis server: its name, type and whole value as text.
#[derive(Debug)]
pub struct RedisEntry {
    pub key: String,
    pub kind: String,
    pub value: String,
}

impl RedisEntry {
    /// Whether the key's name or value contains `needle`.
    pub fn mentions(&self, needle: &str) -> bool {
        self.key.contains(needle) || self.value.contains(needle)
    }
}

/// Every key of the Redis server at `url` (`SCAN`), each read whole by its type.
pub fn redis_dump(url: &str) -> Vec<RedisEntry> {
    let keys = redis(url, &["--scan"]);
    keys.lines()
        .filter(|k| !k.is_empty())
        .map(|key| {
            let kind = redis(url, &["TYPE", key]).trim().to_string();
            let read: &[&str] = match kind.as_str() {
                "string" => &["GET", key],
                "hash" => &["HGETALL", key],
                "stream" => &["XRANGE", key, "-", "+"],
                "list" => &["LRANGE", key, "0", "-1"],
                "set" => &["SMEMBERS", key],
                "zset" => &["ZRANGE", key, "0", "-1", "WITHSCORES"],
                // Gone between the scan and the read.
                "none" => &[],
                other => panic!("key {key} has a type this dump cannot read: {other}"),
            };
            let value = if read.is_empty() {
                String::new()
            } else {
                redis(url, read)
            };
            RedisEntry {
                key: key.to_string(),
                kind,
                value,
            }
        })
        .collect()
}

/// The keys of `dump` that mention any of `needles`, as `key (type): value` lines.
pub fn redis_mentions(dump: &[RedisEntry], needles: &[String]) -> Vec<String> {
    dump.iter()
        .filter(|e| needles.iter().any(|n| e.mentions(n)))
        .map(|e| format!("{} ({}): {}", e.key, e.kind, e.value))
        .collect()
}

/// The tables of the `public` schema, the migrations' bookkeeping left out.
pub fn pg_tables(pg: &PostgresServer) -> Vec<String> {
    let out = pg
        .psql(
            "SELECT table_name FROM information_schema.tables \
             WHERE table_schema = 'public' AND table_type = 'BASE TABLE' \
             AND table_name NOT LIKE '\\_sqlx%' ORDER BY table_name",
        )
        .unwrap_or_else(|e| panic!("list tables: {e}"));
    out.lines().map(str::to_string).collect()
}

/// The result of a `SELECT count(*) …`.
pub fn pg_count(pg: &PostgresServer, statement: &str) -> u64 {
    let out = pg
        .psql(statement)
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
    out.trim()
        .parse()
        .unwrap_or_else(|e| panic!("{statement}: {out:?} is not a count ({e})"))
}

/// `needle` as a SQL string literal for `LIKE '%…%'`, matched literally.
fn like(needle: &str) -> String {
    let escaped = needle
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
        .replace('\'', "''");
    format!("'%{escaped}%'")
}

/// For every table of the database, the rows whose whole text (`row::text`) contains
/// any of `needles`: `(table, count)` for each table with some. A row's text quotes
/// its fields, doubling the `"` in them, so a needle is looked for in that form too.
pub fn pg_mentions(pg: &PostgresServer, needles: &[String]) -> Vec<(String, u64)> {
    let mut found = Vec::new();
    for table in pg_tables(pg) {
        let any = needles
            .iter()
            .flat_map(|n| [n.clone(), n.replace('"', "\"\"")])
            .map(|n| format!("t::text LIKE {}", like(&n)))
            .collect::<Vec<_>>()
            .join(" OR ");
        let n = pg_count(pg, &format!("SELECT count(*) FROM {table} t WHERE {any}"));
        if n > 0 {
            found.push((table, n));
        }
    }
    found
}
