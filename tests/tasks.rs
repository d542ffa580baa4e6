//! `TaskService` end to end, with the `cli` provider driving small scripts that really edit
//! files and a real test command: a task passes in round 2 after a failing round 1 and merges
//! back from its sandbox; a reviewer's blocker fails the gate; manual approve and reject;
//! `StartTask`; a merge refused when the project changed underneath; a fallback taking over
//! from a missing author program; stats; the workspace tree; bad requests. On both stores.

mod support;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use conclave::{
    models::{ModelsConfig, RouterSettings},
    proto::{self, task_service_client::TaskServiceClient},
};
use support::*;
use tonic::{transport::Channel, Code};

const WAIT: Duration = Duration::from_secs(60);

/// A project whose test passes only once `value.txt` holds 2.
fn project(root: &Path) -> PathBuf {
    let dir = root.join("project");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("value.txt"), "1\n").unwrap();
    std::fs::write(dir.join("src/lib.txt"), "unchanged\n").unwrap();
    std::fs::write(dir.join(".gitignore"), "target/\n").unwrap();
    std::fs::create_dir_all(dir.join("target")).unwrap();
    std::fs::write(dir.join("target/build.log"), "ignored\n").unwrap();
    dir
}

/// The test command of that project.
const TEST_COMMAND: &str = r#"test "$(cat value.txt)" = 2 || { echo "value.txt holds $(cat value.txt), expected 2"; exit 1; }"#;

/// An author program: it plans when asked to propose, and when asked to implement writes 3 into
/// `value.txt` (wrong) unless the prompt carries the last gate's findings, then 2 (right). Each
/// call is counted in `calls` beside it. `extra` runs after an implementation.
fn author_script(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("author.sh");
    let calls = dir.join("calls");
    let body = format!(
        r#"#!/bin/sh
prompt=$(cat)
echo call >> "{calls}"
case "$prompt" in
  *"Implement it now"*)
    case "$prompt" in
      *"did not pass the gate"*) echo 2 > value.txt; echo "wrote 2" ;;
      *) echo 3 > value.txt; echo "wrote 3" ;;
    esac
    {extra}
    ;;
  *) echo "Plan: set value.txt to the right number." ;;
esac
"#,
        calls = calls.display()
    );
    std::fs::write(&path, body).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn calls(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("calls")).map(|text| text.lines().count()).unwrap_or(0)
}

/// Providers: `author` (the script, or a missing program), `backup` (the script), and the mock
/// `review` answering every review as `reviews` says (a TOML script).
fn models(author: &str, backup: &Path, reviews: &str) -> ModelsConfig {
    let text = format!(
        r#"
[providers.author]
type = "cli"
program = "{author}"

[providers.backup]
type = "cli"
program = "{backup}"

[providers.review]
type = "mock"
{reviews}
"#,
        backup = backup.display()
    );
    let file: toml::Table = toml::from_str(&text).expect("models");
    let providers = file.into_iter().next().map(|(_, providers)| providers.try_into().expect("providers")).unwrap_or_default();
    ModelsConfig { providers, router: RouterSettings { chain: vec!["review".into()], ..RouterSettings::default() } }
}

const NO_BLOCKER: &str = r#"
[[providers.review.script]]
role = "reviewer"
json = { verdict = "no_blocker", findings = [] }
"#;

const BLOCKER: &str = r#"
[[providers.review.script]]
role = "reviewer"
json = { verdict = "blocker", findings = ["value.txt must not be touched by hand"] }
"#;

struct Setup {
    server: TestServer,
    root: tempfile::TempDir,
    project: PathBuf,
}

async fn start(database: &TestDatabase, author_extra: &str, reviews: &str, missing_author: bool) -> Setup {
    let root = tempfile::tempdir().unwrap();
    let project = project(root.path());
    let script = author_script(root.path(), author_extra);
    let author = if missing_author { "/nonexistent/author-program".to_owned() } else { script.display().to_string() };
    let server = TestServer::start_with_models(&database.url, test_registry(&StepCounter::default()), fast_config(), models(&author, &script, reviews)).await;
    Setup { server, root, project }
}

async fn tasks(server: &TestServer) -> TaskServiceClient<Channel> {
    TaskServiceClient::new(Channel::from_shared(format!("http://{}", server.addr)).unwrap().connect().await.unwrap())
}

fn participant(id: &str) -> Option<proto::TaskParticipant> {
    Some(proto::TaskParticipant { id: id.into(), ..Default::default() })
}

fn request(project: &Path) -> proto::CreateTaskRequest {
    proto::CreateTaskRequest {
        title: "Make value.txt right".into(),
        description: "value.txt must hold the number the tests expect.".into(),
        project_dir: project.display().to_string(),
        author: participant("author#a"),
        reviewers: vec![proto::TaskParticipant { id: "review#b".into(), ..Default::default() }],
        mode: proto::TaskMode::Autonomous as i32,
        sandbox: true,
        auto_merge: true,
        max_rounds: 3,
        test_command: TEST_COMMAND.into(),
        auto_start: true,
        ..Default::default()
    }
}

/// Waits until the task's status is one of `statuses`.
async fn until(client: &mut TaskServiceClient<Channel>, id: &str, statuses: &[proto::TaskStatus]) -> proto::Task {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let task = client.get_task(proto::GetTaskRequest { id: id.to_owned() }).await.unwrap().into_inner();
        if statuses.iter().any(|status| task.status == *status as i32) {
            return task;
        }
        assert!(tokio::time::Instant::now() < deadline, "task {id} stayed {:?}: {}", task.status(), task.message);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

const ENDED: [proto::TaskStatus; 4] =
    [proto::TaskStatus::Passed, proto::TaskStatus::FailedGate, proto::TaskStatus::FailedSystem, proto::TaskStatus::Canceled];

async fn a_task_passes_in_round_two_and_merges_back(database: &TestDatabase) {
    let setup = start(database, "", NO_BLOCKER, false).await;
    let mut client = tasks(&setup.server).await;
    let created = client.create_task(request(&setup.project)).await.unwrap().into_inner();
    let task = until(&mut client, &created.id, &ENDED).await;
    assert_eq!((task.status(), task.reason.as_str()), (proto::TaskStatus::Passed, "passed"), "{}", task.message);
    assert_eq!(task.rounds.len(), 2);
    let (first, second) = (&task.rounds[0], &task.rounds[1]);
    assert_eq!((first.gate.as_str(), first.tests.as_ref().unwrap().outcome.as_str()), ("tests_failed", "failed"));
    assert!(first.findings.iter().any(|finding| finding.contains("value.txt holds 3")), "{:?}", first.findings);
    assert_eq!((second.gate.as_str(), second.tests.as_ref().unwrap().outcome.as_str()), ("passed", "passed"));
    assert_eq!(second.reviews[0].verdict, "no_blocker");
    assert_eq!(calls(setup.root.path()), 4, "two turns a round, none repeated");

    // Merged back; the changelog written; the sandbox gone; the ignored build output not copied.
    assert!(task.merged);
    assert_eq!(std::fs::read_to_string(setup.project.join("value.txt")).unwrap(), "2\n");
    let changelog = std::fs::read_to_string(setup.project.join(".conclave/changelog.md")).unwrap();
    assert!(changelog.contains("Make value.txt right") && changelog.contains("value.txt"), "{changelog}");
    assert!(!Path::new(&task.workdir).exists(), "the sandbox {} is removed", task.workdir);
    assert!(task.workdir.contains("project-lab"), "{}", task.workdir);

    // The dialogue: who said what in which phase, and the gates.
    let mut watch = client.watch_task(proto::WatchTaskRequest { id: task.id.clone(), after_sequence: 0 }).await.unwrap().into_inner();
    let (mut said, mut gates) = (Vec::new(), Vec::new());
    while let Some(event) = watch.message().await.unwrap() {
        match event.event {
            Some(proto::task_event::Event::Message(message)) => said.push((message.round, message.phase, message.speaker)),
            Some(proto::task_event::Event::Gate(gate)) => gates.push((gate.round, gate.result)),
            _ => {}
        }
    }
    assert_eq!(gates, [(1, "tests_failed".to_owned()), (2, "passed".to_owned())]);
    assert!(said.contains(&(1, "discussion".into(), "author#a".into())) && said.contains(&(2, "review".into(), "review#b".into())), "{said:?}");

    // The artifacts: each round's transcript, reviews and test log, and the final diff.
    let run = task.run.as_ref().unwrap();
    let channel = Channel::from_shared(format!("http://{}", setup.server.addr)).unwrap().connect().await.unwrap();
    let listed = proto::artifact_service_client::ArtifactServiceClient::new(channel)
        .list_artifacts(proto::ListArtifactsRequest { run_id: run.id.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let mut names: Vec<&str> = listed.artifacts.iter().map(|artifact| artifact.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["diff.patch", "rounds/1/reviews.json", "rounds/1/tests.log", "rounds/1/transcript.md", "rounds/2/reviews.json", "rounds/2/tests.log", "rounds/2/transcript.md"]
    );
    setup.server.shutdown().await;
}

async fn the_tasks_own_gates_use_the_shared_engine(database: &TestDatabase) {
    let setup = start(database, "", NO_BLOCKER, false).await;
    let mut client = tasks(&setup.server).await;
    let mut create = request(&setup.project);
    create.test_command = String::new();
    let check = |check| proto::Gate { id: String::new(), name: String::new(), required: true, failure_message: String::new(), check: Some(check) };
    create.gates = vec![
        proto::Gate { id: "value".into(), ..check(proto::gate::Check::Command(proto::CommandGate { command: TEST_COMMAND.into(), timeout_seconds: 10 })) },
        proto::Gate { id: "sources".into(), ..check(proto::gate::Check::FileExists(proto::FileExistsGate { pattern: "src/*.txt".into() })) },
        proto::Gate {
            id: "notes".into(),
            required: false,
            ..check(proto::gate::Check::ContentCheck(proto::ContentCheckGate { file: "value.txt".into(), required_sections: vec!["Notes".into()] }))
        },
    ];
    let created = client.create_task(create).await.unwrap().into_inner();
    let task = until(&mut client, &created.id, &ENDED).await;
    assert_eq!((task.status(), task.reason.as_str()), (proto::TaskStatus::Passed, "passed"), "{}", task.message);
    let (first, second) = (&task.rounds[0], &task.rounds[1]);
    assert_eq!(first.gate, "gates_failed", "{first:#?}");
    assert!(first.findings.iter().any(|finding| finding.contains("gate `value`") && finding.contains("value.txt holds 3")), "{:?}", first.findings);
    let passed = |round: &proto::TaskRound| round.checks.iter().map(|check| (check.id.clone(), check.passed)).collect::<Vec<_>>();
    assert_eq!(passed(first), [("value".to_owned(), false), ("sources".to_owned(), true), ("notes".to_owned(), false)]);
    assert_eq!(second.gate, "passed", "an optional gate failing does not fail the round");
    assert_eq!(passed(second), [("value".to_owned(), true), ("sources".to_owned(), true), ("notes".to_owned(), false)]);
    assert!(second.checks[2].message.contains("Notes"), "{:?}", second.checks[2]);

    let mut bad = request(&setup.project);
    bad.gates = vec![proto::Gate { id: "x y".into(), ..check(proto::gate::Check::FileExists(proto::FileExistsGate { pattern: "[".into() })) }];
    let status = client.create_task(bad).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let mut fields = bad_fields(&status);
    fields.sort();
    assert_eq!(fields, ["gates[0].check.pattern", "gates[0].id"], "{status:?}");
    setup.server.shutdown().await;
}

async fn a_reviewer_blocker_fails_the_gate(database: &TestDatabase) {
    let setup = start(database, "", BLOCKER, false).await;
    let mut client = tasks(&setup.server).await;
    let created = client.create_task(proto::CreateTaskRequest { max_rounds: 1, test_command: String::new(), ..request(&setup.project) }).await.unwrap().into_inner();
    let task = until(&mut client, &created.id, &ENDED).await;
    assert_eq!((task.status(), task.reason.as_str()), (proto::TaskStatus::FailedGate, "gate_failed"));
    assert_eq!(task.rounds[0].gate, "review_blocker");
    assert_eq!(task.rounds[0].findings, ["review#b: value.txt must not be touched by hand"]);
    assert!(!task.merged);
    assert_eq!(std::fs::read_to_string(setup.project.join("value.txt")).unwrap(), "1\n", "a failed task merges nothing");
    setup.server.shutdown().await;
}

async fn manual_tasks_wait_for_the_author(database: &TestDatabase) {
    let setup = start(database, "", NO_BLOCKER, false).await;
    let mut client = tasks(&setup.server).await;
    let manual = proto::CreateTaskRequest { mode: proto::TaskMode::Manual as i32, auto_start: false, ..request(&setup.project) };

    // Not started: queued until StartTask, which may come before the worker reaches the start.
    let approved = client.create_task(manual.clone()).await.unwrap().into_inner();
    assert_eq!(approved.status(), proto::TaskStatus::Queued);
    client.start_task(proto::StartTaskRequest { id: approved.id.clone() }).await.unwrap();
    client.start_task(proto::StartTaskRequest { id: approved.id.clone() }).await.expect("starting again changes nothing");
    let waiting = until(&mut client, &approved.id, &[proto::TaskStatus::WaitingManual]).await;
    assert!(waiting.run.as_ref().unwrap().lease.is_none(), "a waiting task holds no worker");
    let decision = proto::SubmitAuthorDecisionRequest { id: approved.id.clone(), approve: true, note: "go".into() };
    client.submit_author_decision(decision.clone()).await.unwrap();
    client.submit_author_decision(decision).await.expect("the same decision again changes nothing");
    let passed = until(&mut client, &approved.id, &ENDED).await;
    assert_eq!(passed.status(), proto::TaskStatus::Passed, "{}", passed.message);
    assert_eq!(passed.rounds[0].reviews.len(), 2, "the proposal review and the review of the changes");

    // Rejected: canceled, nothing changed.
    let project = setup.project.clone();
    std::fs::write(project.join("value.txt"), "1\n").unwrap();
    let rejected = client.create_task(proto::CreateTaskRequest { auto_start: true, ..manual }).await.unwrap().into_inner();
    until(&mut client, &rejected.id, &[proto::TaskStatus::WaitingManual]).await;
    client.submit_author_decision(proto::SubmitAuthorDecisionRequest { id: rejected.id.clone(), approve: false, note: "no".into() }).await.unwrap();
    let canceled = until(&mut client, &rejected.id, &ENDED).await;
    assert_eq!((canceled.status(), canceled.reason.as_str()), (proto::TaskStatus::Canceled, "author_rejected"));
    assert_eq!(std::fs::read_to_string(project.join("value.txt")).unwrap(), "1\n");
    let refused = client.submit_author_decision(proto::SubmitAuthorDecisionRequest { id: canceled.id.clone(), approve: true, note: String::new() }).await.unwrap_err();
    assert_eq!(refused.code(), Code::AlreadyExists, "a different decision cannot replace the one given: {refused:?}");
    setup.server.shutdown().await;
}

async fn a_merge_is_refused_when_the_project_changed_underneath(database: &TestDatabase) {
    let root = tempfile::tempdir().unwrap();
    let project = project(root.path());
    // The author also edits the project itself, as someone else would meanwhile.
    let extra = format!(r#"echo 5 > "{}/value.txt""#, project.display());
    let script = author_script(root.path(), &extra);
    let server = TestServer::start_with_models(&database.url, test_registry(&StepCounter::default()), fast_config(), models(&script.display().to_string(), &script, NO_BLOCKER)).await;
    let mut client = tasks(&server).await;
    let created = client.create_task(request(&project)).await.unwrap().into_inner();
    let task = until(&mut client, &created.id, &ENDED).await;
    assert_eq!((task.status(), task.reason.as_str()), (proto::TaskStatus::Passed, "merge_conflict"), "{}", task.message);
    assert!(!task.merged);
    assert!(task.message.contains("value.txt"), "the reason names the file: {}", task.message);
    assert_eq!(std::fs::read_to_string(project.join("value.txt")).unwrap(), "5\n", "the project's change is kept");
    assert!(Path::new(&task.workdir).join("value.txt").exists(), "the sandbox is kept for a manual merge");
    server.shutdown().await;
}

async fn a_fallback_takes_over_from_a_missing_author_program(database: &TestDatabase) {
    let setup = start(database, "", NO_BLOCKER, true).await;
    let mut client = tasks(&setup.server).await;
    let created = client
        .create_task(proto::CreateTaskRequest { fallbacks: vec![proto::TaskParticipant { id: "backup#a".into(), ..Default::default() }], ..request(&setup.project) })
        .await
        .unwrap()
        .into_inner();
    let task = until(&mut client, &created.id, &ENDED).await;
    assert_eq!(task.status(), proto::TaskStatus::Passed, "{}", task.message);
    let stats = client.get_task_stats(proto::GetTaskStatsRequest::default()).await.unwrap().into_inner();
    assert!(stats.provider_error_counts.get("author:program_missing").is_some_and(|count| *count >= 1), "{:?}", stats.provider_error_counts);

    // Without a fallback, the missing program fails the task as a system failure.
    let alone = client.create_task(request(&setup.project)).await.unwrap().into_inner();
    let failed = until(&mut client, &alone.id, &ENDED).await;
    assert_eq!((failed.status(), failed.reason.as_str()), (proto::TaskStatus::FailedSystem, "provider_failed"), "{}", failed.message);
    setup.server.shutdown().await;
}

async fn stats_count_a_mix_of_outcomes(database: &TestDatabase) {
    let setup = start(database, "", BLOCKER, false).await;
    let mut client = tasks(&setup.server).await;
    let workspace = String::new();
    let failing = client
        .create_task(proto::CreateTaskRequest { workspace: workspace.clone(), max_rounds: 1, ..request(&setup.project) })
        .await
        .unwrap()
        .into_inner();
    until(&mut client, &failing.id, &ENDED).await;
    let idle = client
        .create_task(proto::CreateTaskRequest { workspace: workspace.clone(), auto_start: false, ..request(&setup.project) })
        .await
        .unwrap()
        .into_inner();
    client.cancel_task(proto::CancelTaskRequest { id: idle.id.clone(), reason: "not needed".into() }).await.unwrap();
    let stuck = client
        .create_task(proto::CreateTaskRequest { workspace: workspace.clone(), auto_start: false, ..request(&setup.project) })
        .await
        .unwrap()
        .into_inner();
    client.force_fail_task(proto::ForceFailTaskRequest { id: stuck.id.clone(), reason: String::new() }).await.unwrap();
    until(&mut client, &idle.id, &ENDED).await;

    let stats = client.get_task_stats(proto::GetTaskStatsRequest { workspace: workspace.clone(), recent: 10 }).await.unwrap().into_inner();
    let count = |map: &std::collections::HashMap<String, u64>, key: &str| map.get(key).copied().unwrap_or(0);
    assert_eq!(
        (count(&stats.status_counts, "failed_gate"), count(&stats.status_counts, "canceled"), count(&stats.status_counts, "failed_system")),
        (1, 1, 1),
        "{:?}",
        stats.status_counts
    );
    assert_eq!(
        (count(&stats.reason_counts, "gate_failed"), count(&stats.reason_counts, "canceled"), count(&stats.reason_counts, "watchdog_timeout")),
        (1, 1, 1),
        "{:?}",
        stats.reason_counts
    );
    assert_eq!(stats.recent, 3);
    assert!((stats.failed_gate_rate - 1.0 / 3.0).abs() < 1e-9 && stats.pass_rate == 0.0);
    let listed = client
        .list_tasks(proto::ListTasksRequest { workspace, status: proto::TaskStatus::FailedGate as i32, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.tasks.iter().map(|task| task.id.as_str()).collect::<Vec<_>>(), [failing.id.as_str()]);
    setup.server.shutdown().await;
}

async fn the_workspace_tree_leaves_out_what_gitignore_ignores(database: &TestDatabase) {
    let setup = start(database, "", NO_BLOCKER, false).await;
    let mut client = tasks(&setup.server).await;
    let tree = client
        .get_workspace_tree(proto::GetWorkspaceTreeRequest { project_dir: setup.project.display().to_string(), depth: 2 })
        .await
        .unwrap()
        .into_inner();
    let paths: Vec<&str> = tree.entries.iter().map(|entry| entry.path.as_str()).collect();
    assert!(paths.contains(&"src") && paths.contains(&"src/lib.txt") && paths.contains(&"value.txt"), "{paths:?}");
    assert!(!paths.iter().any(|path| path.starts_with("target")), "ignored: {paths:?}");
    let refused = client.get_workspace_tree(proto::GetWorkspaceTreeRequest { project_dir: "relative".into(), depth: 1 }).await.unwrap_err();
    assert_eq!((refused.code(), bad_fields(&refused)), (Code::InvalidArgument, vec!["project_dir".to_owned()]));
    setup.server.shutdown().await;
}

async fn bad_task_requests_say_what_to_fix(database: &TestDatabase) {
    let setup = start(database, "", NO_BLOCKER, false).await;
    let mut client = tasks(&setup.server).await;
    let bad = proto::CreateTaskRequest {
        title: String::new(),
        project_dir: setup.root.path().join("missing").display().to_string(),
        author: participant("Not Valid"),
        reviewers: Vec::new(),
        max_rounds: 50,
        ..request(&setup.project)
    };
    let refused = client.create_task(bad).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&refused), ["title", "project_dir", "author.id", "reviewers", "max_rounds"]);
    let refused = client.create_task(proto::CreateTaskRequest { mode: 7, ..request(&setup.project) }).await.unwrap_err();
    assert_eq!(bad_fields(&refused), ["mode"]);
    let refused = client.get_task(proto::GetTaskRequest { id: "nope".into() }).await.unwrap_err();
    assert_eq!(bad_fields(&refused), ["id"]);
    let running = client.create_task(proto::CreateTaskRequest { auto_start: false, ..request(&setup.project) }).await.unwrap().into_inner();
    let refused = client.submit_author_decision(proto::SubmitAuthorDecisionRequest { id: running.id.clone(), approve: true, note: String::new() }).await.unwrap_err();
    assert_eq!((refused.code(), reason(&refused).as_str()), (Code::FailedPrecondition, "TASK_NOT_WAITING_MANUAL"));
    setup.server.shutdown().await;
}

async fn a_restart_mid_round_repeats_no_finished_phase(database: &TestDatabase) {
    let root = tempfile::tempdir().unwrap();
    let project = project(root.path());
    let script = author_script(root.path(), "");
    let models = || models(&script.display().to_string(), &script, NO_BLOCKER);
    let server = TestServer::start_with_models(&database.url, test_registry(&StepCounter::default()), fast_config(), models()).await;
    let mut client = tasks(&server).await;
    // The test command is slow, so the server dies while round 1 verifies.
    let slow = format!("sleep 2; {TEST_COMMAND}");
    let created = client.create_task(proto::CreateTaskRequest { test_command: slow, ..request(&project) }).await.unwrap().into_inner();
    let mut watch = client.watch_task(proto::WatchTaskRequest { id: created.id.clone(), after_sequence: 0 }).await.unwrap().into_inner();
    while let Some(event) = watch.message().await.unwrap() {
        if let Some(proto::task_event::Event::Message(message)) = event.event
            && message.phase == "review"
        {
            break;
        }
    }
    assert_eq!(calls(root.path()), 2, "round 1's discussion and implementation");
    let now = client.get_task(proto::GetTaskRequest { id: created.id.clone() }).await.unwrap().into_inner();
    assert_eq!((now.status(), now.round, now.phase.as_str()), (proto::TaskStatus::Running, 1, "review"), "where it is, while it runs");
    server.crash().await;

    let server = TestServer::start_with_models(&database.url, test_registry(&StepCounter::default()), fast_config(), models()).await;
    let mut client = tasks(&server).await;
    let task = until(&mut client, &created.id, &ENDED).await;
    assert_eq!(task.status(), proto::TaskStatus::Passed, "{}", task.message);
    assert_eq!(task.rounds.len(), 2);
    assert_eq!(calls(root.path()), 4, "the author's turns of round 1 were not asked again");
    server.shutdown().await;
}

async fn the_deadline_and_the_watchdog_end_a_task(database: &TestDatabase) {
    // The author takes 5 s to implement; the watchdog allows the whole task 1 s.
    let setup = start(database, "sleep 5", NO_BLOCKER, false).await;
    let mut client = tasks(&setup.server).await;
    let watched = proto::CreateTaskRequest { timeouts: Some(proto::TaskTimeouts { task_seconds: 1, ..Default::default() }), ..request(&setup.project) };
    let created = client.create_task(watched).await.unwrap().into_inner();
    let task = until(&mut client, &created.id, &ENDED).await;
    assert_eq!((task.status(), task.reason.as_str()), (proto::TaskStatus::FailedSystem, "watchdog_timeout"), "{}", task.message);

    // `evolve_until` already past: no round starts.
    let past = prost_types::Timestamp { seconds: 1_000_000_000, nanos: 0 };
    let late = client.create_task(proto::CreateTaskRequest { evolve_until: Some(past), ..request(&setup.project) }).await.unwrap().into_inner();
    let task = until(&mut client, &late.id, &ENDED).await;
    assert_eq!((task.status(), task.reason.as_str()), (proto::TaskStatus::FailedGate, "deadline_reached"), "{}", task.message);
    assert!(task.rounds.is_empty());
    setup.server.shutdown().await;
}

/// Mock providers for the gate cases: `ok` (every review `no_blocker`), `block` (a blocker),
/// `mute` (no JSON, so `unknown`) and `down` (failing, so no review).
fn gate_models() -> ModelsConfig {
    let text = r#"
[providers.ok]
type = "mock"
[[providers.ok.script]]
role = "reviewer"
json = { verdict = "no_blocker", findings = [] }

[providers.block]
type = "mock"
[[providers.block.script]]
role = "reviewer"
json = { verdict = "blocker", findings = ["it breaks the build"] }

[providers.mute]
type = "mock"

[providers.down]
type = "mock"
[[providers.down.script]]
role = "reviewer"
fail = "authentication"
"#;
    let file: toml::Table = toml::from_str(text).expect("models");
    let providers = file.into_iter().next().map(|(_, providers)| providers.try_into().expect("providers")).unwrap_or_default();
    ModelsConfig { providers, router: RouterSettings { chain: vec!["ok".into()], ..RouterSettings::default() } }
}

/// Every gate case, one round each, with mock agents (nothing edits files): the first failure
/// in the seed's order is the one reported.
async fn every_gate_case_with_the_mock(database: &TestDatabase) {
    let root = tempfile::tempdir().unwrap();
    let project = project(root.path());
    let server = TestServer::start_with_models(&database.url, test_registry(&StepCounter::default()), fast_config(), gate_models()).await;
    let mut client = tasks(&server).await;
    let reviewer = |id: &str| proto::TaskParticipant { id: id.into(), ..Default::default() };
    let case = |test: &str, lint: &str, reviewers: &[&str]| proto::CreateTaskRequest {
        author: participant("ok#author"),
        reviewers: reviewers.iter().map(|id| reviewer(id)).collect(),
        sandbox: false,
        auto_merge: false,
        max_rounds: 1,
        test_command: test.into(),
        lint_command: lint.into(),
        ..request(&project)
    };
    let cases = [
        (case("false", "false", &["block#a", "mute#b"]), "tests_failed"),
        (case("true", "exit 3", &["block#a", "mute#b"]), "lint_failed"),
        (case("true", "true", &["mute#a", "block#b"]), "review_blocker"),
        (case("", "", &["ok#a", "mute#b"]), "review_unknown"),
        (case("true", "", &["ok#a", "down#b"]), "review_missing"),
        (case("true", "true", &["ok#a", "ok#b"]), "passed"),
    ];
    for (request, expected) in cases {
        let created = client.create_task(request).await.unwrap().into_inner();
        let task = until(&mut client, &created.id, &ENDED).await;
        assert_eq!(task.rounds.len(), 1, "{expected}: {}", task.message);
        assert_eq!(task.rounds[0].gate, expected, "{:?}", task.rounds[0].findings);
        let status = if expected == "passed" { proto::TaskStatus::Passed } else { proto::TaskStatus::FailedGate };
        assert_eq!(task.status(), status);
    }
    server.shutdown().await;
}

/// At most `max_running_tasks` (4 by default) run at once; the next waits, queued.
async fn running_tasks_are_capped(database: &TestDatabase) {
    let setup = start(database, "sleep 3", NO_BLOCKER, false).await;
    let mut client = tasks(&setup.server).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        let request = proto::CreateTaskRequest { auto_merge: false, max_rounds: 1, test_command: String::new(), ..request(&setup.project) };
        ids.push(client.create_task(request).await.unwrap().into_inner().id);
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut statuses = Vec::new();
        for id in &ids {
            statuses.push(client.get_task(proto::GetTaskRequest { id: id.clone() }).await.unwrap().into_inner().status());
        }
        let running = statuses.iter().filter(|status| **status == proto::TaskStatus::Running).count();
        assert!(running <= 4, "{statuses:?}");
        if running == 4 {
            assert_eq!(statuses.iter().filter(|status| **status == proto::TaskStatus::Queued).count(), 1, "{statuses:?}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "four never ran at once: {statuses:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for id in &ids {
        assert_eq!(until(&mut client, id, &ENDED).await.status(), proto::TaskStatus::Passed);
    }
    setup.server.shutdown().await;
}

fn micros(time: &Option<prost_types::Timestamp>) -> i64 {
    let time = time.as_ref().expect("a time");
    time.seconds * 1_000_000 + i64::from(time.nanos) / 1_000
}

/// Waits until the loop's run has ended.
async fn loop_ended(client: &mut TaskServiceClient<Channel>, id: &str) -> proto::TaskLoop {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let looped = client.get_task_loop(proto::GetTaskLoopRequest { id: id.to_owned() }).await.unwrap().into_inner();
        let state = looped.run.as_ref().unwrap().state();
        if matches!(state, proto::RunState::Succeeded | proto::RunState::Failed | proto::RunState::Cancelled) {
            return looped;
        }
        assert!(tokio::time::Instant::now() < deadline, "loop {id} stayed {state:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The overnight loop: one task after another, never two at once, until the deadline or the
/// number of tasks; cancelling it cancels its running task.
async fn a_loop_runs_one_task_after_another(database: &TestDatabase) {
    let setup = start(database, "", NO_BLOCKER, false).await;
    let mut client = tasks(&setup.server).await;
    let task = proto::CreateTaskRequest { auto_merge: false, max_rounds: 1, test_command: String::new(), auto_start: false, ..request(&setup.project) };
    let soon = |seconds: i64| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        Some(prost_types::Timestamp { seconds: now + seconds, nanos: 0 })
    };

    let until_deadline = proto::CreateTaskLoopRequest { task: Some(task.clone()), until: soon(8), ..Default::default() };
    let created = client.create_task_loop(until_deadline).await.unwrap().into_inner();
    let looped = loop_ended(&mut client, &created.id).await;
    assert_eq!(looped.stopped, "deadline");
    assert!(looped.tasks.len() >= 2, "{} tasks", looped.tasks.len());
    assert!(looped.tasks.iter().all(|task| task.status() == proto::TaskStatus::Passed));
    for pair in looped.tasks.windows(2) {
        let (before, after) = (pair[0].run.as_ref().unwrap(), pair[1].run.as_ref().unwrap());
        assert!(micros(&before.finish_time) <= micros(&after.create_time), "one at a time: {} then {}", before.id, after.id);
    }
    let channel = Channel::from_shared(format!("http://{}", setup.server.addr)).unwrap().connect().await.unwrap();
    let log = proto::artifact_service_client::ArtifactServiceClient::new(channel)
        .get_artifact(proto::GetArtifactRequest { artifact: Some(proto::ArtifactRef { run_id: looped.id.clone(), name: "loop.md".into(), ..Default::default() }) })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(log.version as usize, looped.tasks.len(), "a version of the log after each task");

    let counted = proto::CreateTaskLoopRequest { task: Some(task.clone()), until: soon(600), max_tasks: 2, ..Default::default() };
    let created = client.create_task_loop(counted).await.unwrap().into_inner();
    let looped = loop_ended(&mut client, &created.id).await;
    assert_eq!((looped.stopped.as_str(), looped.tasks.len()), ("max_tasks", 2));

    let refused = client.create_task_loop(proto::CreateTaskLoopRequest { task: Some(task.clone()), until: soon(-10), ..Default::default() }).await.unwrap_err();
    assert_eq!(bad_fields(&refused), ["until"]);
    setup.server.shutdown().await;
}

async fn cancelling_a_loop_cancels_its_running_task(database: &TestDatabase) {
    let setup = start(database, "sleep 30", NO_BLOCKER, false).await;
    let mut client = tasks(&setup.server).await;
    let task = proto::CreateTaskRequest { auto_merge: false, max_rounds: 1, test_command: String::new(), ..request(&setup.project) };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let created = client
        .create_task_loop(proto::CreateTaskLoopRequest { task: Some(task), until: Some(prost_types::Timestamp { seconds: now + 600, nanos: 0 }), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let deadline = tokio::time::Instant::now() + WAIT;
    let first = loop {
        let looped = client.get_task_loop(proto::GetTaskLoopRequest { id: created.id.clone() }).await.unwrap().into_inner();
        if let Some(task) = looped.tasks.first().filter(|task| task.status() == proto::TaskStatus::Running) {
            break task.id.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "no task ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    client.cancel_task_loop(proto::CancelTaskLoopRequest { id: created.id.clone(), reason: "morning".into() }).await.unwrap();
    let looped = loop_ended(&mut client, &created.id).await;
    assert_eq!(looped.run.as_ref().unwrap().state(), proto::RunState::Cancelled);
    assert_eq!(until(&mut client, &first, &ENDED).await.status(), proto::TaskStatus::Canceled);
    assert_eq!(looped.tasks.len(), 1, "no task started after the cancel");
    setup.server.shutdown().await;
}

on_both_stores!(
    the_tasks_own_gates_use_the_shared_engine,
    a_loop_runs_one_task_after_another,
    cancelling_a_loop_cancels_its_running_task,
    running_tasks_are_capped,
    every_gate_case_with_the_mock,
    the_deadline_and_the_watchdog_end_a_task,
    a_restart_mid_round_repeats_no_finished_phase,
    a_task_passes_in_round_two_and_merges_back,
    a_reviewer_blocker_fails_the_gate,
    manual_tasks_wait_for_the_author,
    a_merge_is_refused_when_the_project_changed_underneath,
    a_fallback_takes_over_from_a_missing_author_program,
    stats_count_a_mix_of_outcomes,
    the_workspace_tree_leaves_out_what_gitignore_ignores,
    bad_task_requests_say_what_to_fix,
);
