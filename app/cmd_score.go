package app

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"distill/core/infer"
)

func init() {
	register(command{name: "score", usage: "--model DIR --ids 1,2,3 [--json]", run: runScore})
}

func runScore(env *Env, args []string) error {
	fs := newFlags(env, "score", "--model DIR --ids 1,2,3 [--json]")
	dir := fs.String("model", "", "model folder")
	idsFlag := fs.String("ids", "", "comma-separated token ids")
	eng := addEngineFlags(fs, env.Stderr)
	asJSON := fs.Bool("json", false, "print {\"ids\",\"logprobs\"} as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *dir == "" || *idsFlag == "" {
		return fmt.Errorf("--model and --ids are required")
	}
	ids, err := parseIDs(*idsFlag)
	if err != nil {
		return err
	}
	if len(ids) < 2 {
		return fmt.Errorf("--ids: give at least two ids: the first is the context, and each one after it is scored given those before it")
	}
	be, m, err := openModel(eng, *dir)
	if err != nil {
		return err
	}
	defer m.Close()
	if n := m.Config.MaxPositionEmbeddings; n > 0 && len(ids) > n {
		return fmt.Errorf("--ids: %d ids is more than the model's context length of %d (max_position_embeddings in %s): give at most %d", len(ids), n, filepath.Join(*dir, "config.json"), n)
	}
	for i, id := range ids {
		if id >= m.Config.VocabSize {
			return fmt.Errorf("--ids: id %d at index %d is outside the model's vocabulary [0, %d)", id, i, m.Config.VocabSize)
		}
	}
	lp, err := infer.LogProbs(be, m, ids)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(env.Stdout, map[string]any{"ids": ids, "logprobs": lp})
	}
	for t, v := range lp {
		fmt.Fprintf(env.Stdout, "%6d  %10.5f\n", ids[t+1], v)
	}
	return nil
}

func parseIDs(s string) ([]int, error) {
	parts := strings.Split(s, ",")
	ids := make([]int, 0, len(parts))
	for i, p := range parts {
		id, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || id < 0 {
			return nil, fmt.Errorf("--ids: item %d (%q) is not a non-negative integer", i+1, p)
		}
		ids = append(ids, id)
	}
	return ids, nil
}
