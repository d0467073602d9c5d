//! The `idguard admin` command line (clap derive): the connection options and one subcommand per resource of the
//! admin API, each verb one operation of `admin/src/api/openapi.json`.
//!
//! Secrets never come from the command line (argv is world-readable through `ps` and `/proc`): the admin token
//! comes from `IDGUARD_ADMIN_TOKEN`, `--token-file` or `--token-stdin`, and every secret a request carries (a
//! credential value, a user's password) from standard input.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

/// The environment variable naming the admin API's base URL.
pub const ENV_ADMIN_URL: &str = "IDGUARD_ADMIN_URL";

/// Shown under every admin subcommand's `--help`.
pub const ENV_HELP: &str = "Environment: IDGUARD_ADMIN_URL (the admin listener's URL, default \
http://127.0.0.1:9090), IDGUARD_ADMIN_TOKEN (the admin token or an operator token; or --token-file, or \
--token-stdin). The token is never accepted on the command line.\n\
Exit status: 0 done, 1 the API refused (its error code and message on standard error), 2 a usage, input or \
connection error.";

/// Adds [`ENV_HELP`] to the long help of `admin` and every command under it (clap does not propagate it).
pub fn with_env_help(cmd: clap::Command) -> clap::Command {
    cmd.mut_subcommand("admin", add_env_help)
}

fn add_env_help(cmd: clap::Command) -> clap::Command {
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|c| c.get_name().to_owned())
        .collect();
    let mut cmd = cmd.after_long_help(ENV_HELP);
    for name in names {
        cmd = cmd.mut_subcommand(name, add_env_help);
    }
    cmd
}

/// `idguard admin`: drive the admin API.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// The admin listener's URL (http, or https with --ca-file for a private CA).
    #[arg(long, global = true, help_heading = "Connection", env = ENV_ADMIN_URL, default_value = "http://127.0.0.1:9090")]
    pub url: String,
    /// A file holding the admin token or an operator token (first line). Default: IDGUARD_ADMIN_TOKEN.
    #[arg(
        long,
        global = true,
        help_heading = "Connection",
        conflicts_with = "token_stdin"
    )]
    pub token_file: Option<PathBuf>,
    /// Read the token from the first line of standard input (a secret the command reads comes on the next line).
    #[arg(long, global = true, help_heading = "Connection")]
    pub token_stdin: bool,
    /// PEM file of the CA certificates that sign an https admin listener's certificate (default: the public web
    /// roots).
    #[arg(long, global = true, help_heading = "Connection")]
    pub ca_file: Option<PathBuf>,
    /// How to print answers: aligned tables for people, or the API's JSON exactly.
    #[arg(long, short, global = true, help_heading = "Connection", value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Give up on a request after this many seconds.
    #[arg(long, global = true, help_heading = "Connection", default_value_t = 30)]
    pub timeout: u64,
    /// The resource.
    #[command(subcommand)]
    pub command: Resource,
}

/// How answers are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns (lists) or one field per line (objects); no colour.
    Table,
    /// The API's JSON body, unchanged.
    Json,
}

/// The resources of the admin API.
#[derive(Debug, Subcommand)]
pub enum Resource {
    /// Agents, their permission, client secrets and public keys.
    #[command(subcommand)]
    Agents(AgentCmd),
    /// Stored credentials (API keys): the value is read from standard input, never shown.
    #[command(subcommand)]
    Credentials(CredentialCmd),
    /// LLM nodes.
    #[command(subcommand)]
    Llm(Crud<NodeFields, NodeFields>),
    /// External-service nodes.
    #[command(subcommand)]
    External(Crud<NodeFields, NodeFields>),
    /// Enterprise services.
    #[command(subcommand)]
    Enterprise(Crud<ServiceFields, ServiceFields>),
    /// Grant or change an outbound authorization: AGENT may call NODE (an LLM, external or enterprise node).
    Grant(EdgeGrant),
    /// Withdraw an outbound authorization.
    Revoke(EdgeRef),
    /// Read an outbound authorization (its scopes).
    Outbound {
        /// The agent's id.
        agent: String,
        /// The node's or enterprise service's id.
        node: String,
    },
    /// Inbound authorizations: which client applications may call an agent, with which of its permissions.
    #[command(subcommand)]
    Inbound(InboundCmd),
    /// Client applications, their secrets and public keys.
    #[command(subcommand)]
    Clients(ClientCmd),
    /// Directory users (a password, when set, is read from standard input with --password-stdin).
    #[command(subcommand)]
    Users(Crud<UserFields, UserFields>),
    /// Directory groups.
    #[command(subcommand)]
    Groups(Crud<GroupFields, GroupFields>),
    /// Directory organizational units.
    #[command(subcommand, visible_alias = "organizations")]
    Orgs(Crud<OrgFields, OrgFields>),
    /// Operators and their tokens (owner role).
    #[command(subcommand)]
    Operators(OperatorCmd),
    /// The audit log, newest first.
    Audit(AuditArgs),
    /// M2M application licenses and stored credentials: used and total.
    Usage,
    /// An agent's diagram as a text tree: clients ← agent → nodes, with the scopes on each edge.
    Topology {
        /// The agent's id.
        agent: String,
    },
    /// Recover a shared store that lost its data (owner role).
    #[command(subcommand)]
    Store(StoreCmd),
    /// Print the API's OpenAPI document.
    Openapi,
}

/// The verbs every collection has.
#[derive(Debug, Subcommand)]
pub enum Crud<C: Args, E: Args> {
    /// List, sorted by id, one page (or every page with --all).
    List(ListArgs),
    /// Show one.
    Get(IdArg),
    /// Create one from the flags, or from a JSON body (--from-file) with the flags laid over it.
    Create {
        #[command(flatten)]
        fields: C,
        #[command(flatten)]
        body: BodyArgs,
        /// Send `Idempotency-Key: KEY`: repeating the command has one effect.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Change one: only the fields given (users, groups and organizations are replaced whole).
    Edit {
        /// The id.
        #[arg(value_name = "ID")]
        target: String,
        #[command(flatten)]
        fields: E,
        #[command(flatten)]
        body: BodyArgs,
        #[command(flatten)]
        cond: IfMatch,
    },
    /// Delete one.
    Delete(DeleteArgs),
}

/// Paging and search of a list.
#[derive(Debug, Args, Default)]
pub struct ListArgs {
    /// Items per page (1–1000; the API's default is 100).
    #[arg(long)]
    pub limit: Option<u32>,
    /// Start after this page's `next_cursor`.
    #[arg(long)]
    pub cursor: Option<String>,
    /// Only items whose id or name contains this, case-insensitively.
    #[arg(long)]
    pub q: Option<String>,
    /// Follow `next_cursor` and print every page as one list.
    #[arg(long, conflicts_with = "cursor")]
    pub all: bool,
}

/// One object's id.
#[derive(Debug, Args)]
pub struct IdArg {
    /// The id.
    pub id: String,
}

/// A conditional change.
#[derive(Debug, Args, Default)]
pub struct IfMatch {
    /// Only if the object's version is this one (`If-Match: "N"`; `*`: any existing version).
    #[arg(long)]
    pub if_match: Option<String>,
}

/// A delete.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The id.
    pub id: String,
    /// Also withdraw the authorizations that name it (nodes, services, clients), in the same commit.
    #[arg(long)]
    pub cascade: bool,
    #[command(flatten)]
    pub cond: IfMatch,
}

/// A JSON body for the fields the flags do not cover.
#[derive(Debug, Args, Default)]
pub struct BodyArgs {
    /// A JSON object to send (`-`: standard input); flags given as well replace its fields.
    #[arg(long, value_name = "FILE")]
    pub from_file: Option<PathBuf>,
}

/// `agents …`.
#[derive(Debug, Subcommand)]
pub enum AgentCmd {
    #[command(flatten)]
    Crud(Crud<AgentFields, AgentFields>),
    /// The agent's diagram as a text tree (the same as `idguard admin topology AGENT`).
    Topology(IdArg),
    /// Set the agent's permission (what client applications are granted when they call it).
    Permission {
        /// The agent's id.
        id: String,
        #[command(flatten)]
        fields: PermissionFields,
        #[command(flatten)]
        body: BodyArgs,
        #[command(flatten)]
        cond: IfMatch,
    },
    /// The agent's client secrets.
    #[command(subcommand)]
    Secrets(SecretCmd),
    /// The agent's public keys (private_key_jwt).
    #[command(subcommand)]
    Keys(KeyCmd),
}

/// `clients …`.
#[derive(Debug, Subcommand)]
pub enum ClientCmd {
    #[command(flatten)]
    Crud(Crud<ClientFields, ClientFields>),
    /// The client's secrets.
    #[command(subcommand)]
    Secrets(SecretCmd),
    /// The client's public keys (private_key_jwt).
    #[command(subcommand)]
    Keys(KeyCmd),
}

/// Client secrets of an agent or a client application.
#[derive(Debug, Subcommand)]
pub enum SecretCmd {
    /// List the secrets (ids and times only).
    List {
        /// The owner's id.
        owner: String,
        #[command(flatten)]
        list: ListArgs,
    },
    /// Issue a secret: its value is printed once, to standard output.
    Create {
        /// The owner's id.
        owner: String,
    },
    /// Revoke a secret.
    Delete {
        /// The owner's id.
        owner: String,
        /// The secret's id.
        secret: String,
        #[command(flatten)]
        cond: IfMatch,
    },
}

/// Public keys of an agent or a client application.
#[derive(Debug, Subcommand)]
pub enum KeyCmd {
    /// List the registered keys.
    List {
        /// The owner's id.
        owner: String,
        #[command(flatten)]
        list: ListArgs,
    },
    /// Register a public key from a JWK (JSON) or PEM file (`-`: standard input).
    Add {
        /// The owner's id.
        owner: String,
        /// The key's id (default: generated).
        #[arg(long)]
        id: Option<String>,
        /// A file holding the public key as a JWK (JSON object).
        #[arg(
            long,
            value_name = "FILE",
            required_unless_present = "pem",
            conflicts_with = "pem"
        )]
        jwk: Option<PathBuf>,
        /// A file holding the public key as PEM.
        #[arg(long, value_name = "FILE")]
        pem: Option<PathBuf>,
    },
    /// Remove a registered key.
    Delete {
        /// The owner's id.
        owner: String,
        /// The key's id.
        key: String,
        #[command(flatten)]
        cond: IfMatch,
    },
}

/// `credentials …`.
#[derive(Debug, Subcommand)]
pub enum CredentialCmd {
    /// List credentials (metadata and fingerprints; never a value).
    List(ListArgs),
    /// Show a credential's metadata.
    Get(IdArg),
    /// Store an API key. The value is read from standard input (one line; never from the command line).
    Create {
        /// The credential's id (default: generated).
        #[arg(long)]
        id: Option<String>,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// The key's own identifier at its provider (not secret).
        #[arg(long)]
        api_key_id: Option<String>,
        /// Free text.
        #[arg(long)]
        description: Option<String>,
        /// Business type.
        #[arg(long, value_parser = ["llm", "external"])]
        kind: String,
        /// A host the value may be sent to (repeat for several; fixed for the credential's life).
        #[arg(long = "host", required = true)]
        hosts: Vec<String>,
        /// Send `Idempotency-Key: KEY`.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Change a credential's name, identifier or description.
    Edit {
        /// The id.
        id: String,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// The key's own identifier at its provider.
        #[arg(long)]
        api_key_id: Option<String>,
        /// Free text.
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        cond: IfMatch,
    },
    /// Replace the value, read from standard input (one line), keeping every node and authorization.
    Rotate {
        /// The id.
        id: String,
        /// Keep the replaced value this long (0–604800 s) so that `rollback` can put it back.
        #[arg(long)]
        grace_seconds: Option<u64>,
        #[command(flatten)]
        cond: IfMatch,
    },
    /// Put the replaced value back in force while its grace period lasts.
    Rollback(IdArg),
    /// Delete a stored credential (refused while a node uses it).
    Delete {
        /// The id.
        id: String,
        #[command(flatten)]
        cond: IfMatch,
    },
}

/// `inbound …`.
#[derive(Debug, Subcommand)]
pub enum InboundCmd {
    /// Grant or change: CLIENT may call AGENT with these of the agent's permissions.
    Grant {
        /// The agent's id.
        agent: String,
        /// The client application's id.
        client: String,
        /// A scope (one of the agent's permissions; repeat for several).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        #[command(flatten)]
        cond: IfMatch,
    },
    /// Withdraw.
    Revoke {
        /// The agent's id.
        agent: String,
        /// The client application's id.
        client: String,
        #[command(flatten)]
        cond: IfMatch,
    },
    /// Show one (its scopes).
    Get {
        /// The agent's id.
        agent: String,
        /// The client application's id.
        client: String,
    },
}

/// `grant AGENT NODE --scope …`.
#[derive(Debug, Args)]
pub struct EdgeGrant {
    /// The agent's id.
    pub agent: String,
    /// The node's or enterprise service's id.
    pub node: String,
    /// A scope the agent holds on the node (repeat for several).
    #[arg(long = "scope")]
    pub scopes: Vec<String>,
    #[command(flatten)]
    pub cond: IfMatch,
}

/// An outbound authorization.
#[derive(Debug, Args)]
pub struct EdgeRef {
    /// The agent's id.
    pub agent: String,
    /// The node's or enterprise service's id.
    pub node: String,
    #[command(flatten)]
    pub cond: IfMatch,
}

/// `operators …`.
#[derive(Debug, Subcommand)]
pub enum OperatorCmd {
    #[command(flatten)]
    Crud(Crud<OperatorFields, OperatorFields>),
    /// Issue a token for the operator: printed once, to standard output.
    IssueToken {
        /// The operator's id.
        id: String,
        /// The token's name (e.g. the machine it lives on).
        #[arg(long)]
        name: Option<String>,
        /// Lifetime in seconds (default: until revoked).
        #[arg(long)]
        expires_in: Option<u64>,
    },
    /// Revoke one of the operator's tokens.
    RevokeToken {
        /// The operator's id.
        id: String,
        /// The token's id.
        token_id: String,
        #[command(flatten)]
        cond: IfMatch,
    },
}

/// `store …`.
#[derive(Debug, Subcommand)]
pub enum StoreCmd {
    /// Write this replica's last-known-good topology into the empty shared store.
    Reseed,
    /// Adopt the shared store as it is, under a new identity.
    Accept,
}

/// `audit` filters.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Records per page (1–1000).
    #[arg(long)]
    pub limit: Option<u32>,
    /// Start after this page's `next_cursor`.
    #[arg(long)]
    pub cursor: Option<String>,
    /// Only this object kind (agent, credential, llm, external, enterprise, user, group, organization, client,
    /// inbound, outbound, operator).
    #[arg(long)]
    pub kind: Option<String>,
    /// Only this object id.
    #[arg(long)]
    pub id: Option<String>,
    /// Only this action (create, update, delete, reseal).
    #[arg(long)]
    pub action: Option<String>,
    /// Only this actor (`admin` or an operator's id).
    #[arg(long)]
    pub actor: Option<String>,
    /// Only records at or after this Unix second.
    #[arg(long)]
    pub since: Option<u64>,
    /// Only records at or before this Unix second.
    #[arg(long)]
    pub until: Option<u64>,
    /// Follow `next_cursor` to the oldest record.
    #[arg(long, conflicts_with = "cursor")]
    pub all: bool,
}

/// Agent fields.
#[derive(Debug, Args, Default)]
pub struct AgentFields {
    /// Display name.
    #[arg(long)]
    pub name: Option<String>,
    /// The audience identifier (create only; default derived from the generated id).
    #[arg(long)]
    pub audience: Option<String>,
    /// Enable (`true`) or disable (`false`) the agent.
    #[arg(long)]
    pub enabled: Option<bool>,
    /// How the agent authenticates.
    #[arg(long, value_parser = ["client_secret", "private_key_jwt"])]
    pub auth: Option<String>,
    /// Where the inbound gateway forwards client calls (https URL).
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Lifetime of the tokens the agent obtains for itself, seconds (60 to 86400).
    #[arg(long)]
    pub token_ttl_seconds: Option<u64>,
}

/// LLM and external node fields (anything else — `oauth`, `methods` — through --from-file).
#[derive(Debug, Args, Default)]
pub struct NodeFields {
    /// The node's id (create only).
    #[arg(long)]
    pub id: Option<String>,
    /// Display name.
    #[arg(long)]
    pub name: Option<String>,
    /// The upstream URL.
    #[arg(long)]
    pub upstream: Option<String>,
    /// How the credential is injected (bearer, anthropic, azure, gemini, header, query).
    #[arg(long)]
    pub style: Option<String>,
    /// The header name (style header).
    #[arg(long)]
    pub header: Option<String>,
    /// A prefix before the value in the header.
    #[arg(long)]
    pub prefix: Option<String>,
    /// The query parameter name (style query).
    #[arg(long)]
    pub query: Option<String>,
    /// The stored credential's id.
    #[arg(long)]
    pub credential: Option<String>,
    /// Forward the caller's identity upstream.
    #[arg(long)]
    pub forward_identity: Option<bool>,
    /// An allowed method (repeat for several).
    #[arg(long = "method")]
    pub methods: Vec<String>,
}

/// Enterprise service fields (`exchange` through --from-file).
#[derive(Debug, Args, Default)]
pub struct ServiceFields {
    /// The service's id (create only).
    #[arg(long)]
    pub id: Option<String>,
    /// Display name.
    #[arg(long)]
    pub name: Option<String>,
    /// The audience identifier (create only).
    #[arg(long)]
    pub audience: Option<String>,
    /// The upstream URL.
    #[arg(long)]
    pub upstream: Option<String>,
    /// A permission scope (repeat for several; names through --from-file).
    #[arg(long = "permission")]
    pub permissions: Vec<String>,
}

/// Agent permission fields.
#[derive(Debug, Args, Default)]
pub struct PermissionFields {
    /// Display name.
    #[arg(long)]
    pub name: Option<String>,
    /// The scope clients are granted.
    #[arg(long)]
    pub scope: Option<String>,
    /// auto (everyone) or manual (only the assignments).
    #[arg(long, value_parser = ["auto", "manual"])]
    pub mode: Option<String>,
    /// An assigned user (repeat).
    #[arg(long = "user")]
    pub users: Vec<String>,
    /// An assigned group (repeat).
    #[arg(long = "group")]
    pub groups: Vec<String>,
    /// An assigned organization (repeat).
    #[arg(long = "org")]
    pub organizations: Vec<String>,
}

/// Client application fields.
#[derive(Debug, Args, Default)]
pub struct ClientFields {
    /// The client id (create only; default generated).
    #[arg(long)]
    pub id: Option<String>,
    /// Display name.
    #[arg(long)]
    pub name: Option<String>,
    /// A redirect URI (repeat).
    #[arg(long = "redirect-uri")]
    pub redirect_uris: Vec<String>,
    /// How the client authenticates.
    #[arg(long, value_parser = ["client_secret", "private_key_jwt"])]
    pub auth: Option<String>,
    /// An admitted user (repeat).
    #[arg(long = "user")]
    pub users: Vec<String>,
    /// An admitted group (repeat).
    #[arg(long = "group")]
    pub groups: Vec<String>,
    /// An admitted organization (repeat).
    #[arg(long = "org")]
    pub organizations: Vec<String>,
    /// Enable (`true`) or disable (`false`).
    #[arg(long)]
    pub enabled: Option<bool>,
}

/// Directory user fields.
#[derive(Debug, Args, Default)]
pub struct UserFields {
    /// The user's id (create; for edit it is the positional id).
    #[arg(long)]
    pub id: Option<String>,
    /// Display name.
    #[arg(long)]
    pub name: Option<String>,
    /// Email address.
    #[arg(long)]
    pub email: Option<String>,
    /// The user's organizational unit.
    #[arg(long)]
    pub organization: Option<String>,
    /// A group (repeat).
    #[arg(long = "group")]
    pub groups: Vec<String>,
    /// Read a password (8–1024 characters, one line) from standard input.
    #[arg(long)]
    pub password_stdin: bool,
}

/// Group fields.
#[derive(Debug, Args, Default)]
pub struct GroupFields {
    /// The group's id (create).
    #[arg(long)]
    pub id: Option<String>,
    /// Display name.
    #[arg(long)]
    pub name: Option<String>,
}

/// Organizational unit fields.
#[derive(Debug, Args, Default)]
pub struct OrgFields {
    /// The unit's id (create).
    #[arg(long)]
    pub id: Option<String>,
    /// Display name.
    #[arg(long)]
    pub name: Option<String>,
    /// The parent unit.
    #[arg(long)]
    pub parent: Option<String>,
}

/// Operator fields.
#[derive(Debug, Args, Default)]
pub struct OperatorFields {
    /// The operator's id (create; default generated `operator-…`).
    #[arg(long)]
    pub id: Option<String>,
    /// Display name.
    #[arg(long)]
    pub name: Option<String>,
    /// viewer, editor or owner.
    #[arg(long, value_parser = ["viewer", "editor", "owner"])]
    pub role: Option<String>,
    /// The directory user who signs in to the web console as this operator.
    #[arg(long)]
    pub user: Option<String>,
}
