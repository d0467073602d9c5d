//! From a parsed command to the one request it makes ([`Call`]) and how its answer is printed ([`Render`]): every
//! operation of `admin/src/api/openapi.json` has exactly one command here. Nothing in this module does I/O except
//! through [`Stdin`] (secrets and `--from-file -`).

use std::fmt::Write as _;

use http::Method;
use idguard_config::Secret;
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

use super::CliError;
use super::args::{
    AgentCmd, AgentFields, AuditArgs, BodyArgs, ClientCmd, ClientFields, CredentialCmd, Crud,
    DeleteArgs, GroupFields, IfMatch, InboundCmd, KeyCmd, ListArgs, NodeFields, OperatorCmd,
    OperatorFields, OrgFields, PermissionFields, Resource, SecretCmd, ServiceFields, StoreCmd,
    UserFields,
};
use super::client::Call;
use super::input::{self, Stdin};

const API: &str = "/admin/v1";

/// How an answer is printed in table mode (`--output json` prints the body as it came).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Render {
    /// A page: the array under this key, as aligned columns.
    List(&'static str),
    /// One object: a field per line.
    Object,
    /// An object holding a value shown only in this answer, under `field`: printed once, labelled.
    Once {
        field: &'static str,
        label: &'static str,
    },
    /// An agent's topology, as a tree.
    Topology,
    /// No body (204): this line instead.
    Done(String),
    /// A document printed as JSON in either mode.
    Json,
}

/// One command's request and rendering; `all` names the array to gather when `--all` follows `next_cursor`.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) call: Call,
    pub(crate) render: Render,
    pub(crate) all: Option<&'static str>,
}

/// Lays the flags a command was given over a JSON body (from `--from-file`, or empty).
pub(crate) trait Fields {
    /// Sets every field given on the command line; reads a secret from `stdin` where the flags ask for one.
    fn apply(&self, body: &mut Map<String, Value>, stdin: &mut Stdin) -> Result<(), CliError>;

    /// A secret field the flags ask for (read from `stdin`), kept out of the map: see [`Body`].
    fn secret(&self, _stdin: &mut Stdin) -> Result<Option<(&'static str, Secret)>, CliError> {
        Ok(None)
    }
}

/// A request body: JSON fields, and at most one secret field spliced in only when the body is serialized, so that
/// the value is copied once, into the wiped buffer of [`Call::body`], and never into a `serde_json` string.
#[derive(Debug, Default)]
pub(crate) struct Body {
    fields: Map<String, Value>,
    secret: Option<(&'static str, Secret)>,
}

impl From<Map<String, Value>> for Body {
    fn from(fields: Map<String, Value>) -> Self {
        Self {
            fields,
            secret: None,
        }
    }
}

impl Body {
    fn with_secret(fields: Map<String, Value>, key: &'static str, secret: Secret) -> Self {
        Self {
            fields,
            secret: Some((key, secret)),
        }
    }

    /// The JSON text. A field of the map named like the secret is replaced by it.
    fn serialize(mut self) -> Zeroizing<String> {
        let Some((key, secret)) = self.secret.take() else {
            return Zeroizing::new(Value::Object(self.fields).to_string());
        };
        self.fields.remove(key);
        let rest = Value::Object(self.fields).to_string();
        // Room for the value escaped at worst (`\u00XX` per byte): the buffer never reallocates, so no copy of the
        // secret is left behind in freed memory.
        let mut out = Zeroizing::new(String::with_capacity(
            rest.len() + key.len() + 8 + secret.expose().len() * 6,
        ));
        out.push_str(&rest[..rest.len() - 1]);
        if rest.len() > 2 {
            out.push(',');
        }
        out.push('"');
        out.push_str(key);
        out.push_str("\":\"");
        for c in secret.expose().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if (c as u32) < 0x20 => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => out.push(c),
            }
        }
        out.push_str("\"}");
        out
    }
}

/// The plan for `command`.
pub(crate) fn plan(command: &Resource, stdin: &mut Stdin) -> Result<Plan, CliError> {
    match command {
        Resource::Agents(AgentCmd::Crud(c)) => crud("agents", "agent", c, stdin, Patch::Patch),
        Resource::Agents(AgentCmd::Topology(a)) => Ok(topology(&a.id)),
        Resource::Agents(AgentCmd::Permission {
            id,
            fields,
            body,
            cond,
        }) => {
            let body = fields_body(fields, body, stdin)?;
            Ok(object(
                Method::PUT,
                format!("{API}/agents/{}/permission", seg(id)),
                Some(body),
                if_match(cond),
            ))
        }
        Resource::Agents(AgentCmd::Secrets(s)) => Ok(secrets("agents", s)),
        Resource::Agents(AgentCmd::Keys(k)) => keys("agents", k, stdin),
        Resource::Clients(ClientCmd::Crud(c)) => crud("clients", "client", c, stdin, Patch::Patch),
        Resource::Clients(ClientCmd::Secrets(s)) => Ok(secrets("clients", s)),
        Resource::Clients(ClientCmd::Keys(k)) => keys("clients", k, stdin),
        Resource::Credentials(c) => credentials(c, stdin),
        Resource::Llm(c) => crud("llm", "llm node", c, stdin, Patch::Patch),
        Resource::External(c) => crud("external", "external node", c, stdin, Patch::Patch),
        Resource::Enterprise(c) => crud("enterprise", "enterprise service", c, stdin, Patch::Patch),
        Resource::Users(c) => crud("users", "user", c, stdin, Patch::Replace),
        Resource::Groups(c) => crud("groups", "group", c, stdin, Patch::Replace),
        Resource::Orgs(c) => crud("organizations", "organization", c, stdin, Patch::Replace),
        Resource::Operators(OperatorCmd::Crud(c)) => {
            crud("operators", "operator", c, stdin, Patch::Patch)
        }
        Resource::Operators(OperatorCmd::IssueToken {
            id,
            name,
            expires_in,
        }) => {
            let mut body = Map::new();
            set(&mut body, "name", name.as_deref().map(Value::from));
            set(&mut body, "expires_in", expires_in.map(Value::from));
            Ok(Plan {
                call: call(
                    Method::POST,
                    format!("{API}/operators/{}/tokens", seg(id)),
                    Some(body.into()),
                    vec![],
                ),
                render: Render::Once {
                    field: "token",
                    label: "operator token",
                },
                all: None,
            })
        }
        Resource::Operators(OperatorCmd::RevokeToken { id, token_id, cond }) => Ok(done(
            format!("{API}/operators/{}/tokens/{}", seg(id), seg(token_id)),
            vec![],
            cond,
            format!("revoked token {token_id} of operator {id}"),
        )),
        Resource::Grant(g) => {
            let body = json_map(json!({ "scopes": g.scopes }));
            Ok(object(
                Method::PUT,
                format!("{API}/agents/{}/outbound/{}", seg(&g.agent), seg(&g.node)),
                Some(body.into()),
                if_match(&g.cond),
            ))
        }
        Resource::Revoke(e) => Ok(done(
            format!("{API}/agents/{}/outbound/{}", seg(&e.agent), seg(&e.node)),
            vec![],
            &e.cond,
            format!("withdrew {} → {}", e.agent, e.node),
        )),
        Resource::Outbound { agent, node } => Ok(object(
            Method::GET,
            format!("{API}/agents/{}/outbound/{}", seg(agent), seg(node)),
            None,
            vec![],
        )),
        Resource::Inbound(i) => Ok(inbound(i)),
        Resource::Audit(a) => Ok(audit(a)),
        Resource::Usage => Ok(object(Method::GET, format!("{API}/usage"), None, vec![])),
        Resource::Topology { agent } => Ok(topology(agent)),
        Resource::Store(s) => {
            let what = match s {
                StoreCmd::Reseed => "reseed",
                StoreCmd::Accept => "accept",
            };
            Ok(object(
                Method::POST,
                format!("{API}/store/{what}"),
                None,
                vec![],
            ))
        }
        Resource::Openapi => Ok(Plan {
            call: call(Method::GET, format!("{API}/openapi.json"), None, vec![]),
            render: Render::Json,
            all: None,
        }),
    }
}

/// How a collection changes an object: `PATCH` (the fields given) or `PUT` (the whole object, the directory).
#[derive(Clone, Copy)]
enum Patch {
    Patch,
    Replace,
}

fn crud<C: Fields + clap::Args, E: Fields + clap::Args>(
    collection: &'static str,
    noun: &'static str,
    cmd: &Crud<C, E>,
    stdin: &mut Stdin,
    patch: Patch,
) -> Result<Plan, CliError> {
    let base = format!("{API}/{collection}");
    Ok(match cmd {
        Crud::List(l) => list(base, l),
        Crud::Get(a) => object(Method::GET, format!("{base}/{}", seg(&a.id)), None, vec![]),
        Crud::Create {
            fields,
            body,
            idempotency_key,
        } => {
            let body = fields_body(fields, body, stdin)?;
            let headers = idempotency_key
                .iter()
                .map(|k| ("idempotency-key", k.clone()))
                .collect();
            object(Method::POST, base, Some(body), headers)
        }
        Crud::Edit {
            target,
            fields,
            body,
            cond,
        } => {
            let mut body = fields_body(fields, body, stdin)?;
            let method = match patch {
                Patch::Patch => Method::PATCH,
                Patch::Replace => {
                    // A replacement names its own id; the positional one is the default.
                    body.fields
                        .entry("id")
                        .or_insert_with(|| Value::from(target.as_str()));
                    Method::PUT
                }
            };
            object(
                method,
                format!("{base}/{}", seg(target)),
                Some(body),
                if_match(cond),
            )
        }
        Crud::Delete(DeleteArgs { id, cascade, cond }) => {
            let query = if *cascade {
                vec![("cascade", "true".to_owned())]
            } else {
                vec![]
            };
            done(
                format!("{base}/{}", seg(id)),
                query,
                cond,
                format!("deleted {noun} {id}"),
            )
        }
    })
}

fn credentials(cmd: &CredentialCmd, stdin: &mut Stdin) -> Result<Plan, CliError> {
    let base = format!("{API}/credentials");
    Ok(match cmd {
        CredentialCmd::List(l) => list(base, l),
        CredentialCmd::Get(a) => {
            object(Method::GET, format!("{base}/{}", seg(&a.id)), None, vec![])
        }
        CredentialCmd::Create {
            id,
            name,
            api_key_id,
            description,
            kind,
            hosts,
            idempotency_key,
        } => {
            let value = stdin.secret("the credential value")?;
            let mut body = Map::new();
            set(&mut body, "id", id.as_deref().map(Value::from));
            set(&mut body, "name", name.as_deref().map(Value::from));
            set(
                &mut body,
                "api_key_id",
                api_key_id.as_deref().map(Value::from),
            );
            set(
                &mut body,
                "description",
                description.as_deref().map(Value::from),
            );
            body.insert("kind".into(), Value::from(kind.as_str()));
            body.insert("hosts".into(), Value::from(hosts.clone()));
            let headers = idempotency_key
                .iter()
                .map(|k| ("idempotency-key", k.clone()))
                .collect();
            object(
                Method::POST,
                base,
                Some(Body::with_secret(body, "value", value)),
                headers,
            )
        }
        CredentialCmd::Edit {
            id,
            name,
            api_key_id,
            description,
            cond,
        } => {
            let mut body = Map::new();
            set(&mut body, "name", name.as_deref().map(Value::from));
            set(
                &mut body,
                "api_key_id",
                api_key_id.as_deref().map(Value::from),
            );
            set(
                &mut body,
                "description",
                description.as_deref().map(Value::from),
            );
            object(
                Method::PATCH,
                format!("{base}/{}", seg(id)),
                Some(body.into()),
                if_match(cond),
            )
        }
        CredentialCmd::Rotate {
            id,
            grace_seconds,
            cond,
        } => {
            let value = stdin.secret("the new credential value")?;
            let mut body = Map::new();
            set(&mut body, "grace_seconds", grace_seconds.map(Value::from));
            object(
                Method::PUT,
                format!("{base}/{}/value", seg(id)),
                Some(Body::with_secret(body, "value", value)),
                if_match(cond),
            )
        }
        CredentialCmd::Rollback(a) => object(
            Method::POST,
            format!("{base}/{}/value/rollback", seg(&a.id)),
            None,
            vec![],
        ),
        CredentialCmd::Delete { id, cond } => done(
            format!("{base}/{}", seg(id)),
            vec![],
            cond,
            format!("deleted credential {id}"),
        ),
    })
}

fn secrets(owners: &'static str, cmd: &SecretCmd) -> Plan {
    match cmd {
        SecretCmd::List { owner, list: l } => {
            list(format!("{API}/{owners}/{}/secrets", seg(owner)), l)
        }
        SecretCmd::Create { owner } => Plan {
            call: call(
                Method::POST,
                format!("{API}/{owners}/{}/secrets", seg(owner)),
                None,
                vec![],
            ),
            render: Render::Once {
                field: "secret",
                label: "client secret",
            },
            all: None,
        },
        SecretCmd::Delete {
            owner,
            secret,
            cond,
        } => done(
            format!("{API}/{owners}/{}/secrets/{}", seg(owner), seg(secret)),
            vec![],
            cond,
            format!("revoked secret {secret} of {owner}"),
        ),
    }
}

fn keys(owners: &'static str, cmd: &KeyCmd, stdin: &mut Stdin) -> Result<Plan, CliError> {
    Ok(match cmd {
        KeyCmd::List { owner, list: l } => list(format!("{API}/{owners}/{}/keys", seg(owner)), l),
        KeyCmd::Add {
            owner,
            id,
            jwk,
            pem,
        } => {
            let mut body = Map::new();
            set(&mut body, "id", id.as_deref().map(Value::from));
            if let Some(path) = jwk {
                let text = input::file_text("--jwk", path, stdin)?;
                let jwk: Value = serde_json::from_str(&text)
                    .map_err(|e| CliError::Usage(format!("--jwk {}: {e}", path.display())))?;
                body.insert("jwk".into(), jwk);
            }
            if let Some(path) = pem {
                body.insert(
                    "pem".into(),
                    Value::from(input::file_text("--pem", path, stdin)?),
                );
            }
            object(
                Method::POST,
                format!("{API}/{owners}/{}/keys", seg(owner)),
                Some(body.into()),
                vec![],
            )
        }
        KeyCmd::Delete { owner, key, cond } => done(
            format!("{API}/{owners}/{}/keys/{}", seg(owner), seg(key)),
            vec![],
            cond,
            format!("removed key {key} of {owner}"),
        ),
    })
}

fn inbound(cmd: &InboundCmd) -> Plan {
    match cmd {
        InboundCmd::Grant {
            agent,
            client,
            scopes,
            cond,
        } => object(
            Method::PUT,
            format!("{API}/agents/{}/inbound/{}", seg(agent), seg(client)),
            Some(json_map(json!({ "scopes": scopes })).into()),
            if_match(cond),
        ),
        InboundCmd::Revoke {
            agent,
            client,
            cond,
        } => done(
            format!("{API}/agents/{}/inbound/{}", seg(agent), seg(client)),
            vec![],
            cond,
            format!("withdrew {client} → {agent}"),
        ),
        InboundCmd::Get { agent, client } => object(
            Method::GET,
            format!("{API}/agents/{}/inbound/{}", seg(agent), seg(client)),
            None,
            vec![],
        ),
    }
}

fn audit(a: &AuditArgs) -> Plan {
    let mut query = vec![];
    let mut add = |k: &'static str, v: Option<String>| {
        if let Some(v) = v {
            query.push((k, v));
        }
    };
    add("limit", a.limit.map(|v| v.to_string()));
    add("cursor", a.cursor.clone());
    add("kind", a.kind.clone());
    add("id", a.id.clone());
    add("action", a.action.clone());
    add("actor", a.actor.clone());
    add("since", a.since.map(|v| v.to_string()));
    add("until", a.until.map(|v| v.to_string()));
    let mut c = call(Method::GET, format!("{API}/audit"), None, vec![]);
    c.query = query;
    Plan {
        call: c,
        render: Render::List("records"),
        all: a.all.then_some("records"),
    }
}

fn topology(agent: &str) -> Plan {
    Plan {
        call: call(
            Method::GET,
            format!("{API}/agents/{}/topology", seg(agent)),
            None,
            vec![],
        ),
        render: Render::Topology,
        all: None,
    }
}

fn list(path: String, l: &ListArgs) -> Plan {
    let mut c = call(Method::GET, path, None, vec![]);
    if let Some(limit) = l.limit {
        c.query.push(("limit", limit.to_string()));
    }
    if let Some(cursor) = &l.cursor {
        c.query.push(("cursor", cursor.clone()));
    }
    if let Some(q) = &l.q {
        c.query.push(("q", q.clone()));
    }
    Plan {
        call: c,
        render: Render::List("items"),
        all: l.all.then_some("items"),
    }
}

fn object(
    method: Method,
    path: String,
    body: Option<Body>,
    headers: Vec<(&'static str, String)>,
) -> Plan {
    Plan {
        call: call(method, path, body, headers),
        render: Render::Object,
        all: None,
    }
}

fn done(path: String, query: Vec<(&'static str, String)>, cond: &IfMatch, line: String) -> Plan {
    let mut c = call(Method::DELETE, path, None, if_match(cond));
    c.query = query;
    Plan {
        call: c,
        render: Render::Done(line),
        all: None,
    }
}

fn call(
    method: Method,
    path: String,
    body: Option<Body>,
    headers: Vec<(&'static str, String)>,
) -> Call {
    Call {
        method,
        path,
        query: vec![],
        body: body.map(Body::serialize),
        headers,
    }
}

fn if_match(cond: &IfMatch) -> Vec<(&'static str, String)> {
    match &cond.if_match {
        // A bare number is the version the API shows; send it as the entity tag it is.
        Some(v) if v.bytes().all(|b| b.is_ascii_digit()) => vec![("if-match", format!("\"{v}\""))],
        Some(v) => vec![("if-match", v.clone())],
        None => vec![],
    }
}

fn fields_body(fields: &dyn Fields, body: &BodyArgs, stdin: &mut Stdin) -> Result<Body, CliError> {
    let mut map = input::body(body.from_file.as_deref(), stdin)?;
    fields.apply(&mut map, stdin)?;
    Ok(match fields.secret(stdin)? {
        Some((key, secret)) => Body::with_secret(map, key, secret),
        None => map.into(),
    })
}

fn json_map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn set(body: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(v) = value {
        body.insert(key.to_owned(), v);
    }
}

fn set_list(body: &mut Map<String, Value>, key: &str, values: &[String]) {
    if !values.is_empty() {
        body.insert(key.to_owned(), Value::from(values.to_vec()));
    }
}

/// One path segment, percent-encoded: ids are the caller's text and must not add a segment or a query.
pub(crate) fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'@') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// === impl Fields ===

impl Fields for AgentFields {
    fn apply(&self, body: &mut Map<String, Value>, _: &mut Stdin) -> Result<(), CliError> {
        set(body, "name", self.name.as_deref().map(Value::from));
        set(body, "audience", self.audience.as_deref().map(Value::from));
        set(body, "enabled", self.enabled.map(Value::from));
        set(body, "auth", self.auth.as_deref().map(Value::from));
        set(body, "endpoint", self.endpoint.as_deref().map(Value::from));
        set(
            body,
            "token_ttl_seconds",
            self.token_ttl_seconds.map(Value::from),
        );
        Ok(())
    }
}

impl Fields for NodeFields {
    fn apply(&self, body: &mut Map<String, Value>, _: &mut Stdin) -> Result<(), CliError> {
        set(body, "id", self.id.as_deref().map(Value::from));
        set(body, "name", self.name.as_deref().map(Value::from));
        set(body, "upstream", self.upstream.as_deref().map(Value::from));
        set(body, "style", self.style.as_deref().map(Value::from));
        set(body, "header", self.header.as_deref().map(Value::from));
        set(body, "prefix", self.prefix.as_deref().map(Value::from));
        set(body, "query", self.query.as_deref().map(Value::from));
        set(
            body,
            "credential",
            self.credential.as_deref().map(Value::from),
        );
        set(
            body,
            "forward_identity",
            self.forward_identity.map(Value::from),
        );
        set_list(body, "methods", &self.methods);
        Ok(())
    }
}

impl Fields for ServiceFields {
    fn apply(&self, body: &mut Map<String, Value>, _: &mut Stdin) -> Result<(), CliError> {
        set(body, "id", self.id.as_deref().map(Value::from));
        set(body, "name", self.name.as_deref().map(Value::from));
        set(body, "audience", self.audience.as_deref().map(Value::from));
        set(body, "upstream", self.upstream.as_deref().map(Value::from));
        if !self.permissions.is_empty() {
            let perms: Vec<Value> = self
                .permissions
                .iter()
                .map(|s| json!({ "scope": s }))
                .collect();
            body.insert("permissions".into(), Value::from(perms));
        }
        Ok(())
    }
}

impl Fields for PermissionFields {
    fn apply(&self, body: &mut Map<String, Value>, _: &mut Stdin) -> Result<(), CliError> {
        set(body, "name", self.name.as_deref().map(Value::from));
        set(body, "scope", self.scope.as_deref().map(Value::from));
        set(body, "mode", self.mode.as_deref().map(Value::from));
        set_list(body, "users", &self.users);
        set_list(body, "groups", &self.groups);
        set_list(body, "organizations", &self.organizations);
        Ok(())
    }
}

impl Fields for ClientFields {
    fn apply(&self, body: &mut Map<String, Value>, _: &mut Stdin) -> Result<(), CliError> {
        set(body, "id", self.id.as_deref().map(Value::from));
        set(body, "name", self.name.as_deref().map(Value::from));
        set_list(body, "redirect_uris", &self.redirect_uris);
        set(body, "auth", self.auth.as_deref().map(Value::from));
        set_list(body, "users", &self.users);
        set_list(body, "groups", &self.groups);
        set_list(body, "organizations", &self.organizations);
        set(body, "enabled", self.enabled.map(Value::from));
        Ok(())
    }
}

impl Fields for UserFields {
    fn apply(&self, body: &mut Map<String, Value>, _: &mut Stdin) -> Result<(), CliError> {
        set(body, "id", self.id.as_deref().map(Value::from));
        set(body, "name", self.name.as_deref().map(Value::from));
        set(body, "email", self.email.as_deref().map(Value::from));
        set(
            body,
            "organization",
            self.organization.as_deref().map(Value::from),
        );
        set_list(body, "groups", &self.groups);
        Ok(())
    }

    fn secret(&self, stdin: &mut Stdin) -> Result<Option<(&'static str, Secret)>, CliError> {
        if !self.password_stdin {
            return Ok(None);
        }
        let password = stdin.secret("the user's password (--password-stdin)")?;
        Ok(Some(("password", password)))
    }
}

impl Fields for GroupFields {
    fn apply(&self, body: &mut Map<String, Value>, _: &mut Stdin) -> Result<(), CliError> {
        set(body, "id", self.id.as_deref().map(Value::from));
        set(body, "name", self.name.as_deref().map(Value::from));
        Ok(())
    }
}

impl Fields for OrgFields {
    fn apply(&self, body: &mut Map<String, Value>, _: &mut Stdin) -> Result<(), CliError> {
        set(body, "id", self.id.as_deref().map(Value::from));
        set(body, "name", self.name.as_deref().map(Value::from));
        set(body, "parent", self.parent.as_deref().map(Value::from));
        Ok(())
    }
}

impl Fields for OperatorFields {
    fn apply(&self, body: &mut Map<String, Value>, _: &mut Stdin) -> Result<(), CliError> {
        set(body, "id", self.id.as_deref().map(Value::from));
        set(body, "name", self.name.as_deref().map(Value::from));
        set(body, "role", self.role.as_deref().map(Value::from));
        set(body, "user", self.user.as_deref().map(Value::from));
        Ok(())
    }
}

#[cfg(test)]
mod tests;
