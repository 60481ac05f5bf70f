//! The restart strategy of `augur run` (`[restart]`): the job runs in a child process, and
//! when that process dies — a crash inside a native library (librdkafka, libtorch), a panic,
//! a failure the job could not survive in place — it is started again after a backoff and
//! resumes from the committed offsets, losing nothing (docs/kafka.md, "Delivery
//! guarantee"). Flink's `exponential-delay` restart strategy is the model.
//!
//! **In:** the command line of `augur run`. **Out:** the child's exit status, once it stopped
//! for good: it exited 0 (a stop), failed before it ever started (a setup error, as a
//! broker not reachable at start: no restart, the error is the answer), or restarted more
//! than `max_restarts` times without `reset_after_ms` of running in between.
//!
//! SIGTERM / Ctrl-C reach the supervisor, which passes each one on to the job (a second
//! one quits it at once, as without supervision). The job runs in its own process group,
//! so a terminal's Ctrl-C is delivered once, and dies with the supervisor (a SIGKILL of the
//! supervisor kills the job too, as a SIGKILL of an unsupervised job would).

use std::process::{Command, ExitStatus};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Set in the job's environment: the number of restarts before this process (0 for the
/// first); its presence means "you are the supervised job".
pub const RESTARTS_ENV: &str = "AUGUR_JOB_RESTARTS";

/// The exit status of a job process that failed before it started reading: a setup error,
/// which a restart repeats rather than survives when nothing has run yet.
pub const NOT_STARTED: i32 = 3;

/// What `augur run` does when its job process dies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestartStrategy {
    /// Start it again after `initial_delay_ms`, doubling per restart up to `max_delay_ms`.
    #[default]
    Exponential,
    /// Run the job in this process; a crash ends it (leave restarts to systemd or
    /// Kubernetes).
    None,
}

/// `[restart]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestartConfig {
    /// Default `exponential`.
    pub strategy: RestartStrategy,
    /// Wait before the first restart, ms. Default 1000.
    pub initial_delay_ms: u64,
    /// Longest wait between restarts, ms. Default 60000.
    pub max_delay_ms: u64,
    /// Restarts allowed before giving up (exit 1). Default 10.
    pub max_restarts: u32,
    /// A job process that ran this long before dying starts the count (and the delay)
    /// afresh, ms. Default 600000.
    pub reset_after_ms: u64,
}

impl Default for RestartConfig {
    fn default() -> Self {
        RestartConfig {
            strategy: RestartStrategy::Exponential,
            initial_delay_ms: 1000,
            max_delay_ms: 60_000,
            max_restarts: 10,
            reset_after_ms: 600_000,
        }
    }
}

impl RestartConfig {
    /// The field at fault and why, if the settings can't work.
    pub fn check(&self) -> Result<(), (&'static str, &'static str)> {
        if self.strategy == RestartStrategy::None {
            return Ok(());
        }
        if self.initial_delay_ms == 0 {
            return Err(("restart.initial_delay_ms", "must be at least 1"));
        }
        if self.max_delay_ms < self.initial_delay_ms {
            return Err((
                "restart.max_delay_ms",
                "must be at least restart.initial_delay_ms",
            ));
        }
        if self.max_restarts == 0 {
            return Err((
                "restart.max_restarts",
                "must be at least 1 (strategy = \"none\" turns restarts off)",
            ));
        }
        Ok(())
    }

    /// The wait before restart number `n` (1 for the first).
    pub fn delay(&self, n: u32) -> Duration {
        let doubled = self
            .initial_delay_ms
            .saturating_mul(1u64 << (n.saturating_sub(1)).min(32));
        Duration::from_millis(doubled.min(self.max_delay_ms))
    }
}

/// Set once the job has started reading: a failure after it is one a restart can survive.
static STARTED: AtomicBool = AtomicBool::new(false);

/// The job is up (its sources are being opened): failures from now on are restarted.
pub fn mark_started() {
    STARTED.store(true, Ordering::SeqCst);
}

/// The exit status of a failed `augur run` process: [`NOT_STARTED`] for a supervised job
/// that failed before it started, else 1.
pub fn failure_status() -> i32 {
    if is_supervised_job() && !STARTED.load(Ordering::SeqCst) {
        NOT_STARTED
    } else {
        1
    }
}

/// Whether this process is the supervised job (so it runs the job itself).
pub fn is_supervised_job() -> bool {
    std::env::var_os(RESTARTS_ENV).is_some()
}

/// Restarts of the job before this process, as the supervisor told it (0 unsupervised).
pub fn restarts_so_far() -> u64 {
    std::env::var(RESTARTS_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Runs this same command line as the job, in a child process, restarting it as `config`
/// says; returns the exit code to end with.
pub fn supervise(config: &RestartConfig) -> anyhow::Result<i32> {
    let exe = std::env::current_exe()?;
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let child_pid = Arc::new(AtomicI32::new(0));
    let stopping = Arc::new(AtomicBool::new(false));
    {
        let child_pid = Arc::clone(&child_pid);
        let stopping = Arc::clone(&stopping);
        let installed = ctrlc::set_handler(move || {
            stopping.store(true, Ordering::SeqCst);
            let pid = child_pid.load(Ordering::SeqCst);
            if pid > 0 {
                send_sigterm(pid);
            }
        });
        if let Err(e) = installed {
            tracing::warn!("cannot install the Ctrl-C handler: {e}");
        }
    }
    let mut restarts: u32 = 0;
    let mut total: u64 = 0;
    loop {
        let started = Instant::now();
        let mut command = Command::new(&exe);
        command.args(&args).env(RESTARTS_ENV, total.to_string());
        own_group_dying_with_parent(&mut command);
        let mut child = command.spawn()?;
        child_pid.store(child.id() as i32, Ordering::SeqCst);
        // A signal that came while the child was being spawned is passed on now.
        if stopping.load(Ordering::SeqCst) {
            send_sigterm(child.id() as i32);
        }
        let status = child.wait()?;
        child_pid.store(0, Ordering::SeqCst);
        let ran = started.elapsed();
        if stopping.load(Ordering::SeqCst) || status.success() {
            return Ok(status.code().unwrap_or(1));
        }
        match status.code() {
            Some(2) => return Ok(2),
            Some(NOT_STARTED) if total == 0 => return Ok(1),
            _ => {}
        }
        if ran >= Duration::from_millis(config.reset_after_ms) {
            restarts = 0;
        }
        if restarts >= config.max_restarts {
            eprintln!(
                "augur run: the job process {} after {:.1} s; giving up after {restarts} restarts without {} s of running in between",
                describe(status),
                ran.as_secs_f64(),
                config.reset_after_ms / 1000
            );
            return Ok(1);
        }
        restarts += 1;
        total += 1;
        let delay = config.delay(restarts);
        eprintln!(
            "augur run: the job process {} after {:.1} s; starting it again in {:.1} s from the committed offsets (restart {restarts} of at most {})",
            describe(status),
            ran.as_secs_f64(),
            delay.as_secs_f64(),
            config.max_restarts
        );
        let wake = Instant::now() + delay;
        while Instant::now() < wake {
            if stopping.load(Ordering::SeqCst) {
                return Ok(1);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// "was killed by signal 11 (SIGSEGV)" or "exited with status 1".
fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal} ({})", signal_name(signal)),
        (None, None) => "ended".to_string(),
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGKILL => "SIGKILL",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        _ => "signal",
    }
}

#[allow(unsafe_code)]
fn send_sigterm(pid: i32) {
    // SAFETY: `kill` takes no pointers and is async-signal-safe.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
}

/// The child leads its own process group (a terminal's Ctrl-C goes to the supervisor
/// alone, which passes it on once) and is killed when the supervisor dies.
#[allow(unsafe_code)]
fn own_group_dying_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    command.process_group(0);
    let supervisor = std::process::id() as i32;
    // SAFETY: between fork and exec only async-signal-safe calls: `prctl` and `getppid`.
    unsafe {
        command.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            // The supervisor may have died before prctl took effect.
            if libc::getppid() != supervisor {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap() {
        let config = RestartConfig {
            initial_delay_ms: 1000,
            max_delay_ms: 5000,
            ..RestartConfig::default()
        };
        let delays: Vec<u64> = (1..=5)
            .map(|n| config.delay(n).as_millis() as u64)
            .collect();
        assert_eq!(delays, vec![1000, 2000, 4000, 5000, 5000]);
        assert_eq!(config.delay(200).as_millis(), 5000);
    }

    #[test]
    fn settings_that_cannot_work_name_the_field() {
        let bad = RestartConfig {
            max_delay_ms: 10,
            ..RestartConfig::default()
        };
        assert_eq!(bad.check().map_err(|e| e.0), Err("restart.max_delay_ms"));
        let none = RestartConfig {
            strategy: RestartStrategy::None,
            max_restarts: 0,
            ..RestartConfig::default()
        };
        assert!(none.check().is_ok());
    }
}
