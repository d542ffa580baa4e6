//! Server configuration: built from defaults, then a TOML file (`--config`), then environment
//! variables and flags (flags win over environment). Every setting has all three forms; the
//! README's configuration table lists them.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;

use crate::{
    artifacts::ArtifactsConfig,
    domain::WorkerId,
    engine::{lifecycle::RetryPolicy, EngineConfig, Retention},
    error::{Error, Result},
    models::{ModelsConfig, ProviderSettings, RouterSettings},
    server::ServeOptions,
    workflows::ShellConfig,
};

/// Settings as given by a file, the environment or flags; unset fields fall through to the next
/// source and finally to the defaults.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on [default: 127.0.0.1:50051].
    #[arg(long, env = "CONCLAVE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: sqlite in the data directory].
    #[arg(long, env = "CONCLAVE_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Directory for the SQLite database and other local data [default: ./conclave-data].
    #[arg(long, env = "CONCLAVE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Postgres connection pool size [default: 16].
    #[arg(long, env = "CONCLAVE_DB_MAX_CONNECTIONS")]
    pub db_max_connections: Option<u32>,
    /// Runs this process executes at once; 0 makes it serve the API only [default: 64].
    #[arg(long, env = "CONCLAVE_WORKERS")]
    pub workers: Option<usize>,
    /// Seconds a lease lasts without a heartbeat [default: 15].
    #[arg(long, env = "CONCLAVE_LEASE_TTL_SECONDS")]
    pub lease_ttl_seconds: Option<f64>,
    /// Seconds between lease heartbeats; must be under the lease TTL [default: TTL / 3].
    #[arg(long, env = "CONCLAVE_HEARTBEAT_SECONDS")]
    pub heartbeat_seconds: Option<f64>,
    /// Seconds between rescue and deadline sweeps [default: 1].
    #[arg(long, env = "CONCLAVE_MAINTENANCE_SECONDS")]
    pub maintenance_seconds: Option<f64>,
    /// Seconds between safety-net polls of the queue [default: 1].
    #[arg(long, env = "CONCLAVE_POLL_SECONDS")]
    pub poll_seconds: Option<f64>,
    /// Attempts of a run created without max_attempts [default: 3].
    #[arg(long, env = "CONCLAVE_DEFAULT_MAX_ATTEMPTS")]
    pub default_max_attempts: Option<u32>,
    /// Seconds an attempt may take when the run sets no timeout [default: 3600].
    #[arg(long, env = "CONCLAVE_DEFAULT_ATTEMPT_TIMEOUT_SECONDS")]
    pub default_attempt_timeout_seconds: Option<f64>,
    /// The longest attempt timeout a run may ask for, in seconds [default: 604800].
    #[arg(long, env = "CONCLAVE_MAX_ATTEMPT_TIMEOUT_SECONDS")]
    pub max_attempt_timeout_seconds: Option<f64>,
    /// Backoff after the first failed attempt, in seconds; doubles per attempt [default: 1].
    #[arg(long, env = "CONCLAVE_RETRY_BASE_SECONDS")]
    pub retry_base_seconds: Option<f64>,
    /// The longest backoff between attempts, in seconds [default: 300].
    #[arg(long, env = "CONCLAVE_RETRY_MAX_SECONDS")]
    pub retry_max_seconds: Option<f64>,
    /// Seconds a cancelled run may take to stop before it is stopped by force [default: 10].
    #[arg(long, env = "CONCLAVE_CANCEL_GRACE_SECONDS")]
    pub cancel_grace_seconds: Option<f64>,
    /// Seconds shutdown waits for running runs before releasing them to the queue [default: 10].
    #[arg(long, env = "CONCLAVE_SHUTDOWN_GRACE_SECONDS")]
    pub shutdown_grace_seconds: Option<f64>,
    /// Seconds of silence before a stream sends a heartbeat [default: 15].
    #[arg(long, env = "CONCLAVE_STREAM_HEARTBEAT_SECONDS")]
    pub stream_heartbeat_seconds: Option<f64>,
    /// Seconds after which the events, logs and journal of finished runs are removed; 0 keeps
    /// them [default: 604800, 7 days].
    #[arg(long, env = "CONCLAVE_HISTORY_RETENTION_SECONDS")]
    pub history_retention_seconds: Option<f64>,
    /// Seconds after which finished runs are deleted; 0 keeps them [default: 2592000, 30 days].
    #[arg(long, env = "CONCLAVE_RUN_RETENTION_SECONDS")]
    pub run_retention_seconds: Option<f64>,
    /// Directory of the artifacts' content; processes sharing a database must share it
    /// [default: `artifacts` in the data directory].
    #[arg(long, env = "CONCLAVE_ARTIFACTS_DIR")]
    pub artifacts_dir: Option<PathBuf>,
    /// Largest artifact accepted, in bytes [default: 4294967296].
    #[arg(long, env = "CONCLAVE_MAX_ARTIFACT_BYTES")]
    pub max_artifact_bytes: Option<u64>,
    /// Seconds after which artifact content no version references is removed, and an
    /// upload's temporary file untouched that long is taken for abandoned [default: 3600].
    #[arg(long, env = "CONCLAVE_ARTIFACT_COLLECT_AFTER_SECONDS")]
    pub artifact_collect_after_seconds: Option<f64>,
    /// Largest gRPC message accepted, in bytes [default: 16777216].
    #[arg(long, env = "CONCLAVE_MAX_MESSAGE_BYTES")]
    pub max_message_bytes: Option<usize>,
    /// Tasks running at once at most, across the processes sharing the database [default: 4].
    #[arg(long, env = "CONCLAVE_MAX_RUNNING_TASKS")]
    pub max_running_tasks: Option<u32>,
    /// The remote skills registry `ImportSkill` reads (http:// or https://) [default: none].
    #[arg(long, env = "CONCLAVE_SKILLS_REGISTRY_URL")]
    pub skills_registry_url: Option<String>,
    /// The bearer token sent to the skills registry [default: none].
    #[arg(long, env = "CONCLAVE_SKILLS_REGISTRY_TOKEN", hide_env_values = true)]
    pub skills_registry_token: Option<String>,
    /// Log format of the server itself: text or json [default: text].
    #[arg(long, env = "CONCLAVE_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Accept `shell` runs (they execute programs on this machine) [default: off]. In the
    /// configuration file, use `enabled` under `[kinds.shell]` instead.
    #[arg(long, env = "CONCLAVE_ENABLE_SHELL", num_args = 0..=1, default_missing_value = "true")]
    #[serde(skip)]
    pub enable_shell: Option<bool>,
    /// Built-in kinds' settings (configuration file only: `[kinds.shell]`).
    #[arg(skip)]
    pub kinds: KindsSettings,
    /// Model providers by name (configuration file only: `[providers.NAME]`).
    #[arg(skip)]
    pub providers: BTreeMap<String, ProviderSettings>,
    /// The model router (configuration file only: `[router]`).
    #[arg(skip)]
    pub router: RouterSettings,
}

/// Settings of the built-in kinds.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KindsSettings {
    /// The `shell` kind.
    pub shell: ShellConfig,
}

/// The server's own log format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The resolved configuration of `conclave serve`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The store's URL.
    pub database_url: String,
    /// Local data directory.
    pub data_dir: PathBuf,
    /// Postgres pool size.
    pub db_max_connections: u32,
    /// What the gRPC services take.
    pub serve: ServeOptions,
    /// Server log format.
    pub log_format: LogFormat,
    /// The engine's settings.
    pub engine: EngineConfig,
    /// The `shell` kind's settings.
    pub shell: ShellConfig,
    /// The model providers and the router.
    pub models: ModelsConfig,
    /// Where and how artifacts are kept.
    pub artifacts: ArtifactsConfig,
}

impl Settings {
    /// Reads a TOML configuration file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|err| Error::invalid("config", format!("cannot read {}: {err}", path.display())))?;
        toml::from_str(&text).map_err(|err| Error::invalid("config", format!("{} is not a valid configuration: {err}", path.display())))
    }

    /// These settings, with every unset one taken from `base`.
    pub fn over(self, base: Settings) -> Settings {
        let mut shell = base.kinds.shell;
        if self.kinds.shell != ShellConfig::default() {
            shell = self.kinds.shell;
        }
        Settings {
            listen: self.listen.or(base.listen),
            database_url: self.database_url.or(base.database_url),
            data_dir: self.data_dir.or(base.data_dir),
            db_max_connections: self.db_max_connections.or(base.db_max_connections),
            workers: self.workers.or(base.workers),
            lease_ttl_seconds: self.lease_ttl_seconds.or(base.lease_ttl_seconds),
            heartbeat_seconds: self.heartbeat_seconds.or(base.heartbeat_seconds),
            maintenance_seconds: self.maintenance_seconds.or(base.maintenance_seconds),
            poll_seconds: self.poll_seconds.or(base.poll_seconds),
            default_max_attempts: self.default_max_attempts.or(base.default_max_attempts),
            default_attempt_timeout_seconds: self.default_attempt_timeout_seconds.or(base.default_attempt_timeout_seconds),
            max_attempt_timeout_seconds: self.max_attempt_timeout_seconds.or(base.max_attempt_timeout_seconds),
            retry_base_seconds: self.retry_base_seconds.or(base.retry_base_seconds),
            retry_max_seconds: self.retry_max_seconds.or(base.retry_max_seconds),
            cancel_grace_seconds: self.cancel_grace_seconds.or(base.cancel_grace_seconds),
            shutdown_grace_seconds: self.shutdown_grace_seconds.or(base.shutdown_grace_seconds),
            stream_heartbeat_seconds: self.stream_heartbeat_seconds.or(base.stream_heartbeat_seconds),
            history_retention_seconds: self.history_retention_seconds.or(base.history_retention_seconds),
            run_retention_seconds: self.run_retention_seconds.or(base.run_retention_seconds),
            artifacts_dir: self.artifacts_dir.or(base.artifacts_dir),
            max_artifact_bytes: self.max_artifact_bytes.or(base.max_artifact_bytes),
            artifact_collect_after_seconds: self.artifact_collect_after_seconds.or(base.artifact_collect_after_seconds),
            max_message_bytes: self.max_message_bytes.or(base.max_message_bytes),
            max_running_tasks: self.max_running_tasks.or(base.max_running_tasks),
            skills_registry_url: self.skills_registry_url.or(base.skills_registry_url),
            skills_registry_token: self.skills_registry_token.or(base.skills_registry_token),
            log_format: self.log_format.or(base.log_format),
            enable_shell: self.enable_shell.or(base.enable_shell),
            kinds: KindsSettings { shell },
            providers: if self.providers.is_empty() { base.providers } else { self.providers },
            router: if self.router.chain.is_empty() && self.router.roles.is_empty() { base.router } else { self.router },
        }
    }

    /// Applies the defaults and checks the result.
    pub fn resolve(self) -> Result<ServerConfig> {
        let defaults = EngineConfig::default();
        let seconds = |field: &str, value: Option<f64>, default: Duration| -> Result<Duration> {
            match value {
                None => Ok(default),
                Some(value) if value.is_finite() && value > 0.0 && value < 1e9 => Ok(Duration::from_secs_f64(value)),
                Some(value) => Err(Error::invalid(field, format!("must be a positive number of seconds, not {value}"))),
            }
        };
        let lease_ttl = seconds("lease_ttl_seconds", self.lease_ttl_seconds, defaults.lease_ttl)?;
        let heartbeat_interval = seconds("heartbeat_seconds", self.heartbeat_seconds, lease_ttl / 3)?;
        if heartbeat_interval >= lease_ttl {
            return Err(Error::invalid("heartbeat_seconds", "must be shorter than lease_ttl_seconds, or leases lapse between heartbeats"));
        }
        let data_dir = self.data_dir.unwrap_or_else(|| PathBuf::from("conclave-data"));
        let database_url = self
            .database_url
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("conclave.db").display()));
        let mut shell = self.kinds.shell;
        if let Some(enabled) = self.enable_shell {
            shell.enabled = enabled;
        }
        let engine = EngineConfig {
            worker_id: WorkerId::new(format!("{}-{}", hostname(), std::process::id())),
            worker_slots: self.workers.unwrap_or(defaults.worker_slots),
            lease_ttl,
            heartbeat_interval,
            maintenance_interval: seconds("maintenance_seconds", self.maintenance_seconds, defaults.maintenance_interval)?,
            poll_interval: seconds("poll_seconds", self.poll_seconds, defaults.poll_interval)?,
            default_max_attempts: match self.default_max_attempts {
                Some(0) => return Err(Error::invalid("default_max_attempts", "must be at least 1")),
                Some(n) => n,
                None => defaults.default_max_attempts,
            },
            default_attempt_timeout: seconds(
                "default_attempt_timeout_seconds",
                self.default_attempt_timeout_seconds,
                defaults.default_attempt_timeout,
            )?,
            max_attempt_timeout: seconds("max_attempt_timeout_seconds", self.max_attempt_timeout_seconds, defaults.max_attempt_timeout)?,
            retry: RetryPolicy {
                base: seconds("retry_base_seconds", self.retry_base_seconds, defaults.retry.base)?,
                max: seconds("retry_max_seconds", self.retry_max_seconds, defaults.retry.max)?,
            },
            cancel_grace: seconds("cancel_grace_seconds", self.cancel_grace_seconds, defaults.cancel_grace)?,
            shutdown_grace: seconds("shutdown_grace_seconds", self.shutdown_grace_seconds, defaults.shutdown_grace)?,
            stream_heartbeat: seconds("stream_heartbeat_seconds", self.stream_heartbeat_seconds, defaults.stream_heartbeat)?,
            retention: Retention {
                history: retention("history_retention_seconds", self.history_retention_seconds, defaults.retention.history)?,
                runs: retention("run_retention_seconds", self.run_retention_seconds, defaults.retention.runs)?,
            },
            ..defaults
        };
        let mut artifacts = ArtifactsConfig::in_dir(self.artifacts_dir.unwrap_or_else(|| data_dir.join("artifacts")));
        if self.max_running_tasks == Some(0) {
            return Err(Error::invalid("max_running_tasks", "must be at least 1"));
        }
        match self.max_artifact_bytes {
            Some(0) => return Err(Error::invalid("max_artifact_bytes", "must be at least 1")),
            Some(bytes) => artifacts.max_bytes = bytes,
            None => {}
        }
        let collect_after = seconds("artifact_collect_after_seconds", self.artifact_collect_after_seconds, artifacts.collect_after)?;
        artifacts.collect_after = collect_after;
        artifacts.abandon_upload_after = collect_after;
        Ok(ServerConfig {
            listen: self.listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 50051))),
            database_url,
            data_dir,
            db_max_connections: self.db_max_connections.unwrap_or(16),
            serve: ServeOptions {
                max_message_bytes: self.max_message_bytes.unwrap_or(ServeOptions::default().max_message_bytes),
                max_running_tasks: self.max_running_tasks.unwrap_or(ServeOptions::default().max_running_tasks),
                skills_registry: self
                    .skills_registry_url
                    .map(|url| crate::workflows::stage::RegistrySettings { url, token: self.skills_registry_token }),
            },
            log_format: self.log_format.unwrap_or_default(),
            engine,
            shell,
            models: ModelsConfig { providers: self.providers, router: self.router },
            artifacts,
        })
    }
}

/// A retention age in seconds: 0 keeps forever.
fn retention(field: &str, value: Option<f64>, default: Option<Duration>) -> Result<Option<Duration>> {
    match value {
        None => Ok(default),
        Some(0.0) => Ok(None),
        Some(value) if value.is_finite() && value > 0.0 && value < 1e11 => Ok(Some(Duration::from_secs_f64(value))),
        Some(value) => Err(Error::invalid(field, format!("must be a number of seconds (0 keeps forever), not {value}"))),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "conclave".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_which_overrides_defaults() {
        let file: Settings = toml::from_str("workers = 3\nlease_ttl_seconds = 6\n[kinds.shell]\nenabled = true\n").unwrap();
        let flags = Settings { workers: Some(5), ..Settings::default() };
        let config = flags.over(file).resolve().unwrap();
        assert_eq!(config.engine.worker_slots, 5);
        assert_eq!(config.engine.lease_ttl, Duration::from_secs(6));
        assert_eq!(config.engine.heartbeat_interval, Duration::from_secs(2));
        assert!(config.shell.enabled);
        assert_eq!(config.database_url, "sqlite://conclave-data/conclave.db");
        assert_eq!(config.artifacts.dir, PathBuf::from("conclave-data/artifacts"));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(toml::from_str::<Settings>("wokers = 3").is_err());
        let bad = Settings { lease_ttl_seconds: Some(1.0), heartbeat_seconds: Some(2.0), ..Settings::default() };
        assert!(matches!(bad.resolve(), Err(Error::InvalidArgument(v)) if v[0].field == "heartbeat_seconds"));
    }
}
