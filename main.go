// Command distill fine-tunes, evaluates and serves small language models on
// one workstation. `distill help` lists the headless commands.
package main

import (
	"os"

	"distill/app"
)

func main() { os.Exit(app.Main(os.Args[1:], os.Stdout, os.Stderr)) }
