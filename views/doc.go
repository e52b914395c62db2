// Package views is the terminal workstation: a Bubble Tea root model that
// routes between six views (Runs, Launch, Train, Evals, REPL, Adapters) with
// a top bar (the views, the device, resident memory) and a bottom bar (the
// active run, the keys that matter here).
//
// Views talk to app services only, through the Service interface that
// *app.Workstation satisfies; they never import core or store. Work never
// runs in Update: it is a tea.Cmd whose result comes back as a message, and
// a training run streams app.Progress over a channel that a command drains
// and re-issues.
//
// Built: Runs (list, filter, sort, open, delete), the Train monitor (loss
// chart, lr, grad-norm, tok/s, progress with ETA, memory gauge), Evals (the
// recorded evaluations; a report in detail: for classification a shaded
// confusion matrix, per-class P/R/F1 and the margin histogram, calibrated or
// raw; for IDP the per-field table, worst first; for codegen the build, lint
// and pass@1 rates) and Adapters (the registry: rename, tag, delete the
// registration) and Launch (a form for method, base model, data, validation,
// the method's fields, LoRA, quant and the optimiser; each field validates in
// place, the memory plan is recomputed in a command when a field is left, and
// enter on Launch starts the run and switches to the Train monitor) and the
// REPL (a base model, an optional registered adapter and a task: generation
// streamed piece by piece from an app.Answer channel, classification as
// probability bars, extraction as indented JSON; ↑/↓ recall past inputs).
//
// Tests render each view at fixed sizes with the ASCII colour profile and
// compare View() with testdata/*.golden; `go test ./views -update` rewrites
// them. flows_test.go drives whole flows through a running program with
// teatest, and ../e2e_test.go drives the real binary inside tmux.
package views
