//! Flow loading and validation: every error names file, line and key; the registry reloads.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::flows_dir;
use dialogs::FlowErrors;
use dialogs::flow::{FlowErrorKind, FlowRegistry, parse_flow};

const HEAD: &str = "[flow]\nname = \"t\"\ninitial_node = \"a\"\n";

fn errors(body: &str) -> FlowErrors {
    let text = format!("{HEAD}{body}");
    match parse_flow(Path::new("flows/t.toml"), &text) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e,
    }
}

/// Asserts one error with this line (1-based, counting the 3-line HEAD) and key, and
/// returns its kind.
fn one(body: &str, line: usize, key: &str) -> FlowErrorKind {
    let errs = errors(body);
    assert_eq!(errs.0.len(), 1, "{errs}");
    let mut errs = errs.0;
    let e = errs.remove(0);
    assert_eq!(e.file, Path::new("flows/t.toml"));
    assert_eq!((e.line, e.key.as_str()), (line, key), "{e}");
    let shown = e.to_string();
    assert!(
        shown.starts_with(&format!("flows/t.toml:{line}: {key}: ")),
        "{shown}"
    );
    e.kind
}

#[test]
fn shipped_flows_validate() {
    let reg = FlowRegistry::load_dir(flows_dir()).expect("shipped flows are valid");
    assert_eq!(reg.names(), vec!["payment_reminder", "receptionist"]);
    let r = reg.get("receptionist").expect("receptionist");
    assert_eq!(r.version_hash().len(), 64);
    assert_eq!(r.meta().language, "en");
}

#[test]
fn unknown_key() {
    let k = one(
        "[nodes.a]\nopener = \"hi\"\nopenr = \"typo\"\n",
        6,
        "nodes.a.openr",
    );
    assert!(
        matches!(k, FlowErrorKind::UnknownKey(ref s) if s == "openr"),
        "{k:?}"
    );
}

#[test]
fn unknown_key_in_a_function() {
    let k = one(
        "[[functions]]\nname = \"f\"\ntransiton = \"a\"\n[nodes.a]\nopener = \"hi\"\n",
        6,
        "functions[0].transiton",
    );
    assert!(
        matches!(k, FlowErrorKind::UnknownKey(ref s) if s == "transiton"),
        "{k:?}"
    );
}

#[test]
fn wrong_type() {
    let text =
        "[flow]\nname = \"t\"\ninitial_node = \"a\"\nmax_tool_rounds = \"many\"\n[nodes.a]\n";
    let e = parse_flow(Path::new("t.toml"), text).expect_err("error");
    assert_eq!(
        (e.0[0].line, e.0[0].key.as_str()),
        (4, "flow.max_tool_rounds")
    );
    assert!(matches!(e.0[0].kind, FlowErrorKind::InvalidValue(_)));
}

#[test]
fn syntax_error_has_a_line() {
    let e = parse_flow(
        Path::new("t.toml"),
        "[flow]\nname = \"t\"\ninitial_node = \n",
    )
    .expect_err("error");
    assert_eq!(e.0[0].line, 3);
    assert!(matches!(e.0[0].kind, FlowErrorKind::Syntax(_)));
}

#[test]
fn dangling_transitions() {
    let k = one(
        "[nodes.a]\nopener = \"hi\"\n[[nodes.a.functions]]\nname = \"go\"\ntransition = \"nowhere\"\n",
        8,
        "nodes.a.functions[0].transition",
    );
    assert!(
        matches!(k, FlowErrorKind::DanglingTransition(ref s) if s == "nowhere"),
        "{k:?}"
    );

    let k = one(
        "[nodes.a]\n[[nodes.a.functions]]\nname = \"go\"\ntransition = { on = \"status\", cases = { ok = \"a\", no = \"b\" } }\n",
        7,
        "nodes.a.functions[0].transition",
    );
    assert!(
        matches!(k, FlowErrorKind::DanglingTransition(ref s) if s == "b"),
        "{k:?}"
    );

    let k = one(
        "[nodes.a]\n[[nodes.a.intents]]\nkeywords = [\"x\"]\ngoto = \"zz\"\n",
        7,
        "nodes.a.intents[0].goto",
    );
    assert!(matches!(k, FlowErrorKind::DanglingTransition(_)));

    let text = "[flow]\nname = \"t\"\ninitial_node = \"missing\"\n[nodes.a]\n";
    let e = parse_flow(Path::new("t.toml"), text).expect_err("error");
    assert_eq!((e.0[0].line, e.0[0].key.as_str()), (3, "flow.initial_node"));
}

#[test]
fn duplicate_tool_names() {
    let k = one(
        "[[functions]]\nname = \"get_balance\"\n[nodes.a]\n[[nodes.a.functions]]\nname = \"get_balance\"\n",
        8,
        "nodes.a.functions[0].name",
    );
    assert!(
        matches!(k, FlowErrorKind::DuplicateTool(ref s) if s == "get_balance"),
        "{k:?}"
    );
}

#[test]
fn unknown_template_variables() {
    let k = one(
        "[nodes.a]\nopener = \"Hi {{ caller_nmae }}\"\n",
        5,
        "nodes.a.opener",
    );
    assert!(
        matches!(k, FlowErrorKind::UnknownTemplateVariable(ref s) if s == "caller_nmae"),
        "{k:?}"
    );
    // Flow variables and `set` targets are known.
    let ok = format!(
        "{HEAD}[variables]\ncompany = \"X\"\n[nodes.a]\nopener = \"{{{{ company }}}} {{{{ mood }}}} {{{{ caller_name | \\\"there\\\" }}}}\"\npre_actions = [{{ set = {{ var = \"mood\", value = \"good\" }} }}]\n"
    );
    parse_flow(Path::new("t.toml"), &ok).expect("known variables");
    let k = one(
        "[nodes.a]\npost_actions = [{ say = \"{{ nope }}\" }]\n",
        5,
        "nodes.a.post_actions[0].say",
    );
    assert!(matches!(k, FlowErrorKind::UnknownTemplateVariable(_)));
    let k = one(
        "[nodes.a]\nopener = \"Hi {{ caller_name\"\n",
        5,
        "nodes.a.opener",
    );
    assert!(matches!(k, FlowErrorKind::BadTemplate(_)));
}

#[test]
fn unknown_function_and_transfer_destination() {
    let k = one(
        "[nodes.a]\n[[nodes.a.intents]]\nany = true\ncall = \"nothing\"\n",
        7,
        "nodes.a.intents[0].call",
    );
    assert!(matches!(k, FlowErrorKind::UnknownFunction(_)));
    let k = one(
        "[nodes.a]\npre_actions = [{ transfer = \"ceo\" }]\n",
        5,
        "nodes.a.pre_actions[0].transfer",
    );
    assert!(
        matches!(k, FlowErrorKind::UnknownTransfer(ref s) if s == "ceo"),
        "{k:?}"
    );
}

#[test]
fn function_parameters_must_be_a_supported_json_schema() {
    let k = one(
        "[[functions]]\nname = \"f\"\nparameters = { type = \"object\", properties = { zip = { type = \"string\", pattern = \"^[0-9]+$\" } } }\n[nodes.a]\n",
        6,
        "functions[0].parameters",
    );
    assert!(
        matches!(k, FlowErrorKind::BadSchema(ref m) if m.starts_with("properties.zip.pattern")),
        "{k:?}"
    );
    let k = one(
        "[[functions]]\nname = \"f\"\nparameters = { type = \"object\", required = \"zip\" }\n[nodes.a]\n",
        6,
        "functions[0].parameters",
    );
    assert!(matches!(k, FlowErrorKind::BadSchema(_)), "{k:?}");
    // The supported subset loads.
    let ok = format!(
        "{HEAD}[[functions]]\nname = \"book\"\nparameters = {{ type = \"object\", properties = {{ slot = {{ type = \"string\", enum = [\"am\", \"pm\"], description = \"when\" }}, people = {{ type = \"integer\", minimum = 1 }} }}, required = [\"slot\"], additionalProperties = false }}\n[nodes.a]\n"
    );
    parse_flow(Path::new("t.toml"), &ok).expect("supported schema");
}

#[test]
fn intent_arguments_are_checked_against_the_function_schema() {
    // take_message requires `message`.
    let k = one(
        "[nodes.a]\n[[nodes.a.intents]]\nany = true\ncall = \"take_message\"\n[[nodes.a.functions]]\nname = \"take_message\"\n",
        7,
        "nodes.a.intents[0].call",
    );
    assert!(
        matches!(k, FlowErrorKind::BadArguments(ref m) if m.contains("message: is required")),
        "{k:?}"
    );
    let k = one(
        "[nodes.a]\n[[nodes.a.intents]]\nany = true\ncall = \"transfer\"\nargs = { destination = 7 }\n[[nodes.a.functions]]\nname = \"transfer\"\n",
        8,
        "nodes.a.intents[0].args",
    );
    assert!(
        matches!(k, FlowErrorKind::BadArguments(ref m) if m.contains("expected string")),
        "{k:?}"
    );
}

#[test]
fn errors_without_a_key_print_as_file_line_message() {
    let e = parse_flow(Path::new("t.toml"), "[flow\nname = 1\n").expect_err("syntax");
    let shown = e.to_string();
    assert!(shown.starts_with("t.toml:1: TOML syntax"), "{shown}");
}

#[test]
fn scan_dir_returns_good_and_bad_flows_apart() {
    let dir = std::env::temp_dir().join(format!("dialogs-scan-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("good.toml"), format!("{HEAD}[nodes.a]\n")).expect("write");
    std::fs::write(dir.join("bad.toml"), "[flow]\nname = \"b\"\n").expect("write");
    std::fs::write(dir.join("notes.txt"), "not a flow").expect("write");
    let scan = FlowRegistry::scan_dir(&dir).expect("readable");
    let names: Vec<&str> = scan.valid.iter().map(|f| f.name()).collect();
    assert_eq!(names, vec!["t"]);
    assert_eq!(scan.invalid.len(), 1);
    assert!(scan.errors().all(|e| e.file.ends_with("bad.toml")));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn all_errors_reported_at_once() {
    let errs = errors(
        "[nodes.a]\nopener = \"{{ x }}\"\n[[nodes.a.intents]]\nkeywords = [\"k\"]\ngoto = \"b\"\n",
    );
    assert_eq!(errs.0.len(), 2, "{errs}");
}

#[test]
fn registry_reload_keeps_running_calls_on_their_version() {
    let dir = std::env::temp_dir().join(format!("dialogs-reg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let path = dir.join("t.toml");
    std::fs::write(&path, format!("{HEAD}[nodes.a]\nopener = \"v1\"\n")).expect("write");
    let reg = Arc::new(FlowRegistry::load_dir(&dir).expect("load"));
    let running = reg.get("t").expect("t");

    std::fs::write(&path, format!("{HEAD}[nodes.a]\nopener = \"v2\"\n")).expect("write");
    let report = reg.reload().expect("reload");
    assert_eq!(report.updated, vec!["t"]);
    let fresh = reg.get("t").expect("t");
    assert_ne!(fresh.version_hash(), running.version_hash());
    assert_eq!(
        running.node("a").and_then(|n| n.opener.as_deref()),
        Some("v1")
    );
    assert_eq!(
        fresh.node("a").and_then(|n| n.opener.as_deref()),
        Some("v2")
    );

    // Unchanged → nothing updated; broken → rejected, last good version kept.
    assert!(reg.reload().expect("reload").updated.is_empty());
    std::fs::write(
        &path,
        format!("{HEAD}[nodes.a]\nopener = \"{{{{ oops }}}}\"\n"),
    )
    .expect("write");
    let report = reg.reload().expect("reload");
    assert_eq!(report.rejected.len(), 1);
    assert_eq!(
        reg.get("t").map(|f| f.version_hash().to_string()),
        Some(fresh.version_hash().to_string())
    );

    std::fs::remove_file(&path).expect("rm");
    std::fs::write(
        dir.join("u.toml"),
        "[flow]\nname = \"u\"\ninitial_node = \"a\"\n[nodes.a]\n",
    )
    .expect("write");
    let report = reg.reload().expect("reload");
    assert_eq!(report.removed, vec!["t"]);
    assert_eq!(reg.names(), vec!["u"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_dir_reports_every_bad_file() {
    let dir = std::env::temp_dir().join(format!("dialogs-chk-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("a.toml"), format!("{HEAD}[nodes.b]\n")).expect("write");
    std::fs::write(dir.join("b.toml"), "[flow]\nname = \"b\"\n").expect("write");
    let err = FlowRegistry::check_dir(&dir).expect_err("invalid");
    let text = err.to_string();
    assert!(text.contains("a.toml:3: flow.initial_node"), "{text}");
    assert!(text.contains("b.toml:"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn published_schema_matches_the_loader() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/flow.schema.json"))
        .expect("schema");
    let schema: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let tools = schema
        .pointer("/$defs/function/properties/tool/enum")
        .and_then(|v| v.as_array())
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = tools.iter().filter_map(|v| v.as_str()).collect();
    let kinds: Vec<&str> = dialogs::flow::ToolKind::ALL
        .iter()
        .map(|k| k.name())
        .collect();
    assert_eq!(names, kinds);
    let node_keys: Vec<&String> = schema
        .pointer("/$defs/node/properties")
        .and_then(|v| v.as_object())
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    // Every documented node key is accepted by the loader.
    for k in node_keys {
        let value = match k.as_str() {
            "barge_in" => "true".to_string(),
            "context" => "\"reset\"".into(),
            "endpointing" => "\"digits\"".into(),
            "pre_actions" | "post_actions" | "functions" | "intents" => "[]".into(),
            _ => "\"x\"".into(),
        };
        let text = format!("{HEAD}[nodes.a]\n{k} = {value}\n");
        parse_flow(Path::new("t.toml"), &text).unwrap_or_else(|e| panic!("{k}: {e}"));
    }
    // Every documented [business_hours] key is accepted too.
    let hour_keys: Vec<&String> = schema
        .pointer("/properties/business_hours/properties")
        .and_then(|v| v.as_object())
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    assert_eq!(hour_keys.len(), 9, "{hour_keys:?}");
    for k in hour_keys {
        let value = match k.as_str() {
            "timezone" => continue,
            "holidays" => "[\"2025-12-25\"]",
            _ => "\"09:00-17:00\"",
        };
        let text =
            format!("{HEAD}[nodes.a]\n[business_hours]\ntimezone = \"UTC\"\n{k} = {value}\n");
        parse_flow(Path::new("t.toml"), &text).unwrap_or_else(|e| panic!("{k}: {e}"));
    }
}
