//! Test hooks set from the environment: where a crash test kills the process, where a test
//! makes a step wait. Both do nothing unless their variable is set.

use std::time::Duration;

/// For crash tests: when `XREPL_TEST_CRASH_AT` names this point, the process dies here at
/// once, without flushing or running destructors, as if it had been SIGKILLed. Points:
/// `coordinator_after_prepare`, `coordinator_after_decide`, `participant_after_prepare`,
/// `participant_before_commit`, `storage_after_block_files` (a prepare's block files are
/// durable, its record is not written), `taskstore_after_file` (a task's data file is written,
/// its record is not).
pub fn crash_point(name: &str) {
    if std::env::var("XREPL_TEST_CRASH_AT").is_ok_and(|v| v == name) {
        eprintln!("XREPL_TEST_CRASH_AT: dying at {name}");
        std::process::exit(86);
    }
}

/// For tests: when `XREPL_TEST_PAUSE_AT` is `name:ms`, waits `ms` milliseconds here (e.g.
/// `replay_before_decide`: a slave's replay holds its prepared chunks that long before asking
/// the controller to commit).
pub async fn pause_point(name: &str) {
    let Ok(v) = std::env::var("XREPL_TEST_PAUSE_AT") else {
        return;
    };
    if let Some(ms) = v
        .strip_prefix(name)
        .and_then(|r| r.strip_prefix(':'))
        .and_then(|ms| ms.parse::<u64>().ok())
    {
        tracing::info!("XREPL_TEST_PAUSE_AT: pausing {ms} ms at {name}");
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}
