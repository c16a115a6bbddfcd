//! Test hooks: a process stops at a named stage (`CITRINE_TEST_STALL=<stage>`) and waits, so
//! tests can kill it there (SIGKILL at a run's worst moments) or change its inputs and let it
//! go on (`CITRINE_TEST_RESUME=<file>`). Without the variable set, nothing happens.

use std::time::Instant;

/// Environment variable naming a stage at which a run stops and waits (tests kill it there).
pub const STALL_ENV: &str = "CITRINE_TEST_STALL";

/// Environment variable naming a file whose appearance ends a stall (tests change an input
/// while the run waits, then let it go on); without it a stall lasts 300 s.
pub const RESUME_ENV: &str = "CITRINE_TEST_RESUME";

/// True when the test hook names `stage` (code that must first reach the moment to stop at).
pub fn armed(stage: &str) -> bool {
    std::env::var(STALL_ENV).is_ok_and(|s| s == stage)
}

/// Stop here if the test hook names `stage`, until the resume file appears.
pub fn stall_point(stage: &str) {
    if armed(stage) {
        eprintln!("citrine: stalled at {stage} ({STALL_ENV})");
        let resume = std::env::var_os(RESUME_ENV).map(std::path::PathBuf::from);
        let until = Instant::now() + std::time::Duration::from_secs(300);
        while Instant::now() < until && !resume.as_ref().is_some_and(|r| r.exists()) {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}
