//! The `cli` provider against small shell scripts: how the prompt reaches the program, streaming,
//! the working directory, timeouts and cancellation (the whole process group dies), and how
//! failed runs are classified.

use std::{
    ffi::OsStr,
    path::{Path, PathBuf},
    time::Duration,
};

use conclave::models::{CliConfig, CliProvider, FailureClass, ModelRequest, Provider, ProviderKind};
use tokio::sync::mpsc;

/// Long enough to prove only that nothing hung, even on a loaded machine.
const NOT_HUNG: Duration = Duration::from_secs(10);

/// Writes an executable `#!/bin/sh` script. A child shell writes it, so no thread of this test
/// process ever holds it open for writing: a fork by a concurrent test could inherit that
/// descriptor and make running the script fail with "text file busy".
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    write_file(dir, name, &format!("#!/bin/sh\n{body}\n"), "755")
}

fn write_file(dir: &Path, name: &str, content: &str, mode: &str) -> PathBuf {
    let path = dir.join(name);
    let status = std::process::Command::new("/bin/sh")
        .args([OsStr::new("-c"), OsStr::new(r#"printf '%s' "$2" > "$1" && chmod "$3" "$1""#), OsStr::new("write")])
        .args([path.as_os_str(), OsStr::new(content), OsStr::new(mode)])
        .status()
        .unwrap();
    assert!(status.success(), "writing {}", path.display());
    path
}

/// A provider from a TOML configuration whose `program` is `program`.
fn provider(program: &Path, rest: &str) -> CliProvider {
    let config: CliConfig = toml::from_str(&format!("program = \"{}\"\n{rest}", program.display())).unwrap();
    CliProvider::new("agent", config).unwrap()
}

fn request(prompt: &str) -> ModelRequest {
    let mut request = ModelRequest::prompt(prompt);
    request.timeout = Duration::from_secs(30);
    request
}

async fn generate(provider: &CliProvider, request: &ModelRequest) -> Result<conclave::models::Completion, conclave::models::CallFailure> {
    tokio::time::timeout(NOT_HUNG, provider.generate(request, None)).await.expect("the call hung")
}

/// Whether the process runs (a zombie no longer does: it waits only to be reaped, which the
/// init process of a container may never do).
fn is_running(pid: u32) -> bool {
    let signalled = std::process::Command::new("kill").args(["-0", &pid.to_string()]).stderr(std::process::Stdio::null()).status().unwrap();
    if !signalled.success() {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !matches!(stat.rsplit_once(") ").and_then(|(_, fields)| fields.chars().next()), Some('Z' | 'X')),
        Err(_) => !Path::new("/proc/self").exists(),
    }
}

/// Waits (within [`NOT_HUNG`]) for the process to be gone; says whether it went.
async fn is_gone_soon(pid: u32) -> bool {
    let deadline = tokio::time::Instant::now() + NOT_HUNG;
    while tokio::time::Instant::now() < deadline {
        if !is_running(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Waits for a file the script writes, and reads the pid in it.
async fn pid_in(path: &Path) -> u32 {
    let deadline = tokio::time::Instant::now() + NOT_HUNG;
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Ok(pid) = text.trim().parse()
        {
            return pid;
        }
        assert!(tokio::time::Instant::now() < deadline, "{} was never written", path.display());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_prompt_goes_to_standard_input_and_the_output_is_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let echo = script(dir.path(), "echo-stdin", "cat");
    let agent = provider(&echo, "");
    assert_eq!(agent.kind(), ProviderKind::Cli);
    assert_eq!(agent.default_model(), "echo-stdin");

    let mut asked = request("Say hi");
    asked.system = Some("Be brief.".to_owned());
    asked.sampling.temperature = Some(0.0);
    asked.sampling.seed = Some(7);
    let completion = generate(&agent, &asked).await.unwrap();
    assert_eq!(completion.text, asked.flattened());
    assert_eq!(completion.text, "Be brief.\n\nSay hi\n");
    assert_eq!(completion.model, "echo-stdin");
    assert_eq!(completion.finish_reason.as_deref(), Some("exit 0"));
    assert_eq!(completion.fingerprint, None);
    assert_eq!(completion.usage, Default::default());
    assert_eq!(completion.applied.model, "echo-stdin");
    assert_eq!(completion.applied.temperature, None, "a program takes no temperature");
    assert_eq!(completion.applied.seed, None, "a program takes no seed");
    assert!(!completion.applied.stream);
}

#[tokio::test]
async fn argument_mode_puts_the_prompt_and_model_in_place_of_their_placeholders() {
    let dir = tempfile::tempdir().unwrap();
    let args = script(dir.path(), "print-args", r#"for arg in "$@"; do printf '[%s]' "$arg"; done; cat"#);
    let agent = provider(&args, "prompt = \"argument\"\nmodel = \"opus\"\nargs = [\"--model={model}\", \"-p\", \"{prompt}\", \"--json\"]");
    assert_eq!(agent.default_model(), "opus");

    let completion = generate(&agent, &request("Say hi")).await.unwrap();
    assert_eq!(completion.text, "[--model=opus][-p][Say hi\n][--json]", "the prompt is an argument and standard input is empty");
    assert_eq!(completion.model, "opus");

    let mut other_model = request("Say hi");
    other_model.model = Some("haiku".to_owned());
    let completion = generate(&agent, &other_model).await.unwrap();
    assert!(completion.text.starts_with("[--model=haiku]"), "{}", completion.text);
    assert_eq!(completion.model, "haiku");
}

#[tokio::test]
async fn argument_mode_appends_the_prompt_when_no_argument_has_a_placeholder() {
    let dir = tempfile::tempdir().unwrap();
    let args = script(dir.path(), "print-args", r#"for arg in "$@"; do printf '[%s]' "$arg"; done"#);
    let agent = provider(&args, "prompt = \"argument\"\nargs = [\"exec\", \"--quiet\"]");
    let completion = generate(&agent, &request("Fix {model} the bug")).await.unwrap();
    assert_eq!(completion.text, "[exec][--quiet][Fix {model} the bug\n]");
}

#[tokio::test]
async fn output_lines_are_streamed_while_the_program_still_runs() {
    let dir = tempfile::tempdir().unwrap();
    let go_on = dir.path().join("go-on");
    let agent = provider(
        &script(dir.path(), "slow", r#"echo first; while [ ! -e "$1" ]; do sleep 0.05; done; echo second; printf 'no newline'"#),
        &format!("args = [\"{}\"]", go_on.display()),
    );
    let (sink, mut lines) = mpsc::channel(16);
    let asked = request("go");
    let listen = async {
        let first = lines.recv().await;
        // The program waits for this file: the first line came before it could exit.
        std::fs::write(&go_on, "").unwrap();
        first
    };
    let (completion, first) = tokio::time::timeout(NOT_HUNG, async { tokio::join!(agent.generate(&asked, Some(&sink)), listen) })
        .await
        .expect("the call hung");
    drop(sink);
    assert_eq!(first.as_deref(), Some("first\n"));
    let mut rest = Vec::new();
    while let Some(line) = lines.recv().await {
        rest.push(line);
    }
    assert_eq!(rest, ["second\n", "no newline"]);
    let completion = completion.unwrap();
    assert_eq!(completion.text, "first\nsecond\nno newline");
    assert!(completion.applied.stream);
}

#[tokio::test]
async fn the_program_runs_in_the_requests_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let workdir = tempfile::tempdir().unwrap();
    let agent = provider(&script(dir.path(), "where", "pwd"), "");
    let mut asked = request("where are you?");
    asked.workdir = Some(workdir.path().to_owned());
    let completion = generate(&agent, &asked).await.unwrap();
    assert_eq!(Path::new(completion.text.trim()).canonicalize().unwrap(), workdir.path().canonicalize().unwrap());
}

#[tokio::test]
async fn configured_environment_reaches_the_program() {
    let dir = tempfile::tempdir().unwrap();
    let agent = provider(&script(dir.path(), "env", r#"printf '%s' "$AGENT_MODE""#), "[env]\nAGENT_MODE = \"careful\"");
    assert_eq!(generate(&agent, &request("x")).await.unwrap().text, "careful");
}

#[tokio::test]
async fn a_timeout_kills_the_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("sleeper.pid");
    let agent = provider(
        &script(dir.path(), "hang", r#"sleep 60 & echo $! > "$1"; wait"#),
        &format!("args = [\"{}\"]", pid_file.display()),
    );
    let mut asked = request("hang");
    asked.timeout = Duration::from_millis(500);
    let failure = generate(&agent, &asked).await.unwrap_err();
    assert_eq!(failure.class, FailureClass::Timeout, "{failure}");
    let sleeper = pid_in(&pid_file).await;
    assert!(is_gone_soon(sleeper).await, "the script's child `sleep` (pid {sleeper}) outlived the timeout");
}

#[tokio::test]
async fn a_dropped_call_kills_the_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("sleeper.pid");
    let agent = provider(
        &script(dir.path(), "hang", r#"sleep 60 & echo $! > "$1"; wait"#),
        &format!("args = [\"{}\"]", pid_file.display()),
    );
    let asked = request("hang");
    let mut call = Box::pin(agent.generate(&asked, None));
    let sleeper = tokio::select! {
        outcome = &mut call => panic!("the call ended before it was dropped: {outcome:?}"),
        pid = pid_in(&pid_file) => pid,
    };
    assert!(is_running(sleeper));
    drop(call);
    assert!(is_gone_soon(sleeper).await, "the script's child `sleep` (pid {sleeper}) outlived the cancelled call");
}

#[tokio::test]
async fn helpers_left_holding_the_output_do_not_keep_the_call_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("helper.pid");
    let agent = provider(
        &script(dir.path(), "leave-helper", r#"sleep 60 & echo $! > "$1"; echo done"#),
        &format!("args = [\"{}\"]", pid_file.display()),
    );
    let completion = generate(&agent, &request("x")).await.unwrap();
    assert_eq!(completion.text, "done\n");
    let helper = pid_in(&pid_file).await;
    assert!(is_gone_soon(helper).await, "the helper (pid {helper}) outlived the program");
}

#[tokio::test]
async fn a_limit_message_on_a_failed_run_is_rate_limited_for_the_cooldown() {
    let dir = tempfile::tempdir().unwrap();
    let agent = provider(&script(dir.path(), "limited", "echo 'Claude AI Usage Limit reached|1767225600' >&2; exit 1"), "");
    let failure = generate(&agent, &request("x")).await.unwrap_err();
    assert_eq!(failure.class, FailureClass::RateLimited, "{failure}");
    assert_eq!(failure.retry_after, Some(Duration::from_secs(300)));
    assert_eq!(failure.status, Some(1));

    let agent = provider(
        &script(dir.path(), "quota", "echo 'daily allowance used up'; exit 2"),
        "limit_patterns = [\"ALLOWANCE USED UP\"]\nlimit_cooldown_seconds = 60",
    );
    let failure = generate(&agent, &request("x")).await.unwrap_err();
    assert_eq!(failure.class, FailureClass::RateLimited, "configured patterns match standard output too: {failure}");
    assert_eq!(failure.retry_after, Some(Duration::from_secs(60)));
}

#[tokio::test]
async fn a_limit_message_with_exit_0_fails_only_when_checked() {
    let dir = tempfile::tempdir().unwrap();
    let limited = script(dir.path(), "limited", "echo 'You have hit your usage limit. Limit reached.'");
    let unchecked = generate(&provider(&limited, ""), &request("x")).await.unwrap();
    assert_eq!(unchecked.text, "You have hit your usage limit. Limit reached.\n");

    let failure = generate(&provider(&limited, "success_limit_check = true"), &request("x")).await.unwrap_err();
    assert_eq!(failure.class, FailureClass::RateLimited, "{failure}");
    assert_eq!(failure.retry_after, Some(Duration::from_secs(300)));
    assert_eq!(failure.status, Some(0));
}

#[tokio::test]
async fn a_login_message_is_an_authentication_failure() {
    let dir = tempfile::tempdir().unwrap();
    let agent = provider(&script(dir.path(), "logged-out", "echo 'Error: Not logged in. Please run /login' >&2; exit 1"), "");
    let failure = generate(&agent, &request("x")).await.unwrap_err();
    assert_eq!(failure.class, FailureClass::Authentication, "{failure}");
    assert_eq!(failure.status, Some(1));
}

#[tokio::test]
async fn any_other_failure_is_a_failed_program_with_its_status_and_the_end_of_its_errors() {
    let dir = tempfile::tempdir().unwrap();
    let noisy = "i=0; while [ $i -lt 300 ]; do printf 'noise ' >&2; i=$((i+1)); done; echo 'fatal: the repository is corrupt' >&2; exit 3";
    let agent = provider(&script(dir.path(), "fails", noisy), "");
    let failure = generate(&agent, &request("x")).await.unwrap_err();
    assert_eq!(failure.class, FailureClass::ProgramFailed, "{failure}");
    assert_eq!(failure.status, Some(3));
    assert!(failure.message.contains("fatal: the repository is corrupt"), "{}", failure.message);
    assert!(failure.message.contains("status 3"), "{}", failure.message);
    assert!(failure.message.chars().count() < 700, "the message quotes only the end of standard error: {}", failure.message);
}

#[tokio::test]
async fn a_program_killed_by_a_signal_reports_the_negated_signal() {
    let dir = tempfile::tempdir().unwrap();
    let agent = provider(&script(dir.path(), "killed", "kill -9 $$"), "");
    let failure = generate(&agent, &request("x")).await.unwrap_err();
    assert_eq!(failure.class, FailureClass::ProgramFailed, "{failure}");
    assert_eq!(failure.status, Some(-9));
}

#[tokio::test]
async fn configured_secrets_are_masked_in_failure_messages() {
    let dir = tempfile::tempdir().unwrap();
    let agent = provider(
        &script(dir.path(), "leaky", r#"echo "request failed with key $AGENT_KEY" >&2; exit 1"#),
        "[env]\nAGENT_KEY = \"sk-test-0123456789abcdef\"",
    );
    let failure = generate(&agent, &request("x")).await.unwrap_err();
    assert_eq!(failure.class, FailureClass::ProgramFailed, "{failure}");
    assert!(!failure.message.contains("sk-test-0123456789abcdef"), "{}", failure.message);
    assert!(failure.message.contains("[redacted]"), "{}", failure.message);
}

#[tokio::test]
async fn a_program_that_is_not_installed_is_missing() {
    let agent = provider(Path::new("conclave-test-no-such-agent"), "");
    let failure = generate(&agent, &request("x")).await.unwrap_err();
    assert_eq!(failure.class, FailureClass::ProgramMissing, "{failure}");
    assert!(failure.message.contains("conclave-test-no-such-agent"), "{}", failure.message);
    assert!(failure.message.contains("PATH"), "{}", failure.message);
}

#[tokio::test]
async fn a_program_that_is_not_executable_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let not_executable = write_file(dir.path(), "agent", "#!/bin/sh\necho hi\n", "644");
    let failure = generate(&provider(&not_executable, ""), &request("x")).await.unwrap_err();
    assert_eq!(failure.class, FailureClass::ProgramMissing, "{failure}");
}

#[tokio::test]
async fn a_missing_working_directory_is_an_invalid_request_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let agent = provider(&script(dir.path(), "where", "pwd"), "");
    let mut asked = request("x");
    let missing = dir.path().join("no-such-dir");
    asked.workdir = Some(missing.clone());
    let failure = generate(&agent, &asked).await.unwrap_err();
    assert_eq!(failure.class, FailureClass::InvalidRequest, "{failure}");
    assert!(failure.message.contains(&missing.display().to_string()), "{}", failure.message);
}

#[test]
fn the_configuration_requires_a_program_and_refuses_unknown_fields() {
    assert!(toml::from_str::<CliConfig>("args = [\"-p\"]").is_err(), "program is required");
    assert!(toml::from_str::<CliConfig>("program = \"claude\"\ntemperature = 0.2").is_err(), "unknown fields are refused");
    assert!(toml::from_str::<CliConfig>("program = \"claude\"\nprompt = \"file\"").is_err(), "unknown prompt modes are refused");

    let empty: CliConfig = toml::from_str("program = \"\"").unwrap();
    let err = CliProvider::new("claude", empty).unwrap_err();
    assert!(err.to_string().contains("providers.claude.program"), "{err}");

    let empty_pattern: CliConfig = toml::from_str("program = \"claude\"\nlimit_patterns = [\"limit\", \" \"]").unwrap();
    let err = CliProvider::new("claude", empty_pattern).unwrap_err();
    assert!(err.to_string().contains("providers.claude.limit_patterns[1]"), "{err}");

    let defaults: CliConfig = toml::from_str("program = \"/usr/local/bin/claude\"").unwrap();
    assert_eq!(defaults, CliConfig::new("/usr/local/bin/claude"));
    assert!(defaults.limit_patterns.iter().any(|pattern| pattern == "usage limit"));
    assert_eq!(defaults.limit_cooldown_seconds, 300);
    assert!(!defaults.success_limit_check);
    let agent = CliProvider::new("claude", defaults).unwrap();
    assert_eq!(agent.default_model(), "claude", "a program that is not installed is no construction error");
}
