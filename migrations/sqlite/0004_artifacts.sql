-- Artifacts: named, versioned outputs of runs whose content is a blob on disk addressed by its
-- SHA-256 (sqlite twin of postgres/0004_artifacts.sql).

-- One row per version of a named artifact of a run.
CREATE TABLE artifacts (
    id                      TEXT PRIMARY KEY,
    workspace_id            TEXT NOT NULL,
    run_id                  TEXT NOT NULL,
    name                    TEXT NOT NULL,
    version                 INTEGER NOT NULL,
    kind                    TEXT NOT NULL,
    media_type              TEXT NOT NULL,
    size                    INTEGER NOT NULL,
    sha256                  TEXT NOT NULL,
    labels                  TEXT NOT NULL,
    producer_step           TEXT,
    producer_tool           TEXT,
    producer_tool_version   TEXT,
    schema_ref              TEXT,
    created_at              INTEGER NOT NULL,
    UNIQUE (run_id, name, version)
);

CREATE INDEX artifacts_by_workspace ON artifacts (workspace_id, id);
CREATE INDEX artifacts_by_sha256 ON artifacts (sha256);

-- Labels, for listing by label; the run is repeated so the run's deletion finds them.
CREATE TABLE artifact_labels (
    artifact_id TEXT NOT NULL,
    run_id      TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    PRIMARY KEY (artifact_id, key)
);

CREATE INDEX artifact_labels_by_value ON artifact_labels (key, value, artifact_id);
CREATE INDEX artifact_labels_by_run ON artifact_labels (run_id);

-- Which step of which run read which version: the downstream half of lineage.
CREATE TABLE artifact_uses (
    artifact_id TEXT NOT NULL,
    run_id      TEXT NOT NULL,
    step        TEXT NOT NULL,
    used_at     INTEGER NOT NULL,
    PRIMARY KEY (artifact_id, run_id, step)
);

CREATE INDEX artifact_uses_by_run ON artifact_uses (run_id);
