// Package views holds the Bubble Tea views of the workstation (runs, launch,
// train monitor, evals, REPL, adapters). They talk to app/ services only.
package views
