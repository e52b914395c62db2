-- 0001: runs, their metric points and their checkpoints.
--
-- Times are TEXT in UTC, fixed width ("2026-11-25T18:27:00.000000Z"), so they
-- read well in the sqlite3 shell and sort as text.

-- "DSTL": marks the file as a distill store (PRAGMA application_id).
PRAGMA application_id = 1146311756;

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
    -- The process that owns the run (the launcher while queued, the trainer
    -- while running) and its start time in clock ticks since boot
    -- (/proc/<pid>/stat field 22), which tells a live owner from a reused pid.
    pid         INTEGER,
    pid_start   INTEGER,
    created_at  TEXT NOT NULL,
    started_at  TEXT,
    finished_at TEXT,
    updated_at  TEXT NOT NULL
);
CREATE INDEX runs_by_created ON runs (created_at);
CREATE INDEX runs_by_status ON runs (status);

-- One row per (run, metric, step); a resumed run that logs a step again
-- replaces it. WITHOUT ROWID keeps a run's series clustered on disk.
CREATE TABLE metrics (
    run_id TEXT    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    name   TEXT    NOT NULL,
    step   INTEGER NOT NULL,
    value  REAL,   -- NULL stands for NaN, which SQLite cannot store
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
