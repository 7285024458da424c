//! Server processes that never outlive the test process: each in a
//! process group of its own (so that a kill reaches everything it started),
//! with `PR_SET_PDEATHSIG` set to SIGKILL, and free ports to listen on.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

use rustix::process::{getpid, getppid, kill_process_group, set_parent_process_death_signal, Pid, Signal};

/// What the spawning thread is asked: a command, and where to send its child.
type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns `command` in a new process group, to be killed (SIGKILL) when the
/// test process ends, however it ends.
///
/// The kernel sends the parent-death signal when the *thread* that forked
/// the child ends, not the process: a test's own thread would kill a server
/// shared with later tests as it finishes. So every such child is forked by
/// one thread that lives as long as the process.
pub fn spawn_bound_to_this_process(mut command: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("test-server-spawner".into())
            .spawn(move || {
                for (mut command, reply) in rx {
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("starting the spawning thread");
        Mutex::new(tx)
    });
    let parent = getpid();
    command.process_group(0);
    // SAFETY: the closure runs between fork and exec, and makes only two
    // system calls (prctl, getppid), both async-signal-safe.
    unsafe {
        command.pre_exec(move || {
            set_parent_process_death_signal(Some(Signal::KILL))?;
            // The parent may have died before the signal was armed.
            if getppid() != Some(parent) {
                return Err(io::Error::other("the test process is gone"));
            }
            Ok(())
        });
    }
    let (reply, answer) = mpsc::channel();
    spawner.lock().unwrap_or_else(|e| e.into_inner()).send((command, reply)).expect("the spawning thread runs");
    answer.recv().expect("the spawning thread answers")
}

/// Kills (SIGKILL) the process group that `child` leads, then reaps `child`.
pub fn kill_group(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        let group = Pid::from_child(child);
        // Gone already is no error.
        let _ = kill_process_group(group, Signal::KILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Whether a TCP port of 127.0.0.1 is free now (another process may take it
/// later: callers retry with other ports when a server fails to bind).
fn free(port: u16) -> Option<TcpListener> {
    TcpListener::bind(("127.0.0.1", port)).ok()
}

/// `count` ports P of 127.0.0.1 that are free, each with P + 10000 free too
/// (where SeaweedFS puts each server's gRPC port), picked at random among
/// 10000–19999: below Linux's ephemeral range (32768 and up), so that no
/// outgoing connection takes them meanwhile, and spread, so that test
/// processes starting servers at the same moment rarely pick the same.
pub fn free_port_pairs(count: usize) -> Vec<u16> {
    let mut held = Vec::new();
    let mut ports = Vec::new();
    let mut random = RandomState::new().build_hasher();
    for attempt in 0u64.. {
        assert!(attempt < 10_000, "no free pair of ports P, P+10000 among 10000-19999 on 127.0.0.1");
        random.write_u64(attempt);
        let port = 10_000 + (random.finish() % 10_000) as u16;
        if ports.contains(&port) {
            continue;
        }
        // Held until all are chosen, so that none is chosen twice.
        if let (Some(http), Some(grpc)) = (free(port), free(port + 10_000)) {
            held.push((http, grpc));
            ports.push(port);
            if ports.len() == count {
                break;
            }
        }
    }
    ports
}
