//! The command line for people, end to end: the built `conclave` binary against a real server on
//! SQLite. Tables and `--json`, `logs -f` to the end of a run and across a cut connection,
//! an artifact's round trip through files, debates, missions, tasks, workers and stats with the
//! mock provider, the artifacts bench at its smallest, and the exit codes (1 for a failed run, 2 for
//! INVALID_ARGUMENT with the field printed, 3 for NOT_FOUND, 4 for a conflict, 5 for no server).

mod support;

use std::{
    net::SocketAddr,
    process::{Output, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use serde_json::Value;
use support::{fast_config, test_registry, Backend, StepCounter, TestDatabase, TestServer};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    process::Command,
    sync::watch,
};

const BIN: &str = env!("CARGO_BIN_EXE_conclave");
const WAIT: Duration = Duration::from_secs(30);

async fn start() -> (TestDatabase, TestServer) {
    let database = Backend::Sqlite.database().await.expect("a SQLite database");
    let server = TestServer::start(&database.url, test_registry(&StepCounter::default()), fast_config()).await;
    (database, server)
}

fn command(addr: SocketAddr, args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env("CONCLAVE_SERVER", format!("http://{addr}"))
        .env_remove("CONCLAVE_TOKEN")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

/// Runs `conclave <args>` against the server and returns what it printed and its exit code.
async fn conclave(addr: SocketAddr, args: &[&str]) -> Output {
    tokio::time::timeout(WAIT, command(addr, args).output()).await.expect("conclave finished in time").expect("run conclave")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn code(output: &Output) -> i32 {
    output.status.code().expect("an exit code")
}

/// Runs a command that must succeed.
async fn ok(addr: SocketAddr, args: &[&str]) -> String {
    let output = conclave(addr, args).await;
    assert_eq!(code(&output), 0, "conclave {args:?} failed:\n{}{}", stdout(&output), stderr(&output));
    stdout(&output)
}

/// The single JSON object a `--json` command printed.
fn json_object(text: &str) -> Value {
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON line expected, got:\n{text}");
    serde_json::from_str(lines[0]).expect("a JSON object")
}

/// Creates a run with `runs create --json` and returns its id.
async fn create_run(addr: SocketAddr, args: &[&str]) -> String {
    let mut all = vec!["runs", "create"];
    all.extend_from_slice(args);
    all.push("--json");
    let run = json_object(&ok(addr, &all).await);
    run["id"].as_str().expect("an id").to_owned()
}

async fn wait_state(addr: SocketAddr, id: &str, state: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let run = json_object(&ok(addr, &["runs", "get", id, "--json"]).await);
        if run["state"] == state {
            return run;
        }
        assert!(tokio::time::Instant::now() < deadline, "run {id} stayed {}", run["state"]);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_create_get_list_as_tables_and_json() {
    let (_database, server) = start().await;
    let addr = server.addr;

    // create --json prints the run in the protobuf JSON mapping, every field present.
    let created = json_object(
        &ok(addr, &["runs", "create", "echo", "--input", r#"{"lines": ["a", "b"]}"#, "--label", "team=cli", "--priority", "5", "--json"]).await,
    );
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["kind"], "echo");
    assert_eq!(created["state"], "RUN_STATE_QUEUED");
    assert_eq!(created["priority"], 5);
    assert_eq!(created["labels"]["team"], "cli");
    assert_eq!(created["input"]["lines"], serde_json::json!(["a", "b"]));
    assert!(created.get("lastEventSequence").is_some() && created.get("requestId").is_some(), "{created}");
    wait_state(addr, &id, "RUN_STATE_SUCCEEDED").await;

    // A second run without the label, and one whose input comes from a file.
    let input_dir = tempfile::tempdir().unwrap();
    let input_file = input_dir.path().join("input.json");
    std::fs::write(&input_file, r#"{"text": "from a file"}"#).unwrap();
    let other = create_run(addr, &["echo", "--input", &format!("@{}", input_file.display())]).await;
    let other_run = wait_state(addr, &other, "RUN_STATE_SUCCEEDED").await;
    assert_eq!(other_run["input"]["text"], "from a file");

    // get: aligned fields for people.
    let text = ok(addr, &["runs", "get", &id]).await;
    assert!(text.lines().any(|line| line.starts_with("id:") && line.ends_with(&id)), "{text}");
    assert!(text.lines().any(|line| line.starts_with("state:") && line.trim_end().ends_with("succeeded")), "{text}");
    assert!(text.lines().any(|line| line.starts_with("labels:") && line.contains("team=cli")), "{text}");
    assert!(text.lines().any(|line| line.starts_with("output:") && line.contains(r#""lines":["a","b"]"#)), "{text}");
    assert!(text.lines().any(|line| line.starts_with("created:") && line.trim_end().ends_with('Z')), "times are readable: {text}");

    // list: a table with a header and aligned columns, newest first.
    let table = ok(addr, &["runs", "list"]).await;
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("ID") && lines[0].contains("STATE") && lines[0].contains("CREATED (UTC)"), "{table}");
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[1].starts_with(&other) && lines[2].starts_with(&id), "newest first: {table}");
    let state_column = lines[0].find("STATE").unwrap();
    assert!(lines[1..].iter().all(|line| line[state_column..].starts_with("succeeded")), "aligned: {table}");

    // list --json: one object per run; filters by label and state; pages with --all.
    let listed: Vec<Value> = ok(addr, &["runs", "list", "--json"]).await.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(listed.iter().map(|run| run["id"].as_str().unwrap()).collect::<Vec<_>>(), vec![other.as_str(), id.as_str()]);
    let labelled = ok(addr, &["runs", "list", "--label", "team=cli", "--json"]).await;
    assert_eq!(labelled.lines().count(), 1);
    assert_eq!(json_object(&labelled)["id"], id.as_str());
    assert_eq!(ok(addr, &["runs", "list", "--state", "failed", "--json"]).await, "");
    let first_page = conclave(addr, &["runs", "list", "--page-size", "1", "--json"]).await;
    assert_eq!(stdout(&first_page).lines().count(), 1);
    assert!(stderr(&first_page).contains("--page-token"), "the next page is announced: {}", stderr(&first_page));
    assert_eq!(ok(addr, &["runs", "list", "--page-size", "1", "--all", "--json"]).await.lines().count(), 2);

    // watch on a finished run replays its events and says how it ended.
    let watched = ok(addr, &["runs", "watch", &id]).await;
    assert!(watched.contains("created (echo, priority 5)") && watched.contains("running → succeeded"), "{watched}");
    assert!(watched.trim_end().ends_with(r#"output {"lines":["a","b"]}"#), "{watched}");
    let events: Vec<Value> = ok(addr, &["runs", "watch", &id, "--json"]).await.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(events.first().unwrap()["sequence"], "1");
    assert!(events.iter().any(|event| event["stateChanged"]["to"] == "RUN_STATE_SUCCEEDED"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follow_an_echo_run_to_its_end() {
    let (_database, server) = start().await;
    let addr = server.addr;
    let expected: Vec<String> = (1..=15).map(|n| format!("line {n}")).collect();
    let input = serde_json::json!({ "lines": expected, "interval_ms": 60 }).to_string();
    let id = create_run(addr, &["echo", "--input", &input]).await;

    // Followed while it runs: every line once, in order, and the command ends with the run.
    let output = conclave(addr, &["logs", &id, "-f"]).await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(stdout(&output).lines().collect::<Vec<_>>(), expected);
    wait_state(addr, &id, "RUN_STATE_SUCCEEDED").await;

    // After a sequence, with timestamps, and as JSON.
    let tail = ok(addr, &["logs", &id, "--after", "13"]).await;
    assert_eq!(tail.lines().collect::<Vec<_>>(), ["line 14", "line 15"]);
    let stamped = ok(addr, &["logs", &id, "--after", "14", "--timestamps"]).await;
    assert!(stamped.starts_with("#15") && stamped.trim_end().ends_with("stdout line 15"), "{stamped}");
    let lines: Vec<Value> = ok(addr, &["logs", &id, "--json"]).await.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 15);
    assert_eq!(lines[0]["text"], "line 1");
    assert_eq!(lines[0]["sequence"], "1");
    assert_eq!(lines[0]["stream"], "LOG_STREAM_STDOUT");
}

/// A TCP proxy in front of the server whose connections can be cut, all at once.
async fn proxy(target: SocketAddr) -> (SocketAddr, watch::Sender<u64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (cut, cuts) = watch::channel(0u64);
    tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else { return };
            let mut cuts = cuts.clone();
            cuts.mark_unchanged();
            tokio::spawn(async move {
                let Ok(mut outbound) = TcpStream::connect(target).await else { return };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    _ = cuts.changed() => {}
                }
            });
        }
    });
    (addr, cut)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follow_resumes_after_a_cut_connection() {
    let (_database, server) = start().await;
    let (through, cut) = proxy(server.addr).await;
    let expected: Vec<String> = (1..=30).map(|n| format!("line {n}")).collect();
    let input = serde_json::json!({ "lines": expected, "interval_ms": 80 }).to_string();
    let id = create_run(server.addr, &["echo", "--input", &input]).await;

    let mut child = command(through, &["logs", &id, "--follow"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let reader = {
        let seen = seen.clone();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                seen.lock().unwrap().push(line);
            }
        })
    };
    let mut errors = BufReader::new(child.stderr.take().unwrap()).lines();
    let notices = tokio::spawn(async move {
        let mut text = String::new();
        while let Ok(Some(line)) = errors.next_line().await {
            text.push_str(&line);
            text.push('\n');
        }
        text
    });

    // Cut every connection twice while lines keep coming.
    for after in [5, 15] {
        let deadline = tokio::time::Instant::now() + WAIT;
        while seen.lock().unwrap().len() < after {
            assert!(tokio::time::Instant::now() < deadline, "no lines arrived");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        cut.send_modify(|n| *n += 1);
    }

    let status = tokio::time::timeout(WAIT, child.wait()).await.expect("logs -f ended with the run").unwrap();
    reader.await.unwrap();
    let notices = notices.await.unwrap();
    eprintln!("stderr of logs -f:\n{notices}");
    assert_eq!(status.code(), Some(0), "{notices}");
    assert_eq!(*seen.lock().unwrap(), expected, "every line once, in order; stderr:\n{notices}");
    assert!(notices.contains("resuming after sequence"), "the resume is announced: {notices}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_put_then_get_round_trip() {
    let (_database, server) = start().await;
    let addr = server.addr;
    let run = create_run(addr, &["noop"]).await;
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("report.bin");
    let content: Vec<u8> = (0..3_000_000u32).map(|n| (n.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&source, &content).unwrap();

    // Not a terminal: no progress bar, and with --json the artifact on one line.
    let put = conclave(addr, &["artifacts", "put", &run, source.to_str().unwrap(), "--name", "out/report.bin", "--json"]).await;
    assert_eq!(code(&put), 0, "{}", stderr(&put));
    assert_eq!(stderr(&put), "", "no progress bar off a terminal");
    let artifact = json_object(&stdout(&put));
    assert_eq!(artifact["name"], "out/report.bin");
    assert_eq!(artifact["size"], "3000000");
    assert_eq!(artifact["version"], 1);
    let id = artifact["id"].as_str().unwrap().to_owned();

    // By run and name, to a file.
    let target = dir.path().join("copy.bin");
    let got = ok(addr, &["artifacts", "get", &format!("{run}/out/report.bin"), "-o", target.to_str().unwrap()]).await;
    assert!(got.contains("out/report.bin version 1"), "{got}");
    assert_eq!(std::fs::read(&target).unwrap(), content);

    // By id, to stdout.
    let to_stdout = conclave(addr, &["artifacts", "get", &id]).await;
    assert_eq!(code(&to_stdout), 0);
    assert_eq!(to_stdout.stdout, content);

    // A second version of a text file, named after the file; the list shows the latest of each.
    let notes = dir.path().join("notes.md");
    std::fs::write(&notes, "# Notes\n").unwrap();
    ok(addr, &["artifacts", "put", &run, notes.to_str().unwrap()]).await;
    std::fs::write(&notes, "# Notes, again\n").unwrap();
    let second = json_object(&ok(addr, &["artifacts", "put", &run, notes.to_str().unwrap(), "--json"]).await);
    assert_eq!(second["version"], 2);
    assert_eq!(second["mediaType"], "text/markdown");
    let table = ok(addr, &["artifacts", "list", &run]).await;
    assert_eq!(table.lines().count(), 3, "{table}");
    assert!(table.lines().any(|line| line.contains("notes.md") && line.contains(" 2 ")), "{table}");
    assert_eq!(ok(addr, &["artifacts", "get", &format!("{run}/notes.md"), "--version", "1"]).await, "# Notes\n");

    // --if-absent on an existing name is a conflict: exit 4.
    let refused = conclave(addr, &["artifacts", "put", &run, notes.to_str().unwrap(), "--if-absent"]).await;
    assert_eq!(code(&refused), 4, "{}", stderr(&refused));

    // A missing artifact: exit 3, and no file left behind.
    let missing = dir.path().join("missing.bin");
    let absent = conclave(addr, &["artifacts", "get", &format!("{run}/nope.bin"), "-o", missing.to_str().unwrap()]).await;
    assert_eq!(code(&absent), 3, "{}", stderr(&absent));
    assert!(!missing.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3, "no temporary file left behind");
}

/// A TCP proxy in front of the server that cuts the connection once it has passed `limit` bytes
/// from the server to the client, the first time only.
async fn cutting_proxy(target: SocketAddr, limit: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cut = Arc::new(AtomicBool::new(false));
    tokio::spawn(async move {
        loop {
            let Ok((inbound, _)) = listener.accept().await else { return };
            let cut = cut.clone();
            tokio::spawn(async move {
                let Ok(outbound) = TcpStream::connect(target).await else { return };
                let (mut from_client, mut to_client) = inbound.into_split();
                let (mut from_server, mut to_server) = outbound.into_split();
                let down = async {
                    let mut buffer = vec![0u8; 16 << 10];
                    let mut sent = 0;
                    loop {
                        let read = from_server.read(&mut buffer).await?;
                        if read == 0 {
                            return Ok::<(), std::io::Error>(());
                        }
                        to_client.write_all(&buffer[..read]).await?;
                        sent += read;
                        if sent >= limit && !cut.swap(true, Ordering::SeqCst) {
                            return Ok(());
                        }
                    }
                };
                tokio::select! {
                    _ = tokio::io::copy(&mut from_client, &mut to_server) => {}
                    _ = down => {}
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_get_resumes_a_cut_download() {
    let (_database, server) = start().await;
    let run = create_run(server.addr, &["noop"]).await;
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("big.bin");
    let content: Vec<u8> = (0..8_000_000u32).map(|n| (n.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
    std::fs::write(&source, &content).unwrap();
    ok(server.addr, &["artifacts", "put", &run, source.to_str().unwrap()]).await;

    // The connection breaks 3 MB into the download: the rest comes from where it stopped.
    let through = cutting_proxy(server.addr, 3_000_000).await;
    let target = dir.path().join("copy.bin");
    let output = conclave(through, &["artifacts", "get", &format!("{run}/big.bin"), "-o", target.to_str().unwrap()]).await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(stderr(&output).contains("download interrupted") && stderr(&output).contains("resuming at byte"), "{}", stderr(&output));
    assert_eq!(std::fs::read(&target).unwrap(), content);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_say_what_happened() {
    let (_database, server) = start().await;
    let addr = server.addr;

    // NOT_FOUND: 3, with the reason.
    let missing = conclave(addr, &["runs", "get", "01a1fd14-c22f-74d5-87cd-9a01d658723d"]).await;
    assert_eq!(code(&missing), 3);
    assert!(stderr(&missing).contains("reason RUN_NOT_FOUND"), "{}", stderr(&missing));

    // INVALID_ARGUMENT: 2, with the field and what to fix.
    let invalid = conclave(addr, &["runs", "create", "echo", "--input", r#"{"txt": "typo"}"#]).await;
    assert_eq!(code(&invalid), 2);
    let text = stderr(&invalid);
    assert!(text.contains("status: INVALID_ARGUMENT (reason INVALID_ARGUMENT)"), "{text}");
    assert!(text.contains("field input.txt: is not a field of this kind"), "{text}");
    // ... and as JSON on stderr with --json.
    let invalid = conclave(addr, &["runs", "create", "echo", "--input", r#"{"txt": "typo"}"#, "--json"]).await;
    assert_eq!(code(&invalid), 2);
    let error = json_object(&stderr(&invalid));
    assert_eq!(error["error"]["reason"], "INVALID_ARGUMENT");
    assert_eq!(error["error"]["fieldViolations"][0]["field"], "input.txt");

    // Bad usage found locally: 2 as well.
    assert_eq!(code(&conclave(addr, &["runs", "create", "echo", "--input", "{not json"]).await), 2);
    assert_eq!(code(&conclave(addr, &["runs", "list", "--state", "sideways"]).await), 2);

    // A conflict: 4.
    let run = create_run(addr, &["noop"]).await;
    wait_state(addr, &run, "RUN_STATE_SUCCEEDED").await;
    let conflict = conclave(addr, &["runs", "cancel", &run]).await;
    assert_eq!(code(&conflict), 4);
    assert!(stderr(&conflict).contains("reason RUN_ALREADY_FINISHED"), "{}", stderr(&conflict));

    // No server: 5.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let unreachable = conclave(closed, &["runs", "list"]).await;
    assert_eq!(code(&unreachable), 5, "{}", stderr(&unreachable));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_watch_exits_1_for_a_failed_run() {
    let (_database, server) = start().await;
    let addr = server.addr;

    // A run that fails its only attempt, watched from its creation: exit code 1.
    let failing = create_run(addr, &["steps", "--input", r#"{"count": 2, "step_ms": 100, "fail_attempts": 1}"#, "--max-attempts", "1"]).await;
    let watched = conclave(addr, &["runs", "watch", &failing]).await;
    assert_eq!(code(&watched), 1, "{}{}", stdout(&watched), stderr(&watched));
    let text = stdout(&watched);
    assert!(text.contains("step step-0 done") && text.contains("running → failed"), "{text}");
    assert!(text.trim_end().ends_with("planned failure of attempt 1"), "{text}");

    // Retried and cancelled while waiting: still 1; a run that succeeds: 0.
    let approval = create_run(addr, &["approval"]).await;
    wait_state(addr, &approval, "RUN_STATE_WAITING").await;
    // `output()` starts the process at once; its future borrows nothing.
    let watcher = tokio::spawn(command(addr, &["runs", "watch", &approval, "--json"]).output());
    tokio::time::sleep(Duration::from_millis(300)).await;
    ok(addr, &["runs", "cancel", &approval, "--reason", "not today"]).await;
    let cancelled = tokio::time::timeout(WAIT, watcher).await.expect("watch ended with the run").unwrap().unwrap();
    assert_eq!(code(&cancelled), 1);
    let last: Value = serde_json::from_str(stdout(&cancelled).lines().last().unwrap()).unwrap();
    assert_eq!(last["stateChanged"]["to"], "RUN_STATE_CANCELLED");

    let retried = json_object(&ok(addr, &["runs", "retry", &failing, "--json"]).await);
    assert_eq!(retried["state"], "RUN_STATE_QUEUED");
    let decided = create_run(addr, &["approval"]).await;
    wait_state(addr, &decided, "RUN_STATE_WAITING").await;
    ok(addr, &["runs", "decide", &decided, "--approve", "--note", "go"]).await;
    let fine = conclave(addr, &["runs", "watch", &decided]).await;
    assert_eq!(code(&fine), 0, "{}", stderr(&fine));
    assert!(stdout(&fine).contains("decision approval: approve (go)"), "{}", stdout(&fine));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debates_missions_tasks_workers_and_stats_with_the_mock_provider() {
    let (_database, server) = start().await;
    let addr = server.addr;

    // A debate: created, watched to its end (its run succeeds: exit 0), then shown and listed.
    let debate = json_object(&ok(addr, &["debates", "create", "Move the job queue to Postgres", "--label", "team=cli", "--json"]).await);
    let debate_id = debate["id"].as_str().expect("a debate id").to_owned();
    let transcript = ok(addr, &["debates", "watch", &debate_id]).await;
    assert!(!transcript.trim().is_empty(), "the transcript is printed");
    let shown = json_object(&ok(addr, &["debates", "get", &debate_id, "--json"]).await);
    assert_eq!(shown["run"]["state"], "RUN_STATE_SUCCEEDED", "{shown}");
    assert!(shown["result"]["outcome"].as_str().is_some_and(|outcome| outcome.starts_with("DEBATE_OUTCOME_")), "{shown}");
    assert!(ok(addr, &["debates", "list"]).await.contains(&debate_id), "the table lists it");

    // A mission: with the mock the planner gives no plan, so it fails, and `watch` says so.
    let mission = json_object(&ok(addr, &["missions", "create", "Add a CSV export", "--skip-gate", "--json"]).await);
    let mission_id = mission["id"].as_str().expect("a mission id").to_owned();
    let watched = conclave(addr, &["missions", "watch", &mission_id]).await;
    assert_eq!(code(&watched), 1, "a failed mission exits 1:\n{}{}", stdout(&watched), stderr(&watched));
    let shown = json_object(&ok(addr, &["missions", "get", &mission_id, "--json"]).await);
    assert_eq!(shown["result"]["outcome"], "MISSION_OUTCOME_FAILED", "{shown}");

    // A task: the mock's reviews are unusable, so the gate fails; `watch` exits 1, `list` shows it.
    let project = tempfile::tempdir().unwrap();
    std::fs::write(project.path().join("README.md"), "# A project\n").unwrap();
    let project_dir = project.path().display().to_string();
    let task = json_object(
        &ok(
            addr,
            &[
                "tasks", "create", "--title", "Tidy the README", "--project-dir", &project_dir, "--author", "mock#author", "--reviewer", "mock#reviewer",
                "--mode", "autonomous", "--max-rounds", "1", "--test-command", "true", "--json",
            ],
        )
        .await,
    );
    let task_id = task["id"].as_str().expect("a task id").to_owned();
    let watched = conclave(addr, &["tasks", "watch", &task_id]).await;
    assert_eq!(code(&watched), 1, "a task that did not pass exits 1:\n{}{}", stdout(&watched), stderr(&watched));
    let shown = json_object(&ok(addr, &["tasks", "get", &task_id, "--json"]).await);
    assert_eq!(shown["status"], "TASK_STATUS_FAILED_GATE", "{shown}");
    assert_eq!(shown["rounds"][0]["gate"], "review_unknown", "{shown}");
    let listed = ok(addr, &["tasks", "list", "--json"]).await;
    assert!(listed.lines().any(|line| line.contains(&task_id)), "{listed}");

    // The server's own worker pool, and the queue's counts.
    let workers = ok(addr, &["workers", "list", "--json"]).await;
    assert!(!workers.trim().is_empty(), "the built-in worker pool is listed");
    let stats = json_object(&ok(addr, &["stats", "--json"]).await);
    let counts = stats["counts"].as_array().expect("counts by kind and state");
    assert!(counts.iter().any(|count| count["kind"] == "task"), "{stats}");
    // 64-bit integers are strings in the protobuf JSON mapping.
    assert_eq!(stats["finishedLastMinute"], "3", "the debate's, the mission's and the task's runs: {stats}");
    assert!(ok(addr, &["stats"]).await.contains("debate"), "the table counts the debate's run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skills_recipes_and_cards() {
    let (_database, server) = start().await;
    let addr = server.addr;

    // skills: sync the examples, list them as JSON, vet one.
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/skills");
    let synced = json_object(&ok(addr, &["skills", "sync", examples, "--json"]).await);
    assert_eq!(synced["skills"].as_array().map(Vec::len), Some(3), "{synced}");
    let listed = ok(addr, &["skills", "list", "--json"]).await;
    let skills: Vec<Value> = listed.lines().map(|line| serde_json::from_str(line).expect("a JSON skill")).collect();
    assert_eq!(skills.len(), 3, "{listed}");
    assert!(skills.iter().all(|skill| skill["trustLevel"] == "TRUST_LEVEL_EXPERIMENTAL"), "{listed}");
    let id = skills[0]["id"].as_str().expect("a skill id").to_owned();
    let vetted = json_object(&ok(addr, &["skills", "trust", &id, "vetted", "--json"]).await);
    assert_eq!(vetted["trustLevel"], "TRUST_LEVEL_VETTED", "{vetted}");
    let only = ok(addr, &["skills", "list", "--trust", "vetted", "--json"]).await;
    assert_eq!(only.lines().count(), 1, "{only}");

    // recipes: the default stages; inbox is valid, with warnings.
    let created = ok(addr, &["recipes", "init", "--json"]).await;
    assert!(created.lines().any(|line| line.contains(r#""stage":"inbox""#)), "{created}");
    let validated = conclave(addr, &["recipes", "validate", "inbox"]).await;
    assert_eq!(code(&validated), 0, "{}{}", stdout(&validated), stderr(&validated));
    assert!(stdout(&validated).starts_with("valid"), "{}", stdout(&validated));
    assert!(stdout(&validated).contains("warning: "), "{}", stdout(&validated));

    // cards: created in inbox, advanced to discovery by the default recipes.
    let card = json_object(&ok(addr, &["cards", "create", "Faster exports", "--json"]).await);
    let card_id = card["id"].as_str().expect("a card id").to_owned();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let card = json_object(&ok(addr, &["cards", "get", &card_id, "--json"]).await);
        if card["stage"] == "discovery" && card["locked"] == false {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "card {card_id} stayed: {card}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let events = ok(addr, &["cards", "events", &card_id, "--json"]).await;
    assert!(
        events.lines().any(|line| serde_json::from_str::<Value>(line).expect("a JSON event")["kind"] == "CARD_EVENT_KIND_ADVANCED"),
        "{events}"
    );
    assert!(ok(addr, &["cards", "events", &card_id]).await.contains("advanced"), "the trail is readable");

    // An unknown stage is a conflict: exit 4, with the reason.
    let refused = conclave(addr, &["cards", "move", &card_id, "nowhere"]).await;
    assert_eq!(code(&refused), 4, "{}", stderr(&refused));
    assert!(stderr(&refused).contains("FAILED_PRECONDITION") && stderr(&refused).contains("UNKNOWN_STAGE"), "{}", stderr(&refused));
}

/// `conclave bench --only artifacts` at its smallest sizes measures every part and then removes
/// everything it wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_artifacts_bench_measures_every_part_and_removes_what_it_wrote() {
    let args =
        ["bench", "--only", "artifacts", "--small-artifacts", "1", "--large-artifact-mib", "1", "--artifact-rounds", "1", "--concurrent-transfers", "1"];
    let temp = tempfile::tempdir().unwrap();
    let mut bench = Command::new(BIN);
    bench.args(args).env("TMPDIR", temp.path()).env_remove("CONCLAVE_BENCH_DATABASE_URL").stdin(Stdio::null()).kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(120), bench.output()).await.expect("the bench ended in time").expect("run the bench");
    assert_eq!(code(&output), 0, "conclave {args:?} failed:\n{}{}", stdout(&output), stderr(&output));
    let report = stdout(&output);
    for figure in ["std::fs::copy + sync_all", "| upload ", "the transport alone", "BlobStore write + finish", "RSS peak"] {
        assert!(report.contains(figure), "no {figure:?} in the report:\n{report}");
    }
    let left: Vec<_> = std::fs::read_dir(temp.path()).unwrap().map(|entry| entry.unwrap().path()).collect();
    assert!(left.is_empty(), "the bench left {left:?}");
}
