//! `xrepl-chaos [--seed N] [--minutes M] [--writers K] [--out FILE] [--quiet]`: one chaos soak
//! (see `xrepl_tests::chaos`); prints its JSON summary and exits 0 when every check passed, 1
//! when one failed, 2 on a bad argument. The binaries it starts are taken from
//! `$XREPL_BIN_DIR`, else from beside this one.

use std::time::Duration;

use xrepl_tests::chaos::{run, Options};

fn usage(msg: &str) -> ! {
    eprintln!("xrepl-chaos: {msg}\nusage: xrepl-chaos [--seed N] [--minutes M] [--writers K] [--out FILE] [--quiet]");
    std::process::exit(2)
}

#[allow(clippy::print_stdout)] // the summary is the output
fn main() {
    let mut opts = Options {
        verbose: true,
        ..Options::default()
    };
    let mut out: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .unwrap_or_else(|| usage(&format!("{name} needs a value")))
        };
        match a.as_str() {
            "--seed" => {
                opts.seed = value("--seed")
                    .parse()
                    .unwrap_or_else(|_| usage("--seed must be a whole number"))
            }
            "--minutes" => {
                let m: f64 = value("--minutes")
                    .parse()
                    .unwrap_or_else(|_| usage("--minutes must be a number"));
                if !(m > 0.0 && m <= 24.0 * 60.0) {
                    usage("--minutes must be above 0 and at most 1440");
                }
                opts.duration = Duration::from_secs_f64(m * 60.0);
            }
            "--writers" => {
                opts.writers = value("--writers")
                    .parse()
                    .ok()
                    .filter(|w| (1..=32).contains(w))
                    .unwrap_or_else(|| usage("--writers must be 1 to 32"))
            }
            "--out" => out = Some(value("--out")),
            "--quiet" => opts.verbose = false,
            "-h" | "--help" => usage("a chaos soak of a master and a slave cluster"),
            other => usage(&format!("unknown argument '{other}'")),
        }
    }
    let report = run(&opts).unwrap_or_else(|e| {
        eprintln!("xrepl-chaos: cannot start: {e}");
        std::process::exit(1)
    });
    if let Some(e) = &report.failure {
        eprintln!("xrepl-chaos: FAILED (seed {}): {e}", opts.seed);
    }
    let code = i32::from(report.failure.is_some());
    let summary = report.summary.to_string();
    println!("{summary}");
    if let Some(path) = out {
        if let Err(e) = std::fs::write(&path, format!("{summary}\n")) {
            eprintln!("xrepl-chaos: cannot write {path}: {e}");
        }
    }
    std::process::exit(code)
}
