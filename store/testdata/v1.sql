-- A store as schema version 1 left it: the schema of migrations/0001_init.sql
-- as it shipped, frozen here (do not edit it to follow later migrations),
-- and a few rows that every later migration must carry over.

PRAGMA application_id = 1146311756;
PRAGMA user_version = 1;

CREATE TABLE runs (
    id          TEXT PRIMARY KEY,
    method      TEXT NOT NULL,
    base_model  TEXT NOT NULL DEFAULT '',
    dataset     TEXT NOT NULL DEFAULT '',
    task        TEXT NOT NULL DEFAULT '',
    status      TEXT NOT NULL DEFAULT 'queued'
                CHECK (status IN ('queued', 'running', 'completed', 'failed', 'canceled')),
    error       TEXT NOT NULL DEFAULT '',
    config      TEXT NOT NULL DEFAULT '',
    dir         TEXT NOT NULL DEFAULT '',
    pid         INTEGER,
    pid_start   INTEGER,
    created_at  TEXT NOT NULL,
    started_at  TEXT,
    finished_at TEXT,
    updated_at  TEXT NOT NULL
);
CREATE INDEX runs_by_created ON runs (created_at);
CREATE INDEX runs_by_status ON runs (status);

CREATE TABLE metrics (
    run_id TEXT    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    name   TEXT    NOT NULL,
    step   INTEGER NOT NULL,
    value  REAL,
    time   TEXT    NOT NULL,
    PRIMARY KEY (run_id, name, step)
) WITHOUT ROWID;

CREATE TABLE checkpoints (
    run_id     TEXT    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step       INTEGER NOT NULL,
    path       TEXT    NOT NULL,
    created_at TEXT    NOT NULL,
    PRIMARY KEY (run_id, step)
);

INSERT INTO runs (id, method, base_model, dataset, task, status, error, config, dir, pid,
                  created_at, started_at, finished_at, updated_at)
VALUES
    ('20261101-090000-sft-aa01', 'sft', 'models/Qwen2.5-0.5B-Instruct', 'data/tickets.jsonl',
     'classification', 'completed', '', '{"lr":0.0002}', 'runs/20261101-090000-sft-aa01', 4242,
     '2026-11-01T09:00:00.000000Z', '2026-11-01T09:00:01.000000Z',
     '2026-11-01T10:00:00.000000Z', '2026-11-01T10:00:00.000000Z'),
    ('20261102-090000-dpo-bb02', 'dpo', 'models/SmolLM2-360M', 'data/prefs.jsonl',
     '', 'failed', 'out of memory', '', 'runs/20261102-090000-dpo-bb02', NULL,
     '2026-11-02T09:00:00.000000Z', NULL, '2026-11-02T09:05:00.000000Z',
     '2026-11-02T09:05:00.000000Z');

INSERT INTO metrics (run_id, name, step, value, time) VALUES
    ('20261101-090000-sft-aa01', 'loss', 1, 2.5, '2026-11-01T09:00:10.000000Z'),
    ('20261101-090000-sft-aa01', 'loss', 2, 2.25, '2026-11-01T09:00:20.000000Z'),
    ('20261101-090000-sft-aa01', 'loss', 3, NULL, '2026-11-01T09:00:30.000000Z'),
    ('20261101-090000-sft-aa01', 'lr', 1, 0.0002, '2026-11-01T09:00:10.000000Z');

INSERT INTO checkpoints (run_id, step, path, created_at) VALUES
    ('20261101-090000-sft-aa01', 2, 'runs/20261101-090000-sft-aa01/checkpoints/step-2',
     '2026-11-01T09:00:20.000000Z');
