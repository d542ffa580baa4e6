//! SQLite mode is single-node: a second `conclave serve` on the same database file is refused
//! with a message that says what to do, while the first keeps serving; once the first has
//! stopped, the database can be served again.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

fn serve(data_dir: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_conclave"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

#[test]
fn a_second_process_on_the_same_sqlite_database_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let mut first = serve(data.path()).spawn().expect("start the first server");
    let lock = data.path().join("conclave.db.lock");
    let started = Instant::now();
    while !data.path().join("conclave.db").exists() {
        assert!(started.elapsed() < Duration::from_secs(30), "the first server never opened its database");
        assert!(first.try_wait().unwrap().is_none(), "the first server exited early");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(lock.exists());

    let second = serve(data.path()).output().expect("run the second server");
    assert!(!second.status.success(), "the second server must not start");
    let message = String::from_utf8_lossy(&second.stderr);
    assert!(message.contains("another conclave process is using the SQLite database"), "{message}");
    assert!(message.contains("Postgres"), "the message says how to run several processes: {message}");
    assert!(first.try_wait().unwrap().is_none(), "the first server keeps serving");

    first.kill().unwrap();
    first.wait().unwrap();
    let mut third = serve(data.path()).spawn().expect("start a server again");
    std::thread::sleep(Duration::from_millis(800));
    assert!(third.try_wait().unwrap().is_none(), "once the first is gone, the database can be served again");
    third.kill().unwrap();
    third.wait().unwrap();
}
