//! Differential test against ansible-playbook on the same kind of host: each case's playbook
//! (and roles) runs with ansible-playbook on one container and with gafix on an identical
//! one; the per-host recaps (ok/changed/unreachable/failed/skipped/rescued/ignored), the exit
//! codes and the state the tasks leave on the hosts must be equal.
//!
//! Each case addresses its container under three inventory names (h1, h2, h3), so that
//! multi-host semantics (any_errors_fatal, order, max_fail_percentage) show in one
//! container. Tasks leave their state in /tmp/gd, one file per fact of interest.
//!
//! Ansible counts its "Gathering Facts" task as ok; gafix reads facts without a task, so a
//! case says how many plays gather facts and that many are taken off Ansible's ok.
//!
//! ansible-playbook comes from the venv tests/run creates (GAFIX_ANSIBLE_INVENTORY points at
//! its ansible-inventory); it needs python3 on the target, which `testvm ct-up --python` has.

mod support;

use support::ansible::{ansible_playbook, inventory, python_container, run_ansible, run_gafix};
use support::Host;

struct Case {
    name: &'static str,
    /// Files of the case: `site.yml` and whatever it uses (roles/..., vars/...).
    files: &'static [(&'static str, &'static str)],
    args: &'static [&'static str],
    /// Plays that gather facts (Ansible's "Gathering Facts" counts as ok).
    gathering_plays: u32,
    /// Whether the inventory sets `ansible_user` (else the play's `remote_user` decides).
    inventory_user: bool,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "facts in when, remote_user under the host's ansible_user",
            files: &[(
                "site.yml",
                r#"- hosts: all
  remote_user: nobody-here
  tasks:
    - name: on Debian guests only
      shell: echo "{{ ansible_distribution }} {{ ansible_distribution_major_version }} {{ ansible_os_family }} {{ ansible_pkg_mgr }} {{ ansible_service_mgr }}" > /tmp/gd/{{ inventory_hostname }}-facts
      when: ansible_os_family == 'Debian' and ansible_facts['distribution'] == 'Debian'
    - name: not on RedHat
      command: 'true'
      when: ansible_facts['os_family'] == 'RedHat'
"#,
            )],
            args: &[],
            gathering_plays: 1, inventory_user: true,
        },
        Case {
            name: "remote_user decides who logs in when the inventory does not",
            files: &[(
                "site.yml",
                r#"- hosts: all
  gather_facts: false
  remote_user: tester
  tasks:
    - shell: id -un > /tmp/gd/{{ inventory_hostname }}-user
"#,
            )],
            args: &[],
            gathering_plays: 0,
            inventory_user: false,
        },
        Case {
            name: "undefined variables fail the host; guarded ones do not",
            files: &[(
                "site.yml",
                r#"- hosts: all
  gather_facts: false
  tasks:
    - name: guarded
      shell: echo "{{ nosuch | default('dflt') }} {{ nosuch.x | d('chained') }}" > /tmp/gd/{{ inventory_hostname }}-guarded
      when: nosuch is not defined or nosuch.x
    - name: skipped by a guard
      command: 'true'
      when: nosuch is defined and nosuch.x
    - name: only h2 compares an undefined variable
      command: 'true'
      when: inventory_hostname == 'h2' and nosuch == 'x'
    - name: after
      shell: echo after > /tmp/gd/{{ inventory_hostname }}-after
"#,
            )],
            args: &[],
            gathering_plays: 0, inventory_user: true,
        },
        Case { name: "--tags web,debug", files: TAGGED, args: &["--tags", "web,debug"], gathering_plays: 0, inventory_user: true },
        Case { name: "--skip-tags always,db", files: TAGGED, args: &["--skip-tags", "always,db"], gathering_plays: 0, inventory_user: true },
        Case { name: "--tags untagged", files: TAGGED, args: &["--tags", "untagged"], gathering_plays: 0, inventory_user: true },
        Case {
            name: "role vars precedence and dependencies once per parameter set",
            files: &[
                (
                    "site.yml",
                    r#"- hosts: all
  gather_facts: false
  vars: {b: play, c: play}
  roles:
    - role: app
      d: param
"#,
                ),
                ("roles/app/defaults/main.yml", "a: default\nb: default\nc: default\nd: default\n"),
                ("roles/app/vars/main.yml", "b: rolevars\n"),
                (
                    "roles/app/meta/main.yml",
                    "galaxy_info: {author: test}\ndependencies:\n  - {role: common, who: app}\n  - {role: common, who: app}\n  - {role: common, who: other}\n",
                ),
                ("roles/app/tasks/main.yml", "- shell: echo \"{{ a }} {{ b }} {{ c }} {{ d }}\" > /tmp/gd/{{ inventory_hostname }}-app\n"),
                ("roles/common/tasks/main.yml", "- shell: echo \"{{ who }}\" >> /tmp/gd/{{ inventory_hostname }}-common\n"),
            ],
            args: &[],
            gathering_plays: 0, inventory_user: true,
        },
        Case { name: "import_tasks: nested, with when, tags, vars and become inherited", files: IMPORTS, args: &[], gathering_plays: 0, inventory_user: true },
        Case { name: "import_tasks under --tags install", files: IMPORTS, args: &["--tags", "install"], gathering_plays: 0, inventory_user: true },
        Case {
            name: "handlers: notify, listen, role handlers, flush_handlers, once per host, not on a failed host",
            files: &[
                (
                    "site.yml",
                    r#"- hosts: all
  gather_facts: false
  roles: [web]
  tasks:
    - shell: echo t1 >> /tmp/gd/{{ inventory_hostname }}-log
      notify: [say hello, "web : restart web"]
    - shell: echo t2 >> /tmp/gd/{{ inventory_hostname }}-log
      notify: say hello
      changed_when: inventory_hostname != 'h2'
    - shell: echo t3 >> /tmp/gd/{{ inventory_hostname }}-log
      changed_when: false
      notify: listener
    - ansible.builtin.meta: flush_handlers
    - shell: echo after-flush >> /tmp/gd/{{ inventory_hostname }}-log
      notify: topic
    - command: /bin/false
      when: inventory_hostname == 'h3'
  handlers:
    - name: say hello
      shell: echo hello >> /tmp/gd/{{ inventory_hostname }}-log
    - name: listener
      shell: echo listened >> /tmp/gd/{{ inventory_hostname }}-log
      listen: topic
  post_tasks:
    - shell: echo post >> /tmp/gd/{{ inventory_hostname }}-log
      notify: say hello
"#,
                ),
                ("roles/web/tasks/main.yml", "- shell: echo web >> /tmp/gd/{{ inventory_hostname }}-log\n  notify: restart web\n"),
                ("roles/web/handlers/main.yml", "- name: restart web\n  shell: echo restart >> /tmp/gd/{{ inventory_hostname }}-log\n"),
            ],
            args: &[],
            gathering_plays: 0, inventory_user: true,
        },
        Case {
            name: "loops: loop, with_items, with_dict, with_sequence, with_together, loop_control, register results, when per item",
            files: &[(
                "site.yml",
                r#"- hosts: all
  gather_facts: false
  vars:
    pkgs: [a, b, c]
    users: {alice: 1, bob: 2}
  tasks:
    - shell: echo {{ item }} >> /tmp/gd/{{ inventory_hostname }}-loop
      loop: "{{ pkgs }}"
      register: out
    - shell: echo "{{ out.results | map(attribute='item') | join(',') }} {{ out.results | length }} {{ out.changed }} {{ out.msg }}" >> /tmp/gd/{{ inventory_hostname }}-loop
    - shell: echo {{ u.key }}={{ u.value }} idx={{ i }} >> /tmp/gd/{{ inventory_hostname }}-loop
      with_dict: "{{ users }}"
      loop_control: {loop_var: u, index_var: i, label: "{{ u.key }}"}
    - shell: echo {{ item }} >> /tmp/gd/{{ inventory_hostname }}-loop
      with_items: [[x, y], z]
      when: item != 'y'
      register: skipped_one
    - shell: echo "{{ skipped_one.results | map(attribute='skipped', default=false) | list }}" >> /tmp/gd/{{ inventory_hostname }}-loop
    - shell: echo {{ item }} >> /tmp/gd/{{ inventory_hostname }}-loop
      with_sequence: start=1 end=3 format=n%02d
    - shell: echo "{{ item.0 }}-{{ item.1 }}" >> /tmp/gd/{{ inventory_hostname }}-loop
      with_together: [[1, 2], [a, b]]
    - command: "test {{ item }} != bad"
      loop: [good, bad]
      ignore_errors: true
      register: r
    - shell: echo "{{ r.failed }} {{ r.results | map(attribute='rc') | list }}" >> /tmp/gd/{{ inventory_hostname }}-loop
    - shell: echo {{ ansible_loop.index }}/{{ ansible_loop.length }} {{ ansible_loop.last }} >> /tmp/gd/{{ inventory_hostname }}-loop
      loop: [p, q]
      loop_control: {extended: true}
    - shell: echo never
      loop: []
    - command: /bin/false
      ignore_errors: true
"#,
            )],
            args: &[],
            gathering_plays: 0, inventory_user: true,
        },
        Case {
            name: "include_tasks: per-OS file named by a fact (another OS's broken file never read), loop, apply, vars, nested, when",
            files: &[
                (
                    "site.yml",
                    r#"- hosts: all
  roles: [osrole]
  tasks:
    - include_tasks: "{{ item }}.yml"
      loop: [one, two]
    - ansible.builtin.include_tasks:
        file: applied.yml
        apply: {become: true}
      vars: {who: included}
    - include_tasks: never.yml
      when: inventory_hostname == 'nobody'
    - include_tasks: "{{ inventory_hostname | replace('h2', 'one') | regex_replace('^h[0-9]$', 'two') }}.yml"
"#,
                ),
                ("one.yml", "- shell: echo one {{ item | default('-') }} >> /tmp/gd/{{ inventory_hostname }}-inc\n"),
                ("two.yml", "- shell: echo two >> /tmp/gd/{{ inventory_hostname }}-inc\n- include_tasks: nested.yml\n"),
                ("nested.yml", "- shell: echo nested >> /tmp/gd/{{ inventory_hostname }}-inc\n"),
                ("applied.yml", "- shell: echo {{ who }} $(id -un) >> /tmp/gd/{{ inventory_hostname }}-inc\n"),
                ("roles/osrole/tasks/main.yml", "- include_tasks: \"{{ ansible_os_family }}.yml\"\n"),
                ("roles/osrole/tasks/Debian.yml", "- shell: echo debian >> /tmp/gd/{{ inventory_hostname }}-inc\n"),
                ("roles/osrole/tasks/RedHat.yml", "- this: [is not: valid\n"),
            ],
            args: &[],
            gathering_plays: 1, inventory_user: true,
        },
        Case {
            name: "block, rescue and always: rescued failures, ansible_failed_task/result, always on a failed host, keywords inherited",
            files: &[(
                "site.yml",
                r#"- hosts: all
  gather_facts: false
  tasks:
    - name: recovering block
      vars: {v: blockvar}
      become: true
      block:
        - shell: echo "in-block {{ v }} $(id -un)" >> /tmp/gd/{{ inventory_hostname }}-blk
        - name: fail here
          command: /bin/false
          when: inventory_hostname != 'h1'
        - shell: echo not-reached >> /tmp/gd/{{ inventory_hostname }}-blk
      rescue:
        - shell: echo "rescued {{ ansible_failed_task.name }} rc={{ ansible_failed_result.rc }}" >> /tmp/gd/{{ inventory_hostname }}-blk
        - name: rescue fails on h3
          command: /bin/false
          when: inventory_hostname == 'h3'
      always:
        - shell: echo "always {{ v }}" >> /tmp/gd/{{ inventory_hostname }}-blk
    - shell: echo "after {{ v | default('none') }}" >> /tmp/gd/{{ inventory_hostname }}-blk
    - block:
        - command: /bin/false
          when: inventory_hostname == 'h2'
      always:
        - shell: echo always2 >> /tmp/gd/{{ inventory_hostname }}-blk
    - shell: echo end >> /tmp/gd/{{ inventory_hostname }}-blk
    - block:
        - shell: echo nested-outer >> /tmp/gd/{{ inventory_hostname }}-blk
        - block:
            - command: /bin/false
          rescue:
            - shell: echo inner-rescue >> /tmp/gd/{{ inventory_hostname }}-blk
      when: inventory_hostname == 'h1'
"#,
            )],
            args: &[],
            gathering_plays: 0, inventory_user: true,
        },
        Case {
            name: "template and copy: rendered with facts and loops, content and src, mode, handlers notified, unchanged the second time",
            files: &[
                (
                    "site.yml",
                    r#"- hosts: all
  vars: {port: 8080, users: [alice, bob]}
  roles: [tpl]
  tasks:
    - copy: {content: "hello {{ inventory_hostname }}\n", dest: "/tmp/gd/{{ inventory_hostname }}-copy", mode: "0640"}
      notify: copied
    - copy: {src: static.txt, dest: "/tmp/gd/{{ inventory_hostname }}-static"}
    - copy: {content: "same\n", dest: "/tmp/gd/{{ inventory_hostname }}-again"}
    - copy: {content: "same\n", dest: "/tmp/gd/{{ inventory_hostname }}-again"}
      notify: copied
    - copy: {content: "same\n", dest: "/tmp/gd/{{ inventory_hostname }}-again", mode: "u=rw,g=r,o="}
    - shell: stat -c '%a' /tmp/gd/{{ inventory_hostname }}-again /tmp/gd/{{ inventory_hostname }}-copy /tmp/gd/{{ inventory_hostname }}-app.conf > /tmp/gd/{{ inventory_hostname }}-modes
  handlers:
    - name: copied
      shell: echo handler >> /tmp/gd/{{ inventory_hostname }}-handler
"#,
                ),
                ("files/static.txt", "static content\n"),
                (
                    "roles/tpl/templates/app.conf.j2",
                    "# {{ ansible_managed }}\nport={{ port }}\n{% for u in users %}\nuser={{ u }}\n{% endfor %}\nos={{ ansible_distribution }} {{ template_destpath | basename }}\n",
                ),
                ("roles/tpl/tasks/main.yml", "- template: {src: app.conf.j2, dest: \"/tmp/gd/{{ inventory_hostname }}-app.conf\", mode: 0600}\n- template: {src: app.conf.j2, dest: \"/tmp/gd/{{ inventory_hostname }}-app.conf\", mode: 0600}\n"),
            ],
            args: &[],
            gathering_plays: 1, inventory_user: true,
        },
        Case {
            name: "until, retries and delay: attempts, retries without until on failure, giving up",
            files: &[(
                "site.yml",
                r#"- hosts: all
  gather_facts: false
  tasks:
    - shell: echo x >> /tmp/gd/{{ inventory_hostname }}-tries; wc -l < /tmp/gd/{{ inventory_hostname }}-tries
      register: r
      until: r.stdout | int >= 3
      retries: 5
      delay: 0
    - shell: echo "{{ r.attempts }} {{ r.stdout }}" >> /tmp/gd/{{ inventory_hostname }}-att
    - shell: "test -e /tmp/gd/{{ inventory_hostname }}-flag || { touch /tmp/gd/{{ inventory_hostname }}-flag; exit 1; }"
      retries: 2
      delay: 1
      register: f
    - shell: echo "retried {{ f.attempts }}" >> /tmp/gd/{{ inventory_hostname }}-att
    - command: /bin/false
      register: g
      until: g.rc == 0
      retries: 1
      delay: 0
      ignore_errors: true
    - shell: echo "gave up {{ g.attempts }} {{ g.failed }}" >> /tmp/gd/{{ inventory_hostname }}-att
"#,
            )],
            args: &[],
            gathering_plays: 0, inventory_user: true,
        },
        Case {
            name: "include_vars: a per-OS file named by a fact, a file, a directory under a name, above task vars",
            files: &[
                (
                    "site.yml",
                    r#"- hosts: all
  roles: [vr]
  tasks:
    - include_vars: common.yml
    - include_vars: {dir: confd, name: conf}
    - shell: echo "{{ greeting }} {{ conf.a }} {{ conf.b }} {{ osvar }} {{ prec }}" >> /tmp/gd/{{ inventory_hostname }}-iv
      vars: {prec: task}
"#,
                ),
                ("common.yml", "greeting: hi\nprec: included\n"),
                ("confd/a.yml", "a: 1\n"),
                ("confd/b.yml", "b: 2\n"),
                ("roles/vr/tasks/main.yml", "- include_vars: \"{{ ansible_os_family }}.yml\"\n"),
                ("roles/vr/vars/Debian.yml", "osvar: debian-vars\n"),
                ("roles/vr/vars/RedHat.yml", "osvar: rh\n"),
            ],
            args: &[],
            gathering_plays: 1, inventory_user: true,
        },
        Case {
            name: "file: directory (recurse), touch, link, mode bits and symbolic, absent, unchanged the second time",
            files: &[(
                "site.yml",
                r#"- hosts: all
  gather_facts: false
  become: true
  vars: {d: "/tmp/gdx-{{ inventory_hostname }}"}
  tasks:
    - file: {path: "{{ d }}/sub", state: directory, mode: "0750"}
    - file: {path: "{{ d }}/sub", state: directory, mode: "0750"}
    - file: {path: "{{ d }}", state: directory, recurse: true, owner: tester}
    - file: {path: "{{ d }}", state: directory, recurse: true, owner: tester}
    - file: {path: "{{ d }}/t", state: touch, mode: "u=rw,g=r,o=r"}
    - file: {path: "{{ d }}/l", state: link, src: "{{ d }}/t"}
    - file: {path: "{{ d }}/l", state: link, src: "{{ d }}/t"}
    - file: {path: "{{ d }}/t", mode: "0600"}
    - file: {path: "{{ d }}/t", mode: "0600"}
    - file: {path: "{{ d }}/gone", state: absent}
    - shell: "stat -c '%n %a %U' {{ d }} {{ d }}/sub {{ d }}/t | sed 's/-h[0-9]//' > /tmp/gd/{{ inventory_hostname }}-fstat; readlink {{ d }}/l | sed 's/-h[0-9]//' >> /tmp/gd/{{ inventory_hostname }}-fstat"
"#,
            )],
            args: &[],
            gathering_plays: 0, inventory_user: true,
        },
        Case {
            name: "lineinfile, blockinfile, user and group: edits, anchors, backrefs, markers, memberships, unchanged the second time",
            files: &[(
                "site.yml",
                r##"- hosts: all
  gather_facts: false
  become: true
  vars:
    f: "/tmp/gdl-{{ inventory_hostname }}.conf"
    u: "gdu{{ inventory_hostname }}"
    g: "gdg{{ inventory_hostname }}"
  tasks:
    - copy: {dest: "{{ f }}", content: "# sshd\n#PermitRootLogin yes\nPort 22\n[main]\na=1\n"}
    - lineinfile: {path: "{{ f }}", regexp: '^#?PermitRootLogin', line: 'PermitRootLogin no'}
    - lineinfile: {path: "{{ f }}", regexp: '^#?PermitRootLogin', line: 'PermitRootLogin no'}
    - lineinfile: {path: "{{ f }}", line: 'b=2', insertafter: '^\[main\]'}
    - lineinfile: {path: "{{ f }}", line: 'UseDNS no', insertbefore: '^Port'}
    - lineinfile: {path: "{{ f }}", regexp: '^Port (\d+)$', line: 'Port \1 # kept', backrefs: true}
    - lineinfile: {path: "{{ f }}", regexp: '^Port (\d+)$', line: 'Port \1 # kept', backrefs: true}
    - lineinfile: {path: "{{ f }}", state: absent, regexp: '^a='}
    - lineinfile: {path: "{{ f }}.d/new", line: created, create: true, mode: "0640"}
    - lineinfile: {path: "{{ f }}.d/new", line: created, create: true, mode: "0640"}
    - lineinfile: {path: "{{ f }}.missing", line: x}
      ignore_errors: true
    - blockinfile: {path: "{{ f }}", block: "x=1\ny=2"}
    - blockinfile: {path: "{{ f }}", block: "x=1\ny=2"}
    - blockinfile: {path: "{{ f }}", marker: "// {mark} custom", block: "z", insertbefore: BOF}
    - blockinfile: {path: "{{ f }}", marker: "// {mark} custom", block: "z", insertbefore: BOF}
    - blockinfile: {path: "{{ f }}", block: "x=3", insertafter: '^UseDNS'}
    - blockinfile: {path: "{{ f }}", marker: "// {mark} custom", state: absent}
    - group: {name: "{{ g }}", gid: "{{ 4100 + (inventory_hostname[1] | int) }}"}
    - group: {name: "{{ g }}"}
    - user: {name: "{{ u }}", groups: ["{{ g }}"], shell: /bin/sh, comment: "GD user", create_home: false}
    - user: {name: "{{ u }}", groups: ["{{ g }}"], shell: /bin/sh, comment: "GD user", create_home: false}
    - user: {name: "{{ u }}", groups: [users], append: true}
    - user: {name: "{{ u }}", groups: [users], append: true}
    - user: {name: "{{ u }}", shell: /bin/bash, password: '$6$gdsalt$notarealhash'}
      register: ur
    - user: {name: "{{ u }}", password: '$6$gdsalt$notarealhash'}
    - user: {name: "{{ u }}", groups: "{{ g }}", group: "{{ g }}"}
    - user: {name: "{{ u }}", group: nosuchgroup}
      ignore_errors: true
    - shell: |
        cp {{ f }} /tmp/gd/{{ inventory_hostname }}-conf
        stat -c '%a %U' {{ f }}.d/new > /tmp/gd/{{ inventory_hostname }}-new
        id -Gn {{ u }} | tr ' ' '\n' | sed 's/h[0-9]$//' | sort | tr '\n' ' ' > /tmp/gd/{{ inventory_hostname }}-groups
        getent passwd {{ u }} | cut -d: -f5-7 > /tmp/gd/{{ inventory_hostname }}-passwd
        getent shadow {{ u }} | cut -d: -f2 >> /tmp/gd/{{ inventory_hostname }}-passwd
        echo "{{ ur.shell }} {{ ur.name | regex_replace('h[0-9]$', '') }}" >> /tmp/gd/{{ inventory_hostname }}-passwd
    - user: {name: "{{ u }}", state: absent}
    - group: {name: "{{ g }}", state: absent}
    - group: {name: "{{ g }}", state: absent}
    - file: {path: "{{ f }}.d", state: absent}
"##,
            )],
            args: &[],
            gathering_plays: 0, inventory_user: true,
        },
        Case {
            name: "import_role and include_role (tasks_from, vars_from, apply, loop, dependencies, handlers); with_first_found and with_fileglob",
            files: &[
                (
                    "site.yml",
                    r#"- hosts: all
  tasks:
    - import_role: {name: web}
      vars: {port: 8080}
    - include_role: {name: web, tasks_from: extra}
      when: inventory_hostname != 'h2'
    - include_role:
        name: web
        tasks_from: extra.yml
        vars_from: alt
      loop: [a, b]
      loop_control: {loop_var: flavour}
    - include_vars: "{{ item }}"
      with_first_found:
        - "{{ ansible_distribution }}-nope.yml"
        - "{{ ansible_os_family }}.yml"
        - default.yml
    - shell: echo "{{ family_var }}" >> /tmp/gd/{{ inventory_hostname }}-ff
    - include_tasks: "{{ item }}"
      with_first_found:
        - files: ["setup-{{ ansible_distribution }}.yml", setup-default.yml]
          paths: [tasks]
    - shell: echo "{{ item | basename }}" >> /tmp/gd/{{ inventory_hostname }}-glob
      with_fileglob: ["conf/*.conf"]
    - debug: {msg: "{{ item }}"}
      with_first_found: [{files: [nothing.yml], skip: true}]
"#,
                ),
                ("vars/Debian.yml", "family_var: debian-family\n"),
                ("vars/default.yml", "family_var: default\n"),
                ("tasks/setup-Debian.yml", "- shell: echo setup-debian >> /tmp/gd/{{ inventory_hostname }}-ff\n"),
                ("tasks/setup-default.yml", "- shell: echo setup-default >> /tmp/gd/{{ inventory_hostname }}-ff\n"),
                ("files/conf/a.conf", "a\n"),
                ("files/conf/b.conf", "b\n"),
                ("files/conf/c.txt", "c\n"),
                ("roles/web/meta/main.yml", "dependencies: [base]\n"),
                ("roles/web/defaults/main.yml", "web_v: default\n"),
                ("roles/web/vars/alt.yml", "web_v: alt\n"),
                (
                    "roles/web/tasks/main.yml",
                    "- shell: echo \"main {{ port | default(80) }} {{ web_v }}\" >> /tmp/gd/{{ inventory_hostname }}-web\n  notify: web changed\n",
                ),
                ("roles/web/tasks/extra.yml", "- shell: echo \"extra {{ flavour | default('-') }} {{ web_v }}\" >> /tmp/gd/{{ inventory_hostname }}-web\n"),
                ("roles/web/handlers/main.yml", "- name: web changed\n  shell: echo handler >> /tmp/gd/{{ inventory_hostname }}-web\n"),
                ("roles/base/tasks/main.yml", "- shell: echo base >> /tmp/gd/{{ inventory_hostname }}-web\n"),
            ],
            args: &[],
            gathering_plays: 1, inventory_user: true,
        },
        Case {
            name: "meta end_host/end_play/clear_facts, run_once, pause, wait_for, wait_for_connection, delegate_to localhost, package and service facts, --force-handlers",
            files: &[(
                "site.yml",
                r#"- hosts: all
  become: true
  tasks:
    - command: "true"
      notify: note
    - shell: echo {{ inventory_hostname }}
      run_once: true
      register: first
    - shell: echo "{{ first.stdout }}" > /tmp/gd/{{ inventory_hostname }}-once
    - pause: {seconds: 1}
    - stat: {path: "{{ playbook_dir }}/site.yml"}
      delegate_to: localhost
      become: false
      register: on_controller
    - shell: echo "{{ on_controller.stat.exists }}" > /tmp/gd/{{ inventory_hostname }}-delegated
    - file: {path: "/tmp/gd/{{ inventory_hostname }}-ready", state: touch}
    - wait_for: {path: "/tmp/gd/{{ inventory_hostname }}-ready", timeout: 5}
    - wait_for: {path: "/tmp/gd/{{ inventory_hostname }}-ready", search_regex: "never", timeout: 1}
      ignore_errors: true
    - wait_for: {port: 22, host: "{{ ansible_host }}", timeout: 5}
    - wait_for_connection: {timeout: 20}
    - package_facts:
    - service_facts:
    - shell: echo "{{ 'sudo' in ansible_facts.packages }} {{ packages['sudo'][0].source }} {{ ansible_facts.services['ssh.service'].state }}" > /tmp/gd/{{ inventory_hostname }}-facts
    - fail: {msg: boom}
      when: inventory_hostname == 'h1'
    - meta: end_host
      when: inventory_hostname == 'h2'
    - meta: clear_facts
    - shell: echo "{{ ansible_os_family | default('cleared') }}" > /tmp/gd/{{ inventory_hostname }}-after
  handlers:
    - name: note
      shell: echo handled >> /tmp/gd/{{ inventory_hostname }}-handled
- hosts: all
  gather_facts: false
  tasks:
    - meta: end_play
      when: inventory_hostname == 'h3'
    - shell: echo never > /tmp/gd/{{ inventory_hostname }}-never
"#,
            )],
            args: &["--force-handlers"],
            gathering_plays: 1, inventory_user: true,
        },
        Case {
            name: "apt: only_upgrade, cache_valid_time, dpkg_options, install_recommends, force_apt_get, clean, autoclean, autoremove, deb, a loop over names",
            files: &[(
                "site.yml",
                r#"- hosts: h1
  gather_facts: false
  become: true
  tasks:
    - apt: {name: qemu-guest-agent, only_upgrade: true}
    - apt: {update_cache: true, cache_valid_time: 3600}
    - apt: {update_cache: true, cache_valid_time: 3600}
    - apt:
        name: gafix-testpkg
        state: latest
        only_upgrade: true
        install_recommends: false
        force_apt_get: true
        dpkg_options: force-confdef,force-confold
    - apt: {name: gafix-testpkg, state: latest, only_upgrade: true}
    - apt: {autoclean: true}
    - apt: {autoremove: true}
    - apt: {clean: true}
    - apt: {name: "{{ item }}", state: present}
      loop: [gafix-testpkg, gafix-benchsvc]
      register: looped
    - shell: echo "{{ looped.results | map(attribute='changed') | list }} {{ looped.results | length }}" > /tmp/gd/looped
    - apt: {name: gafix-testpkg, state: absent}
    - apt: {deb: /srv/debs/gafix-testpkg_2_all.deb}
    - apt: {deb: /srv/debs/gafix-testpkg_2_all.deb}
    - shell: dpkg-query -W -f '${db:Status-Abbrev}${Version} ' gafix-testpkg qemu-guest-agent > /tmp/gd/apt 2>&1 || true
"#,
            )],
            args: &[],
            gathering_plays: 0, inventory_user: true,
        },
        Case {
            name: "a block in an imported file inherits the import's when and vars; two roles' handlers of one name: the last runs",
            files: &[
                (
                    "site.yml",
                    r#"- hosts: all
  gather_facts: false
  roles: [r1, r2]
  tasks:
    - import_tasks: blk.yml
      when: inventory_hostname != 'h3'
      vars: {v: imported}
"#,
                ),
                ("blk.yml", "- block:\n    - shell: echo \"in-block {{ v }}\" >> /tmp/gd/{{ inventory_hostname }}-b\n      notify: restart service\n"),
                ("roles/r1/tasks/main.yml", "- shell: echo r1 >> /tmp/gd/{{ inventory_hostname }}-b\n  notify: restart service\n"),
                ("roles/r1/handlers/main.yml", "- name: restart service\n  shell: echo r1-handler >> /tmp/gd/{{ inventory_hostname }}-b\n"),
                ("roles/r2/tasks/main.yml", "- shell: echo r2 >> /tmp/gd/{{ inventory_hostname }}-b\n"),
                ("roles/r2/handlers/main.yml", "- name: restart service\n  shell: echo r2-handler >> /tmp/gd/{{ inventory_hostname }}-b\n"),
            ],
            args: &[],
            gathering_plays: 0, inventory_user: true,
        },
        Case {
            name: "variables whose values are templates, rendered when used",
            files: &[
                (
                    "site.yml",
                    r#"- hosts: all
  gather_facts: false
  vars:
    base: /srv
    unused: "{{ not_defined_anywhere }}"
  roles:
    - paths
"#,
                ),
                ("roles/paths/defaults/main.yml", "app_dir: \"{{ base }}/{{ inventory_hostname }}\"\nlogs: [\"{{ app_dir }}/log\"]\n"),
                ("roles/paths/tasks/main.yml", "- shell: echo \"{{ logs[0] }}\" > /tmp/gd/{{ inventory_hostname }}-logs\n  when: app_dir.startswith(base)\n"),
            ],
            args: &[],
            gathering_plays: 0,
            inventory_user: true,
        },
        Case {
            name: "set_fact, debug and fail",
            files: &[(
                "site.yml",
                r#"- hosts: all
  gather_facts: false
  vars:
    level: play
  tasks:
    - set_fact:
        level: fact
        twice: "{{ level }}-{{ level }}"
    - debug:
        msg: "{{ twice }}"
    - debug:
        var: level
    - debug:
        msg: quiet
        verbosity: 2
    - fail:
        msg: "{{ inventory_hostname }} stops here"
      when: inventory_hostname == 'h2'
    - shell: echo "{{ level }} {{ twice }}" > /tmp/gd/{{ inventory_hostname }}-facts
"#,
            )],
            args: &[],
            gathering_plays: 0,
            inventory_user: true,
        },
        Case {
            name: "group_vars and host_vars beside the inventory and beside the playbook",
            files: &[
                (
                    "site.yml",
                    r#"- hosts: all
  gather_facts: false
  tasks:
    - shell: echo "{{ a }} {{ b }} {{ c }} {{ d }}" > /tmp/gd/{{ inventory_hostname }}-vars
"#,
                ),
                ("inventory/group_vars/all.yml", "a: inventory-all\nb: inventory-all\nc: inventory-all\nd: inventory-all\n"),
                ("group_vars/all.yml", "b: playbook-all\n"),
                ("inventory/host_vars/h2.yml", "c: inventory-h2\nd: inventory-h2\n"),
                ("host_vars/h2.yml", "d: playbook-h2\n"),
            ],
            args: &[],
            gathering_plays: 0,
            inventory_user: true,
        },
        Case {
            name: "any_errors_fatal",
            files: &[(
                "site.yml",
                r#"- hosts: all
  gather_facts: false
  any_errors_fatal: true
  tasks:
    - shell: echo a > /tmp/gd/{{ inventory_hostname }}-a; test {{ inventory_hostname }} != h2
    - shell: echo b > /tmp/gd/{{ inventory_hostname }}-b
- hosts: all
  gather_facts: false
  tasks:
    - shell: echo c > /tmp/gd/{{ inventory_hostname }}-c
"#,
            )],
            args: &[],
            gathering_plays: 0, inventory_user: true,
        },
        Case {
            name: "any_errors_fatal on the last task ends the playbook",
            files: &[(
                "site.yml",
                r#"- hosts: all
  gather_facts: false
  any_errors_fatal: true
  tasks:
    - shell: echo a > /tmp/gd/{{ inventory_hostname }}-a
    - shell: test {{ inventory_hostname }} != h3
- hosts: all
  gather_facts: false
  tasks:
    - shell: echo c > /tmp/gd/{{ inventory_hostname }}-c
"#,
            )],
            args: &[],
            gathering_plays: 0,
            inventory_user: true,
        },
        Case {
            name: "max_fail_percentage is checked after each task",
            files: &[(
                "site.yml",
                r#"- hosts: all
  gather_facts: false
  max_fail_percentage: 30
  tasks:
    - shell: test {{ inventory_hostname }} != h1
    - shell: echo b > /tmp/gd/{{ inventory_hostname }}-b
- hosts: all
  gather_facts: false
  tasks:
    - shell: echo c > /tmp/gd/{{ inventory_hostname }}-c
"#,
            )],
            args: &[],
            gathering_plays: 0, inventory_user: true,
        },
        Case {
            name: "order and serial",
            files: &[(
                "site.yml",
                r#"- hosts: all
  gather_facts: false
  order: reverse_sorted
  serial: 1
  tasks:
    - shell: echo {{ inventory_hostname }} >> /tmp/gd/order
"#,
            )],
            args: &[],
            gathering_plays: 0, inventory_user: true,
        },
        Case {
            name: "environment and vars_files",
            files: &[
                (
                    "site.yml",
                    r#"- hosts: all
  gather_facts: false
  vars_files: [vars/common.yml, [vars/missing.yml, vars/fallback.yml]]
  environment: {GREETING: "{{ greeting }}"}
  tasks:
    - shell: echo "$GREETING $OTHER {{ fallback }}" > /tmp/gd/{{ inventory_hostname }}-env
      environment: {OTHER: "it's {{ inventory_hostname }}"}
"#,
                ),
                ("vars/common.yml", "greeting: hello world\n"),
                ("vars/fallback.yml", "fallback: from-fallback\n"),
            ],
            args: &[],
            gathering_plays: 0, inventory_user: true,
        },
    ]
}

/// Imports nested two deep, in a role and in a play, with when, tags and vars on the import.
const IMPORTS: &[(&str, &str)] = &[
    (
        "site.yml",
        r#"- hosts: all
  gather_facts: false
  vars: {flavour: plain}
  roles:
    - app
  tasks:
    - ansible.builtin.import_tasks: extra.yml
      vars: {flavour: imported}
      when: inventory_hostname != 'h3'
"#,
    ),
    ("extra.yml", "- shell: echo \"{{ flavour }}\" > /tmp/gd/{{ inventory_hostname }}-extra\n"),
    (
        "roles/app/tasks/main.yml",
        "- import_tasks: install.yml\n  tags: [install]\n  when: inventory_hostname != 'h2'\n- shell: echo main >> /tmp/gd/{{ inventory_hostname }}-app\n",
    ),
    (
        "roles/app/tasks/install.yml",
        "- shell: echo install >> /tmp/gd/{{ inventory_hostname }}-app\n- import_tasks: steps/last.yml\n",
    ),
    ("roles/app/tasks/steps/last.yml", "- shell: echo \"last {{ step | default('none') }}\" >> /tmp/gd/{{ inventory_hostname }}-app\n  vars: {step: nested}\n"),
];

const TAGGED: &[(&str, &str)] = &[(
    "site.yml",
    r#"- hosts: all
  gather_facts: false
  tags: [play]
  tasks:
    - shell: echo web > /tmp/gd/{{ inventory_hostname }}-web
      tags: web
    - shell: echo db > /tmp/gd/{{ inventory_hostname }}-db
      tags: [db]
    - shell: echo always > /tmp/gd/{{ inventory_hostname }}-always
      tags: always
    - shell: echo debug > /tmp/gd/{{ inventory_hostname }}-debug
      tags: [never, debug]
- hosts: all
  gather_facts: false
  tasks:
    - shell: echo untagged > /tmp/gd/{{ inventory_hostname }}-untagged
"#,
)];

/// Every file the tasks left, with its content.
fn state(host: &Host) -> String {
    host.sh("cd /tmp/gd && for f in *; do [ -e \"$f\" ] || continue; printf '%s: ' \"$f\"; tr '\\n' '|' < \"$f\"; echo; done")
}

#[test]
#[ignore = "needs test containers and ansible-core: run tests/run"]
fn gafix_and_ansible_playbook_agree() {
    // Before any container starts: a missing ansible-playbook is one clear failure.
    ansible_playbook();
    let hosts = std::thread::scope(|s| {
        let a = s.spawn(|| python_container("diff-ansible"));
        let g = s.spawn(|| python_container("diff-gafix"));
        (a.join().expect("start"), g.join().expect("start"))
    });
    let (on_ansible, on_gafix) = (&hosts.0, &hosts.1);
    let mut disagreements = Vec::new();
    // GAFIX_DIFF_CASES=text runs only the cases whose name contains it (while developing one).
    let only = std::env::var("GAFIX_DIFF_CASES").ok();
    let all = cases();
    let total = all.len();
    let cases: Vec<Case> = all.into_iter().filter(|c| only.as_deref().is_none_or(|o| c.name.contains(o))).collect();
    assert!(!cases.is_empty(), "no case matches GAFIX_DIFF_CASES={only:?}");
    if let Some(o) = &only {
        eprintln!("GAFIX_DIFF_CASES={o}: running {} of {total} cases", cases.len());
    }
    for case in &cases {
        let dir = tempfile::tempdir().unwrap();
        // Files under inventory/ go beside each tool's inventory; the rest beside the playbook.
        for (rel, text) in case.files {
            let targets = match rel.strip_prefix("inventory/") {
                Some(r) => vec![dir.path().join("a").join(r), dir.path().join("g").join(r)],
                None => vec![dir.path().join(rel)],
            };
            for path in targets {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, text).unwrap();
            }
        }
        for host in [on_ansible, on_gafix] {
            host.sh("rm -rf /tmp/gd && mkdir /tmp/gd");
        }
        let ansible_dir = dir.path().join("a");
        let gafix_dir = dir.path().join("g");
        std::fs::create_dir_all(&ansible_dir).unwrap();
        std::fs::create_dir_all(&gafix_dir).unwrap();
        let book = dir.path().join("site.yml");

        let names = ["h1", "h2", "h3"];
        let ansible = run_ansible(
            &inventory(on_ansible, &ansible_dir, &names, case.inventory_user),
            &book,
            case.args,
            dir.path(),
            Some(case.gathering_plays),
        );
        let ansible_state = state(on_ansible);
        let gafix = run_gafix(&inventory(on_gafix, &gafix_dir, &names, case.inventory_user), &book, case.args, dir.path());
        let gafix_state = state(on_gafix);
        let (a_recap, g_recap) = (&ansible.recap, &gafix.recap);
        let (a_code, g_code) = (ansible.code, gafix.code);
        let (ansible_stdout, gafix_stdout) = (&ansible.stdout, &gafix.stdout);
        let agree = a_recap == g_recap && a_code == g_code && ansible_state == gafix_state;
        println!("differential: {:<60} {}", case.name, if agree { "same" } else { "DIFFERENT" });
        if std::env::var_os("GAFIX_DIFF_SHOW").is_some() {
            println!("   recap {g_recap:?}\n   state {gafix_state:?}");
        }
        if !agree {
            disagreements.push(format!(
                "== {}\nexit: ansible {a_code:?}, gafix {g_code:?}\nrecap: ansible {a_recap:?}\n       gafix   {g_recap:?}\n\
                 state: ansible {ansible_state:?}\n       gafix   {gafix_state:?}\n--- ansible-playbook\n{ansible_stdout}\n--- gafix\n{gafix_stdout}",
                case.name
            ));
        }
    }
    println!("differential: {} of {} cases agree with ansible-playbook", cases.len() - disagreements.len(), cases.len());
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}
