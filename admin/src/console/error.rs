//! [`ConsoleError`]: every way a console request fails, and its one mapping to a page (or a redirect to sign-in).
//! Messages are fixed text: no secret, no user input.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::pages::{MessagePage, Respond};

/// A console request that failed.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// No session, or an expired or closed one: the answer sends the browser to the sign-in page.
    #[error("not signed in")]
    SignedOut,
    /// A POST without the session's CSRF token, with a wrong one, or from another origin.
    #[error("the form's CSRF token is missing or wrong")]
    Csrf,
    /// The signed-in operator's role does not allow this (the admin API's role table said so).
    #[error("the {0} role is needed")]
    Forbidden(&'static str),
    /// The directory user signed in, but no operator is bound to them.
    #[error("the directory user is not an operator")]
    NotOperator,
    /// The admin token was wrong.
    #[error("the admin token is not valid")]
    BadToken,
    /// The sign-in came back unusable (unknown or expired state, refused by the user or the identity service,
    /// a code that does not redeem, a used or expired one-time link).
    #[error("sign-in failed: {0}")]
    SignIn(&'static str),
    /// The input was refused (the field and why, for the page).
    #[error("{0}")]
    Invalid(String),
    /// No such page or object.
    #[error("not found")]
    NotFound,
    /// The store, the identity service or randomness is unavailable, or the console is not set up yet.
    #[error("the console is unavailable")]
    Unavailable,
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let (status, title, message) = match &self {
            ConsoleError::SignedOut => {
                let mut resp = StatusCode::SEE_OTHER.into_response();
                resp.headers_mut().insert(
                    header::LOCATION,
                    axum::http::HeaderValue::from_static("/console/signin"),
                );
                return resp;
            }
            ConsoleError::Csrf => (
                StatusCode::FORBIDDEN,
                "Form refused",
                "This form expired or was not sent from its page. Go back, reload the page and try again."
                    .to_owned(),
            ),
            ConsoleError::Forbidden(role) => (
                StatusCode::FORBIDDEN,
                "Not allowed",
                format!("Your role does not allow this: the {role} role is needed."),
            ),
            ConsoleError::NotOperator => (
                StatusCode::FORBIDDEN,
                "Not an operator",
                "You signed in, but your directory account is not bound to an operator of this idguard. \
                 Ask an owner to add you (POST /admin/v1/operators with your user id)."
                    .to_owned(),
            ),
            ConsoleError::BadToken => (
                StatusCode::UNAUTHORIZED,
                "Sign-in failed",
                "That is not the admin token.".to_owned(),
            ),
            ConsoleError::SignIn(why) => (StatusCode::BAD_REQUEST, "Sign-in failed", (*why).to_owned()),
            ConsoleError::Invalid(why) => (StatusCode::BAD_REQUEST, "Not saved", why.clone()),
            ConsoleError::NotFound => (
                StatusCode::NOT_FOUND,
                "Not found",
                "There is no such page.".to_owned(),
            ),
            ConsoleError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Unavailable",
                "The console cannot answer right now. Try again in a moment.".to_owned(),
            ),
        };
        MessagePage::new(title, message).respond(status)
    }
}
