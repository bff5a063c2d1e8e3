//! `assert`: conditions checked on the controller, nothing runs on the host.

use super::spec::{arg, arg_aliases, Args, Kind, Spec};

pub static SPEC: Spec = Spec {
    name: "assert",
    aliases: &[],
    args: &[arg("that", Kind::List), arg_aliases("fail_msg", Kind::Str, &["msg"]), arg("success_msg", Kind::Str), arg("quiet", Kind::Bool)],
    free_form: None,
    required: &["that"],
    unsupported: &[],
};

#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub that: Vec<String>,
    pub fail_msg: Option<String>,
    pub success_msg: Option<String>,
}

pub fn desired(args: &Args) -> Result<Desired, String> {
    // `that` items are expressions: a comma inside one must not split it.
    let that = match args.get("that") {
        Some(serde_json::Value::Array(items)) => {
            items.iter().map(|i| i.as_str().map(str::to_string).unwrap_or_else(|| i.to_string())).collect()
        }
        Some(v) => vec![v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())],
        None => return Err("assert needs 'that'".into()),
    };
    Ok(Desired { that, fail_msg: args.str("fail_msg"), success_msg: args.str("success_msg") })
}
