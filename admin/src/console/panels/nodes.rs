//! The node panels: agent, client application, LLM, enterprise service, external service.

use axum::extract::RawQuery;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::Value;

use super::super::ConsoleError;
use super::super::pages::{Page, Respond, api_error};
use super::{Field, PanelPage, PanelPath, Row, Section, query, seg, strings, text, when};

/// The LLM provider presets: (value, label, base URL, injection style).
pub(crate) const PRESETS: &[(&str, &str, &str, &str)] = &[
    ("openai", "OpenAI", "https://api.openai.com/v1", "bearer"),
    (
        "anthropic",
        "Anthropic",
        "https://api.anthropic.com",
        "anthropic",
    ),
    (
        "azure",
        "Azure OpenAI",
        "https://YOUR-RESOURCE.openai.azure.com/openai",
        "azure",
    ),
    (
        "gemini",
        "Gemini",
        "https://generativelanguage.googleapis.com",
        "gemini",
    ),
    (
        "dashscope",
        "DashScope / Qwen",
        "https://dashscope.aliyuncs.com/compatible-mode/v1",
        "bearer",
    ),
    ("custom", "Custom", "", ""),
];

const STYLES: &[(&str, &str)] = &[
    ("bearer", "Authorization: Bearer <key>"),
    ("anthropic", "x-api-key (Anthropic)"),
    ("azure", "api-key (Azure OpenAI)"),
    ("gemini", "x-goog-api-key (Gemini)"),
    ("header", "a header you name"),
    ("query", "a query parameter you name"),
];

const AUTH: &[(&str, &str)] = &[
    ("client_secret", "Client secret"),
    ("private_key_jwt", "Public key (private_key_jwt)"),
];

mod actions;

pub(in crate::console) use actions::node_action;

/// `GET /console/agents/{id}/nodes/{kind}/{node}`: the node's panel.
pub(in crate::console) async fn node(
    page: Page,
    path: PanelPath,
    raw: RawQuery,
) -> Result<Response, ConsoleError> {
    let (agent, kind, id) = path.0;
    let q = query(&raw)?;
    let panel = build(&page, &agent, &kind, &id, q.get("find").map(String::as_str)).await?;
    Ok(panel.respond(StatusCode::OK))
}

/// Where a node's panel is.
fn base(agent: &str, kind: &str, id: &str) -> String {
    format!("/console/agents/{}/nodes/{kind}/{}", seg(agent), seg(id))
}

/// The node's admin API path.
fn api_path(kind: &str, id: &str) -> String {
    let collection = match kind {
        "agent" => "agents",
        "client" => "clients",
        other => other,
    };
    format!("/admin/v1/{collection}/{}", seg(id))
}

async fn get(page: &Page, path: &str) -> Result<Value, ConsoleError> {
    let (status, body) = page.api(Method::GET, path, None).await;
    if status != StatusCode::OK {
        return Err(api_error(status, &body));
    }
    Ok(body)
}

/// The panel of node `id` of `kind`, opened from `agent`'s diagram; `find` searches the directory beside the
/// agent's permission.
async fn build(
    page: &Page,
    agent: &str,
    kind: &str,
    id: &str,
    find: Option<&str>,
) -> Result<PanelPage, ConsoleError> {
    let (kind, what): (&'static str, &str) = match kind {
        "agent" => ("agent", "Agent"),
        "client" => ("client", "Client application"),
        "llm" => ("llm", "LLM"),
        "enterprise" => ("enterprise", "Enterprise service"),
        "external" => ("external", "External service"),
        _ => return Err(ConsoleError::NotFound),
    };
    let node = get(page, &api_path(kind, id)).await?;
    let name = match text(&node, "name") {
        n if n.is_empty() => id.to_owned(),
        n => n,
    };
    let mut panel = PanelPage::new(
        page.chrome(),
        agent,
        kind,
        id,
        format!("{what}: {name}"),
        base(agent, kind, id),
    );
    let edit = panel.chrome.can_edit;
    let file = node["managed_by"] == "file";
    if file {
        panel.notice = Some(
            "This object is defined in the routing file: change it there (the admin API refuses edits to it)."
                .to_owned(),
        );
    }
    match kind {
        "agent" => agent_panel(page, &mut panel, &node, find).await?,
        "client" => client_panel(page, &mut panel, agent, &node).await?,
        "llm" | "external" => node_panel(page, &mut panel, kind, &node).await?,
        _ => enterprise_panel(page, &mut panel, agent, &node).await?,
    }
    panel.sections.push(
        Section::form("delete", format!("Delete this {}", what.to_lowercase()), "delete").at(&node)
            .intro(if kind == "agent" {
                "Its authorizations, client secrets and public keys go with it; the next page names them and asks."
            } else {
                "If agents are authorized to use it, the next page names each authorization the delete would withdraw and asks."
            })
            .submit("Delete…"),
    );
    if !edit {
        for s in &mut panel.sections {
            s.disabled = Some("Your role (viewer) does not allow changes.".to_owned());
        }
    }
    Ok(panel)
}

/// The client secrets (as `GET …/secrets` lists them: `{id, fingerprint, created_at, last_used}`).
fn secret_rows(secrets: &Value) -> Vec<Row> {
    secrets["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let last_used = match s["last_used"].as_str() {
                Some(at) => at.replacen('T', " ", 1).replace('Z', " UTC"),
                None => "never".to_owned(),
            };
            Row::cells(vec![
                text(s, "id"),
                text(s, "fingerprint"),
                when(s["created_at"].as_u64().unwrap_or(0)),
                last_used,
            ])
            .button(
                "delete-secret",
                &text(s, "id"),
                "Delete",
                format!(
                    "Delete the client secret {}? Whoever uses it can no longer get tokens.",
                    text(s, "id")
                ),
            )
        })
        .collect()
}

/// The public keys (as `GET …/keys` lists them: `{id, jwk | pem}`), each with the algorithm it fixes.
fn key_rows(keys: &Value) -> Vec<Row> {
    keys["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|k| {
            let (form, alg) = match k["jwk"]["kty"].as_str() {
                Some("EC") => (format!("JWK EC {}", text(&k["jwk"], "crv")), "ES256"),
                Some("RSA") => ("JWK RSA".to_owned(), "RS256"),
                Some("OKP") => (format!("JWK OKP {}", text(&k["jwk"], "crv")), "EdDSA"),
                Some(other) => (format!("JWK {other}"), ""),
                None => ("PEM".to_owned(), "fixed by the key"),
            };
            Row::cells(vec![text(k, "id"), form, alg.to_owned()]).button(
                "delete-key",
                &text(k, "id"),
                "Delete",
                format!("Delete the public key {}?", text(k, "id")),
            )
        })
        .collect()
}

/// The credentials sections an agent and a client share.
async fn credential_sections(
    page: &Page,
    panel: &mut PanelPage,
    kind: &str,
    node: &Value,
) -> Result<(), ConsoleError> {
    let auth = text(node, "auth");
    let principal = api_path(kind, &text(node, "id"));
    let listed = get(page, &format!("{principal}/keys?limit=1000")).await?;
    let secrets_listed = get(page, &format!("{principal}/secrets?limit=1000")).await?;
    let secrets = Section::form("secrets", "Client secrets", "secret").at(node)
        .intro(if auth == "client_secret" {
            "A new secret is shown once, on the next page, with a copy button and its fingerprint; afterwards only its id, fingerprint and times. Last used is recorded at most once a minute. Several may exist at once, so a secret rotates without downtime."
        } else {
            "This uses public keys: switch Authentication to client secret (after deleting its keys) to add secrets."
        })
        .submit("Generate client secret")
        .rows(
            vec!["Secret id", "Fingerprint", "Created", "Last used"],
            secret_rows(&secrets_listed),
        );
    let keys = Section::form("keys", "Public keys", "key").at(node)
        .intro(if auth == "private_key_jwt" {
            "The agent signs its token requests with the private key; idguard verifies them with this public key. EC P-256 → ES256, RSA → RS256, Ed25519 → EdDSA."
        } else {
            "This uses client secrets: switch Authentication to public key (after deleting its secrets) to add keys."
        })
        .fields(vec![
            Field::text("id", "Key id (kid)", "").hint("Optional: generated when empty. Assertions carry it as kid."),
            Field {
                kind: "textarea",
                ..Field::text("key", "Public key", "")
            }
            .hint("A JWK (JSON object) or a PEM public key (-----BEGIN PUBLIC KEY-----). Never the private key."),
        ])
        .submit("Add public key")
        .rows(vec!["Key id", "Form", "Algorithm"], key_rows(&listed));
    if auth == "private_key_jwt" {
        panel.sections.push(keys);
        panel.sections.push(secrets);
    } else {
        panel.sections.push(secrets);
        panel.sections.push(keys);
    }
    Ok(())
}

async fn agent_panel(
    page: &Page,
    panel: &mut PanelPage,
    node: &Value,
    find: Option<&str>,
) -> Result<(), ConsoleError> {
    let enabled = if node["enabled"] == false {
        "no"
    } else {
        "yes"
    };
    panel.sections.push(
        Section::form("general", "General", "save").at(node).fields(vec![
            Field::readonly("id", "Agent ID", text(node, "id"))
                .hint("Generated at registration. Cannot be changed."),
            Field::text("name", "Agent name", text(node, "name")).hint("A display name of your choice."),
            Field::readonly("audience", "Audience identifier", text(node, "audience"))
                .hint("Fixed when the agent was saved: it cannot be changed."),
            Field::select("auth", "Authentication", text(node, "auth"), AUTH).hint(
                "Switching is refused while the agent still holds credentials of the other kind: delete its secrets (or keys) first.",
            ),
            Field::text("endpoint", "Endpoint", text(node, "endpoint"))
                .hint("Optional: where the inbound gateway forwards client calls (https; the admin API's upstream rules)."),
            Field::select("enabled", "Enabled", enabled, &[("yes", "yes"), ("no", "no")])
                .hint("A disabled agent's tokens are refused from the next request on."),
        ]),
    );
    credential_sections(page, panel, "agent", node).await?;
    let p = &node["permission"];
    let scope = match text(p, "scope") {
        s if s.is_empty() => "agent.access".to_owned(),
        s => s,
    };
    let mode = match text(p, "mode") {
        m if m.is_empty() => "auto".to_owned(),
        m => m,
    };
    let mut permission = Section::form("permission", "Permission", "permission")
        .at(node)
        .intro("The scope users of client applications receive for this agent.")
        .fields(vec![
            Field::text("name", "Permission name", text(p, "name"))
                .hint("A display name; you may change it."),
            Field::text("scope", "Scope value", scope)
                .hint("Defaults to agent.access; keeping the default is recommended."),
            Field::select(
                "mode",
                "Authorization mode",
                mode,
                &[
                    ("auto", "Auto-authorize: every client application user"),
                    (
                        "manual",
                        "Manual: the users, groups and organizations below",
                    ),
                ],
            )
            .hint("Manual needs at least one user, group or organization below."),
            Field::lines("users", "Users", &strings(&p["users"]))
                .hint("User ids, one a line (manual mode)."),
            Field::lines("groups", "Groups", &strings(&p["groups"]))
                .hint("Every member of a group receives the permission."),
            Field::lines(
                "organizations",
                "Organizations",
                &strings(&p["organizations"]),
            )
            .hint("Every member of an organization receives the permission."),
        ]);
    // The directory search beside the permission (GET ?find=), through the admin API's own lists.
    if let Some(term) = find.filter(|t| !t.is_empty()) {
        let mut rows = Vec::new();
        for (collection, what) in [
            ("users", "user"),
            ("groups", "group"),
            ("organizations", "organization"),
        ] {
            let path = format!("/admin/v1/{collection}?limit=20&q={}", seg(term));
            let (status, body) = page.api(Method::GET, &path, None).await;
            if status != StatusCode::OK {
                return Err(api_error(status, &body));
            }
            for item in body["items"].as_array().into_iter().flatten() {
                rows.push(Row::cells(vec![
                    what.to_owned(),
                    text(item, "id"),
                    text(item, "name"),
                ]));
            }
        }
        permission = permission.rows(vec!["Found", "Id", "Name"], rows);
    }
    panel.sections.push(permission);
    Ok(())
}

async fn client_panel(
    page: &Page,
    panel: &mut PanelPage,
    agent: &str,
    node: &Value,
) -> Result<(), ConsoleError> {
    let enabled = if node["enabled"] == false {
        "no"
    } else {
        "yes"
    };
    panel.sections.push(
        Section::form("general", "General", "save").at(node).fields(vec![
            Field::readonly("id", "Client ID", text(node, "id")).hint("Cannot be changed."),
            Field::text("name", "Application name", text(node, "name")),
            Field::lines("redirect_uris", "Redirect URIs", &strings(&node["redirect_uris"])).hint(
                "One a line, http or https, e.g. https://example.com/login. A browser never sends # or what follows it to the server: to include #, write %23.",
            ),
            Field::select("auth", "Authentication", text(node, "auth"), AUTH)
                .hint("Switching is refused while it still holds credentials of the other kind."),
            Field::lines("users", "Authorized users", &strings(&node["users"]))
                .hint("Who may use this application: user ids, one a line."),
            Field::lines("groups", "Authorized groups", &strings(&node["groups"])),
            Field::lines("organizations", "Authorized organizations", &strings(&node["organizations"])),
            Field::select("enabled", "Enabled", enabled, &[("yes", "yes"), ("no", "no")]),
        ]),
    );
    credential_sections(page, panel, "client", node).await?;
    granted_section(
        page,
        panel,
        agent,
        node,
        "inbound",
        "Inbound scopes granted",
    )
    .await;
    Ok(())
}

async fn node_panel(
    page: &Page,
    panel: &mut PanelPage,
    kind: &str,
    node: &Value,
) -> Result<(), ConsoleError> {
    let mut general = vec![
        Field::readonly("id", "Node id", text(node, "id")).hint(if kind == "llm" {
            "Served at /llm/<id>/. Cannot be changed."
        } else {
            "Served at /ext/<id>/. Cannot be changed."
        }),
        Field::text("name", "Name", text(node, "name")),
    ];
    if kind == "llm" {
        let upstream = text(node, "upstream");
        let preset = PRESETS
            .iter()
            .find(|p| !p.2.is_empty() && upstream.starts_with(p.2))
            .map_or("custom", |p| p.0);
        let options: Vec<(&str, &str)> = PRESETS.iter().map(|p| (p.0, p.1)).collect();
        general.push(
            Field::select("preset", "Provider", preset, &options)
                .hint("Picking a provider fills the base URL and the injection style (an empty base URL is filled on save)."),
        );
    }
    general.extend([
        Field::text("upstream", "Base URL", text(node, "upstream"))
            .hint("https only; never a private, loopback or metadata address (unless listed in [admin] upstream_allow_hosts). Requests never leave its path."),
        Field::select("style", "Injection style", text(node, "style"), STYLES)
            .hint("How the proxy puts the key on each request."),
        Field::text("header", "Header", text(node, "header")).hint("For the header style: the header to set."),
        Field::text("prefix", "Prefix", text(node, "prefix")).hint("For the header style (optional): text before the key, e.g. \"Token \"."),
        Field::text("query", "Query parameter", text(node, "query")).hint("For the query style: the parameter to set."),
    ]);
    let oauth = &node["oauth"];
    if kind == "external" {
        general.extend([
            Field::text("token_url", "OAuth token URL", text(oauth, "token_url"))
                .hint("Leave empty for an API key. With it, the credential is an OAuth client secret: idguard gets a token (client credentials) and injects that."),
            Field::text("client_id", "OAuth client id", text(oauth, "client_id")),
            Field::text("scopes", "OAuth scopes", strings(&oauth["scopes"]).join(" ")).hint("Space-separated scopes to request."),
        ]);
    }
    panel.sections.push(
        Section::form("general", "General", "save")
            .at(node)
            .fields(general),
    );

    let credential = text(node, "credential");
    let (status, cred) = page
        .api(
            Method::GET,
            &format!("/admin/v1/credentials/{}", seg(&credential)),
            None,
        )
        .await;
    if status != StatusCode::OK {
        return Err(api_error(status, &cred));
    }
    let is_oauth = oauth.is_object();
    let what = if is_oauth { "client secret" } else { "API key" };
    let mut facts = vec![
        Row::fact("Credential", &credential),
        Row::fact("Fingerprint", &text(&cred, "fingerprint")),
        Row::fact(
            "Hosts it may be sent to",
            &strings(&cred["hosts"]).join(", "),
        ),
    ];
    let previous = &cred["previous"];
    if previous.is_object() {
        facts.push(Row::fact(
            "Previous value",
            &format!(
                "{} until {} (rollback possible)",
                text(previous, "fingerprint"),
                when(previous["until"].as_u64().unwrap_or(0))
            ),
        ));
    }
    panel.sections.push(
        Section::form("key", format!("The {what}"), "rotate").at(&cred)
            .intro(format!(
                "The {what} is sealed at once and never shown again, here or anywhere. Rotating injects the new value from the next request on, with no failed request; the old one stays sealed for the overlap below so that you can switch back."
            ))
            .fields(vec![
                Field::password("value", "New value").hint(format!("The new {what}. It is never shown again.")),
                Field::number("grace_seconds", "Overlap (seconds)", "3600")
                    .hint("How long the old value stays stored for a rollback: 0 to 604800 (7 days); 0 drops it at once."),
            ])
            .submit("Rotate")
            .rows(vec!["", ""], facts),
    );
    if previous.is_object() {
        panel.sections.push(
            Section::form("rollback", "Switch back", "rollback")
                .at(&cred)
                .intro("Puts the previous value back in force; the current one is dropped.")
                .submit("Roll back")
                .confirm("Put the previous value back in force?"),
        );
    }
    Ok(())
}

async fn enterprise_panel(
    page: &Page,
    panel: &mut PanelPage,
    agent: &str,
    node: &Value,
) -> Result<(), ConsoleError> {
    panel.sections.push(
        Section::form("general", "General", "save")
            .at(node)
            .fields(vec![
                Field::readonly("id", "Service id", text(node, "id")).hint("Cannot be changed."),
                Field::text("name", "Application name", text(node, "name")),
                Field::readonly("audience", "Audience identifier", text(node, "audience"))
                    .hint("Fixed when the service was saved: it cannot be changed."),
                Field::text("upstream", "Upstream", text(node, "upstream"))
                    .hint("Optional: https only, the admin API's upstream rules."),
            ]),
    );
    let rows = node["permissions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            Row::cells(vec![text(p, "name"), text(p, "scope")]).button(
                "remove-permission",
                &text(p, "scope"),
                "Remove",
                format!(
                    "Remove the permission {}? Grants of it to agents stay until you change them.",
                    text(p, "scope")
                ),
            )
        })
        .collect();
    panel.sections.push(
        Section::form("permissions", "Permissions", "add-permission")
            .at(node)
            .intro("The scopes agents may be granted on this service.")
            .fields(vec![
                Field::text("name", "Permission name", "").hint("A display name."),
                Field::text("scope", "Scope value", "").hint("A unique identifier, e.g. crm.read."),
            ])
            .submit("Add permission")
            .rows(vec!["Name", "Scope"], rows),
    );
    granted_section(
        page,
        panel,
        agent,
        node,
        "outbound",
        "Scopes granted on the edge",
    )
    .await;
    Ok(())
}

/// The section naming the scopes the agent's `direction` (`inbound` or `outbound`) authorization with `node` grants,
/// with a link to that edge's panel, where they are changed.
async fn granted_section(
    page: &Page,
    panel: &mut PanelPage,
    agent: &str,
    node: &Value,
    direction: &str,
    title: &str,
) {
    let id = text(node, "id");
    let (status, grant) = page
        .api(
            Method::GET,
            &format!("/admin/v1/agents/{}/{direction}/{}", seg(agent), seg(&id)),
            None,
        )
        .await;
    let scopes = if status == StatusCode::OK {
        strings(&grant["scopes"]).join(" ")
    } else {
        format!("none (no {direction} authorization)")
    };
    panel.sections.push(
        Section::form("granted", title, "")
            .intro(format!(
                "To agent {agent}: {scopes}. Change them on the edge's panel."
            ))
            .rows(
                vec![],
                vec![Row::link(
                    &format!("Open the {direction} authorization"),
                    format!(
                        "/console/agents/{}/edges/{direction}/{}",
                        seg(agent),
                        seg(&id)
                    ),
                )],
            ),
    );
}
