-- Workspaces, runs, and each run's events, logs and journal (SQLite twin of postgres/0001_runs.sql).

CREATE TABLE workspaces (
    id          TEXT PRIMARY KEY,
    created_at  INTEGER NOT NULL
);

INSERT INTO workspaces (id, created_at) VALUES ('default', 0);

CREATE TABLE runs (
    id                  TEXT PRIMARY KEY,
    workspace_id        TEXT NOT NULL REFERENCES workspaces (id),
    kind                TEXT NOT NULL,
    state               TEXT NOT NULL,
    input               TEXT NOT NULL,
    output              TEXT,
    error               TEXT,
    priority            INTEGER NOT NULL,
    max_attempts        INTEGER NOT NULL,
    attempt             INTEGER NOT NULL DEFAULT 0,
    attempt_timeout_ms  INTEGER NOT NULL,
    deadline            INTEGER,
    concurrency_key     TEXT,
    concurrency_limit   INTEGER NOT NULL DEFAULT 1,
    labels              TEXT NOT NULL,
    request_id          TEXT,
    created_at          INTEGER NOT NULL,
    started_at          INTEGER,
    finished_at         INTEGER,
    updated_at          INTEGER NOT NULL,
    scheduled_at        INTEGER NOT NULL,
    waiting             TEXT,
    decisions           TEXT NOT NULL DEFAULT '{}',
    lease_worker        TEXT,
    lease_epoch         INTEGER NOT NULL DEFAULT 0,
    lease_expires_at    INTEGER,
    cancel_requested    BOOLEAN NOT NULL DEFAULT FALSE,
    last_event_seq      INTEGER NOT NULL DEFAULT 0,
    last_log_seq        INTEGER NOT NULL DEFAULT 0
);

CREATE UNIQUE INDEX runs_request_id ON runs (workspace_id, request_id) WHERE request_id IS NOT NULL;
CREATE INDEX runs_queue ON runs (priority DESC, id) WHERE state = 'queued';
CREATE INDEX runs_lease_expiry ON runs (lease_expires_at) WHERE state = 'running';
CREATE INDEX runs_concurrency ON runs (concurrency_key) WHERE state = 'running' AND concurrency_key IS NOT NULL;
CREATE INDEX runs_deadline ON runs (deadline) WHERE deadline IS NOT NULL AND state IN ('queued', 'running', 'waiting');
CREATE INDEX runs_by_workspace ON runs (workspace_id, id);
CREATE INDEX runs_by_state ON runs (workspace_id, state, id);
CREATE INDEX runs_by_kind ON runs (workspace_id, kind, id);
CREATE INDEX runs_finished ON runs (finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE run_labels (
    run_id  TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    key     TEXT NOT NULL,
    value   TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
);

CREATE INDEX run_labels_by_value ON run_labels (key, value, run_id);

CREATE TABLE run_events (
    run_id  TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    time    INTEGER NOT NULL,
    data    TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;

CREATE TABLE run_logs (
    run_id   TEXT NOT NULL,
    seq      INTEGER NOT NULL,
    time     INTEGER NOT NULL,
    attempt  INTEGER NOT NULL,
    stream   INTEGER NOT NULL,
    text     TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;

CREATE TABLE run_journal (
    run_id       TEXT NOT NULL,
    key          TEXT NOT NULL,
    output       TEXT NOT NULL,
    attempt      INTEGER NOT NULL,
    finished_at  INTEGER NOT NULL,
    duration_us  INTEGER NOT NULL,
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
