//! `augur alerts`: in, the alert topic (every partition, from now or from the beginning);
//! out, one readable line per alert on stdout (`--json`: the raw JSON). Commits nothing.

use std::io::Write;
use std::time::{Duration, Instant};

use augur_connectors::kafka::{BROKER_WAIT, PartitionConsumer, StartAt, ensure_reachable};
use augur_operators::Alert;

use crate::cli::AlertsArgs;
use crate::commands::{load_config, stop_on_signal};
use crate::display::alert_line;

pub fn run(args: &AlertsArgs) -> anyhow::Result<()> {
    let config = load_config(args.config.as_deref())?;
    let mut settings = config.kafka.settings(args.brokers.as_deref());
    settings.group_id = format!("augur-alerts-{}", std::process::id());
    ensure_reachable(&settings, BROKER_WAIT)?;
    let topic = args
        .topic
        .clone()
        .unwrap_or_else(|| config.kafka.alerts_topic.clone());
    let start = if args.from_beginning {
        StartAt::Beginning
    } else {
        StartAt::End
    };
    let mut consumer = PartitionConsumer::open(&settings, &[topic], 0, 1, start, false)?;
    let stop = stop_on_signal();
    let mut seen = 0usize;
    let mut last = Instant::now();
    let mut out = std::io::stdout().lock();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let mut lines = Vec::new();
        let polled = consumer.poll(256, Duration::from_millis(200), |m| {
            if args.json {
                lines.push(String::from_utf8_lossy(m.payload).into_owned());
            } else {
                match serde_json::from_slice::<Alert>(m.payload) {
                    Ok(alert) => lines.push(alert_line(&alert)),
                    Err(e) => lines.push(format!(
                        "(not an alert at partition {} offset {}: {e})",
                        m.partition, m.offset
                    )),
                }
            }
        });
        if polled.messages > 0 {
            last = Instant::now();
        }
        for line in lines {
            writeln!(out, "{line}")?;
            seen += 1;
            if args.count.is_some_and(|n| seen >= n) {
                out.flush()?;
                return Ok(());
            }
        }
        out.flush()?;
        if args.idle_exit.is_some_and(|idle| last.elapsed() >= idle) {
            break;
        }
    }
    Ok(())
}
