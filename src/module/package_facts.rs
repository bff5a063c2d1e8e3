//! `package_facts`: the installed packages as `ansible_facts.packages` (and `packages`),
//! `{name: [{name, version, arch, source}]}` as Ansible's module gives them, from dpkg or rpm.

use futures::future::BoxFuture;
use serde_json::{json, Value as Json};

use super::spec::{arg, ArgError, Args, Kind, Spec};
use super::{Module, Outcome, RunCtx};
use crate::facts::PkgMgr;
use crate::session::HostSession;

pub struct PackageFacts;

pub static SPEC: Spec = Spec {
    name: "package_facts",
    aliases: &[],
    args: &[arg("manager", Kind::List), arg("strategy", Kind::Str)],
    free_form: None,
    required: &[],
    unsupported: &[],
    any_keys: false,
};

/// `name\tversion\tarch` lines, each package under its name (several for multiarch).
fn parse(output: &str, source: &str) -> serde_json::Map<String, Json> {
    let mut packages = serde_json::Map::new();
    for line in output.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let [name, version, arch] = f[..] else { continue };
        let entry = json!({"name": name, "version": version, "arch": arch, "source": source});
        match packages.entry(name.to_string()).or_insert_with(|| json!([])) {
            Json::Array(list) => list.push(entry),
            _ => unreachable!("every entry is a list"),
        }
    }
    packages
}

impl Module for PackageFacts {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }

    fn check(&self, args: &Args) -> Result<(), ArgError> {
        for m in args.list("manager") {
            if !matches!(m.as_str(), "auto" | "apt" | "rpm") {
                return Err(ArgError::Invalid { arg: "manager", expected: "auto, apt or rpm", found: m });
            }
        }
        Ok(())
    }

    fn run<'a>(&'a self, host: &'a mut HostSession, args: &'a Args, ctx: &'a RunCtx<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            if let Err(e) = self.check(args) {
                return Outcome::failed(e.to_string());
            }
            if let Err(e) = host.ensure_facts(&Default::default()).await {
                return Outcome::from_transport(e);
            }
            let wanted = args.list("manager");
            let apt = match host.facts().pkg_mgr {
                PkgMgr::Apt => true,
                PkgMgr::Dnf | PkgMgr::Yum => false,
                PkgMgr::Unknown => return Outcome::failed("package_facts: no supported package manager (apt or rpm) on the host"),
            };
            let apt = if wanted.iter().any(|m| m == "rpm") { false } else { apt || wanted.iter().any(|m| m == "apt") };
            let (command, source) = if apt {
                ("dpkg-query -W -f='${db:Status-Abbrev}\\t${Package}\\t${Version}\\t${Architecture}\\n' | sed -n 's/^ii \\t//p'", "apt")
            } else {
                ("rpm -qa --qf '%{NAME}\\t%{VERSION}-%{RELEASE}\\t%{ARCH}\\n'", "rpm")
            };
            let out = match host.run(command, ctx.become_, None).await {
                Ok(out) if out.rc == 0 => out,
                Ok(out) => return Outcome::command_failed("listing the packages", &out, None),
                Err(e) => return Outcome::from_transport(e),
            };
            let packages = parse(&out.stdout, source);
            let count = packages.len();
            let mut facts = serde_json::Map::new();
            facts.insert("packages".into(), Json::Object(packages));
            host.add_facts(facts.clone());
            let mut o = Outcome::ok(format!("{count} packages"));
            o.result = json!({"ansible_facts": facts});
            o
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packages_by_name_with_every_architecture() {
        let p = parse("libc6\t2.36-9\tamd64\nlibc6\t2.36-9\ti386\nsudo\t1.9.13\tamd64\nbroken line\n", "apt");
        assert_eq!(p["libc6"].as_array().unwrap().len(), 2);
        assert_eq!(p["sudo"][0], json!({"name": "sudo", "version": "1.9.13", "arch": "amd64", "source": "apt"}));
        assert_eq!(p.len(), 2);
    }
}
