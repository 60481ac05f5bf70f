use clap::Parser;

use augur::cli::{Cli, Command};
use augur::commands;

fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Demo(args) => commands::demo::run(args),
        Command::Simulate(args) => commands::simulate::run(args),
        Command::Replay(args) => commands::replay::run(args),
        Command::Eval(args) => commands::eval::run(&args.flag_form()),
        Command::Validate(args) => commands::validate::run(args),
        Command::Run(args) => commands::run::run(args),
        Command::Alerts(args) => commands::alerts::run(args),
        Command::Record(args) => commands::record::run(args),
        Command::Train(args) => commands::train::run(args),
        Command::Diagnose(args) => commands::diagnose::run(args),
        Command::Twin(args) => commands::twin::run(args),
    };
    if let Err(error) = result {
        eprintln!("error: {}", augur::display::error_line(&error));
        std::process::exit(match error.downcast_ref::<augur::config::ConfigError>() {
            Some(_) => 2,
            None => commands::supervise::failure_status(),
        });
    }
}
