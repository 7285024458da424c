//! Access control per request, the same in every deployment because it
//! runs in the component: who the caller is (a token, Basic credentials or
//! nobody), what the route needs ([`need::Need`]), and whether the policy
//! or the token grants it. The rules themselves (users, policy, scopes,
//! tokens) live in the `registry-auth` crate; settings arrive as
//! environment variables (`registry_auth::settings`).
//!
//! Nothing here reads a repository before the caller is allowed to: a
//! client without pull access gets the same answer whether the repository
//! exists or not.

pub mod challenge;
pub mod need;
pub mod sign_in;
pub mod token_endpoint;

use crate::error::RegistryError;
use crate::http::{Request, Response};
use crate::oci::name::RepoName;
use crate::router::Route;
use crate::storage::Storage;
use crate::store::{self, keys};
use base64::Engine as _;
use challenge::Refusal;
use need::Need;
use registry_auth::{Actions, Claims, ConfigError, Htpasswd, Policy, Settings, Subject, TokenKey};
use std::cell::OnceCell;

/// Bytes of a token key the registry generates for itself.
const GENERATED_KEY_LEN: usize = 32;

/// Whether and how requests are checked.
pub enum Access {
    /// No access control: everyone may do everything (the default).
    Open,
    /// Checked against these settings.
    Controlled(Box<Gate>),
    /// The settings are broken: every request fails (closed), and the
    /// reason goes to the log, not to clients.
    Misconfigured(String),
}

impl Access {
    /// From settings as `Settings::from_vars` read them.
    pub fn from_settings(settings: Result<Option<Settings>, ConfigError>) -> Access {
        match settings {
            Ok(None) => Access::Open,
            Ok(Some(settings)) => Access::Controlled(Box::new(Gate::new(settings))),
            Err(e) => Access::Misconfigured(e.0),
        }
    }
}

/// The settings of one request, parsed as far as the request needs.
pub struct Gate {
    settings: Settings,
    htpasswd: OnceCell<Result<Htpasswd, ConfigError>>,
    policy: OnceCell<Result<Policy, ConfigError>>,
    key: OnceCell<TokenKey>,
}

/// What the gate decided for an admitted request.
pub struct Admitted {
    /// The route to run (a mount the caller may not read from becomes a
    /// plain upload).
    pub route: Route,
    /// The user whose pull rights filter a catalog listing (`None`:
    /// anonymous); unused by other routes.
    pub catalog_user: Option<String>,
    /// Who the request came from, for the runtime's access log.
    pub user: Option<String>,
}

/// The credentials a request carries.
pub enum Credentials {
    /// None.
    None,
    /// `Authorization: Basic`.
    Basic {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
    /// `Authorization: Bearer`.
    Bearer(String),
    /// An `Authorization` header this registry cannot read.
    Malformed,
}

/// The credentials of `req`.
pub fn credentials<B: crate::http::RequestBody>(req: &Request<B>) -> Credentials {
    let Some(value) = req.header("authorization") else { return Credentials::None };
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        return Credentials::Bearer(rest.to_string());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded =
            base64::engine::general_purpose::STANDARD.decode(rest).ok().and_then(|b| String::from_utf8(b).ok());
        if let Some((user, password)) = decoded.as_deref().and_then(|d| d.split_once(':')) {
            return Credentials::Basic { user: user.to_string(), password: password.to_string() };
        }
    }
    Credentials::Malformed
}

/// Who is asking, once their credentials are checked.
enum Caller {
    /// No credentials.
    Anonymous,
    /// Basic credentials, checked.
    User(String),
    /// A valid token.
    Token(Claims),
}

impl Caller {
    /// Who the policy sees: an anonymous token is anonymous.
    fn subject(&self) -> Subject<'_> {
        match self {
            Caller::Anonymous => Subject::Anonymous,
            Caller::User(user) => Subject::User(user),
            Caller::Token(claims) if claims.sub.is_empty() => Subject::Anonymous,
            Caller::Token(claims) => Subject::User(&claims.sub),
        }
    }

    /// The signed-in user's name, if any.
    fn user(&self) -> Option<String> {
        match self.subject() {
            Subject::User(user) => Some(user.to_string()),
            Subject::Anonymous => None,
        }
    }
}

impl Gate {
    /// A gate over `settings`; nothing is parsed yet.
    pub fn new(settings: Settings) -> Gate {
        Gate { settings, htpasswd: OnceCell::new(), policy: OnceCell::new(), key: OnceCell::new() }
    }

    fn htpasswd(&self) -> Result<&Htpasswd, RegistryError> {
        self.htpasswd.get_or_init(|| self.settings.htpasswd()).as_ref().map_err(|e| misconfigured(&e.0))
    }

    fn policy(&self) -> Result<&Policy, RegistryError> {
        self.policy.get_or_init(|| self.settings.policy()).as_ref().map_err(|e| misconfigured(&e.0))
    }

    /// The configured key, or the one the registry keeps in storage.
    fn token_key<S: Storage>(&self, st: &S) -> Result<&TokenKey, RegistryError> {
        if let Some(key) = self.key.get() {
            return Ok(key);
        }
        let key = match self.settings.token_key() {
            Some(configured) => configured.map_err(|e| misconfigured(&e.0))?,
            None => {
                let secret = store::secret(st, &keys::token_key(), GENERATED_KEY_LEN)?;
                self.settings.stored_token_key(&secret).map_err(|e| misconfigured(&e.0))?
            }
        };
        Ok(self.key.get_or_init(|| key))
    }

    /// The client's address, when the runtime passes it in a header.
    fn client_address<B: crate::http::RequestBody>(&self, req: &Request<B>) -> Option<String> {
        let header = self.settings.client_address_header.as_deref()?;
        req.header(header).map(str::to_string)
    }

    /// The token endpoint's URL, for challenges.
    fn realm<B: crate::http::RequestBody>(&self, req: &Request<B>) -> String {
        self.settings.realm.clone().unwrap_or_else(|| format!("{}/token", req.origin()))
    }

    /// Checks `route` for `req`: the route to run, or the refusal to send.
    pub fn admit<S: Storage>(
        &self,
        st: &S,
        route: Route,
        req: &Request<S::Body>,
    ) -> Result<Admitted, Response<S::Reader>> {
        let need = Need::of(&route);
        let caller = self.identify(st, req, &need).map_err(|refusal| self.refusal(refusal, req))?;
        let user = caller.user();
        match self.decide(route, &need, &caller) {
            Ok(route) => Ok(route),
            Err(refusal) => Err(self.name_user(self.refusal(refusal, req), user.as_deref())),
        }
    }

    fn refusal<B: crate::http::RequestBody, R>(&self, refusal: Refusal, req: &Request<B>) -> Response<R> {
        refusal.response(&self.realm(req), &self.settings.service)
    }

    /// Names `user` in the response header the runtime asked for, if any.
    pub fn name_user<R>(&self, response: Response<R>, user: Option<&str>) -> Response<R> {
        match (&self.settings.user_header, user) {
            (Some(header), Some(user)) => response.header(header, user),
            _ => response,
        }
    }

    /// Answers `/token`.
    pub fn token<S: Storage>(&self, st: &S, req: &mut Request<S::Body>) -> Response<S::Reader> {
        match token_endpoint::respond(self, st, req) {
            Ok(response) => response,
            // Bad credentials at the token endpoint: a Basic challenge, not
            // a pointer back to this same endpoint.
            Err(Refusal::Unauthorized { detail, .. }) => Response::error(&RegistryError::Unauthorized(Some(detail)))
                .header("WWW-Authenticate", format!("Basic realm=\"{}\"", self.settings.service)),
            Err(refusal) => refusal.response(&self.realm(req), &self.settings.service),
        }
    }

    fn decide(&self, mut route: Route, need: &Need, caller: &Caller) -> Result<Admitted, Refusal> {
        let mut catalog_user = None;
        match need {
            Need::SignedIn => {
                if matches!(caller, Caller::Anonymous) {
                    return Err(unauthorized(None, None, "authentication required"));
                }
            }
            Need::Admin => match caller {
                Caller::User(user) if self.policy()?.is_admin(Subject::User(user)) => {}
                Caller::User(_) | Caller::Token(_) => {
                    return Err(Refusal::Denied("only an admin, signed in with Basic credentials, may do this".into()))
                }
                Caller::Anonymous => return Err(unauthorized(None, None, "authentication required")),
            },
            Need::Catalog => {
                match caller {
                    Caller::Token(claims) if !claims.may_list_catalog() => {
                        return Err(unauthorized(
                            need.scope(),
                            Some("insufficient_scope"),
                            "the token does not list the catalog",
                        ))
                    }
                    Caller::Anonymous if !self.policy()?.may_pull_somewhere(Subject::Anonymous) => {
                        return Err(unauthorized(need.scope(), None, "authentication required"));
                    }
                    _ => {}
                }
                if let Subject::User(user) = caller.subject() {
                    catalog_user = Some(user.to_string());
                }
            }
            Need::Repository { name, actions } => {
                if !self.allowed(caller, name)?.contains(*actions) {
                    return Err(self.refuse(caller, need, name, *actions)?);
                }
                if let Route::UploadStart { mount: mount @ Some(_), from, .. } = &mut route {
                    self.limit_mount(caller, name, mount, from)?;
                }
            }
        }
        Ok(Admitted { route, catalog_user, user: caller.user() })
    }

    /// Mounting reads the source: without pull there, the mount becomes a
    /// plain upload (distribution does the same). A mount without a source
    /// looks everywhere only for a caller who may pull everything; for
    /// others, only in the target `name`, so that it reveals nothing
    /// elsewhere.
    fn limit_mount(
        &self,
        caller: &Caller,
        name: &RepoName,
        mount: &mut Option<crate::oci::Digest>,
        from: &mut Option<RepoName>,
    ) -> Result<(), RegistryError> {
        if from.is_none() && self.policy()?.may_pull_everything(caller.subject()) {
            return Ok(());
        }
        let source = from.take().unwrap_or_else(|| name.clone());
        if self.allowed(caller, &source)?.contains(Actions::PULL) {
            *from = Some(source);
        } else {
            *mount = None;
        }
        Ok(())
    }

    /// Checks the request's credentials; invalid ones are refused at once.
    fn identify<S: Storage>(&self, st: &S, req: &Request<S::Body>, need: &Need) -> Result<Caller, Refusal> {
        match credentials(req) {
            Credentials::None => Ok(Caller::Anonymous),
            Credentials::Basic { user, password } => {
                sign_in::check(self, st, self.client_address(req).as_deref(), &user, &password)?;
                Ok(Caller::User(user))
            }
            Credentials::Bearer(token) => match self.token_key(st)?.verify(&token, unix_now(st)) {
                Ok(claims) => Ok(Caller::Token(claims)),
                Err(_) => Err(unauthorized(need.scope(), Some("invalid_token"), "the token is invalid or expired")),
            },
            Credentials::Malformed => Err(unauthorized(need.scope(), None, "unreadable Authorization header")),
        }
    }

    /// What `caller` may do on `name`: what its token grants, or what the
    /// policy gives it.
    fn allowed(&self, caller: &Caller, name: &RepoName) -> Result<Actions, RegistryError> {
        Ok(match caller {
            Caller::Token(claims) => claims.actions_on(name.as_str()),
            _ => self.policy()?.granted(caller.subject(), name.as_str()),
        })
    }

    /// Whether a catalog listing for `user` (`None`: anonymous) may show
    /// the repository `name`.
    pub fn may_list(&self, user: Option<&str>, name: &str) -> bool {
        let subject = user.map_or(Subject::Anonymous, Subject::User);
        self.policy().is_ok_and(|p| p.granted(subject, name).contains(Actions::PULL))
    }

    /// The refusal for a caller lacking `actions` on `name`: anonymous
    /// callers are asked to sign in; a token whose user the policy would
    /// allow is asked to come back with a wider one; anyone else is denied.
    fn refuse(
        &self,
        caller: &Caller,
        need: &Need,
        name: &RepoName,
        actions: Actions,
    ) -> Result<Refusal, RegistryError> {
        let subject = caller.subject();
        Ok(match (caller, subject) {
            (_, Subject::Anonymous) => unauthorized(need.scope(), None, "authentication required"),
            (Caller::Token(_), _) if self.policy()?.granted(subject, name.as_str()).contains(actions) => {
                unauthorized(need.scope(), Some("insufficient_scope"), "the token does not grant this")
            }
            _ => Refusal::Denied(format!("requested access to {name} is denied")),
        })
    }
}

fn unauthorized(scope: Option<registry_auth::Scope>, error: Option<&'static str>, detail: &str) -> Refusal {
    Refusal::Unauthorized { scope, error, detail: detail.into() }
}

/// A broken setting: logged with its reason, reported to the client
/// without it.
pub fn misconfigured(reason: &str) -> RegistryError {
    eprintln!("registry: access control is misconfigured: {reason}");
    RegistryError::internal("access control is misconfigured; see the registry's log")
}

/// Seconds since the epoch by the storage's clock.
fn unix_now<S: Storage>(st: &S) -> u64 {
    st.now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
