//! `loadgen`: drives an adaptivemsg server with a fixed workload. See the
//! library docs and `loadgen/README.md`.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use loadgen::opts::OutputFormat;
use loadgen::{Launch, Options};

fn main() {
    let opts = Options::parse();
    if opts.internal_serve {
        if let Err(e) = loadgen::embedded::serve_until_stdin_closes(loadgen::embedded::ServerSpec {
            kind: opts.server,
            cores: opts.server_cores,
            recovery: opts.recovery,
            spin: opts.server_spin,
        }) {
            eprintln!("loadgen: embedded server: {e}");
            std::process::exit(1);
        }
        return;
    }
    let launch = match std::env::current_exe() {
        Ok(exe) if !opts.server_in_process => Launch::ChildProcess(exe),
        _ => Launch::InProcess,
    };
    let report = match loadgen::run(&opts, &launch) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::exit(2);
        }
    };
    let text = match opts.output {
        OutputFormat::Text => report.to_text(),
        OutputFormat::Json => report.to_json() + "\n",
    };
    print!("{text}");
    if let Some(path) = &opts.out {
        if let Err(e) = std::fs::write(path, &text) {
            eprintln!("loadgen: writing {}: {e}", path.display());
            std::process::exit(2);
        }
    }
}
