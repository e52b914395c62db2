package codegen

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
)

// namespacesRefused is set once the kernel refuses a check its namespaces.
var namespacesRefused atomic.Bool

// runCommand runs argv in dir with env under timeout, capturing its output;
// the command and everything it started are killed at the timeout.
func runCommand(ctx context.Context, dir string, argv []string, env []string, timeout time.Duration, failOnOutput bool) CheckResult {
	start := time.Now()
	if len(argv) == 0 {
		return CheckResult{Output: "the check has no command"}
	}
	path, err := lookTool(argv[0])
	if err != nil {
		return CheckResult{Missing: true, Duration: time.Since(start),
			Output: fmt.Sprintf("%s is not installed (%v); install it or configure the checks of this language", argv[0], err)}
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	isolate := canIsolate && !namespacesRefused.Load()
	var cmd *exec.Cmd
	out := &capture{}
	for {
		if cmd, err = command(cctx, path, argv, isolate); err != nil {
			isolate = false // no binary to prepare the namespaces with: run plainly
			continue
		}
		cmd.Dir = dir
		cmd.Env = env
		cmd.Stdout, cmd.Stderr = out, out // one pipe: the output keeps its order
		if failOnOutput {
			cmd.Stdout = stdoutWriter{out}
		}
		ownGroup(cmd, isolate)
		// If something outlives the kill while holding the output pipes,
		// stop waiting for it.
		cmd.WaitDelay = 2 * time.Second
		err = cmd.Start()
		if err != nil && isolate && isolationRefused(err) {
			namespacesRefused.Store(true) // once refused, every check runs without
			isolate = false
			continue
		}
		break
	}
	if err == nil {
		err = cmd.Wait()
	}
	if cmd.Process != nil {
		killGroup(cmd.Process.Pid) // anything the check left running
	}
	r := CheckResult{Duration: time.Since(start), Output: out.String(), Unisolated: !isolate}
	var note string
	switch {
	case cmd.Process == nil && err != nil:
		note = "could not start: " + err.Error()
	case errors.Is(cctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil:
		r.TimedOut = true
		note = fmt.Sprintf("timed out after %s; the process group was killed", timeout)
	case ctx.Err() != nil:
		note = "cancelled: " + ctx.Err().Error()
	case err != nil:
		note = err.Error()
		var ee *exec.ExitError
		if !errors.As(err, &ee) && errors.Is(err, exec.ErrWaitDelay) {
			note = "the command exited but something it started kept its output open"
		}
	case failOnOutput && out.sawStdout():
		note = "the check fails when the command prints anything (the files listed above)"
	default:
		r.OK = true
	}
	if note != "" {
		if r.Output != "" && !strings.HasSuffix(r.Output, "\n") {
			r.Output += "\n"
		}
		r.Output += note
	}
	return r
}

// lookTool finds a program in PATH; go and gofmt are also looked for in
// $GOROOT/bin and /usr/local/go/bin.
func lookTool(name string) (string, error) {
	if strings.ContainsRune(name, filepath.Separator) {
		return name, nil
	}
	path, err := exec.LookPath(name)
	if err == nil {
		return path, nil
	}
	if errors.Is(err, exec.ErrDot) {
		return "", fmt.Errorf("%s resolves to the current directory, which is not searched", name)
	}
	if name == "go" || name == "gofmt" {
		for _, root := range []string{os.Getenv("GOROOT"), "/usr/local/go"} {
			if root == "" {
				continue
			}
			p := filepath.Join(root, "bin", name)
			if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
				return p, nil
			}
		}
	}
	return "", errors.New("not found in PATH")
}

// capture keeps the head and the tail of a command's output, about
// MaxOutput bytes in all, however much it prints.
type capture struct {
	mu     sync.Mutex
	head   []byte
	tail   []byte
	total  int
	stdout bool
}

const headMax, tailMax = MaxOutput / 2, MaxOutput / 2

func (c *capture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total += len(p)
	q := p
	if n := min(headMax-len(c.head), len(q)); n > 0 {
		c.head = append(c.head, q[:n]...)
		q = q[n:]
	}
	if len(q) > 0 {
		c.tail = append(c.tail, q...)
		if len(c.tail) > 2*tailMax {
			c.tail = append(c.tail[:0], c.tail[len(c.tail)-tailMax:]...)
		}
	}
	return len(p), nil
}

func (c *capture) sawStdout() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stdout
}

// String is the output, with the bytes left out between head and tail
// counted.
func (c *capture) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	tail := c.tail
	if len(tail) > tailMax {
		tail = tail[len(tail)-tailMax:]
	}
	omitted := c.total - len(c.head) - len(tail)
	if omitted <= 0 {
		return strings.ToValidUTF8(string(c.head)+string(tail), "\uFFFD")
	}
	return strings.ToValidUTF8(string(c.head), "") +
		fmt.Sprintf("\n... [%d bytes left out] ...\n", omitted) +
		strings.ToValidUTF8(string(tail), "")
}

// stdoutWriter feeds the capture and notes whether stdout had anything but
// white space.
type stdoutWriter struct{ c *capture }

func (w stdoutWriter) Write(p []byte) (int, error) {
	if strings.IndexFunc(string(p), func(r rune) bool { return !unicode.IsSpace(r) }) >= 0 {
		w.c.mu.Lock()
		w.c.stdout = true
		w.c.mu.Unlock()
	}
	return w.c.Write(p)
}
