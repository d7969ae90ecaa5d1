//! A stream's lifecycle beyond appends: deleting it for good (one `DEL` of its two
//! keys) and raising its seq above a floor (one `EVALSHA` of the ensure-seq script).

use switchboard_backplane::{ErrorKind, Seq, StreamError, StreamName};

use crate::{RedisBackplane, scripts};

/// The highest seq Redis handles exactly: the scripts compute in Lua numbers (doubles).
const MAX_SEQ: Seq = 1 << 53;

impl RedisBackplane {
    /// One `DEL` of the meta and log keys: atomic, so no reader sees one without the
    /// other. The live channel has no state to remove.
    pub(crate) async fn delete_stream_keys(
        &self,
        stream: &StreamName,
    ) -> Result<bool, StreamError> {
        let keys = self.stream_keys(stream);
        let mut con = self.commands.clone();
        let removed: u64 = self
            .run("DEL stream", async {
                redis::cmd("DEL")
                    .arg(&keys.meta)
                    .arg(&keys.log)
                    .query_async(&mut con)
                    .await
            })
            .await
            .map_err(|(kind, detail)| StreamError::new(kind, detail))?;
        Ok(removed > 0)
    }

    /// One round trip: `EVALSHA` of the ensure-seq script.
    pub(crate) async fn raise_seq(
        &self,
        stream: &StreamName,
        floor: Seq,
    ) -> Result<(), StreamError> {
        if floor == 0 {
            return Ok(());
        }
        if floor > MAX_SEQ {
            return Err(StreamError::new(
                ErrorKind::Rejected,
                format!("seq {floor} is above 2^53, the largest the Redis backplane handles"),
            ));
        }
        let keys = self.stream_keys(stream);
        let mut con = self.commands.clone();
        let mut invocation = scripts::ENSURE_SEQ.prepare_invoke();
        invocation
            .key(&keys.meta)
            .key(&keys.log)
            .arg(floor)
            .arg(self.meta_ttl_ms());
        let _raised: u64 = self
            .run("ensure_seq_above", invocation.invoke_async(&mut con))
            .await
            .map_err(|(kind, detail)| StreamError::new(kind, detail))?;
        Ok(())
    }
}
