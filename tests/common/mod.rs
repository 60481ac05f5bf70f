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

/// A fault plan file in `dir`: CPU contention of `magnitude` on `service` for
/// `[start_ms, start_ms + duration_ms)` of the run.
pub fn cpu_fault_plan(
    dir: &Path,
    service: &str,
    start_ms: u64,
    duration_ms: u64,
    magnitude: f64,
) -> std::path::PathBuf {
    let plan = dir.join(format!("fault-{service}-{start_ms}.toml"));
    std::fs::write(
        &plan,
        format!(
            "[[fault]]\nkind = \"cpu_contention\"\nservice = \"{service}\"\nstart_ms = {start_ms}\nduration_ms = {duration_ms}\nmagnitude = {magnitude:.1}\n"
        ),
    )
    .unwrap();
    plan
}

/// `augur simulate --topology T --duration D --seed N --faults PLAN --out DIR/OUT`, run in
/// `dir`; returns the output directory.
pub fn simulate(
    dir: &Path,
    out: &str,
    topology: &str,
    duration: &str,
    seed: u64,
    plan: &Path,
) -> std::path::PathBuf {
    let out = dir.join(out);
    ok(&augur(
        &[
            "simulate",
            "--topology",
            topology,
            "--duration",
            duration,
            "--seed",
            &seed.to_string(),
            "--faults",
            plan.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        dir,
    ));
    out
}
