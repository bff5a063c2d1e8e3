//! `reboot`: Ansible's arguments; the boot id proves that the host really rebooted.

use super::spec::{arg, Args, Kind, Spec};

pub static SPEC: Spec = Spec {
    name: "reboot",
    aliases: &[],
    args: &[
        arg("reboot_timeout", Kind::Seconds),
        arg("connect_timeout", Kind::Seconds),
        arg("pre_reboot_delay", Kind::Seconds),
        arg("post_reboot_delay", Kind::Seconds),
        arg("test_command", Kind::Str),
        arg("msg", Kind::Str),
        arg("boot_time_command", Kind::Str),
        arg("reboot_command", Kind::Str),
        arg("search_paths", Kind::List),
    ],
    free_form: None,
    required: &[],
    unsupported: &[],
};

#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub reboot_timeout: u64,
    pub connect_timeout: u64,
    pub pre_reboot_delay: u64,
    pub post_reboot_delay: u64,
    pub test_command: String,
    pub msg: String,
    pub boot_time_command: String,
    pub reboot_command: Option<String>,
}

pub fn desired(args: &Args) -> Result<Desired, String> {
    let secs = |name: &str, default: i64| -> Result<u64, String> {
        let v = args.int(name).unwrap_or(default);
        u64::try_from(v).map_err(|_| format!("'{name}' must not be negative"))
    };
    Ok(Desired {
        reboot_timeout: secs("reboot_timeout", 600)?,
        connect_timeout: secs("connect_timeout", 10)?,
        pre_reboot_delay: secs("pre_reboot_delay", 0)?,
        post_reboot_delay: secs("post_reboot_delay", 0)?,
        test_command: args.str("test_command").unwrap_or_else(|| "whoami".into()),
        msg: args.str("msg").unwrap_or_else(|| "Reboot initiated by gafix".into()),
        boot_time_command: args.str("boot_time_command").unwrap_or_else(|| "cat /proc/sys/kernel/random/boot_id".into()),
        reboot_command: args.str("reboot_command"),
    })
}

/// The command that schedules the reboot. `shutdown -r` returns at once; the delay (Ansible
/// rounds pre_reboot_delay to minutes for shutdown, we sleep instead) happens on the host so
/// our connection can end cleanly first.
pub fn reboot_command(d: &Desired) -> String {
    use crate::shell::quote;
    let cmd = d.reboot_command.clone().unwrap_or_else(|| format!("shutdown -r now {}", quote(&d.msg)));
    format!("nohup sh -c {} >/dev/null 2>&1 &", quote(&format!("sleep {}; {cmd}", d.pre_reboot_delay.max(1))))
}
