//! What each grant issues. Every decision reads one snapshot: the same topology the proxy enforces.
//!
//! - `client_credentials`, agent: `aud` = the proxy audience, scopes within the agent's outbound
//!   authorizations (default: all of them).
//! - `client_credentials`, client application: `aud` = the chosen agent's audience identifier (`audience` or
//!   `resource`, or the only agent it may call), scopes within the client→agent inbound authorization.
//! - `authorization_code`: the same, for the signed-in user, who must be authorized on the client and hold the
//!   agent's permission.
//! - token exchange (RFC 8693): a token for one enterprise service, scopes within the agent→service outbound
//!   authorization and the agent's own token, `act` = the agent, `exp` ≤ the subject's and the configured
//!   maximum. With `actor_token` the subject is a user's token for the agent (delegation).

use std::sync::Arc;

use idguard_config::Snapshot;
use idguard_config::identity::{
    ACCESS_TOKEN_TYPE, BoxFuture, ExchangeError, ExchangeRequest, ExchangedToken, JWT_TOKEN_TYPE,
    TokenExchanger,
};
use idguard_config::secret::Secret;
use idguard_config::snapshot::{Agent, Service};
use serde::Serialize;

use super::client_auth::{Authenticated, PrincipalKind};
use super::error::OAuthError;
use super::{AccessClaims, Actor, Form, IdentityService, random_id};

/// A successful token response (RFC 6749 §5.1, RFC 8693 §2.2.1). Serialized only into the response to the client
/// that obtained it; its `Debug` hides the token.
#[derive(Serialize)]
pub struct TokenResponse {
    /// The token.
    pub access_token: String,
    /// `Bearer`.
    pub token_type: &'static str,
    /// Seconds until it expires.
    pub expires_in: u64,
    /// Granted scopes.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub scope: String,
    /// Token exchange only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<&'static str>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"[redacted]")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// The parameters of one exchange, from a form or from the proxy in-process.
pub struct ExchangeParams<'a> {
    /// `subject_token`.
    pub subject_token: &'a str,
    /// `subject_token_type`.
    pub subject_token_type: &'a str,
    /// `actor_token`.
    pub actor_token: Option<&'a str>,
    /// `actor_token_type`.
    pub actor_token_type: Option<&'a str>,
    /// `audience`.
    pub audience: Option<&'a str>,
    /// `resource`.
    pub resource: Option<&'a str>,
    /// `scope`.
    pub scope: Option<&'a str>,
    /// `requested_token_type`.
    pub requested_token_type: Option<&'a str>,
}

/// Splits a scope parameter (space is the only delimiter), refusing malformed values.
fn scopes(param: Option<&str>) -> Result<Option<Vec<String>>, OAuthError> {
    let Some(text) = param else { return Ok(None) };
    let list: Vec<String> = text
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if list
        .iter()
        .any(|s| !idguard_config::validate::is_scope_token(s))
        || list.len() > 64
    {
        return Err(OAuthError::InvalidScope);
    }
    Ok(Some(list))
}

/// `requested ⊆ allowed` (→ `requested`), or all of `allowed` when nothing was requested.
fn narrow(requested: Option<Vec<String>>, allowed: &[String]) -> Result<Vec<String>, OAuthError> {
    match requested {
        None => Ok(allowed.to_vec()),
        Some(list) => {
            if list.iter().all(|s| allowed.contains(s)) {
                let mut out: Vec<String> = Vec::new();
                for s in list {
                    if !out.contains(&s) {
                        out.push(s);
                    }
                }
                Ok(out)
            } else {
                tracing::warn!(
                    reason = "scope_not_granted",
                    "requested scope beyond the grant"
                );
                Err(OAuthError::InvalidScope)
            }
        }
    }
}

/// Every scope an agent's outbound authorizations mention: the scopes its proxy token may carry.
pub fn agent_scopes(snapshot: &Snapshot, agent: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |s: &str| {
        if !out.iter().any(|x| x == s) {
            out.push(s.to_owned());
        }
    };
    for by_agent in snapshot.edges.values() {
        if let Some(edge) = by_agent.get(agent) {
            edge.required_scopes.iter().for_each(|s| add(s));
        }
    }
    for by_agent in snapshot.service_grants.values() {
        if let Some(granted) = by_agent.get(agent) {
            granted.iter().for_each(|s| add(s));
        }
    }
    out.sort();
    out
}

/// Picks the agent a client application's token is for: by `audience`/`resource`, or its only inbound agent.
pub fn target_agent<'s>(
    snapshot: &'s Snapshot,
    client: &str,
    audience: Option<&str>,
) -> Result<(&'s Agent, Vec<String>), OAuthError> {
    let agent = match audience {
        Some(aud) => snapshot
            .agents
            .values()
            .find(|a| a.audience == aud)
            .ok_or(OAuthError::InvalidTarget)?,
        None => {
            let mut mine = snapshot
                .inbound
                .iter()
                .filter(|(_, by_client)| by_client.contains_key(client));
            match (mine.next(), mine.next()) {
                (Some((agent, _)), None) => snapshot
                    .agents
                    .get(agent)
                    .ok_or(OAuthError::InvalidTarget)?,
                _ => {
                    return Err(OAuthError::InvalidRequest(
                        "Name the agent with audience (its audience identifier).",
                    ));
                }
            }
        }
    };
    let granted = snapshot
        .inbound
        .get(&agent.id)
        .and_then(|by_client| by_client.get(client))
        .ok_or(OAuthError::InvalidTarget)?;
    if !agent.enabled {
        return Err(OAuthError::InvalidTarget);
    }
    Ok((agent, granted.iter().map(|s| s.to_string()).collect()))
}

/// What one issued token says.
struct Grant<'a> {
    sub: &'a str,
    aud: &'a str,
    client_id: &'a str,
    scope: Vec<String>,
    credential: Option<String>,
    /// Latest `exp` allowed (exchange: the subject's and the configured maximum).
    exp_cap: Option<u64>,
    /// The lifetime instead of `[identity] access_token_ttl_seconds` (an agent's own `token_ttl_seconds`).
    ttl: Option<std::time::Duration>,
    act: Option<Actor>,
}

impl IdentityService {
    fn issue(&self, snapshot: &Snapshot, g: Grant<'_>) -> Result<TokenResponse, OAuthError> {
        let settings = self.settings(snapshot)?;
        let now = self.now();
        let mut exp = now + g.ttl.unwrap_or(settings.access_token_ttl).as_secs();
        if let Some(cap) = g.exp_cap {
            exp = exp.min(cap);
        }
        let claims = AccessClaims {
            iss: settings.issuer.clone(),
            sub: g.sub.to_owned(),
            aud: g.aud.to_owned(),
            client_id: g.client_id.to_owned(),
            scope: g.scope.join(" "),
            iat: now,
            exp,
            jti: random_id()?,
            act: g.act,
            may_act: None,
            idg_cred: g.credential,
        };
        let token = self.sign(&claims)?;
        Ok(TokenResponse {
            access_token: token,
            token_type: "Bearer",
            expires_in: exp.saturating_sub(now),
            scope: claims.scope,
            issued_token_type: None,
        })
    }

    /// `grant_type=client_credentials`.
    ///
    /// # Errors
    /// [`OAuthError`] per RFC 6749 §5.2.
    pub fn client_credentials(
        &self,
        who: &Authenticated,
        form: &Form,
    ) -> Result<TokenResponse, OAuthError> {
        let snapshot = self.snapshot();
        let requested = scopes(form.get("scope"))?;
        match who.kind {
            PrincipalKind::Agent => {
                let settings = self.settings(&snapshot)?;
                if form.get("audience").is_some_and(|a| a != settings.audience)
                    || form.get("resource").is_some()
                {
                    return Err(OAuthError::InvalidTarget);
                }
                let granted = narrow(requested, &agent_scopes(&snapshot, &who.id))?;
                self.issue(
                    &snapshot,
                    Grant {
                        sub: &who.id,
                        aud: &settings.audience,
                        client_id: &who.id,
                        scope: granted,
                        credential: Some(who.credential.clone()),
                        exp_cap: None,
                        ttl: snapshot.agents.get(&*who.id).and_then(|a| a.token_ttl),
                        act: None,
                    },
                )
            }
            PrincipalKind::Client => {
                let audience = form.get("audience").or(form.get("resource"));
                let (agent, allowed) = target_agent(&snapshot, &who.id, audience)?;
                let granted = narrow(requested, &allowed)?;
                self.issue(
                    &snapshot,
                    Grant {
                        sub: &who.id,
                        aud: &agent.audience,
                        client_id: &who.id,
                        scope: granted,
                        credential: Some(who.credential.clone()),
                        exp_cap: None,
                        ttl: None,
                        act: None,
                    },
                )
            }
        }
    }

    /// Issues the token for a redeemed authorization code, re-checking the user's standing now.
    pub(crate) fn user_token(
        &self,
        who: &Authenticated,
        user: &str,
        agent_id: &str,
        scope: Vec<String>,
    ) -> Result<TokenResponse, OAuthError> {
        let snapshot = self.snapshot();
        let (Some(agent), Some(client)) =
            (snapshot.agents.get(agent_id), snapshot.clients.get(&who.id))
        else {
            return Err(OAuthError::InvalidGrant);
        };
        if !client.authorizes(user, &snapshot.directory)
            || !agent.permission.granted_to(user, &snapshot.directory)
        {
            tracing::warn!(
                reason = "user_not_authorized",
                "the user lost access before redeeming the code"
            );
            return Err(OAuthError::InvalidGrant);
        }
        let (_, allowed) = target_agent(&snapshot, &who.id, Some(&agent.audience))?;
        let granted = narrow(Some(scope), &allowed)?;
        self.issue(
            &snapshot,
            Grant {
                sub: user,
                aud: &agent.audience,
                client_id: &who.id,
                scope: granted,
                credential: Some(who.credential.clone()),
                exp_cap: None,
                ttl: None,
                act: None,
            },
        )
    }

    /// `grant_type=urn:ietf:params:oauth:grant-type:token-exchange`. `caller` is the authenticated client, if
    /// the request carried client authentication; it must then be the acting agent. The phases, in order: the
    /// parameters, the target service, the subject token, who acts (the subject's agent or, with delegation, the
    /// actor token's), that agent's standing, the `act` chain, and the scopes the outbound authorization grants.
    ///
    /// # Errors
    /// [`OAuthError`] per RFC 8693 §2.2.2.
    pub async fn exchange(
        &self,
        caller: Option<&Authenticated>,
        p: ExchangeParams<'_>,
    ) -> Result<TokenResponse, OAuthError> {
        let snapshot = self.snapshot();
        let settings = self.settings(&snapshot)?;
        let requested = exchange_params(&p)?;
        let service = target_service(&snapshot, &p)?;
        let subject = self.exchange_subject(&snapshot, p.subject_token).await?;
        let (agent_claims, user) = match p.actor_token {
            None => {
                if subject.sub != subject.client_id || subject.aud != settings.audience {
                    return Err(OAuthError::InvalidRequest(
                        "A user's token needs the agent's token as actor_token.",
                    ));
                }
                (subject.clone(), None)
            }
            Some(actor_token) => {
                self.delegation(&snapshot, &settings.audience, &subject, actor_token)
                    .await?
            }
        };
        let agent = acting_agent(&snapshot, &agent_claims, caller)?;
        let act = Actor {
            sub: agent.id.to_string(),
            act: subject.act.clone().map(Box::new),
        };
        if act.depth() > settings.max_act_depth {
            tracing::warn!(reason = "act_too_deep", "act chain deeper than allowed");
            return Err(OAuthError::InvalidRequest(
                "The delegation chain is too deep.",
            ));
        }
        let granted = narrow(
            requested,
            &edge_scopes(&snapshot, service, agent, &agent_claims.scope)?,
        )?;
        let cap = (self.now() + settings.exchange_max_ttl.as_secs())
            .min(subject.exp)
            .min(agent_claims.exp);
        let sub = user.unwrap_or_else(|| agent.id.to_string());
        let mut response = self.issue(
            &snapshot,
            Grant {
                sub: &sub,
                aud: &service.audience,
                client_id: &agent.id,
                scope: granted,
                credential: None,
                exp_cap: Some(cap),
                ttl: None,
                act: Some(act),
            },
        )?;
        tracing::info!(
            reason = "exchange_ok",
            subject_jti = %subject.jti,
            actor = %agent.id,
            target = %service.id,
            "exchange ok"
        );
        response.issued_token_type = Some(ACCESS_TOKEN_TYPE);
        Ok(response)
    }

    /// The subject token: issued here, not revoked, its client still holding the credential it was obtained
    /// with, and not itself an exchanged token (no chain hopping from one service to another).
    async fn exchange_subject(
        &self,
        snapshot: &Snapshot,
        token: &str,
    ) -> Result<AccessClaims, OAuthError> {
        let Some(subject) = self.verify_local(token).await? else {
            tracing::warn!(
                reason = "bad_subject_token",
                "exchange with an invalid subject token"
            );
            return Err(OAuthError::InvalidRequest("subject_token is invalid."));
        };
        if let Some(cred) = &subject.idg_cred
            && !snapshot.credential_current(&subject.client_id, cred)
        {
            return Err(OAuthError::InvalidRequest("subject_token is invalid."));
        }
        if subject.act.is_some()
            || snapshot
                .services
                .values()
                .any(|s| s.audience == subject.aud)
        {
            tracing::warn!(
                reason = "chain_hopping",
                "an exchanged token was presented as subject"
            );
            return Err(OAuthError::InvalidRequest(
                "subject_token cannot be exchanged again.",
            ));
        }
        Ok(subject)
    }

    /// Delegation: the actor token must be an agent's own token (for `audience`, the proxy's), the subject a
    /// token issued for that agent whose `may_act` (if any) names it, and a user subject must hold the agent's
    /// permission. Returns the actor's claims and the user, if the subject is one.
    async fn delegation(
        &self,
        snapshot: &Snapshot,
        audience: &str,
        subject: &AccessClaims,
        actor_token: &str,
    ) -> Result<(AccessClaims, Option<String>), OAuthError> {
        let Some(actor) = self.verify_local(actor_token).await? else {
            tracing::warn!(
                reason = "bad_actor_token",
                "exchange with an invalid actor token"
            );
            return Err(OAuthError::InvalidRequest("actor_token is invalid."));
        };
        if actor.sub != actor.client_id || actor.aud != audience {
            return Err(OAuthError::InvalidRequest(
                "actor_token must be an agent's token.",
            ));
        }
        let Some(agent) = snapshot.agents.get(actor.sub.as_str()) else {
            return Err(OAuthError::InvalidRequest("actor_token is invalid."));
        };
        if subject.aud != agent.audience {
            return Err(OAuthError::InvalidRequest(
                "subject_token was not issued for this agent.",
            ));
        }
        if subject.may_act.as_ref().is_some_and(|m| m.sub != actor.sub) {
            tracing::warn!(
                reason = "may_act_mismatch",
                "the actor is not allowed to act for the subject"
            );
            return Err(OAuthError::InvalidRequest(
                "The actor may not act for this subject.",
            ));
        }
        let user = (subject.sub != subject.client_id).then(|| subject.sub.clone());
        if let Some(u) = &user
            && !agent.permission.granted_to(u, &snapshot.directory)
        {
            return Err(OAuthError::InvalidRequest(
                "The subject does not hold the agent's permission.",
            ));
        }
        Ok((actor, user))
    }
}

/// The exchange request's own rules: a target, paired actor parameters, token types this server issues. Returns
/// the scopes asked for.
fn exchange_params(p: &ExchangeParams<'_>) -> Result<Option<Vec<String>>, OAuthError> {
    if p.audience.is_none() && p.resource.is_none() {
        return Err(OAuthError::InvalidRequest(
            "audience (the service's audience identifier) or resource is required.",
        ));
    }
    if p.actor_token.is_some() != p.actor_token_type.is_some() {
        return Err(OAuthError::InvalidRequest(
            "actor_token and actor_token_type go together.",
        ));
    }
    let token_type_ok = |t: &str| t == ACCESS_TOKEN_TYPE || t == JWT_TOKEN_TYPE;
    if !token_type_ok(p.subject_token_type) || p.actor_token_type.is_some_and(|t| !token_type_ok(t))
    {
        return Err(OAuthError::InvalidRequest("Unsupported token type."));
    }
    if p.requested_token_type
        .is_some_and(|t| t != ACCESS_TOKEN_TYPE)
    {
        return Err(OAuthError::InvalidRequest(
            "Only access tokens can be requested.",
        ));
    }
    scopes(p.scope)
}

/// The target: a registered enterprise service, by audience or by its upstream URL.
fn target_service<'s>(
    snapshot: &'s Snapshot,
    p: &ExchangeParams<'_>,
) -> Result<&'s Service, OAuthError> {
    snapshot
        .services
        .values()
        .find(|s| {
            p.audience.is_none_or(|a| a == s.audience)
                && p.resource.is_none_or(|r| {
                    s.upstream.as_ref().is_some_and(|u| {
                        r.trim_end_matches('/')
                            == format!("{}://{}{}", u.scheme, u.authority, u.base_path)
                    })
                })
        })
        .ok_or_else(|| {
            tracing::warn!(
                reason = "unknown_target",
                "exchange for an unknown audience or resource"
            );
            OAuthError::InvalidTarget
        })
}

/// The acting agent: known, enabled, still holding the credential its token was obtained with, and the
/// authenticated caller when there is one.
fn acting_agent<'s>(
    snapshot: &'s Snapshot,
    agent_claims: &AccessClaims,
    caller: Option<&Authenticated>,
) -> Result<&'s Agent, OAuthError> {
    let agent_id = agent_claims.sub.as_str();
    let Some(agent) = snapshot.agents.get(agent_id).filter(|a| a.enabled) else {
        return Err(OAuthError::InvalidRequest(
            "The agent is unknown or disabled.",
        ));
    };
    if let Some(cred) = &agent_claims.idg_cred
        && !snapshot.credential_current(agent_id, cred)
    {
        return Err(OAuthError::InvalidRequest(
            "The agent's token is no longer valid.",
        ));
    }
    if let Some(caller) = caller
        && *caller.id != *agent.id
    {
        return Err(OAuthError::UnauthorizedClient);
    }
    Ok(agent)
}

/// The scopes the agent → service authorization grants that the agent's own token also carries (`authority`).
fn edge_scopes(
    snapshot: &Snapshot,
    service: &Service,
    agent: &Agent,
    authority: &str,
) -> Result<Vec<String>, OAuthError> {
    let Some(edge) = snapshot
        .service_grants
        .get(&service.id)
        .and_then(|by_agent| by_agent.get(&agent.id))
    else {
        tracing::warn!(reason = "no_edge", agent = %agent.id, service = %service.id, "exchange without an outbound authorization");
        return Err(OAuthError::InvalidTarget);
    };
    let authority: Vec<&str> = authority.split(' ').collect();
    Ok(edge
        .iter()
        .filter(|s| authority.contains(&&***s))
        .map(|s| s.to_string())
        .collect())
}

impl TokenExchanger for IdentityService {
    fn exchange(
        &self,
        request: ExchangeRequest,
    ) -> BoxFuture<Result<ExchangedToken, ExchangeError>> {
        let svc = self.clone();
        Box::pin(async move {
            let params = ExchangeParams {
                subject_token: request.subject_token.expose(),
                subject_token_type: ACCESS_TOKEN_TYPE,
                actor_token: request.actor_token.as_ref().map(Secret::expose),
                actor_token_type: request.actor_token.as_ref().map(|_| ACCESS_TOKEN_TYPE),
                audience: Some(&request.audience),
                resource: None,
                scope: request.scope.as_deref(),
                requested_token_type: None,
            };
            match IdentityService::exchange(&svc, None, params).await {
                Ok(r) => Ok(ExchangedToken {
                    expires_at: svc.now() + r.expires_in,
                    access_token: Secret::new(r.access_token),
                }),
                Err(OAuthError::Unavailable) => {
                    Err(ExchangeError::Unavailable("identity service".into()))
                }
                Err(e) => Err(ExchangeError::Refused(e.code().into())),
            }
        })
    }
}

/// The `Arc` form the proxy takes.
pub fn exchanger(svc: &IdentityService) -> Arc<dyn TokenExchanger> {
    Arc::new(svc.clone())
}
