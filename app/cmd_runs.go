package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"text/tabwriter"
	"time"

	"distill/store"
)

func init() {
	register(command{name: "runs", usage: "list|show ID|rm ID [--json] — the recorded training runs", run: runRuns})
}

func runRuns(env *Env, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("runs: give list, show ID or rm ID")
	}
	sub, rest := args[0], args[1:]
	var id string
	if sub == "show" || sub == "rm" {
		if len(rest) == 0 {
			return fmt.Errorf("runs %s: give the run id", sub)
		}
		id, rest = rest[0], rest[1:]
	}
	fs := newFlags(env, "runs "+sub, "[--json]")
	asJSON := fs.Bool("json", false, "print JSON")
	dbPath := fs.String("db", defaultDB, "run database")
	if err := parse(fs, rest); err != nil {
		return err
	}
	if sub != "list" && sub != "show" && sub != "rm" {
		return fmt.Errorf("runs: unknown subcommand %q (list, show ID, rm ID)", sub)
	}
	db, err := openExistingDB(*dbPath)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx := context.Background()
	if _, err := db.RecoverInterrupted(ctx); err != nil && !errors.Is(err, store.ErrReadOnly) { // a killed trainer's run shows as failed
		return err
	}
	switch sub {
	case "list":
		runs, err := db.ListRuns(ctx, store.RunFilter{})
		if err != nil {
			return err
		}
		if *asJSON {
			out := make([]map[string]any, len(runs))
			for i, r := range runs {
				out[i] = runJSON(r)
			}
			return writeJSON(env.Stdout, out)
		}
		tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tMETHOD\tSTATUS\tBASE\tDATASET\tBEST\tAGE")
		for _, r := range runs {
			best := "-"
			if r.BestMetric != nil {
				best = fmt.Sprintf("%s %.4f", r.BestMetricName, *r.BestMetric)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Method, r.Status, r.BaseModel, r.Dataset, best, time.Since(r.CreatedAt).Round(time.Second))
		}
		return tw.Flush()
	case "show":
		r, err := db.GetRun(ctx, id)
		if err != nil {
			return fmt.Errorf("run %s: %w", id, err)
		}
		out := runJSON(r)
		if cps, err := db.Checkpoints(ctx, id); err == nil {
			var paths []string
			for _, c := range cps {
				paths = append(paths, c.Path)
			}
			out["checkpoints"] = paths
		}
		if m, err := db.Metrics(ctx, id, "loss"); err == nil && len(m) > 0 {
			out["last_loss"] = m[len(m)-1].Value
			out["steps"] = m[len(m)-1].Step
		}
		if *asJSON {
			return writeJSON(env.Stdout, out)
		}
		for _, k := range []string{"id", "method", "status", "base_model", "dataset", "dir", "error", "steps", "last_loss", "best_metric", "checkpoints"} {
			if v, ok := out[k]; ok && v != "" && v != nil {
				if b, isBest := v.(map[string]any); isBest { // "val_loss 0.4123", not Go's map syntax
					v = fmt.Sprintf("%v %.4f", b["name"], b["value"])
				}
				fmt.Fprintf(env.Stdout, "%-12s %v\n", k, v)
			}
		}
		return nil
	case "rm":
		if err := deleteRun(ctx, db, id); err != nil {
			return err
		}
		if *asJSON {
			return writeJSON(env.Stdout, map[string]any{"removed": id})
		}
		fmt.Fprintf(env.Stdout, "removed %s\n", id)
		return nil
	}
	return fmt.Errorf("runs: unknown subcommand %q (list, show ID, rm ID)", sub)
}

// sqliteHeader opens every SQLite database file.
const sqliteHeader = "SQLite format 3\x00"

// openExistingDB opens the run database at path for commands that only
// read or edit what is recorded (runs list, show, rm): unlike store.Open,
// which training uses, it creates nothing, and it refuses a file that is
// not SQLite rather than letting SQLite take it over (an empty file would
// become a database).
func openExistingDB(path string) (*store.DB, error) {
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("no run database at %s: train a run first, or pass --db", path)
	case err != nil:
		return nil, fmt.Errorf("--db %s: %w", path, err)
	case st.IsDir():
		return nil, fmt.Errorf("--db %s is a folder: give the run database file (default %s)", path, defaultDB)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--db %s: %w", path, err)
	}
	head := make([]byte, len(sqliteHeader))
	n, _ := io.ReadFull(f, head)
	f.Close()
	if string(head[:n]) != sqliteHeader {
		what := "not an SQLite file"
		if st.Size() == 0 {
			what = "an empty file"
		}
		return nil, fmt.Errorf("--db %s is %s, not a run database: pass the database `distill train` writes (default %s)", path, what, defaultDB)
	}
	db, err := store.Open(path)
	if err != nil {
		// A database in a folder this user cannot write (SQLite's WAL
		// needs one) is still readable: list and show work, rm says why not.
		if ro, rerr := store.OpenReadOnly(path); rerr == nil {
			return ro, nil
		}
	}
	return db, err
}

func runJSON(r store.Run) map[string]any {
	m := map[string]any{"id": r.ID, "method": r.Method, "status": string(r.Status), "base_model": r.BaseModel,
		"dataset": r.Dataset, "dir": r.Dir, "error": r.Error, "created_at": r.CreatedAt}
	if r.BestMetric != nil {
		m["best_metric"] = map[string]any{"name": r.BestMetricName, "value": *r.BestMetric}
	}
	return m
}
