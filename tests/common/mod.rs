//! Helpers shared by the end-to-end tests of the `augur` binary.
#![allow(clippy::unwrap_used, dead_code)] // test helpers; not every test file uses each

use std::path::Path;
use std::process::{Command, Output};

/// The binary under test: `AUGUR_BIN` when set (a copy taken right after the build, for
/// machines where several checkouts share one target directory), else cargo's.
pub fn augur_bin() -> String {
    std::env::var("AUGUR_BIN")
        .ok()
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_augur").to_string())
}

/// Runs `augur args` in `cwd` to the end.
pub fn augur(args: &[&str], cwd: &Path) -> Output {
    Command::new(augur_bin())
        .args(args)
        .current_dir(cwd)
        .env("OMP_NUM_THREADS", "1")
        .output()
        .expect("augur runs")
}

/// Its stdout, after asserting it succeeded (showing both streams when it didn't).
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "augur failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
