// Command distill fine-tunes, evaluates and serves small language models on
// one workstation. Run with no arguments in a terminal it opens the
// workstation (the terminal UI); `distill help` lists the headless commands.
package main

import (
	"fmt"
	"os"

	"golang.org/x/term"

	"distill/app"
	"distill/views"
)

func main() {
	if len(os.Args) == 1 && term.IsTerminal(int(os.Stdout.Fd())) && term.IsTerminal(int(os.Stdin.Fd())) {
		if err := views.Run(""); err != nil {
			fmt.Fprintf(os.Stderr, "distill: %v\n", err)
			os.Exit(1)
		}
		return
	}
	os.Exit(app.Main(os.Args[1:], os.Stdout, os.Stderr))
}
