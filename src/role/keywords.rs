//! Every keyword Ansible accepts in a play, a `roles:` entry and a task, and what gafix does
//! with it: runs it with Ansible's semantics, or refuses it where it is written, always in
//! the same words. Nothing is parsed and then ignored. The README's keyword list is tested
//! against these tables.

/// What gafix does with a keyword.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Support {
    /// Runs with Ansible's semantics.
    Yes,
    /// Refused at its location: "`X` is not supported by gafix yet".
    NotYet,
}

use Support::{NotYet, Yes};

/// Play keywords (ansible-core 2.19's list, plus gafix's own `gafix_gate`).
pub const PLAY: &[(&str, Support)] = &[
    ("name", Yes),
    ("hosts", Yes),
    ("gather_facts", Yes),
    ("remote_user", Yes),
    ("become", Yes),
    ("become_user", Yes),
    ("become_method", Yes),
    ("vars", Yes),
    ("vars_files", Yes),
    ("roles", Yes),
    ("pre_tasks", Yes),
    ("tasks", Yes),
    ("post_tasks", Yes),
    ("handlers", Yes),
    ("serial", Yes),
    ("max_fail_percentage", Yes),
    ("any_errors_fatal", Yes),
    ("order", Yes),
    ("strategy", Yes),
    ("tags", Yes),
    ("environment", Yes),
    ("check_mode", Yes),
    ("diff", Yes),
    ("ignore_errors", Yes),
    ("no_log", Yes),
    ("timeout", Yes),
    ("gafix_gate", Yes),
    ("vars_prompt", NotYet),
    ("module_defaults", NotYet),
    ("become_exe", NotYet),
    ("become_flags", NotYet),
    ("collections", NotYet),
    ("connection", NotYet),
    ("debugger", NotYet),
    ("fact_path", NotYet),
    ("force_handlers", Yes),
    ("gather_subset", NotYet),
    ("gather_timeout", NotYet),
    ("ignore_unreachable", NotYet),
    ("port", NotYet),
    ("run_once", NotYet),
    ("throttle", NotYet),
    ("import_playbook", NotYet),
    ("ansible.builtin.import_playbook", NotYet),
];

/// Keys of a `roles:` entry (or a `meta/main.yml` dependency) with a meaning of their own;
/// any other key is a role parameter, as in Ansible.
pub const ROLE_ENTRY: &[(&str, Support)] = &[
    ("role", Yes),
    ("name", Yes),
    ("vars", Yes),
    ("when", Yes),
    ("tags", Yes),
    ("become", Yes),
    ("become_user", Yes),
    ("become_method", Yes),
    ("environment", Yes),
    ("check_mode", Yes),
    ("diff", Yes),
    ("ignore_errors", Yes),
    ("no_log", Yes),
    ("timeout", Yes),
    ("any_errors_fatal", NotYet),
    ("become_exe", NotYet),
    ("become_flags", NotYet),
    ("collections", NotYet),
    ("connection", NotYet),
    ("debugger", NotYet),
    ("delegate_facts", NotYet),
    ("delegate_to", NotYet),
    ("ignore_unreachable", NotYet),
    ("module_defaults", NotYet),
    ("port", NotYet),
    ("remote_user", NotYet),
    ("run_once", NotYet),
    ("throttle", NotYet),
];

/// Task keywords. `with_<lookup>` is matched by its prefix (see [`task_keyword`]).
pub const TASK: &[(&str, Support)] = &[
    ("name", Yes),
    ("args", Yes),
    ("when", Yes),
    ("register", Yes),
    ("become", Yes),
    ("become_user", Yes),
    ("become_method", Yes),
    ("vars", Yes),
    ("tags", Yes),
    ("ignore_errors", Yes),
    ("changed_when", Yes),
    ("failed_when", Yes),
    ("no_log", Yes),
    ("check_mode", Yes),
    ("diff", Yes),
    ("timeout", Yes),
    ("environment", Yes),
    ("action", NotYet),
    ("local_action", NotYet),
    ("any_errors_fatal", NotYet),
    ("async", NotYet),
    ("poll", NotYet),
    ("become_exe", NotYet),
    ("become_flags", NotYet),
    ("block", Yes),
    ("rescue", Yes),
    ("always", Yes),
    ("collections", NotYet),
    ("connection", NotYet),
    ("debugger", NotYet),
    ("delay", Yes),
    ("delegate_facts", NotYet),
    ("delegate_to", Yes),
    ("ignore_unreachable", Yes),
    ("listen", Yes),
    ("loop", Yes),
    ("loop_control", Yes),
    ("module_defaults", NotYet),
    ("notify", Yes),
    ("port", NotYet),
    ("remote_user", NotYet),
    ("retries", Yes),
    ("run_once", Yes),
    ("throttle", NotYet),
    ("until", Yes),
];

/// ansible-core's own modules (and its action plugins that look like modules). Those gafix
/// has are in the module registry; the rest are refused as not supported yet, not as unknown.
pub const ANSIBLE_BUILTIN_MODULES: &[&str] = &[
    "add_host",
    "apt",
    "apt_key",
    "apt_repository",
    "assemble",
    "assert",
    "async_status",
    "command",
    "copy",
    "cron",
    "deb822_repository",
    "debconf",
    "debug",
    "dnf",
    "dnf5",
    "dpkg_selections",
    "expect",
    "fail",
    "fetch",
    "file",
    "find",
    "gather_facts",
    "get_url",
    "getent",
    "git",
    "group_by",
    "hostname",
    "import_playbook",
    "import_tasks",
    "include",
    "include_tasks",
    "include_vars",
    "iptables",
    "known_hosts",
    "meta",
    "mount_facts",
    "package",
    "ping",
    "pip",
    "raw",
    "reboot",
    "replace",
    "rpm_key",
    "script",
    "service",
    "set_fact",
    "set_stats",
    "setup",
    "shell",
    "slurp",
    "stat",
    "subversion",
    "systemd",
    "systemd_service",
    "sysvinit",
    "tempfile",
    "template",
    "unarchive",
    "uri",
    "validate_argument_spec",
    "yum",
    "yum_repository",
];

/// The one wording for something Ansible has and gafix does not run yet.
pub fn not_supported(what: &str) -> String {
    format!("`{what}` is not supported by gafix yet")
}

/// How gafix treats a task keyword, if it is one (`with_items`, `with_dict`... included).
pub fn task_keyword(key: &str) -> Option<Support> {
    if let Some(lookup_name) = key.strip_prefix("with_") {
        return Some(if WITH_LOOKUPS.contains(&lookup_name) { Yes } else { NotYet });
    }
    lookup(TASK, key)
}

/// The `with_<lookup>` loops gafix runs.
pub const WITH_LOOKUPS: &[&str] = &["items", "list", "dict", "sequence", "together", "indexed_items", "first_found", "fileglob"];

pub fn lookup(table: &[(&'static str, Support)], key: &str) -> Option<Support> {
    table.iter().find(|(k, _)| *k == key).map(|(_, s)| *s)
}

/// The names a table supports, for messages and the README.
pub fn supported(table: &[(&'static str, Support)]) -> Vec<&'static str> {
    table.iter().filter(|(_, s)| *s == Yes).map(|(k, _)| *k).collect()
}

/// Whether `key` names an Ansible module (short or `ansible.builtin.`/`ansible.legacy.`),
/// or a module of a collection (a dotted name).
pub fn is_ansible_module(key: &str) -> bool {
    let short = key.strip_prefix("ansible.builtin.").or_else(|| key.strip_prefix("ansible.legacy.")).unwrap_or(key);
    ANSIBLE_BUILTIN_MODULES.contains(&short) || (short.split('.').count() >= 3 && short.split('.').all(is_identifier))
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !s.starts_with(|c: char| c.is_ascii_digit())
}

/// The candidate nearest to `word`, if one is near enough to be a likely typo.
pub fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let word = word.strip_prefix("ansible.builtin.").unwrap_or(word);
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// "unknown WHAT 'x'; did you mean 'y'?", or the list of what is supported when nothing is near.
pub fn unknown(what: &str, word: &str, candidates: &[&str]) -> String {
    match nearest(word, candidates.iter().copied()) {
        Some(near) => format!("unknown {what} '{word}'; did you mean '{near}'?"),
        None => format!("unknown {what} '{word}'; supported: {}", candidates.join(", ")),
    }
}

/// The README's keyword list, made from these tables (a test keeps the README equal to it).
/// Task entries that bring in other task files (handled when the task list is read).
pub const TASK_INCLUDES: &[&str] = &["import_tasks", "include_tasks", "include", "import_role", "include_role"];

#[cfg(test)]
pub fn markdown(modules: &[&str]) -> String {
    let list = |names: Vec<&str>| names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
    let refused = |table: &[(&'static str, Support)]| list(table.iter().filter(|(_, s)| *s == NotYet).map(|(k, _)| *k).collect());
    let lacking: Vec<&str> =
        ANSIBLE_BUILTIN_MODULES.iter().copied().filter(|m| !modules.contains(m) && !TASK_INCLUDES.contains(m) && *m != "meta").collect();
    [
        format!("- Modules: {}.", list(modules.to_vec())),
        format!("- Play keywords: {}.", list(supported(PLAY))),
        format!("- `roles:` entry keywords: {} (any other key is a role parameter).", list(supported(ROLE_ENTRY))),
        format!("- Task keywords: {}.", list(supported(TASK))),
        format!("- Task files: {}.", list(TASK_INCLUDES.to_vec())),
        "- `meta`: `flush_handlers`, `noop` (others refused).".to_string(),
        format!("- Refused in a play: {}.", refused(PLAY)),
        format!("- Refused in a `roles:` entry: {}.", refused(ROLE_ENTRY)),
        format!(
            "- Loops: `loop`, {}.",
            list(WITH_LOOKUPS.iter().map(|w| Box::leak(format!("with_{w}").into_boxed_str()) as &str).collect())
        ),
        format!("- Refused in a task: {}, any other `with_*`.", refused(TASK)),
        format!("- Refused ansible.builtin modules: {}; and any collection's module.", list(lacking)),
    ]
    .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_lists_the_keywords_of_these_tables() {
        let readme = include_str!("../../README.md");
        let expected = markdown(&crate::module::ModuleRef::names());
        assert!(readme.contains(&expected), "README.md's keyword list must read:\n{expected}");
    }

    #[test]
    fn each_keyword_is_listed_once() {
        for table in [PLAY, ROLE_ENTRY, TASK] {
            let mut names: Vec<&str> = table.iter().map(|(k, _)| *k).collect();
            let n = names.len();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), n);
        }
    }

    #[test]
    fn suggestions_for_typos_only() {
        let modules = ["apt", "dnf", "systemd", "service", "command", "shell"];
        assert_eq!(nearest("ap", modules), Some("apt"));
        assert_eq!(nearest("sytemd", modules), Some("systemd"));
        assert_eq!(nearest("ansible.builtin.comand", modules), Some("command"));
        assert_eq!(nearest("zypper_repository", modules), None);
        assert!(unknown("module", "ap", &modules).ends_with("did you mean 'apt'?"));
        assert!(unknown("module", "xyzzy", &modules).contains("supported: apt, dnf"));
    }

    #[test]
    fn modules_and_keywords_are_recognised() {
        assert!(is_ansible_module("template"));
        assert!(is_ansible_module("ansible.builtin.import_tasks"));
        assert!(is_ansible_module("community.general.ufw"));
        assert!(!is_ansible_module("ap"));
        assert_eq!(task_keyword("with_items"), Some(Yes));
        assert_eq!(task_keyword("with_nested"), Some(NotYet));
        assert_eq!(task_keyword("loop"), Some(Yes));
        assert_eq!(task_keyword("environment"), Some(Yes));
        assert_eq!(task_keyword("apt"), None);
    }
}
