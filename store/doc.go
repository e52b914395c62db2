// Package store is the SQLite record of runs, evals and adapters
// (github.com/mattn/go-sqlite3): schema, migrations, queries.
package store
