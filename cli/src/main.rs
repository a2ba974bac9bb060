//! `songpei`: the phone's core on a laptop, for coordinators with a laptop, for demos and for
//! scripted tests. Every command opens the encrypted store in `--data`, does one thing and exits.
//! Exit code 2 means the input was refused (nothing was written); 1 means anything else failed.

mod args;
mod error;
mod key;
mod phone;
mod qr;
mod run;
mod show;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match args::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // Help and version go to stdout with success; usage errors are bad input.
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let json = cli.json;
    match run::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            e.report(json);
            ExitCode::from(e.exit_code())
        }
    }
}
