//! The system user a server runs as when the kit runs as root: PostgreSQL refuses to
//! run as root, and CI runs as root.

/// A user's ids, from `/etc/passwd`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct SystemUser {
    pub uid: u32,
    pub gid: u32,
}

/// Whether this process runs as root.
pub(crate) fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The user `name` of `/etc/passwd`, if there is one.
pub(crate) fn lookup(name: &str) -> Option<SystemUser> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != name {
            return None;
        }
        let _password = fields.next()?;
        Some(SystemUser {
            uid: fields.next()?.parse().ok()?,
            gid: fields.next()?.parse().ok()?,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_user_zero_and_strangers_are_missing() {
        assert_eq!(lookup("root"), Some(SystemUser { uid: 0, gid: 0 }));
        assert_eq!(lookup("no-such-user-of-the-kit"), None);
    }
}
