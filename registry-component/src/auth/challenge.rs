//! Refusals: 401 with a `WWW-Authenticate: Bearer` challenge telling the
//! client where to get a token and for what (Docker's token
//! specification), 403 `DENIED`, 429 while sign-ins are throttled.

use crate::error::RegistryError;
use crate::http::Response;
use registry_auth::Scope;

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No usable credentials: get a token (for `scope`) and retry.
    Unauthorized {
        /// The scope the request needs, if any.
        scope: Option<Scope>,
        /// `invalid_token` or `insufficient_scope`, when a token was sent.
        error: Option<&'static str>,
        /// For the error body.
        detail: String,
    },
    /// Signed in, but the policy does not allow it.
    Denied(String),
    /// Too many failed sign-ins from this client: retry after this many seconds.
    Throttled(u64),
    /// A failure of the registry itself.
    Failed(RegistryError),
}

impl From<RegistryError> for Refusal {
    fn from(e: RegistryError) -> Self {
        Refusal::Failed(e)
    }
}

impl Refusal {
    /// The response, with `realm` and `service` in the challenge.
    pub fn response<R>(&self, realm: &str, service: &str) -> Response<R> {
        match self {
            Refusal::Unauthorized { scope, error, detail } => {
                let mut challenge = format!("Bearer realm=\"{realm}\",service=\"{service}\"");
                if let Some(scope) = scope {
                    challenge.push_str(&format!(",scope=\"{}\"", scope.to_scope_string()));
                }
                if let Some(error) = error {
                    challenge.push_str(&format!(",error=\"{error}\""));
                }
                Response::error(&RegistryError::Unauthorized(Some(detail.clone())))
                    .header("WWW-Authenticate", challenge)
            }
            Refusal::Denied(detail) => Response::error(&RegistryError::Denied(Some(detail.clone()))),
            Refusal::Throttled(after) => Response::error(&RegistryError::TooManyRequests(Some(
                "too many failed sign-ins from this client; try again later".into(),
            )))
            .header("Retry-After", after.to_string()),
            Refusal::Failed(e) => Response::error(e),
        }
    }
}
