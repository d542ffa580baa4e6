-- Debate participants' records and missions' memory (postgres twin of
-- sqlite/0005_debates_missions.sql).

-- Whether each participant's final vote matched its debate's outcome, once per debate: a
-- participant's reliability, which weights its votes when a debate asks for it.
CREATE TABLE debate_votes (
    run_id          TEXT NOT NULL,
    workspace_id    TEXT NOT NULL,
    participant     TEXT NOT NULL,
    agreed          BOOLEAN NOT NULL,
    recorded_at     BIGINT NOT NULL,
    PRIMARY KEY (run_id, participant)
);

CREATE INDEX debate_votes_by_participant ON debate_votes (workspace_id, participant);

-- What finished missions asked and found, searched by text for the context of later ones.
CREATE TABLE mission_memory (
    run_id          TEXT PRIMARY KEY,
    workspace_id    TEXT NOT NULL,
    request         TEXT NOT NULL,
    summary         TEXT NOT NULL,
    outcome         TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    search          tsvector GENERATED ALWAYS AS (to_tsvector('english', request || ' ' || summary)) STORED
);

CREATE INDEX mission_memory_search ON mission_memory USING GIN (search);
