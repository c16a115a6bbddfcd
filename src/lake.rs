//! The lake's layout (DESIGN.md section 1): the one place that knows where things live.
//!
//! ```text
//! <root>/data/<table>/customer=<c>/dt=<YYYY-MM-DD>/part-<run_id>-<n>.parquet
//! <root>/complete/<table>/<run_id>.json       run report
//! <root>/complete/<table>/<run_id>.manifest   the marker, written last
//! <root>/_citrine/                            catalog, locks, rejects
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Suffix of the marker objects.
pub const MANIFEST_SUFFIX: &str = ".manifest";
/// Suffix of the run reports.
pub const REPORT_SUFFIX: &str = ".json";

/// A local lake rooted at a folder.
#[derive(Debug, Clone)]
pub struct Lake {
    root: PathBuf,
}

impl Lake {
    /// The lake at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `data/<table>`.
    pub fn data_dir(&self, table: &str) -> PathBuf {
        self.root.join("data").join(table)
    }

    /// `complete/<table>`.
    pub fn complete_dir(&self, table: &str) -> PathBuf {
        self.root.join("complete").join(table)
    }

    /// The run report of `run_id`.
    pub fn report_path(&self, table: &str, run_id: &str) -> PathBuf {
        self.complete_dir(table)
            .join(format!("{run_id}{REPORT_SUFFIX}"))
    }

    /// The marker of `run_id`.
    pub fn manifest_path(&self, table: &str, run_id: &str) -> PathBuf {
        self.complete_dir(table)
            .join(format!("{run_id}{MANIFEST_SUFFIX}"))
    }

    /// `_citrine`, never read by query engines.
    pub fn internal_dir(&self) -> PathBuf {
        self.root.join("_citrine")
    }

    /// The table's lock file.
    pub fn lock_path(&self, table: &str) -> PathBuf {
        self.internal_dir()
            .join("locks")
            .join(format!("{table}.lock"))
    }

    /// Where a run's rejected rows go.
    pub fn rejects_dir(&self, table: &str, run_id: &str) -> PathBuf {
        self.internal_dir().join("rejects").join(table).join(run_id)
    }

    /// The local catalog file.
    pub fn catalog_path(&self) -> PathBuf {
        self.internal_dir().join("catalog.json")
    }

    /// A `file://` URL for a path in the lake (absolute, as Redshift-style manifests want).
    pub fn url(&self, path: &Path) -> String {
        let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        format!("file://{}", abs.display())
    }

    /// The run ids that have a marker, sorted (run ids sort by start time).
    pub fn committed_runs(&self, table: &str) -> Result<Vec<String>> {
        let dir = self.complete_dir(table);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&dir, e)),
        };
        let mut runs = Vec::new();
        for entry in entries {
            let name = entry.map_err(|e| Error::io(&dir, e))?.file_name();
            if let Some(run) = name.to_string_lossy().strip_suffix(MANIFEST_SUFFIX) {
                runs.push(run.to_owned());
            }
        }
        runs.sort();
        Ok(runs)
    }
}

/// Write `bytes` to `path` atomically: a temporary sibling, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// A new run id: UTC start time to the millisecond, then random hex; ids sort by start.
pub fn new_run_id() -> String {
    use std::hash::{BuildHasher, RandomState};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let micros = now.as_micros() as i64;
    let days = micros.div_euclid(crate::parse::timestamp::MICROS_PER_DAY);
    let (y, m, d) = crate::parse::timestamp::civil_from_days(days);
    let secs_of_day = micros.rem_euclid(crate::parse::timestamp::MICROS_PER_DAY) / 1_000_000;
    let millis = (micros / 1000).rem_euclid(1000);
    let random = RandomState::new().hash_one((micros, std::process::id())) as u32;
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}{millis:03}Z-{random:08x}",
        secs_of_day / 3600,
        secs_of_day / 60 % 60,
        secs_of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_sort_by_time_and_differ() {
        let a = new_run_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_run_id();
        assert!(a < b, "{a} {b}");
        assert_eq!(a.len(), "20261123T090102123Z-0123abcd".len());
    }

    #[test]
    fn committed_runs_are_the_ones_with_markers() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::new(dir.path());
        assert!(lake.committed_runs("t").unwrap().is_empty());
        write_atomic(&lake.report_path("t", "r1"), b"{}").unwrap();
        write_atomic(&lake.report_path("t", "r2"), b"{}").unwrap();
        write_atomic(&lake.manifest_path("t", "r2"), b"{}").unwrap();
        assert_eq!(lake.committed_runs("t").unwrap(), ["r2"]);
    }
}
