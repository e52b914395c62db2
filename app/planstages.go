package app

import (
	"fmt"

	"distill/core/data"
	"distill/core/task/codegen"
)

// planStages expands the prompt/completion rows of ds that carry a "plan"
// into the two examples codegen --plan's stages ask for — the plan after
// the plan stage's prompt, the completion after the code stage's prompt
// (the task and the plan) — so that an adapter learns the format it is
// run with. Rows without a plan stay as they are. It returns the new
// dataset and how many rows were expanded.
func planStages(ds *data.Dataset, lang string) (*data.Dataset, int, error) {
	if ds.Format != data.FormatPromptCompletion {
		return nil, 0, fmt.Errorf("%s: --plan-stages reads prompt/completion rows with a \"plan\"; this file holds %s rows", ds.Path, ds.Format)
	}
	rows := make([]data.Row, 0, 2*len(ds.Rows))
	n := 0
	for _, r := range ds.Rows {
		// As inference takes a plan: cleaned (a "Plan:" prefix, CRLF, a
		// fence dropped), so the code stage trains on the prompt it gets.
		p := codegen.CleanPlan(r.Plan)
		if p == "" {
			rows = append(rows, r)
			continue
		}
		n++
		task := codegen.Task{Prompt: r.Prompt, Language: lang}
		plan, code := r, r
		plan.Prompt, plan.Completion, plan.Plan = codegen.PlanPrompt(task), p, ""
		code.Prompt, code.Plan = codegen.CodePrompt(task, p), ""
		rows = append(rows, plan, code)
	}
	return ds.Subset(rows), n, nil
}
