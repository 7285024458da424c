//! Users from an htpasswd file with bcrypt entries, as `htpasswd -B`
//! writes them and distribution and zot read them: `user:$2y$10$…` per
//! line. Blank lines and `#` comments are skipped. Any other hash kind
//! (MD5 `$apr1$`, SHA-1 `{SHA}`, crypt, plain text) is refused with the
//! line it is on: those are fast to brute-force, and a silently ignored
//! line would lock a user out without saying why.

use crate::ConfigError;
use std::collections::HashMap;

/// A bcrypt hash of a password nobody has, verified for unknown users so
/// that a login takes as long whether the user exists or not.
const DUMMY_HASH: &str = "$2y$10$eyUQxE02w1srr.0pByHVYOFBiqDUVjas0LzAle/DGKIaT.HuB279K";

/// The users and their bcrypt hashes.
#[derive(Debug, Clone, Default)]
pub struct Htpasswd {
    users: HashMap<String, String>,
}

impl Htpasswd {
    /// Parses the file's text.
    pub fn parse(text: &str) -> Result<Htpasswd, ConfigError> {
        let mut users = HashMap::new();
        for (index, raw) in text.lines().enumerate() {
            let line_no = index + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                return Err(ConfigError(format!("htpasswd line {line_no}: expected `user:hash`")));
            };
            if user.is_empty() {
                return Err(ConfigError(format!("htpasswd line {line_no}: the user name is empty")));
            }
            if !is_bcrypt(hash) {
                return Err(ConfigError(format!(
                    "htpasswd line {line_no} (user {user:?}): not a bcrypt hash; only bcrypt entries \
                     (`htpasswd -B`) are accepted"
                )));
            }
            if users.insert(user.to_string(), hash.to_string()).is_some() {
                return Err(ConfigError(format!("htpasswd line {line_no}: user {user:?} is listed twice")));
            }
        }
        Ok(Htpasswd { users })
    }

    /// Whether `user` exists and `password` is theirs. Costs one bcrypt
    /// verification either way (slow by design: tens of milliseconds).
    pub fn verify(&self, user: &str, password: &str) -> bool {
        match self.users.get(user) {
            Some(hash) => bcrypt::verify(password, hash).unwrap_or(false),
            None => {
                let _ = bcrypt::verify(password, DUMMY_HASH);
                false
            }
        }
    }

    /// The stored hash of `user`: changes when the password does.
    pub fn hash_of(&self, user: &str) -> Option<&str> {
        self.users.get(user).map(String::as_str)
    }

    /// How many users there are.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// `$2a$`, `$2b$`, `$2x$` or `$2y$`, a two-digit cost, and 53 characters
/// of salt and hash in bcrypt's base64 alphabet.
fn is_bcrypt(hash: &str) -> bool {
    let b = hash.as_bytes();
    b.len() == 60
        && b[0] == b'$'
        && b[1] == b'2'
        && matches!(b[2], b'a' | b'b' | b'x' | b'y')
        && b[3] == b'$'
        && b[4].is_ascii_digit()
        && b[5].is_ascii_digit()
        && b[6] == b'$'
        && b[7..].iter().all(|c| c.is_ascii_alphanumeric() || *c == b'.' || *c == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(password: &str, cost: u32) -> String {
        bcrypt::hash(password, cost).unwrap()
    }

    #[test]
    fn verifies_bcrypt_entries_of_any_cost() {
        let text = format!("# team\nalice:{}\n\nbob:{}\n", hash("secret", 4), hash("hunter2", 5));
        let users = Htpasswd::parse(&text).unwrap();
        assert_eq!(users.len(), 2);
        assert!(users.verify("alice", "secret"));
        assert!(users.verify("bob", "hunter2"));
        assert!(!users.verify("alice", "hunter2"));
        assert!(!users.verify("carol", "secret"));
        assert!(!users.verify("alice", ""));
    }

    #[test]
    fn reads_what_htpasswd_b_writes() {
        // `htpasswd -nbB alice secret` (Apache's tool writes `$2y$`).
        let users = Htpasswd::parse("alice:$2y$05$iZKiaiHah83QGjsWLqCHguyT9YGzOVxn0HFNaBhNqz2iO0HfYa7yi\n").unwrap();
        assert!(users.verify("alice", "secret"));
        assert!(!users.verify("alice", "Secret"));
    }

    #[test]
    fn the_dummy_hash_is_well_formed() {
        assert!(is_bcrypt(DUMMY_HASH));
        assert!(bcrypt::verify("x", DUMMY_HASH).is_ok());
    }

    #[test]
    fn refuses_other_hash_kinds_naming_the_line() {
        for (line, kind) in [
            ("bob:$apr1$abc$def", "MD5"),
            ("bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "SHA-1"),
            ("bob:plaintext", "plain"),
            ("bob:rqXexS6ZhobKA", "crypt"),
        ] {
            let text = format!("alice:{}\n{line}\n", hash("x", 4));
            let err = Htpasswd::parse(&text).unwrap_err().0;
            assert!(err.contains("line 2") && err.contains("bob") && err.contains("bcrypt"), "{kind}: {err}");
        }
        assert!(Htpasswd::parse("no-colon\n").unwrap_err().0.contains("line 1"));
        let twice = format!("a:{h}\na:{h}\n", h = hash("x", 4));
        assert!(Htpasswd::parse(&twice).unwrap_err().0.contains("twice"));
    }
}
