//! The OpenAPI document against the live router: every served route is documented, every
//! documented route is served (not the fallback's 404, not a 405), `/openapi.json` serves
//! the same document, and sample responses match their documented schemas both ways
//! (required fields present, no undocumented fields, types right).

mod support;

use std::collections::BTreeSet;

use serde_json::Value;
use support::{fixture, json, openapi, send};

fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            out.insert((method.to_ascii_uppercase(), path.clone()));
        }
    }
    out
}

#[tokio::test]
async fn every_route_is_documented_and_every_documented_route_is_served() {
    let f = fixture(None).await;
    let doc = openapi();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let served: BTreeSet<(String, String)> = admin::routes().into_iter().collect();
    let documented = documented(&doc);
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "served but not documented: {undocumented:?}"
    );
    assert!(
        unserved.is_empty(),
        "documented but not served: {unserved:?}"
    );
    // And the live router really answers each one (the table above is what built it).
    for (method, path) in &documented {
        let url = path.replace('{', "x").replace('}', "");
        let (status, body) = send(&f.app, method, &url, Some(&f.platform), None, &[]).await;
        assert_ne!(status.as_u16(), 405, "{method} {path}: method not routed");
        let fallback = status.as_u16() == 404 && body.contains("route not found");
        assert!(!fallback, "{method} {path}: not routed ({body})");
    }
    let (status, _) = send(
        &f.app,
        "GET",
        "/v1/no-such-thing",
        Some(&f.platform),
        None,
        &[],
    )
    .await;
    assert_eq!(status.as_u16(), 404, "the fallback itself still works");
    let (status, body) = send(&f.app, "GET", "/openapi.json", None, None, &[]).await;
    assert_eq!(status.as_u16(), 200);
    assert_eq!(json(&body), doc);
}

/// Resolves `#/components/schemas/X`.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => {
            let name = r.trim_start_matches("#/components/schemas/");
            resolve(doc, &doc["components"]["schemas"][name])
        }
        None => schema,
    }
}

fn type_ok(t: &str, v: &Value) -> bool {
    match t {
        "null" => v.is_null(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        _ => false,
    }
}

/// Checks `v` against `schema`; returns what is wrong, with a JSON path.
fn check(doc: &Value, schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    if let Some(all) = schema["allOf"].as_array() {
        // Flattened structs: each part's properties, and no field outside all of them.
        let mut known = BTreeSet::new();
        for part in all {
            let part = resolve(doc, part);
            known.extend(
                part["properties"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, _)| k.clone()),
            );
            let mut sub = part.clone();
            sub.as_object_mut()
                .map(|o| o.insert("x-open".into(), Value::Bool(true)));
            check(doc, &sub, v, at, errors);
        }
        if let Some(obj) = v.as_object() {
            for k in obj.keys().filter(|k| !known.contains(*k)) {
                errors.push(format!("{at}.{k}: not documented"));
            }
        }
        return;
    }
    if let Some(any) = schema["oneOf"].as_array().or(schema["anyOf"].as_array()) {
        let ok = any.iter().any(|s| {
            let mut e = Vec::new();
            check(doc, s, v, at, &mut e);
            e.is_empty()
        });
        if !ok {
            errors.push(format!("{at}: matches none of oneOf/anyOf: {v}"));
        }
        return;
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if !types.is_empty() && !types.iter().any(|t| type_ok(t, v)) {
        errors.push(format!("{at}: {v} is not {types:?}"));
        return;
    }
    if let (Some(props), Some(obj)) = (schema["properties"].as_object(), v.as_object()) {
        for req in schema["required"].as_array().into_iter().flatten() {
            let req = req.as_str().unwrap();
            if !obj.contains_key(req) {
                errors.push(format!("{at}.{req}: required but missing"));
            }
        }
        for (k, val) in obj {
            match props.get(k) {
                Some(s) => check(doc, s, val, &format!("{at}.{k}"), errors),
                None if schema["x-open"] == true => {}
                None => errors.push(format!("{at}.{k}: not documented")),
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (i, item) in arr.iter().enumerate() {
            check(doc, items, item, &format!("{at}[{i}]"), errors);
        }
    }
}

fn response_schema<'a>(doc: &'a Value, method: &str, path: &str, status: u16) -> &'a Value {
    let op = &doc["paths"][path][method.to_ascii_lowercase()];
    let s = &op["responses"][status.to_string()]["content"]["application/json"]["schema"];
    assert!(
        !s.is_null(),
        "{method} {path} documents no JSON body for {status}"
    );
    s
}

#[tokio::test]
async fn sample_responses_match_their_schemas() {
    let f = fixture(None).await;
    let doc = openapi();
    let call = f.a.call.clone();
    // (method, url, documented path, body, key, expected status)
    type Sample<'a> = (&'a str, String, &'a str, Option<&'a str>, &'a str, u16);
    let samples: Vec<Sample> = vec![
        (
            "GET",
            "/v1/whoami".into(),
            "/v1/whoami",
            None,
            &f.a.supervisor,
            200,
        ),
        ("GET", "/v1/keys".into(), "/v1/keys", None, &f.a.admin, 200),
        (
            "GET",
            "/v1/calls".into(),
            "/v1/calls",
            None,
            &f.a.supervisor,
            200,
        ),
        (
            "GET",
            format!("/v1/calls/{call}"),
            "/v1/calls/{id}",
            None,
            &f.a.supervisor,
            200,
        ),
        (
            "GET",
            "/v1/messages".into(),
            "/v1/messages",
            None,
            &f.a.supervisor,
            200,
        ),
        (
            "GET",
            "/v1/callbacks".into(),
            "/v1/callbacks",
            None,
            &f.a.supervisor,
            200,
        ),
        (
            "GET",
            "/v1/numbers".into(),
            "/v1/numbers",
            None,
            &f.a.admin,
            200,
        ),
        (
            "GET",
            "/v1/trunk-routes".into(),
            "/v1/trunk-routes",
            None,
            &f.a.admin,
            200,
        ),
        (
            "GET",
            "/v1/settings".into(),
            "/v1/settings",
            None,
            &f.a.supervisor,
            200,
        ),
        (
            "GET",
            "/v1/billing".into(),
            "/v1/billing",
            None,
            &f.a.supervisor,
            200,
        ),
        (
            "GET",
            "/v1/analytics/summary".into(),
            "/v1/analytics/summary",
            None,
            &f.a.supervisor,
            200,
        ),
        (
            "GET",
            "/v1/tenants".into(),
            "/v1/tenants",
            None,
            &f.platform,
            200,
        ),
        (
            "POST",
            "/v1/keys".into(),
            "/v1/keys",
            Some(r#"{"role":"supervisor"}"#),
            &f.a.admin,
            201,
        ),
        (
            "GET",
            "/v1/calls/nope".into(),
            "/v1/calls/{id}",
            None,
            &f.a.supervisor,
            404,
        ),
        (
            "GET",
            format!("/v1/calls/{call}/recordings"),
            "/v1/calls/{id}/recordings",
            None,
            &f.a.supervisor,
            200,
        ),
        (
            "GET",
            format!("/v1/calls/{call}/recordings/agent"),
            "/v1/calls/{id}/recordings/{channel}",
            None,
            &f.a.supervisor,
            404,
        ),
    ];
    for (method, url, path, body, key, want) in samples {
        let (status, text) = send(&f.app, method, &url, Some(key), body, &[]).await;
        assert_eq!(status.as_u16(), want, "{method} {url}: {text}");
        let v = json(&text);
        let mut errors = Vec::new();
        check(
            &doc,
            response_schema(&doc, method, path, want),
            &v,
            "$",
            &mut errors,
        );
        assert!(
            errors.is_empty(),
            "{method} {url} does not match its schema:\n{}\n{text}",
            errors.join("\n")
        );
    }
    // The checker is not a rubber stamp: a missing field and an extra one are caught.
    let mut bad = json(
        &send(&f.app, "GET", "/v1/whoami", Some(&f.a.admin), None, &[])
            .await
            .1,
    );
    bad.as_object_mut().unwrap().remove("role");
    bad["surprise"] = Value::Bool(true);
    let mut errors = Vec::new();
    check(
        &doc,
        response_schema(&doc, "GET", "/v1/whoami", 200),
        &bad,
        "$",
        &mut errors,
    );
    assert_eq!(errors.len(), 2, "{errors:?}");
}
