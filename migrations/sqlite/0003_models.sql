-- Provider circuit breakers and replays (sqlite twin of postgres/0003_models.sql).

-- One circuit per provider name, shared by every process on this database.
CREATE TABLE provider_circuits (
    provider            TEXT PRIMARY KEY,
    state               TEXT NOT NULL,
    failures            INTEGER NOT NULL,
    window_started_at   INTEGER NOT NULL,
    open_until          INTEGER,
    last_cooldown_ms    INTEGER NOT NULL,
    last_failure        TEXT,
    last_failure_at     INTEGER,
    updated_at          INTEGER NOT NULL
);

-- The run a replay re-executes, and how: 'exact' (every step from the journal, no provider
-- called) or 'from_step' (the journal up to a step, then live).
ALTER TABLE runs ADD COLUMN replay_of TEXT;
ALTER TABLE runs ADD COLUMN replay_mode TEXT;
