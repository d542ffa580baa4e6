-- Debate participants' records and missions' memory (sqlite twin of
-- postgres/0005_debates_missions.sql).

-- Whether each participant's final vote matched its debate's outcome, once per debate: a
-- participant's reliability, which weights its votes when a debate asks for it.
CREATE TABLE debate_votes (
    run_id          TEXT NOT NULL,
    workspace_id    TEXT NOT NULL,
    participant     TEXT NOT NULL,
    agreed          INTEGER NOT NULL,
    recorded_at     INTEGER NOT NULL,
    PRIMARY KEY (run_id, participant)
);

CREATE INDEX debate_votes_by_participant ON debate_votes (workspace_id, participant);

-- What finished missions asked and found, searched by text for the context of later ones.
CREATE VIRTUAL TABLE mission_memory USING fts5(
    run_id UNINDEXED,
    workspace_id UNINDEXED,
    request,
    summary,
    outcome UNINDEXED,
    created_at UNINDEXED
);
