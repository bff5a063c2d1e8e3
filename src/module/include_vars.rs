//! `include_vars`: variables from YAML or JSON files on the controller (the role's `vars/`,
//! then the playbook's), for this host from now on, at Ansible's include_vars precedence
//! (above task vars, below registered facts). Nothing runs on the host.

use futures::future::BoxFuture;
use serde_json::{json, Value as Json};

use super::spec::{arg, ArgError, Args, Kind, Spec};
use super::{Module, Outcome, RunCtx};
use crate::session::HostSession;
use crate::vars::Vars;

pub struct IncludeVars;

pub static SPEC: Spec = Spec {
    name: "include_vars",
    aliases: &[],
    args: &[
        arg("file", Kind::Str),
        arg("dir", Kind::Str),
        arg("name", Kind::Str),
        arg("files_matching", Kind::Str),
        arg("ignore_files", Kind::List),
        arg("extensions", Kind::List),
        arg("depth", Kind::Seconds),
    ],
    free_form: Some("file"),
    required: &[],
    unsupported: &["hash_behaviour", "ignore_unknown_extensions"],
    any_keys: false,
};

impl Module for IncludeVars {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }

    fn check(&self, args: &Args) -> Result<(), ArgError> {
        match (args.str("file").is_some(), args.str("dir").is_some()) {
            (true, true) => Err(ArgError::Module("include_vars: file and dir are mutually exclusive".into())),
            (false, false) => Err(ArgError::Module("include_vars: a file (include_vars: FILE) or dir is required".into())),
            _ => Ok(()),
        }
    }

    fn run<'a>(&'a self, host: &'a mut HostSession, args: &'a Args, ctx: &'a RunCtx<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            if let Err(e) = self.check(args) {
                return Outcome::failed(e.to_string());
            }
            let files = match args.str("file") {
                Some(file) => match super::template::find_source(&file, "vars", ctx.controller_dirs) {
                    Ok(p) => vec![p],
                    Err(e) => return Outcome::failed(e),
                },
                None => match dir_files(args, ctx) {
                    Ok(files) => files,
                    Err(e) => return Outcome::failed(e),
                },
            };
            let mut loaded = Vars::new();
            for path in &files {
                match crate::yaml::load_file(path) {
                    Ok(Some(node)) => match node.to_json() {
                        Json::Object(m) => loaded.extend(m),
                        Json::Null => {}
                        other => {
                            return Outcome::failed(format!("{}: variables must be a mapping, found {}", path.display(), short(&other)))
                        }
                    },
                    Ok(None) => {}
                    Err(e) => return Outcome::failed(crate::diag::Diagnostic::from(&e).to_string()),
                }
            }
            let facts = match args.str("name") {
                Some(name) => {
                    let mut m = Vars::new();
                    m.insert(name, Json::Object(loaded));
                    m
                }
                None => loaded,
            };
            let shown: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
            let mut o = Outcome::ok(format!("included {}", shown.join(", ")));
            o.result = json!({"ansible_facts": facts, "ansible_included_var_files": shown});
            host.include_vars(facts);
            o
        })
    }
}

/// `dir:`: its YAML/JSON files in name order (subdirectories to `depth`, 0 = all), minus
/// `ignore_files`, kept if `files_matching` (a regex) matches their name.
fn dir_files(args: &Args, ctx: &RunCtx<'_>) -> Result<Vec<std::path::PathBuf>, String> {
    let dir = args.str("dir").unwrap_or_default();
    let base = super::template::find_on_controller(&dir, "vars", ctx.controller_dirs, std::path::Path::is_dir)?;
    let mut extensions = args.list("extensions");
    if extensions.is_empty() {
        extensions = vec!["json".into(), "yml".into(), "yaml".into()];
    }
    let ignore = args.list("ignore_files");
    let matching = match args.str("files_matching") {
        Some(re) => Some(regex::Regex::new(&re).map_err(|e| format!("files_matching: {e}"))?),
        None => None,
    };
    let depth = args.get("depth").and_then(Json::as_u64).unwrap_or(0);
    let mut out = Vec::new();
    walk(&base, 1, depth, &mut |p: &std::path::Path| {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let ext_ok = p.extension().and_then(|e| e.to_str()).is_some_and(|e| extensions.iter().any(|x| x.trim_start_matches('.') == e));
        if ext_ok && !ignore.contains(&name) && matching.as_ref().is_none_or(|re| re.is_match(&name)) {
            out.push(p.to_path_buf());
        }
    })
    .map_err(|e| format!("{}: {e}", base.display()))?;
    Ok(out)
}

fn walk(dir: &std::path::Path, level: u64, depth: u64, found: &mut dyn FnMut(&std::path::Path)) -> std::io::Result<()> {
    let mut entries: Vec<std::path::PathBuf> = std::fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            if depth == 0 || level < depth {
                walk(&p, level + 1, depth, found)?;
            }
        } else {
            found(&p);
        }
    }
    Ok(())
}

fn short(v: &Json) -> String {
    v.to_string().chars().take(80).collect()
}
