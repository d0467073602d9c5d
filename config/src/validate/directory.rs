//! The directory: `[[organizations]]` (a tree without cycles), `[[groups]]` and `[[users]]`, and the check of
//! every reference to them from an agent's permission or a client.

use std::sync::Arc;

use super::rules::{Errors, IdKind, check_id};
use crate::defaults;
use crate::raw::{RawConfig, RawUser};
use crate::snapshot::{Directory, User};

/// The directory of the file; each entry declared twice, unknown reference or cycle is an error.
pub(super) fn directory(raw: &RawConfig, errors: &mut Errors) -> Directory {
    let mut dir = Directory::default();
    organizations(raw, &mut dir, errors);
    organization_parents(raw, &dir, errors);
    groups(raw, &mut dir, errors);
    for (i, u) in raw.users.iter().enumerate() {
        let path = format!("users[{i}]");
        let user = user(u, &path, &dir, errors);
        if dir.users.insert(user.id.clone(), user).is_some() {
            errors.push(
                format!("{path}.id"),
                format!("user {:?} is declared twice", u.id),
            );
        }
    }
    dir
}

/// The users, groups and organizations named by id at `{path}.users`, `.groups` and `.organizations`, in that
/// order; an id the directory does not hold is an error and left out.
pub(super) fn grantees(
    dir: &Directory,
    [users, groups, organizations]: [&[String]; 3],
    path: &str,
    errors: &mut Errors,
) -> [Vec<Arc<str>>; 3] {
    let mut pick = |list: &[String], field: &str, known: &dyn Fn(&str) -> bool| -> Vec<Arc<str>> {
        let mut out = Vec::new();
        for (j, id) in list.iter().enumerate() {
            if known(id) {
                out.push(Arc::from(id.as_str()));
            } else {
                errors.push(
                    format!("{path}.{field}[{j}]"),
                    format!("no {} has id {id:?}", field.trim_end_matches('s')),
                );
            }
        }
        out
    };
    [
        pick(users, "users", &|id| dir.users.contains_key(id)),
        pick(groups, "groups", &|id| dir.groups.contains_key(id)),
        pick(organizations, "organizations", &|id| {
            dir.organizations.contains_key(id)
        }),
    ]
}

fn organizations(raw: &RawConfig, dir: &mut Directory, errors: &mut Errors) {
    for (i, o) in raw.organizations.iter().enumerate() {
        check_id(
            &o.id,
            &format!("organizations[{i}].id"),
            IdKind::Principal,
            errors,
        );
        let name = defaults::display_name(o.name.as_deref(), &o.id);
        if dir
            .organizations
            .insert(
                Arc::from(o.id.as_str()),
                (name, o.parent.as_deref().map(Arc::from)),
            )
            .is_some()
        {
            errors.push(
                format!("organizations[{i}].id"),
                format!("organization {:?} is declared twice", o.id),
            );
        }
    }
}

/// Every parent exists, and the tree has no cycle.
fn organization_parents(raw: &RawConfig, dir: &Directory, errors: &mut Errors) {
    for (i, o) in raw.organizations.iter().enumerate() {
        if let Some(parent) = &o.parent {
            if !dir.organizations.contains_key(parent.as_str()) {
                errors.push(
                    format!("organizations[{i}].parent"),
                    format!("no organization has id {parent:?}"),
                );
                continue;
            }
            // Walk up from this unit; meeting it again means a cycle.
            let mut at = parent.clone();
            for _ in 0..=dir.organizations.len() {
                if at == o.id {
                    errors.push(
                        format!("organizations[{i}].parent"),
                        "the organization tree has a cycle here",
                    );
                    break;
                }
                match dir.organizations.get(at.as_str()) {
                    Some((_, Some(p))) => at = p.to_string(),
                    _ => break,
                }
            }
        }
    }
}

fn groups(raw: &RawConfig, dir: &mut Directory, errors: &mut Errors) {
    for (i, g) in raw.groups.iter().enumerate() {
        check_id(&g.id, &format!("groups[{i}].id"), IdKind::Principal, errors);
        if dir
            .groups
            .insert(
                Arc::from(g.id.as_str()),
                defaults::display_name(g.name.as_deref(), &g.id),
            )
            .is_some()
        {
            errors.push(
                format!("groups[{i}].id"),
                format!("group {:?} is declared twice", g.id),
            );
        }
    }
}

/// One user, its organization and groups looked up in `dir` (which holds every organization and group).
fn user(u: &RawUser, path: &str, dir: &Directory, errors: &mut Errors) -> User {
    check_id(&u.id, &format!("{path}.id"), IdKind::Principal, errors);
    let organization =
        u.organization
            .as_deref()
            .and_then(|o| match dir.organizations.get_key_value(o) {
                Some((k, _)) => Some(k.clone()),
                None => {
                    errors.push(
                        format!("{path}.organization"),
                        format!("no organization has id {o:?}"),
                    );
                    None
                }
            });
    let mut groups = Vec::new();
    for (j, g) in u.groups.iter().enumerate() {
        match dir.groups.get_key_value(g.as_str()) {
            Some((k, _)) => groups.push(k.clone()),
            None => errors.push(
                format!("{path}.groups[{j}]"),
                format!("no group has id {g:?}"),
            ),
        }
    }
    if let Some(h) = &u.password_hash
        && !h.starts_with("$argon2id$")
    {
        errors.push(
            format!("{path}.password_hash"),
            "must be an argon2id PHC string ($argon2id$...); set passwords through the admin API",
        );
    }
    User {
        id: Arc::from(u.id.as_str()),
        name: defaults::display_name(u.name.as_deref(), &u.id),
        email: u.email.clone(),
        organization,
        groups,
        password_hash: u.password_hash.clone(),
    }
}
