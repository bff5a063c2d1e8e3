//! `stat`: what a path is, as `register`ed data (`reboot_required.stat.exists`).

use serde_json::{json, Value as Json};

use super::spec::{arg_aliases, Args, Kind, Spec};
use crate::facts::PathStat;
use crate::names;

pub static SPEC: Spec = Spec {
    name: "stat",
    aliases: &[],
    args: &[
        arg_aliases("path", Kind::Str, &["dest", "name"]),
        arg_aliases("follow", Kind::Bool, &[]),
        arg_aliases("get_checksum", Kind::Bool, &[]),
        arg_aliases("get_mime", Kind::Bool, &[]),
        arg_aliases("get_attributes", Kind::Bool, &[]),
    ],
    free_form: None,
    required: &["path"],
    unsupported: &["checksum_algorithm"],
};

pub fn desired(args: &Args) -> Result<String, String> {
    let path = args.str("path").ok_or("stat needs 'path'")?;
    names::path(&path).map_err(|e| e.to_string())?;
    Ok(path)
}

/// The `stat` result in Ansible's shape.
pub fn result(path: &str, s: &PathStat) -> Json {
    if !s.exists {
        return json!({"stat": {"exists": false}});
    }
    json!({"stat": {
        "exists": true,
        "path": path,
        "isdir": s.kind == "directory",
        "isreg": s.kind.starts_with("regular"),
        "islnk": s.kind == "symbolic link",
        "size": s.size,
        "mode": s.mode,
        "pw_name": s.owner,
        "gr_name": s.group,
        "mtime": s.mtime,
    }})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert_eq!(result("/x", &PathStat::default()), json!({"stat": {"exists": false}}));
        let s = PathStat {
            exists: true,
            kind: "regular empty file".into(),
            size: 0,
            mode: "0644".into(),
            owner: "root".into(),
            group: "root".into(),
            mtime: 5,
        };
        let r = result("/var/run/reboot-required", &s);
        assert_eq!(r["stat"]["exists"], json!(true));
        assert_eq!(r["stat"]["isreg"], json!(true));
    }
}
