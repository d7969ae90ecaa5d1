//! A process's descendants and state, read from `/proc`: a server that forks workers
//! (PostgreSQL) is stopped, frozen and thawed with them.

use std::time::{Duration, Instant};

/// Every process descended from `pid` (children, their children, …), parents first.
pub(crate) fn descendants(pid: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .filter_map(|child| Some((child, parent(child)?)))
                .collect()
        })
        .unwrap_or_default();
    let mut found = Vec::new();
    let mut next = 0;
    let mut current = pid;
    loop {
        found.extend(
            parents
                .iter()
                .filter(|&&(_, parent)| parent == current)
                .map(|&(child, _)| child),
        );
        let Some(&following) = found.get(next) else {
            return found;
        };
        current = following;
        next += 1;
    }
}

/// Whether process `pid` is stopped (state `T`).
pub(crate) fn is_stopped(pid: u32) -> bool {
    state(pid) == Some('T')
}

/// Wait until none of `pids` runs any more (gone, or a zombie: it holds no memory or
/// files then), at most `timeout`.
pub(crate) fn wait_gone(pids: &[u32], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while pids
        .iter()
        .any(|&pid| !matches!(state(pid), None | Some('Z')))
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The fields of `/proc/<pid>/stat` after the command name (which ends at the last
/// `)`): state, parent, ….
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, after_name) = stat.rsplit_once(')')?;
    Some(after_name.split_whitespace().map(str::to_string).collect())
}

fn state(pid: u32) -> Option<char> {
    stat_fields(pid)?.first()?.chars().next()
}

fn parent(pid: u32) -> Option<u32> {
    stat_fields(pid)?.get(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn a_shell_and_its_child_are_found_and_gone_after_a_kill() {
        let mut shell = Command::new("sh")
            .args(["-c", "sleep 30 & wait"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let shell_pid = shell.id();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut children = descendants(shell_pid);
        while children.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
            children = descendants(shell_pid);
        }
        assert_eq!(children.len(), 1, "the sleep under the shell: {children:?}");
        for &child in &children {
            let _ = Command::new("kill")
                .args(["-9", &child.to_string()])
                .status();
        }
        wait_gone(&children, Duration::from_secs(5));
        assert!(
            children
                .iter()
                .all(|&c| matches!(state(c), None | Some('Z')))
        );
        let _ = shell.kill();
        let _ = shell.wait();
    }
}
