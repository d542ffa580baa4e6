-- Skills, recipes and cards: a workspace's skill catalog, its recipe per stage, and the cards
-- that move through the stages with their audit trail (sqlite twin of
-- postgres/0006_stages.sql). Each is kept as one JSON document (`document`) with the columns
-- queries need beside it; `revision` counts the changes of a row.

-- A workspace's skill catalog: the whole `Skill`, every version included.
CREATE TABLE skills (
    workspace_id    TEXT NOT NULL,
    skill_id        TEXT NOT NULL,
    revision        INTEGER NOT NULL,
    document        TEXT NOT NULL,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, skill_id)
);

-- A workspace's recipe per stage; `position` orders the stages on the board.
CREATE TABLE recipes (
    workspace_id    TEXT NOT NULL,
    stage           TEXT NOT NULL,
    position        INTEGER NOT NULL,
    revision        INTEGER NOT NULL,
    document        TEXT NOT NULL,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, stage)
);

-- Cards. A card's run id is data only (no foreign key): retention deletes old runs freely.
CREATE TABLE cards (
    id              TEXT PRIMARY KEY,
    workspace_id    TEXT NOT NULL,
    stage           TEXT NOT NULL,
    active_run_id   TEXT,
    revision        INTEGER NOT NULL,
    document        TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

CREATE INDEX cards_by_stage ON cards (workspace_id, stage, id);

-- The few cards whose run has not ended, which the sweep visits by id.
CREATE INDEX cards_with_active_runs ON cards (id) WHERE active_run_id IS NOT NULL;

-- Each card's audit trail, numbered from 1 without gaps; `document` is the entry as JSON.
CREATE TABLE card_events (
    card_id         TEXT NOT NULL,
    sequence        INTEGER NOT NULL,
    at              INTEGER NOT NULL,
    document        TEXT NOT NULL,
    PRIMARY KEY (card_id, sequence)
);
