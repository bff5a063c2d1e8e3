use super::*;

fn parse_tasks(text: &str) -> Result<Vec<Task>, Vec<Diagnostic>> {
    let node = yaml::parse_str(text, Path::new("tasks.yml")).unwrap();
    let mut errors = Vec::new();
    let tasks = task::parse_tasks(node.as_ref(), None, &super::TaskFiles::None, &mut errors);
    if errors.is_empty() {
        Ok(tasks)
    } else {
        Err(errors)
    }
}

fn errors_of(text: &str) -> Vec<String> {
    parse_tasks(text).unwrap_err().iter().map(|d| d.to_string()).collect()
}

#[test]
fn the_seed_role_ships_byte_for_byte_and_parses() {
    // The seed's task file, kept in the repository (tests/fixtures) so that this test never
    // depends on files outside it; when the seed document is beside the project, the fixture
    // must still be its text.
    let fixture = include_str!("../../tests/fixtures/seed-qemu_ga_fix-tasks.yml");
    let shipped = EMBEDDED[0].1;
    assert_eq!(shipped, fixture, "roles/qemu_ga_fix/tasks/main.yml must be the seed's task file, byte for byte");
    if let Ok(seed) = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/seeds/qemu_ga_fix-role.md")) {
        assert!(seed.contains(fixture.trim_end()), "the fixture must be the seed's task file");
    }
    let role = RoleSource { paths: vec![], embedded: true }.load("qemu_ga_fix", &Location::synthetic("test")).unwrap();
    assert_eq!(role.tasks.len(), 2);
    assert_eq!(role.tasks[0].module.name(), "apt");
    assert_eq!(role.tasks[0].args.list("name"), ["qemu-guest-agent"]);
    assert_eq!(role.tasks[0].kw.become_, Some(true));
    assert_eq!(role.tasks[1].module.name(), "systemd");
    assert_eq!(role.tasks[1].args.bool("enabled"), Some(true));
    assert_eq!(role.tasks[1].location.line, 10);
    assert_eq!(role.meta.verify_unit_active.as_deref(), Some("qemu-guest-agent"));
    assert_eq!(role.meta.applies_to.virtualization, Some(Virtualization::Vm));
}

#[test]
fn the_patch_role_and_default_plan_parse() {
    let role = RoleSource { paths: vec![], embedded: true }.load("patch_reboot", &Location::synthetic("test")).unwrap();
    assert!(role.tasks.iter().any(|t| t.module.name() == "reboot"));
    assert!(role.tasks.iter().any(|t| t.module.name() == "stat" && t.register.as_deref() == Some("reboot_required_file")));
    let plan = Playbook::default_plan();
    assert_eq!(plan.plays.len(), 2);
    assert_eq!(plan.plays[1].gate.as_deref(), Some("qemu_ga_fix"));
    assert_eq!(plan.plays[1].serial, [Serial::Percent(25.0)]);
    assert!(plan.resolve(&RoleSource { paths: vec![], embedded: true }).is_ok());
}

#[test]
fn unknown_modules_and_arguments_point_at_the_key() {
    let errs = errors_of("- name: x\n  ansible.builtin.aptt:\n    name: foo\n");
    assert_eq!(errs.len(), 1);
    assert!(errs[0] == "tasks.yml:2:3: unknown module or task keyword 'ansible.builtin.aptt'; did you mean 'apt'?", "{}", errs[0]);
    let errs = errors_of("- apt:\n    name: foo\n    stat: present\n");
    assert!(errs[0].starts_with("tasks.yml:3:5: unsupported argument 'stat' for module 'apt'; supported: name, state"), "{}", errs[0]);
    let errs = errors_of("- apt:\n    name: foo\n    state: presnt\n");
    assert!(errs[0].contains("tasks.yml:3:5: 'state' must be one of present, installed"), "{}", errs[0]);
    let errs = errors_of("- apt:\n    name: foo\n    policy_rc_d: 101\n");
    assert!(errs[0].contains("not supported by gafix yet"), "{}", errs[0]);
}

#[test]
fn every_error_is_reported_not_just_the_first() {
    let errs = errors_of("- apt: {name: aa, bogus: 1}\n- systemd: {name: b, enabled: maybe}\n- async: 10\n  command: ls\n- {}\n");
    assert_eq!(errs.len(), 4, "{errs:#?}");
    assert!(errs[1].contains("'enabled' must be a boolean"), "{}", errs[1]);
    assert_eq!(errs[2], "tasks.yml:3:3: `async` is not supported by gafix yet");
    assert!(errs[3].contains("has no module"), "{}", errs[3]);
}

#[test]
fn conflicting_modules() {
    let errs = errors_of("- apt: {name: aa}\n  systemd: {name: b}\n");
    assert!(errs[0].contains("conflicting action statements: apt and systemd"), "{}", errs[0]);
}

#[test]
fn free_form_and_key_value_arguments() {
    let tasks = parse_tasks(
        "- command: needs-restarting -r\n  changed_when: false\n- stat: path=/var/run/reboot-required\n  register: r\n- apt: name=vim state=latest update_cache=yes\n- shell: creates=/x echo hi > /x\n",
    )
    .unwrap();
    assert_eq!(tasks[0].args.str("_raw_params").as_deref(), Some("needs-restarting -r"));
    assert_eq!(tasks[0].changed_when, ["False"]);
    assert_eq!(tasks[1].args.str("path").as_deref(), Some("/var/run/reboot-required"));
    assert_eq!(tasks[2].args.bool("update_cache"), Some(true));
    assert_eq!(tasks[2].args.str("state").as_deref(), Some("latest"));
    assert_eq!(tasks[3].args.str("creates").as_deref(), Some("/x"));
    assert_eq!(tasks[3].args.str("_raw_params").as_deref(), Some("echo hi > /x"));
}

#[test]
fn keywords_yaml_1_1_booleans_and_when_lists() {
    let tasks = parse_tasks(
        "- name: t\n  apt: {name: xz-utils}\n  become: yes\n  ignore_errors: True\n  when:\n    - a\n    - b is defined\n  tags: [x, y]\n",
    )
    .unwrap();
    assert_eq!(tasks[0].kw.become_, Some(true));
    assert_eq!(tasks[0].kw.ignore_errors, Some(crate::role::task::Deferred::Known(true)));
    assert_eq!(tasks[0].kw.when, ["a", "b is defined"]);
    assert_eq!(tasks[0].kw.tags, ["x", "y"]);
}

#[test]
fn a_role_on_disk_overrides_the_embedded_one() {
    let dir = tempfile::tempdir().unwrap();
    let tasks = dir.path().join("qemu_ga_fix/tasks");
    std::fs::create_dir_all(&tasks).unwrap();
    std::fs::write(tasks.join("main.yaml"), "- command: 'true'\n").unwrap();
    let source = RoleSource::new(vec![dir.path().to_path_buf()]);
    let role = source.load("qemu_ga_fix", &Location::synthetic("t")).unwrap();
    assert_eq!(role.tasks[0].module.name(), "command");
    assert!(role.meta.verify_unit_active.is_none(), "metadata comes with the role that was loaded");
    let missing = source.load("nosuch", &Location::new(&std::sync::Arc::from(Path::new("site.yml")), 3, 7)).unwrap_err().to_string();
    assert!(missing.starts_with("site.yml:3:7: role 'nosuch' not found in"), "{missing}");
}

#[test]
fn playbook_errors() {
    let err = Playbook::parse("- hosts: all\n  serial: 0\n  bogus: 1\n- roles: [x]\n- hosts: all\n  gafix_gate: later\n", "site.yml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("site.yml:2:11: serial must be a positive number"), "{err}");
    assert!(err.contains("site.yml:3:3: unknown play keyword 'bogus'"), "{err}");
    assert!(err.contains("site.yml:4:3: a play needs 'hosts'"), "{err}");
    assert!(err.contains("gafix_gate 'later' does not name an earlier play"), "{err}");
}

#[test]
fn serial_forms() {
    let book = Playbook::parse("- hosts: all\n  serial: [1, 5, \"25%\"]\n  roles:\n    - role: qemu_ga_fix\n      when: x == 1\n", "s.yml")
        .unwrap();
    assert_eq!(book.plays[0].serial, [Serial::Count(1), Serial::Count(5), Serial::Percent(25.0)]);
    let resolved = book.resolve(&RoleSource { paths: vec![], embedded: true }).unwrap();
    assert_eq!(resolved[0].tasks[0].kw.when, ["x == 1"]);
}

#[test]
fn literal_names_are_checked_when_the_role_loads() {
    let errs = errors_of("- apt:\n    name: \"vim; touch /tmp/pwned\"\n");
    assert!(errs[0].starts_with("tasks.yml:1:3: apt: 'vim; touch /tmp/pwned' is not a valid Debian package name"), "{}", errs[0]);
    let errs = errors_of("- systemd: {name: '$(reboot)', state: started}\n");
    assert!(errs[0].contains("not a valid systemd unit name"), "{}", errs[0]);
    // Templated names are checked after rendering, at run time.
    assert!(parse_tasks("- apt: {name: '{{ pkg }}'}\n").is_ok());
}

fn write_files(root: &Path, files: &[(&str, &str)]) {
    for (rel, text) in files {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

#[test]
fn one_wording_for_what_gafix_does_not_run_and_suggestions_for_typos() {
    let errs = errors_of("- ansible.builtin.include_role: {name: '{{ r }}'}\n- ansible.builtin.cron: {name: a, job: b}\n");
    assert_eq!(errs[0], "tasks.yml:1:34: `include_role with a templated role or file name` is not supported by gafix yet");
    assert_eq!(errs[1], "tasks.yml:2:3: `ansible.builtin.cron` is not supported by gafix yet");
    let errs =
        errors_of("- command: ls\n  remote_user: bob\n- command: ls\n  with_nested: [[1]]\n- community.general.ufw: {rule: allow}\n");
    assert_eq!(errs[0], "tasks.yml:2:3: `remote_user` is not supported by gafix yet");
    assert_eq!(errs[1], "tasks.yml:4:3: `with_nested` is not supported by gafix yet");
    assert_eq!(errs[2], "tasks.yml:5:3: `community.general.ufw` is not supported by gafix yet");
    let errs = errors_of("- command: ls\n  with_nested: [[1]]\n  loop_control: {loop_var: x}\n");
    assert_eq!(errs, ["tasks.yml:2:3: `with_nested` is not supported by gafix yet"], "one problem, one error");
    let errs = errors_of("- ap: {name: vim}\n- command: ls\n  regster: r\n");
    assert_eq!(errs[0], "tasks.yml:1:3: unknown module or task keyword 'ap'; did you mean 'apt'?");
    assert_eq!(errs[1], "tasks.yml:3:3: unknown module or task keyword 'regster'; did you mean 'register'?");
    let err = Playbook::parse("- hsots: all\n  vars_prompt: []\n  module_defaults: {}\n", "p.yml").unwrap_err().to_string();
    assert!(err.contains("p.yml:1:3: unknown play keyword 'hsots'; did you mean 'hosts'?"), "{err}");
    assert!(err.contains("p.yml:2:3: `vars_prompt` is not supported by gafix yet"), "{err}");
    assert!(err.contains("p.yml:3:3: `module_defaults` is not supported by gafix yet"), "{err}");
    let err = Playbook::parse("- hosts: all\n  strategy: host_pinned\n  become_method: su\n", "p.yml").unwrap_err().to_string();
    assert!(err.contains("p.yml:2:13: `strategy: host_pinned` is not supported by gafix yet (linear and free are)"), "{err}");
    assert!(err.contains("p.yml:3:18: `become_method: su` is not supported by gafix yet (only 'sudo' is)"), "{err}");
}

#[test]
fn play_keywords_are_read_and_inherited_by_tasks() {
    let book = Playbook::parse(
        "- hosts: all\n  remote_user: deploy\n  gather_facts: no\n  any_errors_fatal: true\n  order: reverse_sorted\n  strategy: free\n\
         \x20 become: true\n  tags: [play]\n  environment: {A: '1'}\n  timeout: 30\n  vars_files: [a.yml, [b.yml, c.yml]]\n\
         \x20 tasks:\n    - command: ls\n      tags: task\n      become: false\n      environment: {B: '2'}\n      diff: false\n",
        "p.yml",
    )
    .unwrap();
    let play = &book.plays[0];
    assert_eq!(play.remote_user.as_deref(), Some("deploy"));
    assert!(!play.gather_facts && play.any_errors_fatal);
    assert_eq!((play.order, play.strategy), (HostOrder::ReverseSorted, Strategy::Free));
    assert_eq!(play.vars_files[1].candidates, ["b.yml", "c.yml"]);
    let resolved = book.resolve(&RoleSource::new(vec![])).unwrap();
    let kw = &resolved[0].tasks[0].kw;
    assert_eq!(kw.tags, ["play", "task"]);
    assert_eq!(kw.become_, Some(false), "the task's own value wins");
    assert_eq!(kw.timeout, Some(30));
    assert_eq!(kw.diff, Some(false));
    assert_eq!(kw.environment.len(), 2, "play's, then the task's");
}

#[test]
fn whole_role_directories_dependencies_once_per_parameters() {
    let dir = tempfile::tempdir().unwrap();
    write_files(
        dir.path(),
        &[
            ("web/tasks/main.yml", "- command: echo web\n"),
            ("web/vars/main.yml", "port: 8080\n"),
            ("web/defaults/main/10-a.yml", "a: 1\nb: 1\n"),
            ("web/defaults/main/20-b.yml", "b: 2\n"),
            ("web/handlers/main.yml", "- name: restart\n  service: {name: nginx, state: restarted}\n"),
            (
                "web/meta/main.yml",
                "galaxy_info: {author: x}\ndependencies:\n  - common\n  - {role: common, level: 2, when: x is defined, tags: dep}\n  - role: common\n",
            ),
            ("common/tasks/main.yml", "- command: echo common\n"),
            ("common/meta/main.yml", "dependencies: []\n"),
        ],
    );
    let source = RoleSource::new(vec![dir.path().to_path_buf()]);
    let web = source.load("web", &Location::synthetic("t")).unwrap();
    assert_eq!(web.vars["port"], serde_json::json!(8080));
    assert_eq!(web.defaults["a"], serde_json::json!(1));
    assert_eq!(web.defaults["b"], serde_json::json!(2), "defaults/main/ files merge in name order");
    assert_eq!(web.dependencies.len(), 3);
    let book = Playbook::parse("- hosts: all\n  roles: [web]\n", "p.yml").unwrap();
    let resolved = &book.resolve(&source).unwrap()[0];
    let names: Vec<&str> = resolved.roles.iter().map(|r| r.role.name.as_str()).collect();
    assert_eq!(names, ["common", "common", "web"], "common runs once per parameter set, before web");
    assert_eq!(resolved.roles[1].params["level"], serde_json::json!(2));
    let second_common = resolved.tasks.iter().find(|t| t.role_instance == Some(1)).unwrap();
    assert_eq!(second_common.kw.when, ["x is defined"]);
    assert_eq!(second_common.kw.tags, ["dep"]);
    assert_eq!(resolved.tasks.iter().filter(|t| !t.flush_handlers).count(), 3);
    assert_eq!(resolved.handlers.len(), 1, "web's handler");
    assert_eq!(resolved.tasks.iter().filter(|t| t.flush_handlers).count(), 3, "a flush after each section");
}

#[test]
fn role_problems_are_reported_where_they_are() {
    let dir = tempfile::tempdir().unwrap();
    write_files(
        dir.path(),
        &[
            ("a/tasks/main.yml", "- command: ls\n"),
            ("a/meta/main.yml", "dependencies:\n  - nosuch\n"),
            ("b/tasks/main.yml", "- command: ls\n"),
            ("b/handlers/main.yml", "- name: h\n  servce: {name: x}\n"),
            ("c/tasks/main.yml", "- command: ls\n"),
            ("c/meta/main.yml", "dependencies: [d]\n"),
            ("d/tasks/main.yml", "- command: ls\n"),
            ("d/meta/main.yml", "dependencies: [c]\n"),
        ],
    );
    let source = RoleSource::new(vec![dir.path().to_path_buf()]);
    let book = Playbook::parse("- hosts: all\n  roles: [a, b, c]\n", "p.yml").unwrap();
    let errors: Vec<String> = book.resolve(&source).unwrap_err().iter().map(|e| e.to_string()).collect();
    let all = errors.join("\n");
    assert!(all.contains("a/meta/main.yml:2:5: role 'nosuch' not found in"), "{all}");
    assert!(all.contains("b/handlers/main.yml:2:3: unknown module or task keyword 'servce'; did you mean 'service'?"), "{all}");
    assert!(all.contains("role dependencies form a cycle: c -> d -> c"), "{all}");
}

#[test]
fn a_yaml_error_is_one_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("site.yml");
    std::fs::write(&path, "- hosts: all\n  tasks: [\n").unwrap();
    let (_, errors) = Playbook::load_collecting(&path);
    assert_eq!(errors.len(), 1, "{errors:?}");
}

#[test]
fn import_tasks_brings_the_file_in_with_the_import_keywords() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("os")).unwrap();
    std::fs::write(dir.path().join("install.yml"), "- apt: {name: vim}\n  when: want_vim\n- import_tasks: os/debian.yml\n").unwrap();
    std::fs::write(dir.path().join("os/debian.yml"), "- name: nested\n  command: 'true'\n  vars: {b: 2, a: 0}\n").unwrap();
    std::fs::write(dir.path().join("self.yml"), "- import_tasks: self.yml\n").unwrap();
    let files = super::TaskFiles::Dir(dir.path().to_path_buf());
    let text = "- command: ls\n- ansible.builtin.import_tasks: install.yml\n  when: ansible_os_family == 'Debian'\n  tags: [pkg]\n  become: true\n  vars: {a: 1}\n";
    let node = yaml::parse_str(text, Path::new("tasks.yml")).unwrap();
    let mut errors = Vec::new();
    let tasks = task::parse_tasks(node.as_ref(), None, &files, &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(tasks.len(), 3);
    assert_eq!(tasks[1].kw.when, ["ansible_os_family == 'Debian'", "want_vim"], "the import's condition comes first");
    assert_eq!((tasks[1].kw.tags.as_slice(), tasks[1].kw.become_), (["pkg".to_string()].as_slice(), Some(true)));
    assert_eq!(tasks[2].name.as_deref(), Some("nested"));
    assert_eq!(tasks[2].vars, serde_json::from_str::<Vars>(r#"{"a": 0, "b": 2}"#).unwrap(), "the task's own vars win");
    assert!(tasks[2].location.to_string().contains("os/debian.yml:2:3"), "{}", tasks[2].location);
    let errs = |text: &str| {
        let node = yaml::parse_str(text, Path::new("tasks.yml")).unwrap();
        let mut errors = Vec::new();
        task::parse_tasks(node.as_ref(), None, &files, &mut errors);
        errors.iter().map(|d| d.to_string()).collect::<Vec<_>>()
    };
    assert!(errs("- import_tasks: nosuch.yml\n")[0].starts_with("tasks.yml:1:3: no task file 'nosuch.yml'"));
    assert_eq!(
        errs("- import_tasks: \"{{ ansible_os_family }}.yml\"\n")[0],
        "tasks.yml:1:3: import_tasks: '{{ ansible_os_family }}.yml' is a template; a file chosen per host needs include_tasks"
    );
    assert!(errs("- import_tasks: self.yml\n").iter().any(|e| e.contains("nests more than 16 imports deep")));
    assert!(errs("- import_tasks: install.yml\n  register: r\n")[0].contains("'register' cannot be used with import_tasks"));
}

#[test]
fn loops_and_their_control_are_read() {
    let tasks = parse_tasks("- command: echo {{ pkg }}\n  loop: \"{{ pkgs }}\"\n  loop_control: {loop_var: pkg, index_var: i, label: '{{ pkg }}', pause: 0.5}\n- command: echo\n  with_dict: {a: 1}\n").unwrap();
    let l = tasks[0].loop_.as_ref().unwrap();
    assert_eq!((l.lookup.as_deref(), l.loop_var.as_str(), l.index_var.as_deref(), l.pause), (None, "pkg", Some("i"), 0.5));
    assert_eq!(tasks[1].loop_.as_ref().unwrap().lookup.as_deref(), Some("dict"));
    let errs = errors_of("- command: ls\n  loop_control: {loop_var: x}\n- command: ls\n  loop: [1]\n  with_items: [2]\n- command: ls\n  loop: [1]\n  loop_control: {loop_var: 'a b', nosuch: 1}\n");
    assert!(errs[0].contains("loop_control needs loop"), "{errs:?}");
    assert!(errs[1].contains("a task takes one loop"), "{errs:?}");
    assert!(errs[2].contains("loop_var 'a b' is not a variable name"), "{errs:?}");
    assert!(errs[3].contains("`loop_control.nosuch` is not supported by gafix yet"), "{errs:?}");
}

#[test]
fn include_tasks_is_kept_for_the_host_to_decide() {
    let tasks = parse_tasks("- include_tasks: \"{{ ansible_os_family }}.yml\"\n  when: x\n- ansible.builtin.include_tasks:\n    file: a.yml\n    apply: {become: true, tags: [t]}\n  vars: {v: 1}\n").unwrap();
    let inc = tasks[0].include.as_ref().unwrap();
    assert_eq!((inc.file.as_str(), tasks[0].kw.when.as_slice()), ("{{ ansible_os_family }}.yml", ["x".to_string()].as_slice()));
    let inc = tasks[1].include.as_ref().unwrap();
    assert_eq!((inc.file.as_str(), inc.apply.become_, inc.apply.tags.as_slice()), ("a.yml", Some(true), ["t".to_string()].as_slice()));
    let errs = errors_of(
        "- include_tasks: a.yml\n  register: r\n- include_tasks: {file: a.yml, bogus: 1}\n- include_tasks: {apply: {become: true}}\n",
    );
    assert!(errs[0].contains("include_tasks does not take register"), "{errs:?}");
    assert!(errs[1].contains("`include_tasks: bogus` is not supported by gafix yet"), "{errs:?}");
    assert!(errs[2].contains("include_tasks needs a file name"), "{errs:?}");
}

#[test]
fn blocks_carry_their_keywords_and_vars_to_their_tasks() {
    let tasks = parse_tasks(
        "- name: b\n  when: x\n  become: true\n  vars: {a: 1}\n  block:\n    - command: ls\n      vars: {a: 2, b: 3}\n    - block:\n        - command: pwd\n  rescue:\n    - command: id\n  always:\n    - command: date\n",
    )
    .unwrap();
    let b = tasks[0].block.as_ref().unwrap();
    assert_eq!(tasks[0].name.as_deref(), Some("b"));
    assert_eq!((b.block.len(), b.rescue.len(), b.always.len()), (2, 1, 1));
    assert_eq!((b.block[0].kw.when.as_slice(), b.block[0].kw.become_), (["x".to_string()].as_slice(), Some(true)));
    assert_eq!(b.block[0].vars, serde_json::from_str::<Vars>(r#"{"a": 2, "b": 3}"#).unwrap(), "the task's own vars win");
    let inner = b.block[1].block.as_ref().unwrap();
    assert_eq!(inner.block[0].kw.when, ["x"], "nested blocks inherit too");
    assert_eq!(b.always[0].vars["a"], 1);
    assert_eq!(tasks[0].flattened().len(), 6);
    let errs = errors_of("- command: ls\n  rescue: []\n- block: []\n  register: r\n");
    assert!(errs[0].contains("'rescue' goes with 'block:'"), "{errs:?}");
    assert!(errs[1].contains("'register' cannot be used on a block"), "{errs:?}");
}
