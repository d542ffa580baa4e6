-- Provider circuit breakers and replays (postgres twin of sqlite/0003_models.sql).

-- One circuit per provider name, shared by every process on this database.
CREATE TABLE provider_circuits (
    provider            TEXT PRIMARY KEY,
    state               TEXT NOT NULL,
    failures            BIGINT NOT NULL,
    window_started_at   BIGINT NOT NULL,
    open_until          BIGINT,
    last_cooldown_ms    BIGINT NOT NULL,
    last_failure        TEXT,
    last_failure_at     BIGINT,
    updated_at          BIGINT NOT NULL
);

-- The run a replay re-executes, and how: 'exact' (every step from the journal, no provider
-- called) or 'from_step' (the journal up to a step, then live).
ALTER TABLE runs ADD COLUMN replay_of TEXT;
ALTER TABLE runs ADD COLUMN replay_mode TEXT;
