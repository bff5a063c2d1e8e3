//! `package`: the host's own package manager, apt or dnf, as its facts say.

use futures::future::BoxFuture;

use super::spec::{arg, arg_choices, ArgError, Args, Kind, Spec};
use super::{apt, dnf, Module, Outcome, RunCtx};
use crate::facts::{PkgMgr, ProbeRequest};
use crate::names;
use crate::session::HostSession;

pub static SPEC: Spec = Spec {
    name: "package",
    aliases: &[],
    args: &[arg("name", Kind::List), arg_choices("state", &["present", "installed", "latest", "absent", "removed"])],
    free_form: None,
    required: &["name"],
    unsupported: &["use"],
    any_keys: false,
};

/// The `package` module.
pub struct Package;

impl Module for Package {
    fn list_argument(&self) -> Option<&'static str> {
        Some("name")
    }

    fn spec(&self) -> &'static Spec {
        &SPEC
    }

    /// Which manager runs is known only on the host: a name must fit one of them.
    fn check(&self, args: &Args) -> Result<(), ArgError> {
        for n in args.list("name") {
            if names::rpm_package(&n).is_err() {
                names::deb_package(&n)?;
            }
        }
        Ok(())
    }

    fn probe(&self, args: &Args, request: &mut ProbeRequest) {
        request.packages.extend(args.list("name").into_iter().filter(|n| names::deb_package(n).is_ok() || names::rpm_package(n).is_ok()));
    }

    fn run<'a>(&'a self, host: &'a mut HostSession, args: &'a Args, ctx: &'a RunCtx<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            if let Err(e) = host.ensure_facts(&ProbeRequest::default()).await {
                return Outcome::from_transport(e);
            }
            match host.facts().pkg_mgr {
                PkgMgr::Apt => match apt::desired(args) {
                    Ok(d) => apt::run(host, d, ctx).await,
                    Err(e) => Outcome::failed(e.to_string()),
                },
                PkgMgr::Dnf | PkgMgr::Yum => match dnf::desired(args) {
                    Ok(d) => dnf::run(host, d, ctx).await,
                    Err(e) => Outcome::failed(e.to_string()),
                },
                PkgMgr::Unknown => Outcome::failed("no supported package manager (apt-get, dnf, yum) on this host"),
            }
        })
    }
}
