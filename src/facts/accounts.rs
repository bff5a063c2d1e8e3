//! Users and groups (`user`, `group`): a fragment of the probe and its parser. One
//! `getent passwd` per user a task names, one `getent group` for all groups (memberships and
//! gids come from it), and `getent shadow` only for users whose password a task sets.

use serde::Serialize;

use super::{first, Change, Facts, ProbeRequest};
use crate::shell::quote;

/// A user's `passwd` entry (and `shadow` hash when read).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Account {
    pub uid: u32,
    pub gid: u32,
    pub comment: String,
    pub home: String,
    pub shell: String,
    /// The password hash from `shadow`, when it was asked for and readable.
    #[serde(skip)]
    pub password: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Group {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// Accounts change with a command or a package (packages add system users).
pub fn stale_after(change: Change) -> bool {
    matches!(change, Change::Packages | Change::Other)
}

/// Users and shadow entries by index (the names are validated and quoted anyway).
pub(super) fn probe(request: &ProbeRequest, s: &mut String) {
    for (i, u) in request.users.iter().enumerate() {
        s.push_str(&format!("echo '@@passwd|{i}'; getent passwd -- {}\n", quote(u)));
    }
    for (i, u) in request.shadow.iter().enumerate() {
        s.push_str(&format!("echo '@@shadow|{i}'; getent shadow -- {} 2>/dev/null\n", quote(u)));
    }
    if request.groups {
        s.push_str("echo '@@group'; getent group\n");
    }
}

pub(super) fn parse(section: &str, lines: &[&str], request: &ProbeRequest, facts: &mut Facts) -> bool {
    if section == "group" {
        facts.groups = Some(lines.iter().filter_map(|l| group_line(l)).collect());
        return true;
    }
    if let Some(i) = section.strip_prefix("passwd|") {
        if let Some(name) = i.parse::<usize>().ok().and_then(|i| request.users.get(i)) {
            facts.users.insert(name.clone(), passwd_line(&first(lines)));
        }
        return true;
    }
    if let Some(i) = section.strip_prefix("shadow|") {
        if let Some(name) = i.parse::<usize>().ok().and_then(|i| request.shadow.get(i)) {
            let hash = first(lines).split(':').nth(1).map(str::to_string);
            if let (Some(Some(account)), Some(hash)) = (facts.users.get_mut(name), hash) {
                account.password = Some(hash);
            }
        }
        return true;
    }
    false
}

/// `name:x:uid:gid:comment:home:shell`; `None` for no entry.
fn passwd_line(line: &str) -> Option<Account> {
    let f: Vec<&str> = line.split(':').collect();
    if f.len() != 7 {
        return None;
    }
    Some(Account {
        uid: f[2].parse().ok()?,
        gid: f[3].parse().ok()?,
        comment: f[4].to_string(),
        home: f[5].to_string(),
        shell: f[6].to_string(),
        password: None,
    })
}

/// `name:x:gid:member,member`.
fn group_line(line: &str) -> Option<Group> {
    let f: Vec<&str> = line.split(':').collect();
    if f.len() != 4 {
        return None;
    }
    let members = f[3].split(',').filter(|m| !m.is_empty()).map(str::to_string).collect();
    Some(Group { name: f[0].to_string(), gid: f[2].parse().ok()?, members })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_group_and_shadow_lines() {
        let request =
            ProbeRequest { users: vec!["ops".into(), "ghost".into()], shadow: vec!["ops".into()], groups: true, ..Default::default() };
        let out =
            "@@passwd|0\nops:x:1001:1001:Ops Team,,,:/home/ops:/bin/bash\n@@passwd|1\n@@shadow|0\nops:$6$salt$hash:19000:0:99999:7:::\n\
@@group\nroot:x:0:\nsudo:x:27:ops,admin\nops:x:1001:\n";
        let mut facts = Facts::default();
        super::super::parse_probe(out, &request, &mut facts);
        let ops = facts.users["ops"].clone().unwrap();
        assert_eq!((ops.uid, ops.gid, ops.comment.as_str(), ops.home.as_str()), (1001, 1001, "Ops Team,,,", "/home/ops"));
        assert_eq!(ops.password.as_deref(), Some("$6$salt$hash"));
        assert_eq!(facts.users["ghost"], None, "no entry: the user does not exist");
        let groups = facts.groups.unwrap();
        assert_eq!(groups[1], Group { name: "sudo".into(), gid: 27, members: vec!["ops".into(), "admin".into()] });
        let script = super::super::probe_script(&request, false);
        assert!(script.contains("getent passwd -- ops\n") && script.contains("getent group\n"), "{script}");
    }
}
