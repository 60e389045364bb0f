//! The chaos soak, short: a minute of mixed writes on a master while every kind of process is
//! SIGKILLed and restarted, the link between the controllers and the links from the slave data
//! nodes to the master data nodes are cut (and a process is killed while one is cut), and
//! replication is stopped and started; then the slave must catch up and equal the master (see `xrepl_tests::chaos`).
//! `XREPL_CHAOS_SEED` and `XREPL_CHAOS_SECONDS` change the run; `scripts/chaos.sh` runs long
//! ones.

use std::time::Duration;

use xrepl_tests::chaos::{run, Options};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn t10_a_minute_of_faults_loses_nothing_and_applies_nothing_twice() {
    let opts = Options {
        seed: env_u64("XREPL_CHAOS_SEED", 7),
        duration: Duration::from_secs(env_u64("XREPL_CHAOS_SECONDS", 60)),
        verbose: true,
        ..Options::default()
    };
    let report = run(&opts).expect("the soak starts");
    let summary = &report.summary;
    eprintln!("{summary}");
    match &report.failure {
        None => {
            for kind in [
                "masterController",
                "masterDataNode",
                "slaveController",
                "slaveDataNode",
            ] {
                assert!(
                    summary["kills"][kind].as_u64().unwrap_or(0) >= 1,
                    "no {kind} was killed: {summary}"
                );
            }
            for key in ["cuts", "dataLinkCuts", "killsDuringCuts"] {
                assert!(
                    summary[key].as_u64().unwrap_or(0) >= 1,
                    "no {key}: {summary}"
                );
            }
            assert!(
                summary["ackedWrites"].as_u64().unwrap_or(0) > 50,
                "{summary}"
            );
        }
        Some(e) => panic!("seed {}: {e}", opts.seed),
    }
}
