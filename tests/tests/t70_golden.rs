//! Golden scripts: `tests/scripts/golden/NAME.dos` runs in one session on a real cluster, block
//! by block (blocks are separated by blank lines), and what it prints must equal
//! `NAME.out`. Each block's output follows its text; an error prints as `error: <message>` and
//! the session goes on, so the files also show that the session stays usable.
//! `XREPL_GOLDEN_UPDATE=1` rewrites the `.out` files (review the diff before committing).

use std::path::Path;

use xrepl_proto::client::Client;
use xrepl_query::format;
use xrepl_tests::{Cluster, Spec};

async fn run_script(c: &Client, script: &str) -> String {
    let mut out = String::new();
    for block in script
        .split("\n\n")
        .map(str::trim)
        .filter(|b| !b.is_empty())
    {
        out.push_str(&format!("> {}\n", block.replace('\n', "\n> ")));
        match c.run(block).await {
            Ok(values) => {
                for v in values {
                    if let Some(s) = format::render(&v) {
                        out.push_str(&s);
                        out.push('\n');
                    }
                }
            }
            Err(e) => out.push_str(&format!("error: {e}\n")),
        }
        out.push('\n');
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t10_golden_scripts() {
    let cluster = Cluster::start(&Spec::default());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/golden");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .expect("golden dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "dos"))
        .collect();
    names.sort();
    assert!(!names.is_empty());
    let update = std::env::var_os("XREPL_GOLDEN_UPDATE").is_some();
    let mut failures = Vec::new();
    for path in names {
        let script = std::fs::read_to_string(&path).expect("script");
        // A fresh session per file.
        let c = Client::connect(&cluster.host(), "admin", "123456")
            .await
            .expect("connect");
        let got = run_script(&c, &script).await;
        let expected_path = path.with_extension("out");
        if update {
            std::fs::write(&expected_path, &got).expect("write");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if got != expected {
            failures.push(format!(
                "{} differs from {}:\n--- got ---\n{got}",
                path.display(),
                expected_path.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
