//! `loadgen`: drives an adaptivemsg server with a fixed workload. See the
//! library docs and `loadgen/README.md`.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use loadgen::opts::OutputFormat;
use loadgen::{Launch, Options};

/// `loadgen merge FILE...` / `loadgen report FILE`: read `--intervals` logs back.
fn logs(cmd: &str, files: &[String]) -> Result<(), String> {
    use loadgen::intervals;
    if files.is_empty() {
        return Err(format!("usage: loadgen {cmd} FILE..."));
    }
    let paths: Vec<&std::path::Path> = files.iter().map(std::path::Path::new).collect();
    if cmd == "report" {
        for p in &paths {
            println!("{}:", p.display());
            for iv in intervals::read(p).map_err(|e| e.to_string())? {
                println!(
                    "  t={:>6.1}s  {:>9} replies  p50 {:>9.1}  p99 {:>9.1}  p99.9 {:>9.1}  max {:>9.1} µs",
                    iv.t_s, iv.requests, iv.p50_us, iv.p99_us, iv.p999_us, iv.max_us
                );
            }
        }
    }
    let total = intervals::merge(&paths).map_err(|e| e.to_string())?;
    println!("merged {} file(s): {}", paths.len(), intervals::summary(&total));
    Ok(())
}

/// `loadgen sweep ...`: the steps, the table and the knee.
fn sweep(args: &[String]) -> i32 {
    use loadgen::sweep::{self, SweepOptions};
    let mut argv = vec!["loadgen sweep".to_string()];
    argv.extend_from_slice(args);
    let o = SweepOptions::parse_from(argv);
    let launch = match std::env::current_exe() {
        Ok(exe) if !o.run.server_in_process => Launch::ChildProcess(exe),
        _ => Launch::InProcess,
    };
    match sweep::run(&o, &launch) {
        Ok(s) => {
            print!("{}", loadgen::plot::table(&s));
            0
        }
        Err(e) => {
            eprintln!("loadgen sweep: {e}");
            2
        }
    }
}

/// `loadgen plot FILE... --svg OUT`: sweeps on one plot, and their tables.
fn plot(args: &[String]) -> i32 {
    use loadgen::sweep::{plot_files, PlotOptions};
    let mut argv = vec!["loadgen plot".to_string()];
    argv.extend_from_slice(args);
    let o = PlotOptions::parse_from(argv);
    match plot_files(&o) {
        Ok(sweeps) => {
            for s in &sweeps {
                println!("{}:", s.label);
                print!("{}", loadgen::plot::table(s));
            }
            println!("wrote {}", o.svg.display());
            0
        }
        Err(e) => {
            eprintln!("loadgen plot: {e}");
            2
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("sweep") => std::process::exit(sweep(&args[2..])),
        Some("plot") => std::process::exit(plot(&args[2..])),
        _ => {}
    }
    if let Some(cmd @ ("merge" | "report")) = args.get(1).map(String::as_str) {
        if let Err(e) = logs(cmd, &args[2..]) {
            eprintln!("loadgen: {e}");
            std::process::exit(2);
        }
        return;
    }
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
