//! The on-disk cache: one JSON file per (API URL, client, user), mode 0600 in a 0700
//! directory, holding the last key and token. The file name is a hash, so neither the URL nor
//! the API key appears in it; the client is identified by a hash of its API key, never the key.
//! A lock file beside it serialises fetches between processes. The directory must be this
//! user's own and closed to others, and neither file is opened through a symbolic link: a key
//! planted there would be handed to every AWS call.

use crate::atomic::{create_private_dir, write_private};
use crate::clock::Seconds;
use crate::key_times::MAX_PROMISE_SECONDS;
use crate::lock::FileLock;
use crate::private_dir::DirError;
use crate::secret::Secret;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Bumped when the layout changes; an entry of another format is ignored and rewritten.
const FORMAT: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CachedKey {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub expiration: Seconds,
    pub refresh_after: Seconds,
    pub fetched_at: Seconds,
}

impl CachedKey {
    /// Servable without asking the API: no newer key expected yet and still promised.
    pub fn is_fresh(&self, now: Seconds) -> bool {
        self.is_valid(now) && now < self.refresh_after
    }

    /// Still inside keyrot's promise, so usable while the API cannot be reached. A key
    /// fetched "in the future" (the clock was ahead then, and has been set back) has an
    /// unknown promise in this clock's terms, so it is neither.
    pub fn is_valid(&self, now: Seconds) -> bool {
        self.fetched_at <= now && now < self.expiration
    }

    /// The key with its times bounded as at its fetch (`key_times::cached_key`): a cache file
    /// is not trusted to promise more than keyrot ever does.
    pub fn capped(mut self) -> Self {
        let cap = self.fetched_at.saturating_add(MAX_PROMISE_SECONDS);
        self.expiration = self.expiration.min(cap);
        self.refresh_after = self.refresh_after.min(self.expiration);
        self
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CachedToken {
    pub value: Secret,
    /// Shortly before the token's own expiry, so it is never sent about to expire.
    pub reuse_until: Seconds,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    pub format: u32,
    pub api: String,
    pub user: String,
    pub key: Option<CachedKey>,
    pub token: Option<CachedToken>,
    /// The minimum wait before the next fetch, while fetches keep returning the same key
    /// (`key_times::next_backoff`); absent from files written before it existed.
    #[serde(default)]
    pub refetch_backoff: Seconds,
}

impl Entry {
    pub fn new(api: &str, user: &str) -> Self {
        Self {
            format: FORMAT,
            api: api.to_owned(),
            user: user.to_owned(),
            key: None,
            token: None,
            refetch_backoff: 0,
        }
    }
}

#[derive(Debug)]
pub enum Loaded {
    Missing,
    /// Unreadable, unparsable, another format or another identity: ignored, then rewritten.
    Corrupt(String),
    Found(Entry),
}

pub struct Cache {
    dir: PathBuf,
    path: PathBuf,
    lock_path: PathBuf,
    api: String,
    user: String,
}

impl Cache {
    pub fn new(dir: &Path, api: &str, api_key: &Secret, user: &str) -> Self {
        let client = Sha256::digest(api_key.expose().as_bytes());
        let mut hasher = Sha256::new();
        hasher.update(api.as_bytes());
        hasher.update([0]);
        hasher.update(client);
        hasher.update([0]);
        hasher.update(user.as_bytes());
        let digest = hasher.finalize();
        let name: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        Self {
            dir: dir.to_owned(),
            path: dir.join(format!("{name}.json")),
            lock_path: dir.join(format!("{name}.lock")),
            api: api.to_owned(),
            user: user.to_owned(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates the directory, or checks an existing one is this user's and private.
    pub fn check_dir(&self) -> Result<(), DirError> {
        crate::private_dir::ensure(&self.dir)
    }

    pub fn load(&self) -> Loaded {
        let text = match crate::nofollow::read(&self.path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Loaded::Missing,
            Err(error) => return Loaded::Corrupt(error.to_string()),
        };
        match serde_json::from_slice::<Entry>(&text) {
            Ok(entry) if entry.format != FORMAT => {
                Loaded::Corrupt(format!("format {} instead of {FORMAT}", entry.format))
            }
            Ok(entry) if entry.api != self.api || entry.user != self.user => {
                Loaded::Corrupt("written for another API or user".into())
            }
            Ok(mut entry) => {
                entry.key = entry.key.map(CachedKey::capped);
                Loaded::Found(entry)
            }
            // serde_json's message names a position, never the content.
            Err(error) => Loaded::Corrupt(error.to_string()),
        }
    }

    pub fn store(&self, entry: &Entry) -> std::io::Result<()> {
        create_private_dir(&self.dir)?;
        let text = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
        write_private(&self.path, &text)
    }

    /// Waits up to `wait` for the fetch lock. `None` if it could not be had in time (a stuck
    /// holder) or the lock file is not a plain file: the caller then fetches without it rather
    /// than failing.
    pub fn lock(&self, wait: Duration) -> Option<FileLock> {
        create_private_dir(&self.dir).ok()?;
        crate::lock::lock(&self.lock_path, wait).ok()
    }
}

/// Where caches go without `--cache-dir`: `$XDG_CACHE_HOME/keyrot` or `~/.cache/keyrot`
/// (`~/Library/Caches/keyrot` on macOS).
pub fn default_dir() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from);
    if cfg!(target_os = "macos") {
        return home.map(|h| h.join("Library").join("Caches").join("keyrot"));
    }
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute())
        .or_else(|| home.map(|h| h.join(".cache")))
        .map(|dir| dir.join("keyrot"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("keyrot-cache-{name}-{}", std::process::id()))
    }

    fn entry() -> Entry {
        let mut entry = Entry::new("http://127.0.0.1:1/v1", "alice");
        entry.key = Some(CachedKey {
            access_key_id: "AKIA1".into(),
            secret_access_key: Secret::new("s3cr3t"),
            expiration: 2_000,
            refresh_after: 1_500,
            fetched_at: 1_000,
        });
        entry
    }

    #[test]
    fn round_trips_and_names_the_file_by_hash() {
        let dir = temp_dir("roundtrip");
        let cache = Cache::new(&dir, "http://127.0.0.1:1/v1", &Secret::new("k"), "alice");
        assert!(matches!(cache.load(), Loaded::Missing));
        cache.store(&entry()).expect("store");
        assert!(matches!(cache.load(), Loaded::Found(found) if found == entry()));
        let name = cache.path().file_name().expect("name").to_string_lossy();
        assert!(!name.contains("alice") && !name.contains("127"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn clients_users_and_apis_get_their_own_entries() {
        let dir = temp_dir("identity");
        let paths: Vec<PathBuf> = [
            ("http://127.0.0.1:1/v1", "k1", "alice"),
            ("http://127.0.0.1:1/v1", "k2", "alice"),
            ("http://127.0.0.1:1/v1", "k1", "bob"),
            ("http://127.0.0.1:2/v1", "k1", "alice"),
        ]
        .iter()
        .map(|(api, key, user)| {
            Cache::new(&dir, api, &Secret::new(*key), user)
                .path()
                .to_owned()
        })
        .collect();
        for (i, a) in paths.iter().enumerate() {
            for b in &paths[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn garbage_and_foreign_entries_are_corrupt_not_fatal() {
        let dir = temp_dir("corrupt");
        let cache = Cache::new(&dir, "http://127.0.0.1:1/v1", &Secret::new("k"), "alice");
        create_private_dir(&dir).expect("dir");
        std::fs::write(cache.path(), b"{not json").expect("write");
        assert!(matches!(cache.load(), Loaded::Corrupt(_)));
        let mut other = entry();
        other.user = "bob".into();
        cache.store(&other).expect("store");
        assert!(matches!(cache.load(), Loaded::Corrupt(_)));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn freshness_and_validity() {
        let key = entry().key.expect("key");
        assert!(key.is_fresh(1_499));
        assert!(!key.is_fresh(1_500));
        assert!(key.is_valid(1_999));
        assert!(!key.is_valid(2_000));
        assert!(
            !key.is_valid(999) && !key.is_fresh(999),
            "fetched after now: the clock was set back since"
        );
    }

    #[test]
    fn a_cached_promise_is_capped_at_the_longest_keyrot_makes() {
        let dir = temp_dir("cap");
        let cache = Cache::new(&dir, "http://127.0.0.1:1/v1", &Secret::new("k"), "alice");
        let mut long = entry();
        if let Some(key) = long.key.as_mut() {
            key.expiration = key.fetched_at + 30 * 86_400;
            key.refresh_after = key.fetched_at + 10 * 86_400;
        }
        cache.store(&long).expect("store");
        let Loaded::Found(found) = cache.load() else {
            panic!("not found");
        };
        let key = found.key.expect("key");
        assert_eq!(key.expiration, 1_000 + MAX_PROMISE_SECONDS);
        assert_eq!(key.refresh_after, 1_000 + MAX_PROMISE_SECONDS);
        assert!(!key.is_valid(1_000 + MAX_PROMISE_SECONDS));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(unix)]
    #[test]
    fn a_cache_file_or_lock_behind_a_symlink_is_not_used() {
        let dir = temp_dir("symlink");
        let cache = Cache::new(&dir, "http://127.0.0.1:1/v1", &Secret::new("k"), "alice");
        cache.check_dir().expect("dir");
        let planted = dir.join("planted");
        std::fs::write(&planted, serde_json::to_vec(&entry()).expect("json")).expect("write");
        std::os::unix::fs::symlink(&planted, cache.path()).expect("symlink");
        assert!(matches!(cache.load(), Loaded::Corrupt(why) if why.contains("symbolic link")));
        std::os::unix::fs::symlink(&planted, &cache.lock_path).expect("symlink");
        assert!(cache.lock(Duration::ZERO).is_none());
        // Storing replaces the link itself; the file it pointed to is left as it was.
        let mut mine = entry();
        mine.refetch_backoff = 5;
        cache.store(&mine).expect("store");
        assert!(matches!(cache.load(), Loaded::Found(found) if found == mine));
        let planted_entry: Entry =
            serde_json::from_slice(&std::fs::read(&planted).expect("read")).expect("json");
        assert_eq!(planted_entry, entry());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
