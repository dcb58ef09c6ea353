//! Tool arguments checked against the function's JSON Schema (`parameters`).
//!
//! A deliberately small validator for the part of JSON Schema that tool parameters use:
//! `type` (one or a list), `properties`, `required`, `additionalProperties` (bool or schema),
//! `enum`, `const`, `items`, `minItems`/`maxItems`, `minLength`/`maxLength`,
//! `minimum`/`maximum`/`exclusiveMinimum`/`exclusiveMaximum`. Annotations (`description`,
//! `title`, `default`, `examples`, `format`, …) are accepted and ignored. Any other keyword
//! (`pattern`, `oneOf`, `$ref`, …) is refused when the flow loads ([`check_schema`]) rather
//! than silently not enforced: a flow author must never believe a constraint holds that the
//! engine does not check.

use serde_json::{Map, Value};

/// Keywords that only describe; they never make a value invalid.
const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "default",
    "examples",
    "format",
    "deprecated",
    "readOnly",
    "writeOnly",
    "$schema",
    "$id",
    "$comment",
];

const TYPES: &[&str] = &[
    "object", "array", "string", "number", "integer", "boolean", "null",
];

/// Checks that `schema` uses only the supported subset, and uses it well-formed. The error
/// names the JSON path inside the schema (`properties.when.type`).
pub(crate) fn check_schema(schema: &Value) -> Result<(), String> {
    check_at(schema, "")
}

/// Validates `value` against `schema` (assumed to pass [`check_schema`]). Returns one message
/// per problem, each naming the argument path (`message`, `items[2]`), for the LLM to correct.
pub(crate) fn validate(schema: &Value, value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    validate_at(schema, value, "", &mut out);
    out
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn check_at(schema: &Value, path: &str) -> Result<(), String> {
    let Some(obj) = schema.as_object() else {
        return Err(format!("{}: a schema must be a table", or_root(path)));
    };
    for (k, v) in obj {
        let here = join(path, k);
        let bad = |what: &str| Err(format!("{here}: {what}"));
        match k.as_str() {
            k if ANNOTATIONS.contains(&k) => {}
            "type" => {
                let names: Vec<&Value> = match v {
                    Value::Array(a) if !a.is_empty() => a.iter().collect(),
                    Value::String(_) => vec![v],
                    _ => return bad("must be a type name or a list of them"),
                };
                for n in names {
                    if !n.as_str().is_some_and(|n| TYPES.contains(&n)) {
                        return bad(&format!("unknown type {n} (one of {})", TYPES.join(", ")));
                    }
                }
            }
            "properties" => {
                let Some(props) = v.as_object() else {
                    return bad("must be a table of schemas");
                };
                for (name, sub) in props {
                    check_at(sub, &join(&here, name))?;
                }
            }
            "required" => {
                if !v.as_array().is_some_and(|a| a.iter().all(Value::is_string)) {
                    return bad("must be a list of property names");
                }
            }
            "additionalProperties" => {
                if !v.is_boolean() {
                    check_at(v, &here)?;
                }
            }
            "items" => check_at(v, &here)?,
            "enum" => {
                if v.as_array().is_none_or(|a| a.is_empty()) {
                    return bad("must be a non-empty list");
                }
            }
            "const" => {}
            "minItems" | "maxItems" | "minLength" | "maxLength" => {
                if v.as_u64().is_none() {
                    return bad("must be a non-negative integer");
                }
            }
            "minimum" | "maximum" | "exclusiveMinimum" | "exclusiveMaximum" => {
                if !v.is_number() {
                    return bad("must be a number");
                }
            }
            other => {
                return Err(format!(
                    "{here}: JSON Schema keyword `{other}` is not supported for tool parameters \
                     (supported: type, properties, required, additionalProperties, enum, const, \
                     items, minItems, maxItems, minLength, maxLength, minimum, maximum, \
                     exclusiveMinimum, exclusiveMaximum)"
                ));
            }
        }
    }
    Ok(())
}

fn or_root(path: &str) -> &str {
    if path.is_empty() { "parameters" } else { path }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn has_type(v: &Value, t: &str) -> bool {
    match t {
        "integer" => match v {
            Value::Number(n) => {
                n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
            }
            _ => false,
        },
        "number" => v.is_number(),
        other => type_name(v) == other,
    }
}

fn validate_at(schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
    let Some(s) = schema.as_object() else { return };
    let at = || or_arg(path);
    if let Some(t) = s.get("type") {
        let allowed: Vec<&str> = match t {
            Value::String(one) => vec![one.as_str()],
            Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !allowed.is_empty() && !allowed.iter().any(|t| has_type(value, t)) {
            out.push(format!(
                "{}: expected {}, got {}",
                at(),
                allowed.join(" or "),
                type_name(value)
            ));
            // Further keywords would only repeat the type mismatch.
            return;
        }
    }
    if let Some(options) = s.get("enum").and_then(Value::as_array)
        && !options.contains(value)
    {
        let list: Vec<String> = options.iter().map(Value::to_string).collect();
        out.push(format!("{}: must be one of {}", at(), list.join(", ")));
    }
    if let Some(c) = s.get("const")
        && c != value
    {
        out.push(format!("{}: must be {c}", at()));
    }
    match value {
        Value::Object(obj) => validate_object(s, obj, path, out),
        Value::Array(items) => {
            let n = items.len() as u64;
            if let Some(min) = s.get("minItems").and_then(Value::as_u64)
                && n < min
            {
                out.push(format!("{}: needs at least {min} items", at()));
            }
            if let Some(max) = s.get("maxItems").and_then(Value::as_u64)
                && n > max
            {
                out.push(format!("{}: allows at most {max} items", at()));
            }
            if let Some(item_schema) = s.get("items") {
                for (i, item) in items.iter().enumerate() {
                    validate_at(item_schema, item, &format!("{path}[{i}]"), out);
                }
            }
        }
        Value::String(text) => {
            let n = text.chars().count() as u64;
            if let Some(min) = s.get("minLength").and_then(Value::as_u64)
                && n < min
            {
                out.push(format!("{}: needs at least {min} characters", at()));
            }
            if let Some(max) = s.get("maxLength").and_then(Value::as_u64)
                && n > max
            {
                out.push(format!("{}: allows at most {max} characters", at()));
            }
        }
        Value::Number(n) => {
            let Some(x) = n.as_f64() else { return };
            let bound = |k: &str| s.get(k).and_then(Value::as_f64);
            if let Some(m) = bound("minimum")
                && x < m
            {
                out.push(format!("{}: must be at least {m}", at()));
            }
            if let Some(m) = bound("maximum")
                && x > m
            {
                out.push(format!("{}: must be at most {m}", at()));
            }
            if let Some(m) = bound("exclusiveMinimum")
                && x <= m
            {
                out.push(format!("{}: must be more than {m}", at()));
            }
            if let Some(m) = bound("exclusiveMaximum")
                && x >= m
            {
                out.push(format!("{}: must be less than {m}", at()));
            }
        }
        Value::Null | Value::Bool(_) => {}
    }
}

fn validate_object(
    s: &Map<String, Value>,
    obj: &Map<String, Value>,
    path: &str,
    out: &mut Vec<String>,
) {
    let props = s.get("properties").and_then(Value::as_object);
    for name in s
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !obj.contains_key(name) {
            out.push(format!("{}: is required", join(path, name)));
        }
    }
    for (k, v) in obj {
        let here = join(path, k);
        match props.and_then(|p| p.get(k)) {
            Some(sub) => validate_at(sub, v, &here, out),
            None => match s.get("additionalProperties") {
                Some(Value::Bool(false)) => out.push(format!("{here}: unknown argument")),
                Some(extra @ Value::Object(_)) => validate_at(extra, v, &here, out),
                _ => {}
            },
        }
    }
}

fn or_arg(path: &str) -> &str {
    if path.is_empty() { "arguments" } else { path }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errs(schema: Value, value: Value) -> Vec<String> {
        check_schema(&schema).expect("supported schema");
        validate(&schema, &value)
    }

    #[test]
    fn objects_required_and_types() {
        let schema = json!({
            "type": "object",
            "properties": {
                "message": { "type": "string", "minLength": 1, "description": "x" },
                "count": { "type": "integer", "minimum": 1, "maximum": 3 },
                "kind": { "enum": ["a", "b"] }
            },
            "required": ["message"]
        });
        assert!(errs(schema.clone(), json!({ "message": "hi", "count": 2 })).is_empty());
        assert!(errs(schema.clone(), json!({ "message": "hi", "count": 2.0 })).is_empty());
        assert_eq!(
            errs(schema.clone(), json!({ "count": 2 })),
            vec!["message: is required"]
        );
        assert_eq!(
            errs(schema.clone(), json!({ "message": 5 })),
            vec!["message: expected string, got integer"]
        );
        assert_eq!(
            errs(
                schema.clone(),
                json!({ "message": "", "count": 9, "kind": "c" })
            ),
            vec![
                "count: must be at most 3",
                "kind: must be one of \"a\", \"b\"",
                "message: needs at least 1 characters"
            ]
        );
        assert_eq!(
            errs(schema.clone(), json!({ "message": "x", "count": 1.5 })),
            vec!["count: expected integer, got number"]
        );
        assert_eq!(
            errs(schema, json!(["not", "an", "object"])),
            vec!["arguments: expected object, got array"]
        );
    }

    #[test]
    fn additional_properties_and_items() {
        let schema = json!({
            "type": "object",
            "properties": { "tags": { "type": "array", "items": { "type": "string" }, "maxItems": 2 } },
            "additionalProperties": false
        });
        assert_eq!(
            errs(schema.clone(), json!({ "tags": ["a", 1], "extra": true })),
            vec![
                "extra: unknown argument",
                "tags[1]: expected string, got integer"
            ]
        );
        assert_eq!(
            errs(schema, json!({ "tags": ["a", "b", "c"] })),
            vec!["tags: allows at most 2 items"]
        );
        // Without additionalProperties = false, extra arguments pass (the identity
        // guardrails need to see them to refuse and record).
        assert!(
            errs(
                json!({ "type": "object", "properties": {} }),
                json!({ "customer_id": "C-2" })
            )
            .is_empty()
        );
    }

    #[test]
    fn unsupported_keywords_are_refused_at_load() {
        let e = check_schema(&json!({
            "type": "object",
            "properties": { "zip": { "type": "string", "pattern": "^[0-9]{5}$" } }
        }))
        .expect_err("pattern is not enforced");
        assert!(e.starts_with("properties.zip.pattern:"), "{e}");
        assert!(check_schema(&json!({ "type": "strin" })).is_err());
        assert!(check_schema(&json!({ "type": "object", "required": "message" })).is_err());
        assert!(check_schema(&json!({ "oneOf": [] })).is_err());
        assert!(check_schema(&json!("object")).is_err());
    }
}
