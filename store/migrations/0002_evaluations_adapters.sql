-- 0002: a run's best metric, evaluations and the adapter registry.

ALTER TABLE runs ADD COLUMN best_metric REAL;
ALTER TABLE runs ADD COLUMN best_metric_name TEXT NOT NULL DEFAULT '';

-- An evaluation outlives its run (run_id becomes NULL): its numbers stay
-- comparable after the run's folder is gone. run_id is NULL from the start
-- for evaluations of a base model.
CREATE TABLE evaluations (
    id          INTEGER PRIMARY KEY,
    run_id      TEXT REFERENCES runs (id) ON DELETE SET NULL,
    adapter     TEXT NOT NULL DEFAULT '',
    kind        TEXT NOT NULL,
    metrics     TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metrics)),
    report_path TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL
);
CREATE INDEX evaluations_by_run ON evaluations (run_id, created_at);

-- Named adapters. A registered adapter outlives the run that trained it.
CREATE TABLE adapters (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    path       TEXT NOT NULL,
    base_model TEXT NOT NULL DEFAULT '',
    method     TEXT NOT NULL DEFAULT '',
    task       TEXT NOT NULL DEFAULT '',
    run_id     TEXT REFERENCES runs (id) ON DELETE SET NULL,
    metrics    TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metrics)),
    tags       TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(tags)),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX adapters_by_run ON adapters (run_id);
CREATE INDEX adapters_by_method ON adapters (method, created_at);
