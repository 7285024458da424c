//! The process's limit on open files: every connection holds a descriptor,
//! and so does every file a request has open.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Raises the soft limit on open files to the hard limit, as Go's runtime
/// does at start-up (a soft limit of 1024 is still common, far below what a
/// server needs); returns the soft limit in force (`None`: unlimited).
pub fn raise_to_hard_limit() -> std::io::Result<Option<u64>> {
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        setrlimit(Resource::Nofile, Rlimit { current: limit.maximum, maximum: limit.maximum })?;
    }
    Ok(getrlimit(Resource::Nofile).current)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_soft_limit_becomes_the_hard_limit() {
        let limit = super::raise_to_hard_limit().unwrap();
        assert_eq!(limit, rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum);
    }
}
