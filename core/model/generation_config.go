package model

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// GenerationConfig is generation_config.json: the checkpoint's own decoding
// defaults. Missing fields stay zero/nil.
type GenerationConfig struct {
	EOSTokenID        IDList   `json:"eos_token_id"`
	BOSTokenID        IDList   `json:"bos_token_id"`
	DoSample          *bool    `json:"do_sample"`
	Temperature       *float64 `json:"temperature"`
	TopK              *int     `json:"top_k"`
	TopP              *float64 `json:"top_p"`
	MinP              *float64 `json:"min_p"`
	RepetitionPenalty *float64 `json:"repetition_penalty"`
	MaxNewTokens      *int     `json:"max_new_tokens"`
}

// LoadGenerationConfig reads dir/generation_config.json; a missing file is
// not an error (many checkpoints have none).
func LoadGenerationConfig(dir string) (*GenerationConfig, error) {
	path := filepath.Join(dir, "generation_config.json")
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return &GenerationConfig{}, nil
	}
	if err != nil {
		return nil, err
	}
	var g GenerationConfig
	if err := json.Unmarshal(b, &g); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return &g, nil
}

// EOSIDs merges the end-of-sequence ids of generation_config.json and
// config.json (instruct models often list several, e.g. <|im_end|> and
// <|endoftext|>).
func (m *Model) EOSIDs(g *GenerationConfig) []int {
	seen := map[int]bool{}
	var ids []int
	for _, list := range []IDList{g.EOSTokenID, m.Config.EOSTokenID} {
		for _, id := range list {
			if !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	}
	return ids
}
