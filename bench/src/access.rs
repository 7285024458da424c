//! The access-control workloads, against a registry with access control on
//! (bench/run.sh starts a second instance of each server for them):
//!
//! - manifest GET loads: on the same server without access control (the
//!   instance the other groups ran on) and with a bearer token from the
//!   token endpoint (where there is one), in turns, so that the ratio
//!   compares loads of the same minutes; then with Basic credentials on
//!   every request;
//! - sign-in latency per bcrypt cost, a user's first sign-in and a later
//!   one. Ours remembers a successful sign-in for 10 minutes, so only the
//!   first pays bcrypt; distribution's htpasswd auth pays it every time.
//!
//! The users, all with one password: the loads' user (cost 10) and
//! `cost<C>-<i>` for each bcrypt cost C and i in 1..=N (bench/run.sh writes
//! them with `htpasswd -B -C C`).

use crate::client::{basic, empty, Client, Target};
use crate::rss;
use crate::stats::{median, percentile, round};
use crate::workloads::{emit, emit_load, push_image, GetLoad, Servers, OCI_MANIFEST};
use anyhow::{bail, Context as _};
use hyper::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Turns of the open and the bearer load, each `GetLoad::secs` long.
const ROUNDS: usize = 3;

/// The repository the loads read, on both instances.
const REPO: &str = "bench/auth";

/// How a sign-in is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SignIn {
    /// `GET /token` with Basic credentials: the token flow (ours).
    Token,
    /// `GET /v2/` with Basic credentials, for a registry without a token
    /// endpoint (distribution's htpasswd auth).
    Basic,
}

impl SignIn {
    fn request(self) -> &'static str {
        match self {
            SignIn::Token => "GET /token",
            SignIn::Basic => "GET /v2/",
        }
    }
}

pub struct Settings {
    pub server: String,
    /// The server with access control on.
    pub pid: u32,
    pub sign_in: SignIn,
    /// The token service's name (`service=` of a token request).
    pub service: String,
    /// The same server without access control, and its PID.
    pub open: Target,
    pub open_pid: u32,
    pub password: String,
    /// The user of the loads (bcrypt cost 10).
    pub load_user: String,
    pub costs: Vec<u32>,
    /// Users per bcrypt cost: each signs in once cold, then once again.
    pub users: usize,
    pub load: GetLoad,
}

pub async fn run(target: &Target, s: &Settings) -> anyhow::Result<()> {
    let server = s.server.as_str();
    Client::new(target)
        .call(Method::GET, "/v2/", &[], empty())
        .await?
        .expect(401, "GET /v2/ without credentials (is access control on?)")?;
    let load_basic = basic(&s.load_user, &s.password);
    let mut client = Client::with_authorization(target, load_basic.clone());
    client.call(Method::GET, "/v2/", &[], empty()).await?.expect(200, "GET /v2/ as the loads' user")?;
    // Distinct content per run, as in the other groups.
    let salt = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos() as u64;
    push_image(&mut client, REPO, salt ^ 5).await.context("pushing the image, access control on")?;
    push_image(&mut Client::new(&s.open), REPO, salt ^ 6).await.context("pushing the image, access control off")?;

    let path = format!("/v2/{REPO}/manifests/latest");
    let accept = ("accept", OCI_MANIFEST);
    let (open_server, this_server) = (Servers::one(&s.open, &s.open_pid), Servers::one(target, &s.pid));
    match s.sign_in {
        SignIn::Token => {
            let token = fetch_token(&mut client, &s.service, &[]).await?;
            let bearer = format!("Bearer {token}");
            let headers = [accept, ("authorization", bearer.as_str())];
            Client::new(target)
                .call(Method::GET, &path, &headers, empty())
                .await?
                .expect(200, "manifest GET with the bearer token")?;
            // The two loads take turns, so that both meet the same drift of
            // the machine's speed over the minutes they take; the ratio is
            // of their medians.
            let (mut open, mut bearer) = (Vec::new(), Vec::new());
            for _ in 0..ROUNDS {
                open.push(s.load.sample(server, "auth_manifest_get_open", open_server, &path, &[accept]).await?);
                bearer.push(s.load.sample(server, "auth_manifest_get_bearer", this_server, &path, &headers).await?);
            }
            emit_load(server, "auth_manifest_get_open", &open, json!({}));
            emit_load(server, "auth_manifest_get_bearer", &bearer, json!({}));
        }
        SignIn::Basic => {
            let open = s.load.sample(server, "auth_manifest_get_open", open_server, &path, &[accept]).await?;
            emit_load(server, "auth_manifest_get_open", &[open], json!({}));
            let note = json!({ "note": "no token flow with htpasswd auth" });
            emit(server, "auth_manifest_get_bearer_rps", None, "req/s", note);
        }
    }
    let headers = [accept, ("authorization", load_basic.as_str())];
    let basic = s.load.sample(server, "auth_manifest_get_basic", this_server, &path, &headers).await?;
    emit_load(server, "auth_manifest_get_basic", &[basic], json!({}));

    // Distribution keeps checking the passwords of requests whose
    // connections the load has closed: let it finish before timing.
    settle(s.pid).await;
    let mut signer = Client::new(target);
    for cost in &s.costs {
        let users: Vec<String> = (1..=s.users).map(|i| format!("cost{cost}-{i}")).collect();
        for pass in ["first", "again"] {
            eprintln!(
                "[{server}] sign-ins, bcrypt cost {cost}, {pass}: {} users, {}",
                users.len(),
                s.sign_in.request()
            );
            let mut ms = Vec::new();
            for user in &users {
                let start = Instant::now();
                sign_in(&mut signer, s, user).await.with_context(|| format!("signing in as {user}"))?;
                ms.push(start.elapsed().as_secs_f64() * 1e3);
            }
            let extra = || {
                json!({
                    "samples": ms.len(),
                    "request": s.sign_in.request(),
                    "runs_ms": ms.iter().map(|v| round(*v, 2)).collect::<Vec<_>>(),
                })
            };
            let metric = format!("auth_signin_cost{cost}_{pass}");
            emit(server, &format!("{metric}_median_ms"), median(&ms).map(|v| round(v, 2)), "ms", extra());
            emit(server, &format!("{metric}_p90_ms"), percentile(&ms, 90.0).map(|v| round(v, 2)), "ms", extra());
        }
    }
    Ok(())
}

/// Waits (at most 30 s) until the server `pid` uses no more than one clock
/// tick of CPU in 200 ms.
async fn settle(pid: u32) {
    let give_up = Instant::now() + Duration::from_secs(30);
    let mut last = rss::cpu_seconds(pid);
    while Instant::now() < give_up {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = rss::cpu_seconds(pid);
        if let (Some(before), Some(after)) = (last, now) {
            if after - before <= 0.011 {
                return;
            }
        }
        last = now;
    }
}

/// A pull token for [`REPO`], signing in with `headers` (or the client's
/// own credentials).
async fn fetch_token(client: &mut Client, service: &str, headers: &[(&str, &str)]) -> anyhow::Result<String> {
    let path = format!("/token?service={service}&scope=repository:{REPO}:pull");
    let answer = client.call(Method::GET, &path, headers, empty()).await?.expect(200, "GET /token")?;
    let body: Value = serde_json::from_slice(&answer.body).context("the token answer is not JSON")?;
    match body["token"].as_str() {
        Some(token) if !token.is_empty() => Ok(token.to_string()),
        _ => bail!("the token answer has no token: {body}"),
    }
}

/// One sign-in of `user`, as `s.sign_in` says.
async fn sign_in(client: &mut Client, s: &Settings, user: &str) -> anyhow::Result<()> {
    let credentials = basic(user, &s.password);
    let headers = [("authorization", credentials.as_str())];
    match s.sign_in {
        SignIn::Token => fetch_token(client, &s.service, &headers).await.map(drop),
        SignIn::Basic => client.call(Method::GET, "/v2/", &headers, empty()).await?.expect(200, "GET /v2/").map(drop),
    }
}
