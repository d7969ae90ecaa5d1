//! Records: a string key per record (`SET [NX] [PX]`) and a sorted set per namespace
//! indexing its keys by expiry, so `list` never scans the keyspace. `record_replace`
//! compares and writes in one script, so no other write slips in between.

use std::time::Duration;

use bytes::Bytes;
use switchboard_backplane::{ErrorKind, RecordError, RecordKey};

use crate::command::millis;
use crate::{RedisBackplane, keys, scripts};

impl RedisBackplane {
    /// `record_put` (`only_if_absent` false) and `record_create` (true): one round trip.
    pub(crate) async fn store_record(
        &self,
        key: &RecordKey,
        value: Bytes,
        ttl: Option<Duration>,
        only_if_absent: bool,
    ) -> Result<bool, RecordError> {
        let mut con = self.commands.clone();
        let mut invocation = scripts::RECORD_PUT.prepare_invoke();
        invocation
            .key(keys::record(&self.prefix, key))
            .key(keys::record_index(&self.prefix, &key.namespace))
            .arg(value.as_ref())
            .arg(ttl.map_or(0, |ttl| millis(ttl).max(1)))
            .arg(&key.key)
            .arg(if only_if_absent { "1" } else { "0" });
        let stored: i64 = self
            .run("record store", invocation.invoke_async(&mut con))
            .await
            .map_err(|(kind, detail)| RecordError::new(kind, detail))?;
        Ok(stored == 1)
    }

    /// `record_replace`: one round trip, the compare and the write in one script.
    pub(crate) async fn replace_record(
        &self,
        key: &RecordKey,
        expected: &[u8],
        new: Option<Bytes>,
        ttl: Option<Duration>,
    ) -> Result<bool, RecordError> {
        let mut con = self.commands.clone();
        let mut invocation = scripts::RECORD_REPLACE.prepare_invoke();
        invocation
            .key(keys::record(&self.prefix, key))
            .key(keys::record_index(&self.prefix, &key.namespace))
            .arg(expected)
            .arg(&key.key)
            .arg(ttl.map_or(0, |ttl| millis(ttl).max(1)));
        if let Some(value) = &new {
            invocation.arg(value.as_ref());
        }
        let replaced: i64 = self
            .run("record replace", invocation.invoke_async(&mut con))
            .await
            .map_err(|(kind, detail)| RecordError::new(kind, detail))?;
        Ok(replaced == 1)
    }

    /// One round trip: `GET`.
    pub(crate) async fn get_record(&self, key: &RecordKey) -> Result<Option<Bytes>, RecordError> {
        let mut con = self.commands.clone();
        let value: Option<Vec<u8>> = self
            .run("record get", async {
                redis::cmd("GET")
                    .arg(keys::record(&self.prefix, key))
                    .query_async(&mut con)
                    .await
            })
            .await
            .map_err(|(kind, detail)| RecordError::new(kind, detail))?;
        Ok(value.map(Bytes::from))
    }

    /// One round trip: `MULTI DEL ZREM EXEC`, pipelined.
    pub(crate) async fn delete_record(&self, key: &RecordKey) -> Result<bool, RecordError> {
        let mut con = self.commands.clone();
        let (deleted, _): (u64, u64) = self
            .run("record delete", async {
                redis::pipe()
                    .atomic()
                    .del(keys::record(&self.prefix, key))
                    .zrem(keys::record_index(&self.prefix, &key.namespace), &key.key)
                    .query_async(&mut con)
                    .await
            })
            .await
            .map_err(|(kind, detail)| RecordError::new(kind, detail))?;
        Ok(deleted > 0)
    }

    /// One round trip: the list script prunes the index, then reads each live key.
    pub(crate) async fn list_records(
        &self,
        namespace: &str,
    ) -> Result<Vec<(String, Bytes)>, RecordError> {
        let mut con = self.commands.clone();
        let mut invocation = scripts::RECORD_LIST.prepare_invoke();
        invocation
            .key(keys::record_index(&self.prefix, namespace))
            .arg(keys::record_key_prefix(&self.prefix, namespace));
        let flat: Vec<Vec<u8>> = self
            .run("record list", invocation.invoke_async(&mut con))
            .await
            .map_err(|(kind, detail)| RecordError::new(kind, detail))?;
        let mut list = Vec::with_capacity(flat.len() / 2);
        let mut pairs = flat.into_iter();
        while let (Some(key), Some(value)) = (pairs.next(), pairs.next()) {
            let key = String::from_utf8(key).map_err(|_| {
                RecordError::new(
                    ErrorKind::InvalidData,
                    format!("a key in record namespace {namespace:?} is not UTF-8"),
                )
            })?;
            list.push((key, Bytes::from(value)));
        }
        Ok(list)
    }
}
