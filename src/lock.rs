//! The table lock: an object `_citrine/locks/<table>.lock` created only if absent (S3
//! `If-None-Match: *`; locally a link that fails if the name exists), holding a lease.
//!
//! A lock is taken over when its lease has expired, or at once when it names a process on this
//! host that no longer exists (a killed run). Takeover replaces the stale lock only if it is
//! still the version that was judged stale (S3 `If-Match: <etag>`), so of two runs racing to
//! take over, exactly one wins. A heartbeat thread renews the lease the same way while the run
//! lives.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::commit::report::rfc3339;
use crate::error::{Error, Result};
use crate::lake::Lake;
use crate::store::{Store, Version};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LockBody {
    run_id: String,
    pid: u32,
    host: String,
    expires_ms: i64,
    /// Held by a sharded run across processes (plan, shards, commit): it ends with its lease,
    /// never because the process that wrote it is gone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    shared: bool,
}

/// A held table lock; released on drop.
#[derive(Debug)]
pub struct TableLock {
    store: Arc<dyn Store>,
    key: String,
    run_id: String,
    version: Arc<Mutex<Version>>,
    stop: Arc<AtomicBool>,
    heartbeat: Option<JoinHandle<()>>,
    /// A sharded run's lock, resumed by one of its processes: dropping it stops the heartbeat
    /// and leaves the lock to the run; only [`TableLock::release`] ends it.
    keep_on_drop: bool,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
}

/// This machine's name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

fn process_alive(pid: u32) -> bool {
    let proc = std::path::Path::new("/proc");
    // Where /proc is missing we cannot tell; assume alive and rely on the lease.
    !proc.exists() || proc.join(pid.to_string()).exists()
}

fn encode(body: &LockBody) -> Vec<u8> {
    serde_json::to_vec(body).expect("plain data")
}

fn read_body(store: &dyn Store, key: &str) -> Result<Option<(LockBody, Version)>> {
    Ok(match read_lock(store, key)? {
        Found::Held(body, version) => Some((body, version)),
        Found::Absent | Found::Unreadable(_) => None,
    })
}

/// What the lock object holds.
enum Found {
    Absent,
    Held(LockBody, Version),
    /// Bytes that are not a lock body (empty or cut short by a crash, or written by hand).
    Unreadable(Version),
}

fn read_lock(store: &dyn Store, key: &str) -> Result<Found> {
    Ok(match store.read(key)? {
        None => Found::Absent,
        Some(v) => match serde_json::from_slice(&v.bytes) {
            Ok(body) => Found::Held(body, v.version),
            Err(_) => Found::Unreadable(v.version),
        },
    })
}

/// An unreadable lock's expiry: its last write plus one lease (it may be a lock another
/// citrine version wrote, so it is respected for that long).
fn unreadable_expiry(store: &dyn Store, key: &str, lease: Duration) -> Result<i64> {
    let written_ms = store
        .head(key)?
        .map_or(0, |o| (o.mtime_ns / 1_000_000) as i64);
    Ok(written_ms + lease.as_millis() as i64)
}

impl TableLock {
    /// Take the lock of `table` for `run_id` with `lease`.
    pub fn acquire(lake: &Lake, table: &str, run_id: &str, lease: Duration) -> Result<Self> {
        let store = lake.store().clone();
        let key = lake.lock_key(table);
        let mut body = LockBody {
            run_id: run_id.to_owned(),
            pid: std::process::id(),
            host: hostname(),
            expires_ms: 0,
            shared: false,
        };
        for attempt in 0..5 {
            body.expires_ms = now_ms() + lease.as_millis() as i64;
            // Most runs find the table free: create first, read only when that is refused.
            let created = if attempt == 0 {
                store.create(&key, &encode(&body))?
            } else {
                None
            };
            let taken = match created {
                Some(version) => Some(version),
                None => match read_lock(store.as_ref(), &key)? {
                    Found::Absent => store.create(&key, &encode(&body))?,
                    Found::Unreadable(version) => {
                        let expires = unreadable_expiry(store.as_ref(), &key, lease)?;
                        if expires > now_ms() {
                            return Err(Error::Corrupt {
                            path: store.url(&key),
                            message: format!(
                                "the table lock is unreadable; it is taken over once its lease has passed, at {}",
                                rfc3339(expires)
                            ),
                        });
                        }
                        let won = store.replace(&key, &encode(&body), &version)?;
                        if won.is_some() {
                            tracing::warn!(
                                table,
                                "took over an unreadable table lock past its lease"
                            );
                        }
                        won
                    }
                    Found::Held(holder, version) => {
                        let dead = !holder.shared
                            && holder.host == body.host
                            && !process_alive(holder.pid);
                        if holder.expires_ms > now_ms() && !dead {
                            return Err(Error::Locked {
                                table: table.to_owned(),
                                holder: holder.run_id,
                                pid: holder.pid,
                                host: holder.host,
                                expires: rfc3339(holder.expires_ms),
                            });
                        }
                        let won = store.replace(&key, &encode(&body), &version)?;
                        if won.is_some() {
                            tracing::warn!(table, stale_run = %holder.run_id, "took over a stale table lock");
                        }
                        won
                    }
                },
            };
            if let Some(version) = taken {
                return Ok(Self::held(store, key, body, version, lease, false));
            }
            // Lost a race with another run creating or taking over the lock: look again.
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(Error::Corrupt {
            path: store.url(&key),
            message: "the lock kept changing while being taken".into(),
        })
    }

    /// The run holding this lock.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Hand the lock to the sharded run `run_id` and leave it held when this process exits:
    /// it names the run (not this process) and holds for `lease`, renewed by the run's shards
    /// ([`TableLock::resume`]) and ended by its commit or abort.
    pub fn hand_over(mut self, run_id: &str, lease: Duration) -> Result<()> {
        self.stop_heartbeat();
        let body = LockBody {
            run_id: run_id.to_owned(),
            pid: std::process::id(),
            host: hostname(),
            expires_ms: now_ms() + lease.as_millis() as i64,
            shared: true,
        };
        let version = self.version.lock().expect("lock version").clone();
        let handed = self.store.replace(&self.key, &encode(&body), &version)?;
        // From here on the lock is the run's, whatever happened: never released on drop.
        self.keep_on_drop = true;
        match handed {
            Some(_) => Ok(()),
            None => Err(Error::Corrupt {
                path: self.store.url(&self.key),
                message: "the table lock was taken over before the plan was written".into(),
            }),
        }
    }

    /// Resume the lock a sharded run `run_id` holds (see [`TableLock::hand_over`]), renewing
    /// its lease to `lease` from now and keeping it renewed while this process lives. Several
    /// processes of the run may hold it at once. Fails with [`Error::NotHolder`] when another
    /// run holds the lock, or none does.
    pub fn resume(lake: &Lake, table: &str, run_id: &str, lease: Duration) -> Result<Self> {
        let store = lake.store().clone();
        let key = lake.lock_key(table);
        let Some((body, version)) = renew_shared(store.as_ref(), &key, run_id, lease)? else {
            return Err(Error::NotHolder {
                table: table.to_owned(),
                run: run_id.to_owned(),
                holder: read_body(store.as_ref(), &key)?.map(|(b, _)| b.run_id),
            });
        };
        Ok(Self::held(store, key, body, version, lease, true))
    }

    /// The lock as held with `body` at `version`, renewed by a heartbeat from now on.
    fn held(
        store: Arc<dyn Store>,
        key: String,
        body: LockBody,
        version: Version,
        lease: Duration,
        keep_on_drop: bool,
    ) -> Self {
        let run_id = body.run_id.clone();
        let version = Arc::new(Mutex::new(version));
        let stop = Arc::new(AtomicBool::new(false));
        let heartbeat = Some(spawn_heartbeat(
            store.clone(),
            key.clone(),
            body,
            version.clone(),
            lease,
            stop.clone(),
        ));
        Self {
            store,
            key,
            run_id,
            version,
            stop,
            heartbeat,
            keep_on_drop,
        }
    }

    /// The run holding `table`'s lock, if any (readable) lock is there.
    pub fn holder(lake: &Lake, table: &str) -> Result<Option<String>> {
        Ok(read_body(lake.store().as_ref(), &lake.lock_key(table))?.map(|(b, _)| b.run_id))
    }

    /// Release now (also done on drop, except for a resumed sharded run's lock, which only
    /// this releases).
    pub fn release(mut self) {
        self.keep_on_drop = false;
        self.release_inner();
    }

    fn stop_heartbeat(&mut self) -> bool {
        // Once: `release` and then the drop both come here.
        if self.stop.swap(true, Ordering::SeqCst) {
            return false;
        }
        if let Some(h) = self.heartbeat.take() {
            h.thread().unpark();
            let _ = h.join();
        }
        true
    }

    fn release_inner(&mut self) {
        if !self.stop_heartbeat() || self.keep_on_drop {
            return;
        }
        let ours = read_body(self.store.as_ref(), &self.key)
            .ok()
            .flatten()
            .is_some_and(|(b, v)| {
                b.run_id == self.run_id
                    && (b.shared || self.version.lock().is_ok_and(|mine| *mine == v))
            });
        if ours {
            if let Err(e) = self.store.delete(&self.key) {
                tracing::warn!(lock = %self.store.url(&self.key), error = %e, "could not release the table lock; it expires with its lease");
            }
        }
    }
}

impl Drop for TableLock {
    fn drop(&mut self) {
        self.release_inner();
    }
}

fn spawn_heartbeat(
    store: Arc<dyn Store>,
    key: String,
    mut body: LockBody,
    version: Arc<Mutex<Version>>,
    lease: Duration,
    stop: Arc<AtomicBool>,
) -> JoinHandle<()> {
    std::thread::spawn(move || loop {
        std::thread::park_timeout(lease / 3);
        if stop.load(Ordering::SeqCst) {
            return;
        }
        // Renew only the version we wrote: a lock taken over meanwhile is left alone. A sharded
        // run's processes renew one lock, so theirs renew whatever version names their run.
        let Ok(mut current) = version.lock() else {
            return;
        };
        let renewed = if body.shared {
            renew_shared(store.as_ref(), &key, &body.run_id, lease).map(|r| r.map(|(_, v)| v))
        } else {
            body.expires_ms = now_ms() + lease.as_millis() as i64;
            store.replace(&key, &encode(&body), &current)
        };
        match renewed {
            Ok(Some(v)) => *current = v,
            Ok(None) => {
                tracing::error!(lock = %store.url(&key), "the table lock was taken over by another run");
                return;
            }
            Err(e) => {
                tracing::warn!(lock = %store.url(&key), error = %e, "could not renew the table lock")
            }
        }
    })
}

/// Renew the lease of the sharded run `run_id`'s lock to `lease` from now, if that run holds
/// it: the renewed body and version, or `None` when another run (or none) holds the lock.
/// Another of the run's processes renewing at the same moment makes this read again.
fn renew_shared(
    store: &dyn Store,
    key: &str,
    run_id: &str,
    lease: Duration,
) -> Result<Option<(LockBody, Version)>> {
    for _ in 0..20 {
        let Some((mut body, version)) = read_body(store, key)? else {
            return Ok(None);
        };
        if body.run_id != run_id || !body.shared {
            return Ok(None);
        }
        body.expires_ms = body.expires_ms.max(now_ms() + lease.as_millis() as i64);
        if let Some(v) = store.replace(key, &encode(&body), &version)? {
            return Ok(Some((body, v)));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(Error::Corrupt {
        path: store.url(key),
        message: "the table lock kept changing while being renewed".into(),
    })
}

/// Delete the temporary files that runs killed while writing `table`'s lock left beside it
/// (`.<table>.lock.<pid>.<n>.tmp`, a local lake's staging names): those of processes gone from
/// this host, or older than `lease`. Returns how many were removed.
pub fn remove_stale_temp_files(lake: &Lake, table: &str, lease: Duration) -> Result<usize> {
    let key = lake.lock_key(table);
    let (folder, name) = key.rsplit_once('/').unwrap_or(("", &key));
    let prefix = format!(".{name}.");
    let store = lake.store();
    let mut removed = 0;
    for object in store.list(folder)? {
        let file = object.key.rsplit('/').next().unwrap_or_default();
        let Some(rest) = file
            .strip_prefix(&prefix)
            .and_then(|r| r.strip_suffix(".tmp"))
        else {
            continue;
        };
        let pid = rest.split('.').next().and_then(|p| p.parse::<u32>().ok());
        let old = object.mtime_ns / 1_000_000 + (lease.as_millis() as i128) < now_ms() as i128;
        if old || pid.is_some_and(|p| p != std::process::id() && !process_alive(p)) {
            store.delete(&object.key)?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_run_is_refused_then_admitted_after_release() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::local(dir.path()).unwrap();
        let a = TableLock::acquire(&lake, "t", "run-a", Duration::from_secs(60)).unwrap();
        let err = TableLock::acquire(&lake, "t", "run-b", Duration::from_secs(60)).unwrap_err();
        assert!(err.to_string().contains("locked by run run-a"), "{err}");
        // Other tables are independent.
        drop(TableLock::acquire(&lake, "u", "run-b", Duration::from_secs(60)).unwrap());
        a.release();
        TableLock::acquire(&lake, "t", "run-b", Duration::from_secs(60)).unwrap();
    }

    #[test]
    fn expired_or_dead_holders_are_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::local(dir.path()).unwrap();
        let key = lake.lock_key("t");
        let expired = LockBody {
            run_id: "old".into(),
            pid: std::process::id(),
            host: hostname(),
            expires_ms: 0,
            shared: false,
        };
        lake.store().write(&key, &encode(&expired)).unwrap();
        drop(TableLock::acquire(&lake, "t", "new", Duration::from_secs(60)).unwrap());
        // A holder whose process is gone (pid far above any live one).
        let dead = LockBody {
            run_id: "dead".into(),
            pid: u32::MAX - 1,
            host: hostname(),
            expires_ms: i64::MAX,
            shared: false,
        };
        lake.store().write(&key, &encode(&dead)).unwrap();
        drop(TableLock::acquire(&lake, "t", "new2", Duration::from_secs(60)).unwrap());
        // A live holder elsewhere with a valid lease is respected.
        let remote = LockBody {
            run_id: "remote".into(),
            pid: 1,
            host: "other-host".into(),
            expires_ms: i64::MAX,
            shared: false,
        };
        lake.store().write(&key, &encode(&remote)).unwrap();
        assert!(TableLock::acquire(&lake, "t", "new3", Duration::from_secs(60)).is_err());
    }

    #[test]
    fn a_sharded_run_holds_the_lock_across_processes_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::local(dir.path()).unwrap();
        let lease = Duration::from_secs(60);
        let lock = TableLock::acquire(&lake, "t", "planner", lease).unwrap();
        lock.hand_over("run-1", lease).unwrap();
        // Handed over: held by the run, not by the (live or gone) process that planned it.
        assert_eq!(
            TableLock::holder(&lake, "t").unwrap().as_deref(),
            Some("run-1")
        );
        let err = TableLock::acquire(&lake, "t", "other", lease).unwrap_err();
        assert!(
            matches!(err, Error::Locked { ref holder, .. } if holder == "run-1"),
            "{err}"
        );
        // Two of the run's processes resume it at once; dropping them leaves it held.
        let a = TableLock::resume(&lake, "t", "run-1", lease).unwrap();
        let b = TableLock::resume(&lake, "t", "run-1", lease).unwrap();
        drop(a);
        drop(b);
        assert_eq!(
            TableLock::holder(&lake, "t").unwrap().as_deref(),
            Some("run-1")
        );
        // Another run cannot resume it.
        let err = TableLock::resume(&lake, "t", "run-2", lease).unwrap_err();
        assert_eq!(
            err.to_string(),
            "run run-2 does not hold table t's lock (run run-1 holds it); was it committed, aborted, or taken over after its lease passed?"
        );
        TableLock::resume(&lake, "t", "run-1", lease)
            .unwrap()
            .release();
        assert_eq!(TableLock::holder(&lake, "t").unwrap(), None);
        assert!(matches!(
            TableLock::resume(&lake, "t", "run-1", lease).unwrap_err(),
            Error::NotHolder { holder: None, .. }
        ));
    }

    #[test]
    fn an_unreadable_lock_holds_for_one_lease_then_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::local(dir.path()).unwrap();
        let key = lake.lock_key("t");
        for garbage in [&b""[..], b"{\"run_id\": \"cut sh"] {
            lake.store().write(&key, garbage).unwrap();
            let err = TableLock::acquire(&lake, "t", "new", Duration::from_secs(60)).unwrap_err();
            assert!(
                err.to_string().contains(
                    "the table lock is unreadable; it is taken over once its lease has passed"
                ),
                "{err}"
            );
            // Written more than a lease ago (a 1 ms lease here): taken over.
            std::thread::sleep(Duration::from_millis(20));
            let lock = TableLock::acquire(&lake, "t", "new", Duration::from_millis(1)).unwrap();
            assert_eq!(
                read_body(lake.store().as_ref(), &key)
                    .unwrap()
                    .unwrap()
                    .0
                    .run_id,
                "new"
            );
            lock.release();
        }
    }

    #[test]
    fn temp_files_of_dead_writers_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::local(dir.path()).unwrap();
        let locks = dir.path().join("_citrine/locks");
        std::fs::create_dir_all(&locks).unwrap();
        let dead = format!(".t.lock.{}.0.tmp", u32::MAX - 1);
        let mine = format!(".t.lock.{}.3.tmp", std::process::id());
        for f in [
            &dead,
            &mine,
            &".u.lock.1.0.tmp".to_string(),
            &"t.lock".to_string(),
        ] {
            std::fs::write(locks.join(f), b"x").unwrap();
        }
        let lease = Duration::from_secs(600);
        assert_eq!(remove_stale_temp_files(&lake, "t", lease).unwrap(), 1);
        let mut left: Vec<_> = std::fs::read_dir(&locks)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [mine, ".u.lock.1.0.tmp".to_string(), "t.lock".to_string()]
        );
    }
}
