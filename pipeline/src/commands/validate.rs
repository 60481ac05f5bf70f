//! `augur validate CONFIG`.

use crate::cli::ValidateArgs;
use crate::config::Config;

pub fn run(args: &ValidateArgs) -> anyhow::Result<()> {
    let config = Config::load(&args.config)?;
    println!(
        "{}: ok (window {} ms, {} SLO(s), detector {})",
        args.config.display(),
        config.window.length_ms,
        config.slo.len(),
        config.detector.name
    );
    Ok(())
}
