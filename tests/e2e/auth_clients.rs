//! Real clients against a registry with access control on, in every deployment: the
//! Docker CLI (`docker login`, which keeps a refresh token, then push, pull, logout;
//! over HTTPS too, with `registry-host`), podman, skopeo with `--creds`, the oras
//! Python SDK signed in, and the `oci-client` crate with Basic credentials and
//! anonymously. Each signs in as a user of [`users`] under [`POLICY`]: alice may
//! push, bob may only pull, and anyone may pull `public/**`.
//!
//! The Docker tests are named `…::docker_cli::…` and the HTTPS one `…::host::…`, so
//! that `scripts/test.sh` leaves them out by the same names as the other Docker and
//! `registry-host` tests.

use crate::common::{start_with_access, AuthFiles, RegistryServer};

mod docker_cli;
mod oci_client;
mod oras;
mod podman;
mod skopeo;

/// Who may do what in these tests.
const POLICY: &str = r#"
[groups]
writers = ["alice"]

[anonymous]
pull = ["public/**"]

[[rules]]
repositories = ["team/**", "public/**"]
groups = ["writers"]
actions = ["pull", "push"]

[[rules]]
repositories = ["team/**", "public/**"]
users = ["bob"]
actions = ["pull"]
"#;

const ALICE: (&str, &str) = ("alice", "alice-pw");
const BOB: (&str, &str) = ("bob", "bob-pw");

/// The users' files. Low bcrypt costs: each client signs in many times, and bcrypt
/// is slow in wasm (the cost itself is covered by the `auth` tests).
fn files() -> AuthFiles {
    AuthFiles::new(&[(ALICE.0, ALICE.1, 4), (BOB.0, BOB.1, 5)], Some(POLICY))
}

/// This run's deployment with access control on; `None` against an external
/// registry (`REGISTRY_TEST_URL`), whose users the tests do not know.
fn started() -> Option<(AuthFiles, RegistryServer)> {
    start_with_access(files)
}

/// `user:password`, as `--creds` and friends take it.
fn creds((user, password): (&str, &str)) -> String {
    format!("{user}:{password}")
}

/// Whether a client's error output says that the registry refused it: 401
/// (`unauthorized`, `authentication required`, `invalid username/password`) or 403
/// (`denied`, `forbidden`).
fn refused(output: &str) -> bool {
    let output = output.to_ascii_lowercase();
    ["unauthorized", "authentication required", "invalid username/password", "denied", "forbidden"]
        .iter()
        .any(|word| output.contains(word))
}

/// The status of `GET path` signed in as `user` with Basic credentials.
async fn status_as(server: &RegistryServer, user: Option<(&str, &str)>, path: &str) -> reqwest::StatusCode {
    let mut request = server.client().get(server.url(path)).header(reqwest::header::ACCEPT, ACCEPT_MANIFESTS);
    if let Some((user, password)) = user {
        request = request.basic_auth(user, Some(password));
    }
    request.send().await.expect("GET").status()
}

const ACCEPT_MANIFESTS: &str = crate::common::media::ACCEPT_ALL_MANIFESTS;
