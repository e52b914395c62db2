package app

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"distill/core/train"
	"distill/store"
)

func init() {
	register(command{name: "train", usage: "sft|kd|dpo --model DIR --data FILE [--val FILE] [--config run.yaml] [--out runs/ID] [flags] | --resume runs/ID", run: runTrain})
}

// defaultDB is the run database, beside the run folders.
const defaultDB = "runs/distill.db"

func runTrain(env *Env, args []string) error {
	if len(args) > 0 && (args[0] == "--resume" || args[0] == "-resume") {
		return resumeTrain(env, args[1:])
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(env.Stderr, "usage: distill train sft|kd|dpo --model DIR --data FILE [flags]   (distill train sft -h lists the flags)")
		fmt.Fprintln(env.Stderr, "       distill train --resume runs/ID [--device cpu|cuda]")
		return errUsage
	}
	method := args[0]
	cfg := defaultRunConfig(method)
	if p := configFlag(args[1:]); p != "" {
		if err := readRunConfig(p, &cfg); err != nil {
			return err
		}
		cfg.Method = method
	}
	fs := newFlags(env, "train "+method, "--model DIR --data FILE [flags]")
	bindRunFlags(fs, &cfg)
	fs.String("config", "", "YAML file with any of the settings below (flags override it)")
	db := fs.String("db", defaultDB, "run database")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	if err := cfg.checkFiles(); err != nil {
		return err
	}
	id := store.NewRunID(time.Now(), method)
	dir := cfg.Out
	if dir == "" {
		dir = filepath.Join("runs", id)
	}
	cfg.Out = dir
	return runJob(env, *db, &TrainJob{Cfg: cfg, ID: id, Dir: dir})
}

func resumeTrain(env *Env, args []string) error {
	fs := flag.NewFlagSet("train --resume", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	db := fs.String("db", defaultDB, "run database")
	allowChanged := fs.Bool("allow-changed-data", false, "resume even though a data file changed since the run started (its position and validation split then refer to other rows)")
	device := fs.String("device", "", "go on on another device (cpu, cuda, auto; checkpoints are the host's format): recorded in config.yaml; default the run's")
	if len(args) == 0 {
		return fmt.Errorf("--resume needs the run folder, e.g. runs/20261125-182700-sft-ab12")
	}
	dir := args[0]
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	cfg := RunConfig{}
	if err := readRunConfig(filepath.Join(dir, "config.yaml"), &cfg); err != nil {
		return fmt.Errorf("resume %s: %w", dir, err)
	}
	if *device != "" && *device != cfg.Device {
		cfg.Device = *device
		if err := cfg.validate(); err != nil {
			return fmt.Errorf("resume %s: --device: %w", dir, err)
		}
		if err := writeRunConfig(filepath.Join(dir, "config.yaml"), &cfg); err != nil {
			return err
		}
	}
	if err := cfg.validate(); err != nil {
		return fmt.Errorf("resume %s: config.yaml: %w", dir, err)
	}
	return runJob(env, *db, &TrainJob{Cfg: cfg, ID: filepath.Base(filepath.Clean(dir)), Dir: dir, Resume: true, AllowChangedData: *allowChanged})
}

// runJob opens the store (marking runs of dead processes failed), runs the
// job with Ctrl-C wired to a checkpoint-then-stop, and prints progress.
func runJob(env *Env, dbPath string, j *TrainJob) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runJobContext(ctx, env, dbPath, j)
}

// runJobContext is runJob stopped by ctx: a stop before the run finished
// is errInterrupted (exit 130), after its checkpoint.
func runJobContext(ctx context.Context, env *Env, dbPath string, j *TrainJob) error {
	db, err := store.Open(dbPath)
	if err != nil {
		return err
	}
	defer db.Close()
	if n, err := db.RecoverInterrupted(ctx); err != nil {
		return err
	} else if n > 0 {
		fmt.Fprintf(env.Stderr, "marked %d interrupted run(s) as failed\n", n)
	}
	p := newProgress(env.Stdout)
	j.DB, j.Log = db, env.Stdout
	if also := j.Events; also != nil {
		j.Events = func(e train.Event) { p.event(e); also(e) }
	} else {
		j.Events = p.event
	}
	if j.Resume {
		p.line("resuming %s", j.Dir) // the run's id is known once the database names the folder's run
	} else {
		p.line("run %s → %s", j.ID, j.Dir)
	}
	if err := j.Run(ctx); err != nil {
		return err
	}
	if ctx.Err() != nil && !j.finished {
		p.line("stopped: checkpoint written; continue with distill train --resume %s", j.Dir)
		return errInterrupted
	}
	return nil
}
