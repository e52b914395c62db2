// Package store is the SQLite record of runs, their metrics and checkpoints,
// evaluations and the adapter registry (github.com/mattn/go-sqlite3, so it
// needs cgo).
//
// One *DB, from Open, implements the small per-domain interfaces RunStore,
// MetricStore, CheckpointStore, EvaluationStore and AdapterStore; callers
// should accept the narrowest one they need. Every connection runs in WAL
// mode with foreign keys on, synchronous=NORMAL and a 30 s busy timeout, and
// write transactions begin IMMEDIATE, so several *DB handles — in one process
// or several (the workstation, a headless trainer) — can share one file
// without "database is locked" errors. OpenReadOnly opens a store that this
// process may not write (ErrReadOnly from every write method).
//
// The schema is versioned with PRAGMA user_version: migrations/NNNN_name.sql
// files are embedded, applied in order, each in its own transaction, and
// Open refuses a file whose version is newer than SchemaVersion
// (ErrSchemaTooNew) or that is not a distill store (ErrNotStore).
//
// Errors are wrapped with a short context ("create run: ...") around the
// sentinels ErrNotFound, ErrExists, ErrInvalidTransition, ErrActive,
// ErrSchemaTooNew, ErrSchemaTooOld, ErrNotStore and ErrReadOnly, which
// callers test with errors.Is.
//
// The package is a leaf: it imports nothing from distill/core or distill/app.
package store
