//! The principal a verified token names: `sub` is the user id, the org comes from the
//! org claim (else the default org), groups and roles from their claims (a list of
//! strings, or one string), the display name from `name`. A claim of any other shape
//! refuses the token rather than being read as empty.

use serde_json::{Map, Value};
use switchboard_protocol::Principal;

use super::verify::{TokenError, invalid};

/// A token that verified, and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The principal the token names (`anonymous` is false).
    pub principal: Principal,
    /// The token's `exp`, in seconds since the epoch.
    pub expires_at: u64,
}

/// Which claims make the principal.
pub(super) struct PrincipalClaims {
    /// The claim that names the org.
    pub(super) org: String,
    /// The claim that lists the groups.
    pub(super) groups: String,
    /// The claim that lists the roles.
    pub(super) roles: String,
    /// The org of a token that has no org claim.
    pub(super) default_org: String,
}

impl PrincipalClaims {
    /// The principal and expiry of a token whose signature and registered claims
    /// verified.
    pub(super) fn principal(
        &self,
        claims: &Map<String, Value>,
    ) -> Result<VerifiedToken, TokenError> {
        let user_id = match claims.get("sub") {
            Some(Value::String(sub)) if !sub.is_empty() => sub.clone(),
            _ => {
                return Err(invalid(
                    "the token's `sub` claim (the user id) is missing, empty or not a string",
                ));
            }
        };
        let org_id = match claims.get(&self.org) {
            None | Some(Value::Null) => self.default_org.clone(),
            Some(Value::String(org)) if !org.is_empty() => org.clone(),
            Some(_) => {
                return Err(invalid(format!(
                    "the token's `{}` claim (the org) is not a non-empty string",
                    self.org
                )));
            }
        };
        let name = display_name(claims)?;
        let groups = string_list(claims, &self.groups)?;
        let roles = string_list(claims, &self.roles)?;
        let expires_at = match claims.get("exp") {
            Some(Value::Number(n)) => n.as_u64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite() && *f >= 0.0)
                    .map(|f| f.round() as u64)
            }),
            _ => None,
        }
        .ok_or_else(|| {
            invalid("the token's `exp` claim is not a time in seconds since the epoch")
        })?;
        Ok(VerifiedToken {
            principal: Principal {
                user_id: Some(user_id),
                org_id,
                groups,
                roles,
                anonymous: false,
                name,
            },
            expires_at,
        })
    }
}

/// Longest display name kept from a token's `name` claim, in characters; longer
/// names are cut.
pub const MAX_NAME_CHARS: usize = 80;

/// The `name` claim (OpenID Connect's display name): a string, trimmed and cut to
/// [`MAX_NAME_CHARS`]; `None` when absent or blank.
fn display_name(claims: &Map<String, Value>) -> Result<Option<String>, TokenError> {
    match claims.get("name") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(name)) => {
            let cut: String = name.trim().chars().take(MAX_NAME_CHARS).collect();
            // Trimmed again: a cut just after a space keeps it.
            let name = cut.trim_end();
            Ok((!name.is_empty()).then(|| name.to_string()))
        }
        Some(_) => Err(invalid("the token's `name` claim is not a string")),
    }
}

fn string_list(claims: &Map<String, Value>, claim: &str) -> Result<Vec<String>, TokenError> {
    let not_strings = || {
        invalid(format!(
            "the token's `{claim}` claim is not a list of strings"
        ))
    };
    match claims.get(claim) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(one)) => Ok(vec![one.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_string).ok_or_else(not_strings))
            .collect(),
        Some(_) => Err(not_strings()),
    }
}
