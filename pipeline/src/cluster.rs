//! Cluster mode: one job over several processes, as timely's own `-n/-p/-h` flags set it
//! up. In: the CLI's `--processes`, `--process`, `--hostfile` and `-w`; out, the
//! `timely::Config` for this process. Workers are numbered globally (process `p`'s thread
//! `t` is worker `p * threads + t`), so Kafka partitions spread over every worker of every
//! process by that index.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;

/// `augur run`/`replay` flags for running one job over several processes.
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// Processes in the job (each runs `-w` workers); more than one needs `--hostfile`.
    #[arg(long, short = 'n', default_value_t = 1)]
    pub processes: usize,
    /// This process's index in `0..processes`.
    #[arg(long, short = 'p', default_value_t = 0)]
    pub process: usize,
    /// `host:port` of every process, one per line, in process order (timely's hostfile).
    #[arg(long)]
    pub hostfile: Option<PathBuf>,
}

/// A validated multi-process setup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    pub process: usize,
    /// One `host:port` per process.
    pub addresses: Vec<String>,
}

impl ClusterArgs {
    /// `None` for a single process.
    pub fn cluster(&self) -> anyhow::Result<Option<Cluster>> {
        if self.processes == 0 {
            bail!("--processes must be at least 1");
        }
        if self.process >= self.processes {
            bail!(
                "--process {} is out of range for --processes {} (0..{})",
                self.process,
                self.processes,
                self.processes
            );
        }
        if self.processes == 1 {
            return Ok(None);
        }
        let Some(path) = &self.hostfile else {
            bail!(
                "--processes {} needs --hostfile (one host:port per process)",
                self.processes
            );
        };
        let addresses = read_hostfile(path, self.processes)?;
        Ok(Some(Cluster {
            process: self.process,
            addresses,
        }))
    }
}

/// The first `processes` addresses of a hostfile (blank lines and `#` comments skipped).
fn read_hostfile(path: &Path, processes: usize) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the hostfile {}", path.display()))?;
    let addresses: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    if addresses.len() < processes {
        bail!(
            "the hostfile {} lists {} addresses; --processes {} needs one per process",
            path.display(),
            addresses.len(),
            processes
        );
    }
    if let Some(bad) = addresses.iter().find(|a| a.rsplit_once(':').is_none()) {
        bail!("the hostfile {}: {bad:?} is not host:port", path.display());
    }
    Ok(addresses.into_iter().take(processes).collect())
}

/// timely's configuration: `workers` threads in this process, and the cluster if any.
pub fn timely_config(workers: usize, cluster: Option<&Cluster>) -> timely::Config {
    let workers = workers.max(1);
    match cluster {
        None => timely::Config::process(workers),
        Some(cluster) => timely::Config {
            communication: timely::CommunicationConfig::Cluster {
                threads: workers,
                process: cluster.process,
                addresses: cluster.addresses.clone(),
                report: false,
                zerocopy: false,
            },
            worker: timely::WorkerConfig::default(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(processes: usize, process: usize, hostfile: Option<PathBuf>) -> ClusterArgs {
        ClusterArgs {
            processes,
            process,
            hostfile,
        }
    }

    #[test]
    fn flags_make_a_cluster_or_say_what_is_wrong() -> anyhow::Result<()> {
        assert_eq!(args(1, 0, None).cluster()?, None);
        let err = args(2, 0, None).cluster().err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("--hostfile")));
        let err = args(2, 2, None).cluster().err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("out of range")));

        let dir = tempfile::tempdir()?;
        let hosts = dir.path().join("hosts");
        std::fs::write(&hosts, "# the job\n127.0.0.1:2101\n\n127.0.0.1:2102\n")?;
        let cluster = args(2, 1, Some(hosts.clone())).cluster()?;
        assert_eq!(
            cluster,
            Some(Cluster {
                process: 1,
                addresses: vec!["127.0.0.1:2101".into(), "127.0.0.1:2102".into()],
            })
        );
        let err = args(3, 0, Some(hosts))
            .cluster()
            .err()
            .map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("lists 2 addresses")),
            "{err:?}"
        );
        Ok(())
    }
}
