package app

import (
	"context"
	"os"
	"path/filepath"
)

// EvalPeer is another evaluation of the same data with the same base model
// — the base alone, or another run's adapter — and how much better the
// evaluation on screen does by its headline metric.
type EvalPeer struct {
	Name   string  // "base", or the run (or adapter) evaluated
	Metric string  // macro-F1, field F1, pass@1 or build rate
	Delta  float64 // this evaluation's value minus the peer's
	// RawDelta is the same for classification's raw (uncalibrated)
	// scores, when both reports hold them.
	RawDelta float64
	HasRaw   bool
}

// maxPeers is how many other runs' evaluations a report is set against
// (the base's as well), the most recent first.
const maxPeers = 2

// headline is an evaluation's main figure and its name: classification's
// calibrated macro-F1, extraction's field F1, codegen's pass@1 (its build
// rate where no task carries tests).
func (r EvalReport) headline() (string, float64, bool) {
	switch {
	case r.Calibrated != nil:
		return "macro-F1", r.Calibrated.MacroF1, true
	case r.IDP != nil:
		return "field F1", r.IDP.Micro.F1, true
	case r.Code != nil && r.Code.WithTests > 0:
		return "pass@1", r.Code.PassAt1, true
	case r.Code != nil:
		return "build rate", r.Code.BuildRate, true
	}
	return "", 0, false
}

// peers finds the evaluations r is set against: the base model's on the
// same data, then the most recent other runs' (newest first).
func (w *Workstation) peers(r EvalReport, path string) []EvalPeer {
	metric, mine, ok := r.headline()
	if !ok || r.Data == "" {
		return nil
	}
	es, err := w.db.Evaluations(context.Background(), "")
	if err != nil {
		return nil
	}
	var base *EvalPeer
	var others []EvalPeer
	seen := map[string]bool{}
	for _, e := range es { // newest first
		if base != nil && len(others) == maxPeers {
			break
		}
		if e.Kind != r.Kind || e.ReportPath == path || sameFile(e.ReportPath, path) {
			continue
		}
		b, err := os.ReadFile(e.ReportPath)
		if err != nil {
			continue
		}
		o, err := decodeEvalReport(b)
		if err != nil || o.settings != r.settings || !sameFile(o.Data, r.Data) && absPath(o.Data) != absPath(r.Data) ||
			!sameFile(o.Model, r.Model) && absPath(o.Model) != absPath(r.Model) { // the CLI records them as typed, runs absolute
			continue
		}
		_, theirs, ok := o.headline()
		if !ok {
			continue
		}
		peer := EvalPeer{Metric: metric, Delta: mine - theirs}
		if r.Raw != nil && o.Raw != nil {
			peer.RawDelta, peer.HasRaw = r.Raw.MacroF1-o.Raw.MacroF1, true
		}
		name := e.RunID
		if name == "" {
			name = filepath.Base(o.Adapter)
		}
		switch {
		case o.Adapter == "" && base == nil:
			peer.Name = "base"
			base = &peer
		case o.Adapter != "" && o.Adapter != r.Adapter && !seen[name] && len(others) < maxPeers:
			seen[name] = true
			peer.Name = name
			others = append(others, peer)
		}
	}
	if base != nil {
		others = append([]EvalPeer{*base}, others...)
	}
	return others
}

func sameFile(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}
