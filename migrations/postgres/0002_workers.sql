-- Workers, exactly-once log appends, and retention (postgres twin of sqlite/0002_workers.sql).

-- Lines stored under the run's current lease: a batch sent again after an ambiguous failure
-- names its position and is not stored twice. Reset when the run is claimed.
ALTER TABLE runs ADD COLUMN log_position BIGINT NOT NULL DEFAULT 0;

-- When retention removed the run's events, logs and journal.
ALTER TABLE runs ADD COLUMN history_pruned_at BIGINT;

CREATE INDEX runs_history_to_prune ON runs (finished_at) WHERE finished_at IS NOT NULL AND history_pruned_at IS NULL;

CREATE INDEX runs_by_lease_worker ON runs (lease_worker) WHERE state = 'running';

-- Every worker: the built-in pool of each `conclave serve` process, and external workers
-- connected over WorkerService.
CREATE TABLE workers (
    id                 TEXT PRIMARY KEY,
    name               TEXT NOT NULL,
    kinds              TEXT NOT NULL,
    providers          TEXT NOT NULL,
    labels             TEXT NOT NULL,
    capacity           BIGINT NOT NULL,
    embedded           BOOLEAN NOT NULL,
    draining           BOOLEAN NOT NULL DEFAULT FALSE,
    registered_at      BIGINT NOT NULL,
    last_heartbeat_at  BIGINT NOT NULL,
    stale_since        BIGINT,
    stopped_at         BIGINT
);

CREATE INDEX workers_heartbeat ON workers (last_heartbeat_at) WHERE stale_since IS NULL AND stopped_at IS NULL;
