// Package app holds the application services every front end shares: the
// headless CLI commands today; the run launcher, registry and HTTP API later.
package app

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// command is one `distill <name>` subcommand.
type command struct {
	name  string
	usage string
	run   func(env *Env, args []string) error
}

// Env is what a command may touch: its output streams. Tests run commands
// in-process with buffers.
type Env struct {
	Stdout, Stderr io.Writer
}

var commands []command

func register(c command) { commands = append(commands, c) }

// errUsage marks a bad invocation (exit code 2); the flag set already printed
// the details.
var errUsage = errors.New("usage")

// errInterrupted marks work the user stopped (Ctrl-C) after saving what it
// could, already said on stdout: exit code 130, as a shell's for SIGINT, so
// `distill train … && distill gguf …` does not go on with an unfinished run.
var errInterrupted = errors.New("interrupted")

// Main runs the CLI and returns the process exit code. Errors are reported as
// one line on stderr.
func Main(args []string, stdout, stderr io.Writer) int {
	env := &Env{Stdout: stdout, Stderr: stderr}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		printHelp(stdout)
		return 0
	}
	for _, c := range commands {
		if c.name == args[0] {
			if len(args) == 2 && (args[1] == "-h" || args[1] == "--help" || args[1] == "help") && c.usage != "" {
				// Commands with subcommands (eval, runs, kd, plan) take
				// their flags after the subcommand: say what to give first.
				if err := c.run(&Env{Stdout: io.Discard, Stderr: io.Discard}, args[1:]); errors.Is(err, flag.ErrHelp) {
					c.run(env, args[1:]) // a flag set printed its own help: print it for real
					return 0
				}
				fmt.Fprintf(stdout, "usage: distill %s %s\n", c.name, c.usage)
				return 0
			}
			err := c.run(env, args[1:])
			switch {
			case err == nil:
				return 0
			case errors.Is(err, errUsage):
				return 2
			case errors.Is(err, errInterrupted):
				return 130
			case errors.Is(err, flag.ErrHelp):
				return 0
			}
			fmt.Fprintf(stderr, "distill %s: %s\n", c.name, oneLine(err.Error()))
			return 1
		}
	}
	fmt.Fprintf(stderr, "distill: unknown command %q (run `distill help` for the list)\n", args[0])
	return 2
}

func printHelp(w io.Writer) {
	fmt.Fprintln(w, "distill — fine-tune, evaluate and serve small language models on one workstation")
	fmt.Fprintln(w, "\nCommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-14s %s\n", c.name, c.usage)
	}
	fmt.Fprintln(w, "\nRun `distill <command> -h` for a command's flags.")
}

// newFlags makes a flag set that reports errors on env.Stderr.
func newFlags(env *Env, name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.Stderr, "usage: distill %s %s\n", name, usage)
		fs.PrintDefaults()
	}
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return errUsage
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func oneLine(s string) string { return strings.ReplaceAll(strings.TrimSpace(s), "\n", "; ") }

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }
