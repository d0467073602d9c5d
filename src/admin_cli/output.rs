//! Printing answers for people: lists as aligned columns, objects as one field per line, an agent's topology as a
//! tree, and a value the API shows only once (a client secret, an operator token) last and labelled. No colour:
//! the output is the same on a terminal and in a pipe. `--output json` bypasses all of this.

use std::fmt::Write as _;

use serde_json::{Map, Value};

/// A page's items as aligned columns: `id` and `name` first, then every other scalar field (and list of scalars)
/// by name.
pub(crate) fn table(items: &[Value]) -> String {
    // A column for each field that is a scalar (or a list of scalars) in every item holding it: a nested object
    // (an audit record's `before`) has no cell; `get` shows it.
    let mut columns: Vec<&str> = vec![];
    let mut nested: Vec<&str> = vec![];
    for item in items {
        if let Value::Object(m) = item {
            for (k, v) in m {
                let list = if shown_in_table(v) {
                    &mut columns
                } else {
                    &mut nested
                };
                if !v.is_null() && !list.contains(&k.as_str()) {
                    list.push(k);
                }
            }
        }
    }
    columns.retain(|c| !nested.contains(c));
    if items.is_empty() {
        return "(none)\n".to_owned();
    }
    columns.sort_by_key(|c| match *c {
        "id" => (0, *c),
        "name" => (1, *c),
        _ => (2, *c),
    });
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|item| columns.iter().map(|c| cell(&item[*c])).collect())
        .collect();
    let header: Vec<String> = columns.iter().map(|c| c.to_uppercase()).collect();
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in std::iter::once(&header).chain(rows.iter()) {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// One object, a field per line (`key  value`); nested objects as `outer.inner`.
pub(crate) fn object(value: &Value) -> String {
    let mut lines = vec![];
    flatten("", value, &mut lines);
    let width = lines
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (k, v) in lines {
        let _ = writeln!(out, "{k:<width$}  {v}");
    }
    out
}

/// An object whose `field` the API shows only now: the other fields, then the value on a labelled line of its own.
pub(crate) fn once(value: &Value, field: &str, label: &str) -> String {
    let mut rest = value.clone();
    let shown = match &mut rest {
        Value::Object(m) => m.remove(field),
        _ => None,
    };
    let mut out = object(&rest);
    if let Some(Value::String(s)) = shown {
        let _ = writeln!(out, "\n{label} (shown only this once; store it now):\n{s}");
    }
    out
}

/// An agent's topology as a tree: the clients that may call it (←), the agent, then what it may call (→) with
/// the scopes on each edge and the credential each node uses.
pub(crate) fn topology(topo: &Value) -> String {
    let nodes: &[Value] = topo["nodes"].as_array().map_or(&[], Vec::as_slice);
    let edges: &[Value] = topo["edges"].as_array().map_or(&[], Vec::as_slice);
    let node = |id: &str, kinds: &[&str]| {
        nodes
            .iter()
            .find(|n| n["id"] == id && kinds.iter().any(|k| n["kind"] == *k))
    };
    let label = |id: &str, kinds: &[&str]| match node(id, kinds) {
        Some(n) => {
            let mut s = format!("{} {id}", n["kind"].as_str().unwrap_or("?"));
            if let Some(name) = n["name"].as_str().filter(|s| !s.is_empty() && *s != id) {
                let _ = write!(s, " ({name})");
            }
            if n["enabled"] == Value::Bool(false) {
                s.push_str(" [disabled]");
            }
            s
        }
        None => id.to_owned(),
    };
    let agent = topo["agent"].as_str().unwrap_or("?");
    let of_kind = |kind: &'static str| edges.iter().filter(move |e| e["kind"] == kind);
    let mut out = String::new();
    let inbound: Vec<&Value> = of_kind("inbound").collect();
    for e in &inbound {
        let from = e["from"].as_str().unwrap_or("?");
        let _ = writeln!(out, "{} ──{}──▶", label(from, &["client"]), scopes(e));
    }
    if !inbound.is_empty() {
        out.push_str("  │\n  ▼\n");
    }
    let _ = writeln!(out, "{}", label(agent, &["agent"]));
    let outbound: Vec<&Value> = of_kind("outbound").collect();
    if outbound.is_empty() {
        out.push_str("└── (calls nothing)\n");
    }
    for (i, e) in outbound.iter().enumerate() {
        let last = i + 1 == outbound.len();
        let to = e["to"].as_str().unwrap_or("?");
        let _ = writeln!(
            out,
            "{}──{}──▶ {}",
            if last { "└" } else { "├" },
            scopes(e),
            label(to, &["llm", "external", "enterprise"])
        );
        for u in of_kind("uses").filter(|u| u["from"] == to) {
            let cred = u["to"].as_str().unwrap_or("?");
            let _ = writeln!(
                out,
                "{}      └── uses {}",
                if last { " " } else { "│" },
                label(cred, &["credential"])
            );
        }
    }
    out
}

/// The error the API answered: `code: message`, then each field it names.
pub(crate) fn api_error(status: u16, body: &Value, raw: &str) -> String {
    let err = &body["error"];
    let mut out = match (err["code"].as_str(), err["message"].as_str()) {
        (Some(code), Some(message)) => format!("error: {status} {code}: {message}"),
        // Not the API's error shape (a proxy in between, a wrong URL): say what came back, briefly.
        _ => format!(
            "error: {status}: {}",
            raw.chars().take(300).collect::<String>().trim()
        ),
    };
    for f in err["fields"].as_array().map_or(&[][..], Vec::as_slice) {
        let _ = write!(
            out,
            "\n  {}: {}",
            f["path"].as_str().unwrap_or("?"),
            f["message"].as_str().unwrap_or("?")
        );
    }
    out
}

fn scopes(edge: &Value) -> String {
    let list: Vec<&str> = edge["scopes"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    format!("[{}]", list.join(" "))
}

fn shown_in_table(v: &Value) -> bool {
    match v {
        Value::Array(a) => a.iter().all(|x| !x.is_object() && !x.is_array()),
        Value::Object(_) => false,
        _ => true,
    }
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::Array(a) if a.is_empty() => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

fn flatten(prefix: &str, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(m) if !m.is_empty() => flatten_map(prefix, m, out),
        Value::Array(a) if a.iter().any(|x| x.is_object()) => {
            for (i, x) in a.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), x, out);
            }
        }
        other => out.push((prefix.to_owned(), cell(other))),
    }
}

fn flatten_map(prefix: &str, m: &Map<String, Value>, out: &mut Vec<(String, String)>) {
    for (k, v) in m {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        flatten(&key, v, out);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_table_aligns_its_columns() {
        let t = table(&[
            json!({"id": "a", "name": "Alpha", "scopes": ["x", "y"], "nested": {"no": 1}, "before": null}),
            json!({"id": "longer-id", "enabled": false, "before": {"id": "x"}}),
        ]);
        assert_eq!(
            t,
            "ID         NAME   ENABLED  SCOPES\n\
             a          Alpha  -        x,y\n\
             longer-id  -      false    -\n"
        );
    }

    #[test]
    fn a_topology_is_a_tree_with_scopes_on_each_edge() {
        let topo = json!({
            "agent": "agent-1",
            "nodes": [
                {"kind": "agent", "id": "agent-1", "name": "Bot"},
                {"kind": "llm", "id": "openai", "credential": "key"},
                {"kind": "credential", "id": "key"},
                {"kind": "enterprise", "id": "crm"},
                {"kind": "client", "id": "web", "enabled": true}
            ],
            "edges": [
                {"kind": "outbound", "from": "agent-1", "to": "openai", "scopes": ["llm.use"]},
                {"kind": "uses", "from": "openai", "to": "key"},
                {"kind": "outbound", "from": "agent-1", "to": "crm", "scopes": []},
                {"kind": "inbound", "from": "web", "to": "agent-1", "scopes": ["agent.access"]}
            ]
        });
        assert_eq!(
            topology(&topo),
            "client web ──[agent.access]──▶\n  │\n  ▼\nagent agent-1 (Bot)\n\
             ├──[llm.use]──▶ llm openai\n│      └── uses credential key\n\
             └──[]──▶ enterprise crm\n"
        );
    }

    #[test]
    fn a_value_shown_once_comes_last_and_labelled() {
        let out = once(
            &json!({"id": "s1", "secret": "idgsec_x"}),
            "secret",
            "client secret",
        );
        assert_eq!(
            out,
            "id  s1\n\nclient secret (shown only this once; store it now):\nidgsec_x\n"
        );
    }

    #[test]
    fn an_api_error_names_its_code_message_and_fields() {
        let body = json!({"error": {"code": "invalid", "message": "bad body", "fields": [{"path": "llm.upstream", "message": "must be https"}]}});
        assert_eq!(
            api_error(422, &body, ""),
            "error: 422 invalid: bad body\n  llm.upstream: must be https"
        );
        assert_eq!(
            api_error(502, &Value::Null, "Bad Gateway\n"),
            "error: 502: Bad Gateway"
        );
    }
}
