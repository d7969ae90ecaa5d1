//! The assistants part of [`crate::MemoryStore`]'s state, with the SQL stores' order
//! and limit.

use std::collections::BTreeMap;

use super::AssistantRow;
use crate::StoreError;
use crate::convert::to_db;

#[derive(Debug, Default)]
pub(crate) struct Assistants {
    /// By `(org_id, name)`: listed by name within an org.
    rows: BTreeMap<(String, String), AssistantRow>,
}

impl Assistants {
    pub(crate) fn put(
        &mut self,
        assistant: &AssistantRow,
        max_per_org: usize,
    ) -> Result<bool, StoreError> {
        to_db(assistant.updated_at, "updated_at")?;
        let key = (assistant.org_id.clone(), assistant.name.clone());
        if !self.rows.contains_key(&key) && self.of_org(&assistant.org_id).len() >= max_per_org {
            return Ok(false);
        }
        self.rows.insert(key, assistant.clone());
        Ok(true)
    }

    pub(crate) fn of_org(&self, org_id: &str) -> Vec<AssistantRow> {
        self.rows
            .values()
            .filter(|a| a.org_id == org_id)
            .cloned()
            .collect()
    }

    pub(crate) fn get(&self, org_id: &str, name: &str) -> Option<AssistantRow> {
        self.rows
            .get(&(org_id.to_string(), name.to_string()))
            .cloned()
    }

    pub(crate) fn delete(&mut self, org_id: &str, name: &str) -> bool {
        self.rows
            .remove(&(org_id.to_string(), name.to_string()))
            .is_some()
    }
}
