//! The table lock: an object `_citrine/locks/<table>.lock` created only if absent (S3
//! `If-None-Match: *`; locally a link that fails if the name exists), holding a lease.
//!
//! A lock is taken over when its lease has expired, or at once when it names a process on this
//! host that no longer exists (a killed run). Takeover replaces the stale lock only if it is
//! still the version that was judged stale (S3 `If-Match: <etag>`), so of two runs racing to
//! take over, exactly one wins. A heartbeat thread renews the lease the same way while the run
//! lives.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::commit::report::rfc3339;
pub use crate::error::Holder;
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
    /// The command holding it (`run`, `forget`, `repair`, …), for the messages of those it
    /// refuses; absent in locks older citrines wrote.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    command: String,
}

/// Who holds `body`'s lock.
fn holder_of(body: &LockBody) -> Holder {
    Holder {
        run_id: body.run_id.clone(),
        pid: body.pid,
        host: body.host.clone(),
        expires: rfc3339(body.expires_ms),
        planned: body.shared,
        command: body.command.clone(),
    }
}

/// The lock as this process last wrote it: the body, the version the store gave that write,
/// and when the write's request was sent (its lease counts from no later than that).
#[derive(Debug)]
struct Held {
    body: LockBody,
    version: Version,
    renewed: Instant,
}

/// A held table lock; released on drop.
///
/// Holding it is what entitles a process to change its table: every irreversible step (a
/// marker, deleting files the run did not write, deleting inputs after a commit) is preceded
/// by [`TableLock::fence`], which fails once another run has taken the lock over.
#[derive(Debug)]
pub struct TableLock {
    store: Arc<dyn Store>,
    table: String,
    key: String,
    lease: Duration,
    held: Arc<Mutex<Held>>,
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

/// The least lease a fenced step may start with: a third of the lease (the heartbeat's
/// period). A fence renews the lease, so this is only short of the whole lease when the
/// renewal itself took two thirds of it (a process paused while renewing).
pub fn fence_margin(lease: Duration) -> Duration {
    lease / 3
}

impl TableLock {
    /// Take the lock of `table` for `run_id` with `lease`, on behalf of `command` (named to
    /// those the lock refuses).
    pub fn acquire(
        lake: &Lake,
        table: &str,
        run_id: &str,
        lease: Duration,
        command: &str,
    ) -> Result<Self> {
        let store = lake.store().clone();
        let key = lake.lock_key(table);
        let mut body = LockBody {
            run_id: run_id.to_owned(),
            pid: std::process::id(),
            host: hostname(),
            expires_ms: 0,
            shared: false,
            command: command.to_owned(),
        };
        for attempt in 0..5 {
            let sent = Instant::now();
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
                                holder: Box::new(holder_of(&holder)),
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
                let held = Held {
                    body,
                    version,
                    renewed: sent,
                };
                return Ok(Self::held(store, table, key, held, lease, false));
            }
            // Lost a race with another run creating or taking over the lock: look again.
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(Error::Corrupt {
            path: store.url(&key),
            message: "the lock kept changing while being taken".into(),
        })
    }

    /// Take `table`'s lock for `command` under a fresh id (a run names itself with
    /// [`TableLock::name_run`] once it knows its id).
    pub fn acquire_for(lake: &Lake, table: &str, lease: Duration, command: &str) -> Result<Self> {
        Self::acquire(lake, table, &crate::lake::new_run_id(), lease, command)
    }

    /// The run holding this lock.
    pub fn run_id(&self) -> String {
        self.state().body.run_id.clone()
    }

    fn state(&self) -> MutexGuard<'_, Held> {
        // The heartbeat never panics while holding it; a poisoned state is still the truth.
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Name the run holding this lock `run_id` (a run learns its id once it has read the
    /// ledger under the lock), renewing the lease: from here on commands that name the run
    /// find it as the holder. Fails with [`Error::Fenced`] if the lock was taken over.
    pub fn name_run(&self, run_id: &str) -> Result<()> {
        let mut held = self.state();
        if held.body.run_id == run_id {
            return Ok(());
        }
        let mut body = held.body.clone();
        body.run_id = run_id.to_owned();
        self.renew_as(&mut held, body)
    }

    /// Fence before an irreversible step: prove that this lock is still the one this process
    /// took (the same version, renewed since only by its own heartbeat; for a planned run,
    /// still that run's) by renewing its lease with a write conditional on that version, and
    /// that at least [`fence_margin`] of the renewed lease is left. Fails with
    /// [`Error::Fenced`], changing nothing, once another run has taken the lock over (this
    /// process was paused past its lease: a stopped container, a frozen VM).
    pub fn fence(&self) -> Result<()> {
        let mut held = self.state();
        let body = held.body.clone();
        self.renew_as(&mut held, body)?;
        let left = self.lease.saturating_sub(held.renewed.elapsed());
        if left < fence_margin(self.lease) {
            return Err(self.fenced(&held.body.run_id, "its lease ran short while renewing"));
        }
        Ok(())
    }

    /// Write `body` (its lease renewed from now) over the version `held` names.
    fn renew_as(&self, held: &mut Held, mut body: LockBody) -> Result<()> {
        let sent = Instant::now();
        let renewed = if body.shared {
            renew_shared(self.store.as_ref(), &self.key, &body.run_id, self.lease)
        } else {
            body.expires_ms = now_ms() + self.lease.as_millis() as i64;
            self.store
                .replace(&self.key, &encode(&body), &held.version)
                .map(|v| v.map(|v| (body, v)))
        };
        match renewed? {
            Some((body, version)) => {
                *held = Held {
                    body,
                    version,
                    renewed: sent,
                };
                Ok(())
            }
            None => Err(self.fenced(&held.body.run_id, "another run took it over")),
        }
    }

    fn fenced(&self, run: &str, why: &str) -> Error {
        let holder = read_body(self.store.as_ref(), &self.key)
            .ok()
            .flatten()
            .map(|(b, _)| Box::new(holder_of(&b)));
        tracing::error!(table = %self.table, run, why, "the run no longer holds its table's lock");
        Error::Fenced {
            table: self.table.clone(),
            run: run.to_owned(),
            holder,
        }
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
            command: "plan".into(),
        };
        let version = self.state().version.clone();
        let handed = self.store.replace(&self.key, &encode(&body), &version)?;
        // From here on the lock is the run's, whatever happened: never released on drop.
        self.keep_on_drop = true;
        match handed {
            Some(_) => Ok(()),
            None => Err(self.fenced(run_id, "taken over before the plan was handed to the run")),
        }
    }

    /// Resume the lock a sharded run `run_id` holds (see [`TableLock::hand_over`]), renewing
    /// its lease to `lease` from now and keeping it renewed while this process lives. Several
    /// processes of the run may hold it at once. Fails with [`Error::NotHolder`] when another
    /// run holds the lock, or none does.
    pub fn resume(lake: &Lake, table: &str, run_id: &str, lease: Duration) -> Result<Self> {
        let store = lake.store().clone();
        let key = lake.lock_key(table);
        let sent = Instant::now();
        let Some((body, version)) = renew_shared(store.as_ref(), &key, run_id, lease)? else {
            return Err(Error::NotHolder {
                table: table.to_owned(),
                run: run_id.to_owned(),
                holder: Self::holder(lake, table)?.map(Box::new),
            });
        };
        let held = Held {
            body,
            version,
            renewed: sent,
        };
        Ok(Self::held(store, table, key, held, lease, true))
    }

    /// The lock as `held`, renewed by a heartbeat from now on.
    fn held(
        store: Arc<dyn Store>,
        table: &str,
        key: String,
        held: Held,
        lease: Duration,
        keep_on_drop: bool,
    ) -> Self {
        let held = Arc::new(Mutex::new(held));
        let stop = Arc::new(AtomicBool::new(false));
        let heartbeat = Some(spawn_heartbeat(
            store.clone(),
            key.clone(),
            held.clone(),
            lease,
            stop.clone(),
        ));
        Self {
            store,
            table: table.to_owned(),
            key,
            lease,
            held,
            stop,
            heartbeat,
            keep_on_drop,
        }
    }

    /// Who holds `table`'s lock, if any (readable) lock is there.
    pub fn holder(lake: &Lake, table: &str) -> Result<Option<Holder>> {
        Ok(read_body(lake.store().as_ref(), &lake.lock_key(table))?.map(|(b, _)| holder_of(&b)))
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
        let ours = {
            let held = self.state();
            read_body(self.store.as_ref(), &self.key)
                .ok()
                .flatten()
                .is_some_and(|(b, v)| {
                    b.run_id == held.body.run_id && (b.shared || held.version == v)
                })
        };
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
    held: Arc<Mutex<Held>>,
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
        let Ok(mut current) = held.lock() else {
            return;
        };
        let sent = Instant::now();
        let mut body = current.body.clone();
        let renewed = if body.shared {
            renew_shared(store.as_ref(), &key, &body.run_id, lease)
        } else {
            body.expires_ms = now_ms() + lease.as_millis() as i64;
            store
                .replace(&key, &encode(&body), &current.version)
                .map(|v| v.map(|v| (body, v)))
        };
        match renewed {
            Ok(Some((body, version))) => {
                *current = Held {
                    body,
                    version,
                    renewed: sent,
                }
            }
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

    fn holder_run(lake: &Lake) -> Option<String> {
        TableLock::holder(lake, "t").unwrap().map(|h| h.run_id)
    }

    #[test]
    fn second_run_is_refused_then_admitted_after_release() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::local(dir.path()).unwrap();
        let a = TableLock::acquire(&lake, "t", "run-a", Duration::from_secs(60), "run").unwrap();
        let err =
            TableLock::acquire(&lake, "t", "run-b", Duration::from_secs(60), "run").unwrap_err();
        assert!(err.to_string().contains("locked by run run-a"), "{err}");
        // Other tables are independent.
        drop(TableLock::acquire(&lake, "u", "run-b", Duration::from_secs(60), "run").unwrap());
        a.release();
        TableLock::acquire(&lake, "t", "run-b", Duration::from_secs(60), "run").unwrap();
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
            command: String::new(),
        };
        lake.store().write(&key, &encode(&expired)).unwrap();
        drop(TableLock::acquire(&lake, "t", "new", Duration::from_secs(60), "run").unwrap());
        // A holder whose process is gone (pid far above any live one).
        let dead = LockBody {
            run_id: "dead".into(),
            pid: u32::MAX - 1,
            host: hostname(),
            expires_ms: i64::MAX,
            shared: false,
            command: String::new(),
        };
        lake.store().write(&key, &encode(&dead)).unwrap();
        drop(TableLock::acquire(&lake, "t", "new2", Duration::from_secs(60), "run").unwrap());
        // A live holder elsewhere with a valid lease is respected.
        let remote = LockBody {
            run_id: "remote".into(),
            pid: 1,
            host: "other-host".into(),
            expires_ms: i64::MAX,
            shared: false,
            command: String::new(),
        };
        lake.store().write(&key, &encode(&remote)).unwrap();
        assert!(TableLock::acquire(&lake, "t", "new3", Duration::from_secs(60), "run").is_err());
    }

    #[test]
    fn a_sharded_run_holds_the_lock_across_processes_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::local(dir.path()).unwrap();
        let lease = Duration::from_secs(60);
        let lock = TableLock::acquire(&lake, "t", "planner", lease, "run").unwrap();
        lock.hand_over("run-1", lease).unwrap();
        // Handed over: held by the run, not by the (live or gone) process that planned it.
        assert_eq!(holder_run(&lake).as_deref(), Some("run-1"));
        let err = TableLock::acquire(&lake, "t", "other", lease, "run").unwrap_err();
        assert!(
            matches!(err, Error::Locked { ref holder, .. } if holder.run_id == "run-1" && holder.planned),
            "{err}"
        );
        // Two of the run's processes resume it at once; dropping them leaves it held.
        let a = TableLock::resume(&lake, "t", "run-1", lease).unwrap();
        let b = TableLock::resume(&lake, "t", "run-1", lease).unwrap();
        drop(a);
        drop(b);
        assert_eq!(holder_run(&lake).as_deref(), Some("run-1"));
        // Another run cannot resume it.
        let err = TableLock::resume(&lake, "t", "run-2", lease).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(
                "run run-2 does not hold table t's lock (planned run run-1 (citrine plan), pid "
            ) && text.ends_with(
                " holds it); was it committed, aborted, or taken over after its lease passed?"
            ),
            "{text}"
        );
        TableLock::resume(&lake, "t", "run-1", lease)
            .unwrap()
            .release();
        assert_eq!(holder_run(&lake), None);
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
            let err =
                TableLock::acquire(&lake, "t", "new", Duration::from_secs(60), "run").unwrap_err();
            assert!(
                err.to_string().contains(
                    "the table lock is unreadable; it is taken over once its lease has passed"
                ),
                "{err}"
            );
            // Written more than a lease ago (a 1 ms lease here): taken over.
            std::thread::sleep(Duration::from_millis(20));
            let lock =
                TableLock::acquire(&lake, "t", "new", Duration::from_millis(1), "run").unwrap();
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

    #[test]
    fn a_fence_renews_the_lock_it_took_and_fails_once_it_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::local(dir.path()).unwrap();
        let key = lake.lock_key("t");
        let lease = Duration::from_secs(60);
        let lock = TableLock::acquire(&lake, "t", "provisional", lease, "run").unwrap();
        lock.name_run("run-a").unwrap();
        assert_eq!(holder_run(&lake).as_deref(), Some("run-a"));
        let before = read_body(lake.store().as_ref(), &key).unwrap().unwrap();
        // A later expiry (bodies written in the same millisecond are the same bytes).
        std::thread::sleep(Duration::from_millis(5));
        lock.fence().unwrap();
        let after = read_body(lake.store().as_ref(), &key).unwrap().unwrap();
        assert_ne!(before.1, after.1, "a fence is a conditional write");
        assert_eq!(after.0.run_id, "run-a");
        // Another run takes the lock over (as it does once the lease has passed).
        let taker = LockBody {
            run_id: "run-b".into(),
            pid: 1,
            host: "other-host".into(),
            expires_ms: i64::MAX,
            shared: false,
            command: "run".into(),
        };
        lake.store()
            .replace(&key, &encode(&taker), &after.1)
            .unwrap()
            .unwrap();
        let err = lock.fence().unwrap_err();
        assert!(
            matches!(&err, Error::Fenced { run, holder: Some(h), .. } if run == "run-a" && h.run_id == "run-b"),
            "{err}"
        );
        assert!(lock.name_run("run-c").is_err());
        // The fence changed nothing, and releasing leaves the taker's lock alone.
        lock.release();
        assert_eq!(holder_run(&lake).as_deref(), Some("run-b"));
    }

    #[test]
    fn a_planned_runs_fence_holds_while_the_lock_names_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::local(dir.path()).unwrap();
        let lease = Duration::from_secs(60);
        TableLock::acquire(&lake, "t", "planner", lease, "plan")
            .unwrap()
            .hand_over("run-1", lease)
            .unwrap();
        let a = TableLock::resume(&lake, "t", "run-1", lease).unwrap();
        let b = TableLock::resume(&lake, "t", "run-1", lease).unwrap();
        // Another process of the run renewing does not fence this one.
        b.fence().unwrap();
        a.fence().unwrap();
        // Expired and taken over by a plain run: both are fenced.
        let key = lake.lock_key("t");
        let (_, version) = read_body(lake.store().as_ref(), &key).unwrap().unwrap();
        let taker = LockBody {
            run_id: "run-2".into(),
            pid: std::process::id(),
            host: hostname(),
            expires_ms: i64::MAX,
            shared: false,
            command: "run".into(),
        };
        lake.store()
            .replace(&key, &encode(&taker), &version)
            .unwrap()
            .unwrap();
        assert!(matches!(a.fence().unwrap_err(), Error::Fenced { .. }));
        assert!(matches!(b.fence().unwrap_err(), Error::Fenced { .. }));
    }

    #[test]
    fn the_margin_is_a_third_of_the_lease() {
        assert_eq!(
            fence_margin(Duration::from_secs(600)),
            Duration::from_secs(200)
        );
        assert_eq!(fence_margin(Duration::from_secs(3)), Duration::from_secs(1));
    }
}
