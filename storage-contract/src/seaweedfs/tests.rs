//! SeaweedFS itself, started for real: objects stored and read back through
//! signed requests, kept across a stop and a start again, instances side by
//! side, and no process left behind by a drop or by a test process killed.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::*;

const TIMEOUT: Duration = Duration::from_secs(30);

/// Whether process `pid` has ended (gone, or a zombie not yet reaped).
fn ended(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // "PID (COMM) STATE ...": the state follows the last ')'.
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

fn wait_until_ended(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if ended(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    ended(pid)
}

#[test]
fn an_object_survives_a_stop_and_a_start_again() {
    let mut store = SeaweedFs::start();
    let client = store.client(TIMEOUT);
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    client.put("dir/object", &bytes).unwrap();
    assert_eq!(client.get("dir/object").unwrap().as_deref(), Some(&bytes[..]));
    assert_eq!(client.get("dir/absent").unwrap(), None);
    assert_eq!(client.list("dir/").unwrap(), vec![ObjectInfo { key: "dir/object".into(), size: bytes.len() as u64 }]);

    let endpoint = store.endpoint();
    let pid = store.pid().unwrap();
    store.stop();
    assert!(!store.is_running());
    assert!(wait_until_ended(pid, Duration::from_secs(5)), "weed {pid} still runs after stop");
    let started = Instant::now();
    assert!(client.get("dir/object").is_err(), "a stopped store answered");
    assert!(started.elapsed() < Duration::from_secs(5), "a stopped store took {:?} to refuse", started.elapsed());

    store.start_again();
    assert_eq!(store.endpoint(), endpoint, "the same ports");
    assert_eq!(client.get("dir/object").unwrap().as_deref(), Some(&bytes[..]), "after a start again");
    client.delete("dir/object").unwrap();
    assert_eq!(client.get("dir/object").unwrap(), None);
    assert_eq!(client.list("dir/").unwrap(), vec![]);
}

#[test]
fn instances_run_side_by_side() {
    let starting: Vec<_> = (0..2).map(|_| std::thread::spawn(SeaweedFs::start)).collect();
    let stores: Vec<SeaweedFs> = starting.into_iter().map(|t| t.join().unwrap()).collect();
    let ports: Vec<u16> = stores.iter().flat_map(|s| s.ports.all()).collect();
    let mut distinct = ports.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), ports.len(), "ports shared between instances: {ports:?}");
    stores[0].client(TIMEOUT).put("only-here", b"one").unwrap();
    assert_eq!(stores[0].client(TIMEOUT).get("only-here").unwrap().as_deref(), Some(&b"one"[..]));
    assert_eq!(stores[1].client(TIMEOUT).get("only-here").unwrap(), None);
}

#[test]
fn the_shared_instance_is_one_and_prefixes_keep_tests_apart() {
    let store = SeaweedFs::shared();
    assert!(std::ptr::eq(store, SeaweedFs::shared()));
    let (one, two) = (unique_prefix("t"), unique_prefix("t"));
    assert_ne!(one, two);
    let client = store.client(TIMEOUT);
    client.put(&format!("{one}key"), b"1").unwrap();
    client.put(&format!("{two}key"), b"2").unwrap();
    assert_eq!(client.list(&one).unwrap(), vec![ObjectInfo { key: format!("{one}key"), size: 1 }]);
    assert_eq!(client.get(&format!("{two}key")).unwrap().as_deref(), Some(&b"2"[..]));
}

#[test]
fn a_dropped_instance_is_killed_and_removed() {
    let store = SeaweedFs::start();
    let pid = store.pid().unwrap();
    let dir = store.log_path().parent().unwrap().to_path_buf();
    let sockets = store.ports.grpc_sockets();
    // The admin server, last to start, makes its socket shortly after the store is ready.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sockets.iter().all(|s| s.exists()) {
        assert!(Instant::now() < deadline, "weed did not make its sockets {sockets:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(store);
    assert!(wait_until_ended(pid, Duration::from_secs(5)), "weed {pid} still runs after a drop");
    assert!(!dir.exists(), "{} is left", dir.display());
    assert!(sockets.iter().all(|s| !s.exists()), "sockets left: {sockets:?}");
}

/// Set in the child test processes of the test below: `kill` (the child waits to
/// be killed) or `exit` (it exits at once).
const CHILD_VAR: &str = "SEAWEEDFS_TEST_CHILD";

/// Runs this test in a child process with `CHILD_VAR=how`, which starts the
/// shared instance: its weed's pid and directory.
fn child_test_process(how: &str) -> (std::process::Child, u32, PathBuf) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "seaweedfs::tests::the_shared_instance_ends_with_its_test_process", "--nocapture"])
        .env(CHILD_VAR, how)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.by_ref().map_while(Result::ok).find(|l| l.starts_with("weed "));
    // The rest, read on, so that the child's prints never meet a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let Some(line) = line else {
        let _ = child.kill();
        panic!("the child test process started no SeaweedFS: {:?}", child.wait());
    };
    let (pid, dir) = line["weed ".len()..].split_once(" in ").unwrap();
    (child, pid.parse().unwrap(), PathBuf::from(dir))
}

/// The shared instance, never dropped, still ends with its test process: when
/// it exits (its directory removed then), and when it is killed (the
/// parent-death signal; a later process removes the directory).
#[test]
fn the_shared_instance_ends_with_its_test_process() {
    if let Ok(how) = std::env::var(CHILD_VAR) {
        let store = SeaweedFs::shared();
        println!("weed {} in {}", store.pid().unwrap(), store.log_path().parent().unwrap().display());
        if how == "kill" {
            std::thread::sleep(Duration::from_secs(600));
        }
        return;
    }

    let (mut child, pid, dir) = child_test_process("exit");
    assert!(child.wait().unwrap().success());
    assert!(wait_until_ended(pid, Duration::from_secs(10)), "weed {pid} outlived its test process's exit");
    assert!(!dir.exists(), "{} is left after an exit", dir.display());

    let (mut child, pid, dir) = child_test_process("kill");
    assert!(!ended(pid), "weed {pid} runs while its test process does");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(wait_until_ended(pid, Duration::from_secs(10)), "weed {pid} outlived its killed test process");
    assert!(dir.exists(), "a killed test process removes nothing");
    // What the next test process to start SeaweedFS does (remove_leftovers_once).
    remove_leftover(&dir);
}

/// A cluster: what one gateway stores the other reads, a volume server
/// killed loses nothing that was stored (replication 001), and a drop kills
/// every server and removes the directory.
#[test]
fn a_cluster_keeps_objects_across_a_killed_volume_server_and_ends_on_drop() {
    let started = Instant::now();
    let mut cluster = SeaweedCluster::start();
    eprintln!("cluster ready in {:?}", started.elapsed());
    let clients: Vec<S3Client> = (0..GATEWAYS).map(|i| cluster.client(i, TIMEOUT)).collect();
    let objects: Vec<(String, Vec<u8>)> = (0..12u32)
        .map(|n| (format!("o/{n}"), (0..(50_000 + n * 40_000)).map(|i| (i * n % 253) as u8).collect()))
        .collect();
    for (n, (key, bytes)) in objects.iter().enumerate() {
        clients[n % GATEWAYS].put(key, bytes).unwrap();
    }
    for (key, bytes) in &objects {
        for client in &clients {
            assert_eq!(client.get(key).unwrap().as_deref(), Some(&bytes[..]), "{key}");
        }
    }

    let pids = cluster.pids();
    assert_eq!(pids.len(), 1 + VOLUME_SERVERS + 1 + GATEWAYS);
    let volume = cluster.volume_server_pid(1).unwrap();
    cluster.kill_volume_server(1);
    assert!(wait_until_ended(volume, Duration::from_secs(5)), "volume server {volume} still runs");
    assert_eq!(cluster.volume_server_pid(1), None);
    for (key, bytes) in &objects {
        for client in &clients {
            let got = client.get(key).unwrap_or_else(|e| panic!("{key} after the kill: {e}\n{}", cluster.logs()));
            assert_eq!(got.as_deref(), Some(&bytes[..]), "{key} after the kill");
        }
    }

    let dir = cluster.dir().to_path_buf();
    drop(cluster);
    for pid in pids {
        assert!(wait_until_ended(pid, Duration::from_secs(5)), "weed {pid} still runs after a drop");
    }
    assert!(!dir.exists(), "{} is left", dir.display());
}
