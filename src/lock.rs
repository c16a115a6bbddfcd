//! The table lock: a file created with `O_EXCL` under `_citrine/locks/`, holding a lease.
//!
//! A lock is taken over when its lease has expired, or at once when it names a process on this
//! host that no longer exists (a killed run). Takeover renames the stale lock away first, so of
//! two runs racing to take over, exactly one wins. A heartbeat thread renews the lease while
//! the run lives.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::commit::report::rfc3339;
use crate::error::{Error, Result};
use crate::lake::{write_atomic, Lake};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LockBody {
    run_id: String,
    pid: u32,
    host: String,
    expires_ms: i64,
}

/// A held table lock; released on drop.
#[derive(Debug)]
pub struct TableLock {
    path: PathBuf,
    run_id: String,
    stop: Arc<AtomicBool>,
    heartbeat: Option<JoinHandle<()>>,
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

impl TableLock {
    /// Take the lock of `table` for `run_id` with `lease`.
    pub fn acquire(lake: &Lake, table: &str, run_id: &str, lease: Duration) -> Result<Self> {
        let path = lake.lock_path(table);
        let dir = path.parent().expect("locks folder");
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let body = LockBody {
            run_id: run_id.to_owned(),
            pid: std::process::id(),
            host: hostname(),
            expires_ms: now_ms() + lease.as_millis() as i64,
        };
        for _ in 0..3 {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    let text = serde_json::to_vec(&body).expect("plain data");
                    f.write_all(&text)
                        .and_then(|()| f.sync_all())
                        .map_err(|e| Error::io(&path, e))?;
                    let stop = Arc::new(AtomicBool::new(false));
                    let heartbeat = Some(spawn_heartbeat(path.clone(), body, lease, stop.clone()));
                    return Ok(Self {
                        path,
                        run_id: run_id.to_owned(),
                        stop,
                        heartbeat,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = match read_body(&path) {
                        Some(h) => h,
                        // Vanished or half-written: a lock being released or created; retry.
                        None => {
                            std::thread::sleep(Duration::from_millis(50));
                            continue;
                        }
                    };
                    let dead = holder.host == body.host && !process_alive(holder.pid);
                    if holder.expires_ms > now_ms() && !dead {
                        return Err(Error::Locked {
                            table: table.to_owned(),
                            holder: holder.run_id,
                            pid: holder.pid,
                            host: holder.host,
                            expires: rfc3339(holder.expires_ms),
                        });
                    }
                    let stale = dir.join(format!(".{table}.stale-{run_id}"));
                    if std::fs::rename(&path, &stale).is_ok() {
                        tracing::warn!(table, stale_run = %holder.run_id, "took over a stale table lock");
                        let _ = std::fs::remove_file(&stale);
                    }
                }
                Err(e) => return Err(Error::io(&path, e)),
            }
        }
        Err(Error::Corrupt {
            path: path.display().to_string(),
            message: "the lock kept changing while being taken".into(),
        })
    }

    /// The run holding this lock.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Release now (also done on drop).
    pub fn release(mut self) {
        self.release_inner();
    }

    fn release_inner(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.heartbeat.take() {
            h.thread().unpark();
            let _ = h.join();
        }
        if read_body(&self.path).is_some_and(|b| b.run_id == self.run_id) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Drop for TableLock {
    fn drop(&mut self) {
        self.release_inner();
    }
}

fn read_body(path: &std::path::Path) -> Option<LockBody> {
    let text = std::fs::read(path).ok()?;
    serde_json::from_slice(&text).ok()
}

fn spawn_heartbeat(
    path: PathBuf,
    mut body: LockBody,
    lease: Duration,
    stop: Arc<AtomicBool>,
) -> JoinHandle<()> {
    std::thread::spawn(move || loop {
        std::thread::park_timeout(lease / 3);
        if stop.load(Ordering::SeqCst) {
            return;
        }
        // Renew only a lock that is still ours.
        if read_body(&path).is_some_and(|b| b.run_id == body.run_id) {
            body.expires_ms = now_ms() + lease.as_millis() as i64;
            let _ = write_atomic(&path, &serde_json::to_vec(&body).expect("plain data"));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_run_is_refused_then_admitted_after_release() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::new(dir.path());
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
        let lake = Lake::new(dir.path());
        let path = lake.lock_path("t");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let expired = LockBody {
            run_id: "old".into(),
            pid: std::process::id(),
            host: hostname(),
            expires_ms: 0,
        };
        std::fs::write(&path, serde_json::to_vec(&expired).unwrap()).unwrap();
        drop(TableLock::acquire(&lake, "t", "new", Duration::from_secs(60)).unwrap());
        // A holder whose process is gone (pid far above any live one).
        let dead = LockBody {
            run_id: "dead".into(),
            pid: u32::MAX - 1,
            host: hostname(),
            expires_ms: i64::MAX,
        };
        std::fs::write(&path, serde_json::to_vec(&dead).unwrap()).unwrap();
        drop(TableLock::acquire(&lake, "t", "new2", Duration::from_secs(60)).unwrap());
        // A live holder elsewhere with a valid lease is respected.
        let remote = LockBody {
            run_id: "remote".into(),
            pid: 1,
            host: "other-host".into(),
            expires_ms: i64::MAX,
        };
        std::fs::write(&path, serde_json::to_vec(&remote).unwrap()).unwrap();
        assert!(TableLock::acquire(&lake, "t", "new3", Duration::from_secs(60)).is_err());
    }
}
