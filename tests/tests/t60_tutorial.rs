//! The user's tutorial (shared/seeds/dolphindb-async-replication-tutorial.md, sections 3.1 and
//! 3.2): its master statements run unchanged in one console session.

use serde_json::json;
use xrepl_tests::{Cluster, Spec};

/// The statements as they stand in the seed file (replication calls left out: they arrive
/// with the replication issues).
const TUTORIAL: &str = include_str!("../scripts/tutorial_master.dos");

#[test]
fn t10_the_tutorial_master_statements_run_unchanged() {
    let c = Cluster::start(&Spec::default());
    // The script logs in by itself, as in the tutorial.
    let out = c.console_file_at(&c.host(), &["--format", "json"], TUTORIAL);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.json().last(), Some(&json!([{"count": 1_210_000}])));
    // The data is what the script built: 5,000 securities x 242 minutes on 2023.01.08.
    assert_eq!(
        c.ok("select count(*) from loadTable(\"dfs://testDB\", \"testTB\") group by SecurityID limit 2"),
        vec![json!([{"SecurityID": "000000", "count": 242}, {"SecurityID": "000001", "count": 242}])]
    );
    let r = c.ok("select min(DateTime), max(DateTime), min(Volume), max(Volume) from loadTable(\"dfs://testDB\", \"testTB\")");
    let row = &r[0][0];
    assert_eq!(row["min_DateTime"], "2023.01.08T09:30:00");
    assert_eq!(row["max_DateTime"], "2023.01.08T15:00:00");
    // Volume = 100 + rand(100, 100), sampled: within 100..199.
    let (lo, hi) = (row["min_Volume"].as_i64(), row["max_Volume"].as_i64());
    assert!(
        lo.is_some_and(|v| v >= 100) && hi.is_some_and(|v| v <= 199),
        "{row}"
    );
}
