//! The Docker CLI signed in: `docker login` (password on stdin) keeps the refresh
//! token the registry issues instead of the password, so every later push and pull
//! gets its tokens with the OAuth2 form (`POST /token`,
//! `grant_type=refresh_token`); a reader's push is denied; anonymous pulls work
//! where the policy allows them. The images are those of the `docker_cli` test
//! (three layers, built offline). Each test has its own `DOCKER_CONFIG`, so that no
//! login reaches another test.

use std::path::PathBuf;
use std::process::Output;

use reqwest::StatusCode;
use serde_json::Value;
use tempfile::TempDir;

use super::{refused, started, status_as, ALICE, BOB};
use crate::common::{RegistryServer, SERVICE};
use crate::docker_cli::{
    assert_docker_succeeded, assert_pulled, build_image, remove_local, require_docker, run_docker, LocalImages,
};

/// The Docker CLI with a configuration directory of its own.
struct Docker {
    config: TempDir,
}

impl Docker {
    fn new() -> Self {
        let config = tempfile::Builder::new().prefix("registry-e2e-docker-config.").tempdir().unwrap();
        std::fs::write(config.path().join("config.json"), "{}").unwrap();
        Self { config }
    }

    fn config_file(&self) -> PathBuf {
        self.config.path().join("config.json")
    }

    /// Runs `docker args...`; fails the test unless it succeeds.
    async fn run(&self, args: &[&str]) -> Output {
        assert_docker_succeeded(args, self.run_unchecked(args).await)
    }

    /// Runs `docker args...`, whatever its status.
    async fn run_unchecked(&self, args: &[&str]) -> Output {
        run_docker(Some(self.config.path()), args, None).await
    }

    /// `docker login REGISTRY -u USER --password-stdin`, whatever its status.
    async fn login(&self, registry: &str, (user, password): (&str, &str)) -> Output {
        let args = ["login", registry, "-u", user, "--password-stdin"];
        run_docker(Some(self.config.path()), &args, Some(format!("{password}\n").as_bytes())).await
    }

    /// What `config.json` keeps for `registry`, if anything.
    fn stored(&self, registry: &str) -> Option<Value> {
        let config: Value = serde_json::from_slice(&std::fs::read(self.config_file()).unwrap()).unwrap();
        config["auths"].get(registry).cloned()
    }

    /// Replaces what `config.json` keeps for `registry`.
    fn store(&self, registry: &str, entry: Value) {
        let mut config: Value = serde_json::from_slice(&std::fs::read(self.config_file()).unwrap()).unwrap();
        config["auths"][registry] = entry;
        std::fs::write(self.config_file(), serde_json::to_vec(&config).unwrap()).unwrap();
    }
}

/// Fails the test unless `output` (of `what`) failed and says the registry refused it.
fn assert_refused(what: &str, output: &Output) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{what} succeeded; stderr:\n{stderr}");
    assert!(refused(&stderr), "{what} failed, but not as refused:\n{stderr}");
}

/// Signs in as `user` and returns what the configuration keeps: the refresh token
/// the registry issued, never the password.
async fn login(docker: &Docker, server: &RegistryServer, user: (&str, &str)) -> String {
    let registry = server.host_port();
    let out = docker.login(registry, user).await;
    let out = assert_docker_succeeded(&["login", registry, "-u", user.0, "--password-stdin"], out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("Login Succeeded"), "{out:?}");
    let entry = docker.stored(registry).unwrap_or_else(|| panic!("no entry for {registry} after docker login"));
    let kept = entry.to_string();
    assert!(!kept.contains(user.1), "docker kept the password: {kept}");
    let auth = entry["auth"].as_str().map(|a| {
        use base64::Engine as _;
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(a).unwrap()).unwrap()
    });
    assert!(!auth.unwrap_or_default().contains(user.1), "docker kept the password: {kept}");
    let token = entry["identitytoken"].as_str().unwrap_or_else(|| panic!("no identity token kept: {kept}"));
    assert!(!token.is_empty(), "an empty identity token: {kept}");
    token.to_string()
}

/// An access token for `scope` from `refresh_token`, as docker asks for it.
async fn refresh(server: &RegistryServer, refresh_token: &str, scope: &str) -> reqwest::Response {
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
        ("service", SERVICE),
        ("scope", scope),
        ("client_id", "registry-e2e"),
    ];
    reqwest::Client::new().post(server.url("/token")).form(&form).send().await.expect("POST /token")
}

/// Before login a push is refused and a wrong password signs nobody in; after it,
/// push and pull work with the refresh token alone (a forged one is refused), and
/// after `docker logout` pulls are refused again.
#[tokio::test]
async fn login_push_pull_logout_with_the_refresh_token() {
    require_docker();
    let Some((_files, server)) = started() else { return };
    let registry = server.host_port();
    let docker = Docker::new();
    let work = tempfile::Builder::new().prefix("registry-e2e-docker.").tempdir().unwrap();
    let image = format!("{registry}/team/app:v1");
    let second = format!("{registry}/team/app:v2");
    let mut cleanup = LocalImages(vec![second.clone()]);
    let built = build_image(work.path(), &image, &mut cleanup).await;

    // Signed out: refused, and nothing is stored.
    assert_refused("a push before login", &docker.run_unchecked(&["push", &image]).await);
    assert_eq!(status_as(&server, Some(ALICE), "/v2/team/app/manifests/v1").await, StatusCode::NOT_FOUND);
    assert_refused("docker login with a wrong password", &docker.login(registry, ("alice", "wrong")).await);
    assert_eq!(docker.stored(registry), None, "a failed login left credentials");

    let token = login(&docker, &server, ALICE).await;
    // What docker keeps is the registry's refresh token: the OAuth2 form turns it
    // into an access token.
    let resp = refresh(&server, &token, "repository:team/app:pull").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert!(body["access_token"].as_str().is_some_and(|t| !t.is_empty()), "{body}");

    // docker holds no password, so this push gets its token from the refresh token.
    docker.run(&["push", &image]).await;
    assert_eq!(status_as(&server, Some(ALICE), "/v2/team/app/manifests/v1").await, StatusCode::OK);

    // A refresh token the registry did not issue opens nothing: the push above used
    // the one docker keeps.
    let entry = docker.stored(registry).unwrap();
    let mut forged = entry.clone();
    let mut bytes = token.clone().into_bytes();
    let last = bytes.len() - 2;
    bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
    forged["identitytoken"] = String::from_utf8(bytes).unwrap().into();
    docker.store(registry, forged);
    docker.run(&["tag", &image, &second]).await;
    assert_refused("a push with a forged refresh token", &docker.run_unchecked(&["push", &second]).await);
    assert_eq!(status_as(&server, Some(ALICE), "/v2/team/app/manifests/v2").await, StatusCode::NOT_FOUND);
    docker.store(registry, entry);

    // Pull, signed in: every layer comes back.
    remove_local(&second).await;
    remove_local(&image).await;
    docker.run(&["pull", &image]).await;
    assert_pulled(&image, &built).await;

    // Signed out: the configuration forgets the registry, which refuses the pull.
    docker.run(&["logout", registry]).await;
    assert_eq!(docker.stored(registry), None, "credentials left after docker logout");
    remove_local(&image).await;
    assert_refused("a pull after logout", &docker.run_unchecked(&["pull", &image]).await);
}

/// bob may pull alice's image but not push: docker reports that it was denied, and
/// the registry keeps nothing of the push.
#[tokio::test]
async fn a_reader_pulls_but_cannot_push() {
    require_docker();
    let Some((_files, server)) = started() else { return };
    let registry = server.host_port();
    let (alice, bob) = (Docker::new(), Docker::new());
    let work = tempfile::Builder::new().prefix("registry-e2e-docker.").tempdir().unwrap();
    let image = format!("{registry}/team/shared:v1");
    let mut cleanup = LocalImages(Vec::new());
    let built = build_image(work.path(), &image, &mut cleanup).await;
    login(&alice, &server, ALICE).await;
    alice.run(&["push", &image]).await;

    login(&bob, &server, BOB).await;
    remove_local(&image).await;
    bob.run(&["pull", &image]).await;
    assert_pulled(&image, &built).await;

    // Into another repository (its blobs must be uploaded) and as a new tag of this
    // one (its blobs are there already, the manifest is not).
    for target in [format!("{registry}/team/bobs:v1"), format!("{registry}/team/shared:v2")] {
        cleanup.0.push(target.clone());
        bob.run(&["tag", &image, &target]).await;
        let out = bob.run_unchecked(&["push", &target]).await;
        assert_refused(&format!("bob's push of {target}"), &out);
        let path = target.strip_prefix(registry).unwrap().replacen(':', "/manifests/", 1);
        assert_eq!(status_as(&server, Some(ALICE), &format!("/v2{path}")).await, StatusCode::NOT_FOUND, "{target}");
    }
}

/// Without any login, docker pulls from `public/**` (the policy lets anyone pull
/// there) but not from `team/**`, and pushes nowhere.
#[tokio::test]
async fn anonymous_pulls_public_repositories_only() {
    require_docker();
    let Some((_files, server)) = started() else { return };
    let registry = server.host_port();
    let (alice, anonymous) = (Docker::new(), Docker::new());
    let work = tempfile::Builder::new().prefix("registry-e2e-docker.").tempdir().unwrap();
    let public = format!("{registry}/public/tool:v1");
    let team = format!("{registry}/team/tool:v1");
    let mut cleanup = LocalImages(vec![team.clone()]);
    let built = build_image(work.path(), &public, &mut cleanup).await;
    login(&alice, &server, ALICE).await;
    alice.run(&["tag", &public, &team]).await;
    alice.run(&["push", &public]).await;
    alice.run(&["push", &team]).await;
    remove_local(&public).await;
    remove_local(&team).await;

    anonymous.run(&["pull", &public]).await;
    assert_pulled(&public, &built).await;
    assert_refused("an anonymous pull from team/", &anonymous.run_unchecked(&["pull", &team]).await);

    let again = format!("{registry}/public/tool:v2");
    cleanup.0.push(again.clone());
    anonymous.run(&["tag", &public, &again]).await;
    assert_refused("an anonymous push to public/", &anonymous.run_unchecked(&["push", &again]).await);
    assert_eq!(status_as(&server, Some(ALICE), "/v2/public/tool/manifests/v2").await, StatusCode::NOT_FOUND);
}

/// `docker login`, push and pull over HTTPS, which `registry-host` alone serves
/// (`--tls-cert`, `--tls-key`).
mod host {
    use std::net::{IpAddr, UdpSocket};
    use std::path::{Path, PathBuf};

    use reqwest::StatusCode;

    use super::{login, Docker};
    use crate::auth_clients::{files, status_as, ALICE, BOB};
    use crate::common::{https_client, require_host_binary, RegistryServer, TestCa, TlsFiles};
    use crate::docker_cli::{assert_pulled, build_image, remove_local, require_docker, LocalImages};

    /// Where dockerd looks for the CAs of registry `host:port`: `<here>/host:port/*.crt`.
    const DOCKER_CERTS_DIR: &str = "/etc/docker/certs.d";

    /// An address of this machine that is not loopback. Docker verifies the
    /// certificates of registries there against `certs.d`, while it treats every
    /// registry on 127.0.0.0/8 as insecure: it would accept any certificate there,
    /// without reading `certs.d`.
    fn outward_address() -> IpAddr {
        // Connecting a UDP socket sends nothing: the kernel only picks the source
        // address of the route to the (documentation-only) destination.
        let socket = UdpSocket::bind("0.0.0.0:0").expect("a UDP socket");
        let ip =
            socket.connect("203.0.113.1:9").and_then(|()| socket.local_addr()).map(|addr| addr.ip()).unwrap_or_else(
                |e| panic!("no route off this machine ({e}): the HTTPS test needs a non-loopback address"),
            );
        assert!(!ip.is_loopback() && !ip.is_unspecified(), "no non-loopback address: {ip}");
        ip
    }

    /// The test CA in `certs.d` for one registry, removed on drop (with `certs.d`
    /// itself if it was made here). As root, or else through passwordless sudo, as
    /// scripts/test.sh runs dockerd.
    struct DockerTrust {
        dir: PathBuf,
        made_certs_dir: bool,
    }

    impl DockerTrust {
        fn install(registry: &str, ca_pem: &str) -> Self {
            let made_certs_dir = !Path::new(DOCKER_CERTS_DIR).exists();
            let dir = Path::new(DOCKER_CERTS_DIR).join(registry);
            let trust = Self { dir, made_certs_dir };
            let file = trust.dir.join("ca.crt");
            let written = std::fs::create_dir_all(&trust.dir).and_then(|()| std::fs::write(&file, ca_pem));
            if let Err(e) = written {
                assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied, "writing {}: {e}", file.display());
                let source = tempfile::NamedTempFile::new().unwrap();
                std::fs::write(source.path(), ca_pem).unwrap();
                let status = std::process::Command::new("sudo")
                    .args(["-n", "install", "-D", "-m", "644"])
                    .arg(source.path())
                    .arg(&file)
                    .status()
                    .expect("run sudo");
                assert!(status.success(), "cannot write {} (as root, or with passwordless sudo)", file.display());
            }
            trust
        }
    }

    impl Drop for DockerTrust {
        fn drop(&mut self) {
            let mut dirs = vec![self.dir.clone()];
            if self.made_certs_dir {
                dirs.push(PathBuf::from(DOCKER_CERTS_DIR));
            }
            for dir in dirs {
                let removed = if dir == self.dir { std::fs::remove_dir_all(&dir) } else { std::fs::remove_dir(&dir) };
                if removed.is_err() && dir.exists() {
                    let _ = std::process::Command::new("sudo").args(["-n", "rm", "-rf"]).arg(&dir).status();
                }
            }
        }
    }

    /// docker refuses the test CA's certificate until the CA is in `certs.d`; then
    /// login (the token endpoint over HTTPS too), push, pull and logout work.
    #[tokio::test]
    async fn login_push_pull_over_https() {
        require_host_binary();
        require_docker();
        let ip = outward_address();
        let ca = TestCa::new("e2e docker CA");
        let tls = TlsFiles::new(&ca.issue_for(&[&ip.to_string()]));
        let auth = files();
        let mut flags = auth.flags();
        flags.extend(tls.flags().into_iter().map(String::from));
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let server = RegistryServer::start_host_with(&format!("{ip}:0"), &flags, https_client(&[&ca], false));
        assert!(server.base_url().starts_with("https://"), "not serving HTTPS: {}", server.base_url());
        let registry = server.host_port();
        let docker = Docker::new();

        // docker checks the certificate: it does not know the test CA yet.
        let out = docker.login(registry, ALICE).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "docker login before the CA is trusted succeeded:\n{stderr}");
        assert!(stderr.contains("certificate") || stderr.contains("x509"), "not a certificate error:\n{stderr}");
        assert_eq!(docker.stored(registry), None, "a failed login left credentials");

        let _trust = DockerTrust::install(registry, &ca.pem);
        login(&docker, &server, ALICE).await;
        let work = tempfile::Builder::new().prefix("registry-e2e-docker.").tempdir().unwrap();
        let image = format!("{registry}/team/https:v1");
        let mut cleanup = LocalImages(Vec::new());
        let built = build_image(work.path(), &image, &mut cleanup).await;
        docker.run(&["push", &image]).await;
        assert_eq!(status_as(&server, Some(BOB), "/v2/team/https/manifests/v1").await, StatusCode::OK);

        remove_local(&image).await;
        docker.run(&["pull", &image]).await;
        assert_pulled(&image, &built).await;
        docker.run(&["logout", registry]).await;
        assert_eq!(docker.stored(registry), None, "credentials left after docker logout");
    }
}
