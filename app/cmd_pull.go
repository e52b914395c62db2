package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"

	"distill/app/hub"
	"distill/core/model"
	"distill/core/tokenizer"
	"distill/core/tokenizer/chat"
)

func init() {
	register(command{name: "pull", usage: "REPO[@REVISION] [--out DIR] [--endpoint URL] — download a model from the Hugging Face Hub or a mirror of it, checked and resumable", run: runPull})
}

// globs is a repeatable string flag.
type globs []string

func (g *globs) String() string     { return strings.Join(*g, ",") }
func (g *globs) Set(s string) error { *g = append(*g, s); return nil }

func runPull(env *Env, args []string) error {
	fs := newFlags(env, "pull", "REPO[@REVISION] [--out DIR] [--endpoint URL] [--token TOKEN] [--include GLOB]... [--dry-run]")
	out := fs.String("out", "", "model folder to create (default: models/<name>)")
	endpoint := fs.String("endpoint", "", "hub to pull from (default: $HF_ENDPOINT, else "+hub.DefaultEndpoint+")")
	token := fs.String("token", "", "access token for gated or private repositories (default: $HF_TOKEN; for huggingface.co, else the token huggingface-cli login saved)")
	dryRun := fs.Bool("dry-run", false, "list the files the pull would fetch and their sizes, and fetch nothing")
	var include globs
	fs.Var(&include, "include", "also pull files matching this glob, e.g. 'original/*' (repeatable; the default takes config, safetensors weights, tokenizer, chat template, licence and card)")
	// The repository may stand before, between or after the flags.
	var spec string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			return errUsage
		}
		if fs.NArg() == 0 {
			break
		}
		if spec != "" {
			fmt.Fprintf(env.Stderr, "unexpected argument %q (one repository per pull)\n", fs.Arg(0))
			fs.Usage()
			return errUsage
		}
		spec, args = fs.Arg(0), fs.Args()[1:]
	}
	if spec == "" {
		fmt.Fprintln(env.Stderr, "name the repository, e.g. distill pull Qwen/Qwen2.5-0.5B-Instruct")
		fs.Usage()
		return errUsage
	}
	c, opt := newPull(spec, *out, *endpoint, *token, include)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { <-ctx.Done(); stop() }() // a second Ctrl-C ends the process at once
	if *dryRun {
		r, files, err := c.Plan(ctx, opt)
		if err != nil {
			return err
		}
		var total int64
		fmt.Fprintf(env.Stdout, "%s at %.12s into %s:\n", r.ID, r.Commit, opt.Out)
		for _, f := range files {
			fmt.Fprintf(env.Stdout, "  %-40s %10s\n", f.Name, mb(f.Size))
			total += f.Size
		}
		fmt.Fprintf(env.Stdout, "  %d files, %s\n", len(files), mb(total))
		return nil
	}
	bar := newPullProgress(env.Stderr)
	opt.Progress = bar.update
	r, err := c.Pull(ctx, opt)
	bar.finish()
	switch {
	case err == nil:
	case errors.Is(err, hub.ErrUpToDate):
		fmt.Fprintf(env.Stdout, "%s is already %s at %.12s\n", opt.Out, r.ID, r.Commit)
		return nil
	case ctx.Err() != nil:
		if _, serr := os.Stat(opt.Out + ".partial"); serr == nil {
			return fmt.Errorf("interrupted: what arrived is kept in %s.partial; run the same command to resume", opt.Out)
		}
		return fmt.Errorf("interrupted before any file arrived")
	default:
		return err
	}
	fmt.Fprintf(env.Stdout, "pulled %s at %.12s into %s\n", r.ID, r.Commit, opt.Out)
	return describeModel(env.Stdout, opt.Out)
}

// newPull resolves a pull's defaults: REPO[@REVISION] (main), the folder
// (models/<name>), the hub ($HF_ENDPOINT, else huggingface.co) and the
// token ($HF_TOKEN, else the saved login).
func newPull(spec, out, endpoint, token string, include []string) (*hub.Client, hub.PullOptions) {
	repo, rev, _ := strings.Cut(spec, "@")
	if rev == "" {
		rev = "main"
	}
	if out == "" {
		out = filepath.Join("models", path.Base(repo))
	}
	if endpoint == "" {
		endpoint = os.Getenv("HF_ENDPOINT")
	}
	if endpoint == "" {
		endpoint = hub.DefaultEndpoint
	}
	if token == "" {
		token = os.Getenv("HF_TOKEN")
	}
	if token == "" && strings.TrimRight(endpoint, "/") == hub.DefaultEndpoint {
		// The login's token is for huggingface.co: a mirror gets one only
		// when asked (--token, HF_TOKEN).
		token = savedToken()
	}
	return hub.NewClient(endpoint, token), hub.PullOptions{Repo: repo, Revision: rev, Out: out, Include: include}
}

// savedToken is the token huggingface_hub's login saved ($HF_TOKEN_PATH,
// $HF_HOME/token, ~/.cache/huggingface/token).
func savedToken() string {
	p := os.Getenv("HF_TOKEN_PATH")
	if p == "" {
		home := os.Getenv("HF_HOME")
		if home == "" {
			if h, err := os.UserHomeDir(); err == nil {
				home = filepath.Join(h, ".cache", "huggingface")
			}
		}
		p = filepath.Join(home, "token")
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// describeModel loads what was pulled, so a folder distill cannot use is
// reported now rather than at the first run.
func describeModel(w io.Writer, dir string) error {
	m, err := model.Load(dir)
	if err != nil {
		return fmt.Errorf("pulled into %s, but distill cannot load it: %w", dir, err)
	}
	defer m.Close()
	c := m.Config
	fmt.Fprintf(w, "  %s: %d layers, hidden %d, %d heads (%d kv), vocab %d, %s, %.0f MB of weights\n",
		m.Arch.Name, c.NumLayers, c.HiddenSize, c.NumHeads, c.NumKVHeads, c.VocabSize, m.Embed.DType, float64(m.WeightBytes())/1e6)
	tok, err := tokenizer.Load(dir)
	if err != nil {
		return fmt.Errorf("pulled into %s, but its tokenizer does not load: %w", dir, err)
	}
	tmpl := "none (base model: train with plain text or a template of your own)"
	if _, err := chat.Load(dir); err == nil {
		tmpl = "yes"
	}
	fmt.Fprintf(w, "  tokenizer: %d tokens; chat template: %s\n", tok.VocabSize(), tmpl)
	return nil
}

// pullProgress draws a pull's progress: one redrawn line on a terminal,
// a line per fetched file otherwise (files arrive side by side).
type pullProgress struct {
	w       io.Writer
	tty     bool
	start   time.Time
	last    time.Time
	drawn   bool
	fetched map[string]bool
}

func newPullProgress(w io.Writer) *pullProgress {
	tty := false
	if f, ok := w.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	return &pullProgress{w: w, tty: tty, start: time.Now(), fetched: map[string]bool{}}
}

func (p *pullProgress) update(s hub.Progress) {
	if !p.tty {
		if s.FileDone == s.FileLen && !p.fetched[s.File] {
			p.fetched[s.File] = true
			fmt.Fprintf(p.w, "  %s  %s\n", s.File, mb(s.FileLen))
		}
		return
	}
	if time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.last, p.drawn = time.Now(), true
	rate := float64(s.Done-s.Resumed) / time.Since(p.start).Seconds() // this run's bytes
	eta := ""
	if rate > 0 {
		eta = " ETA " + time.Duration(float64(s.Total-s.Done)/rate*float64(time.Second)).Round(time.Second).String()
	}
	fmt.Fprintf(p.w, "\r\x1b[K%s  %s/%s  %.1f MB/s%s", s.File, mb(s.Done), mb(s.Total), rate/1e6, eta)
}

func (p *pullProgress) finish() {
	if p.drawn {
		fmt.Fprint(p.w, "\r\x1b[K")
	}
}

// mb is n bytes in MB (10⁶), as progress and the plans print them.
func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
