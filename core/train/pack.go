package train

import "fmt"

// Example is one training sequence with its loss mask: Mask[t] says whether
// IDs[t] is predicted (and counted) from IDs[:t].
type Example struct {
	IDs  []int
	Mask []bool
}

// Pack fills micro-batches of at most maxTokens tokens with whole examples,
// in order, each its own segment: attention never crosses examples and
// positions restart in each, so packing changes no loss or gradient, only
// how many tokens share a step. No padding tokens are spent.
func Pack(examples []Example, maxTokens int) ([]*Batch, error) {
	var out []*Batch
	cur := &Batch{}
	for i, ex := range examples {
		if len(ex.IDs) != len(ex.Mask) {
			return nil, fmt.Errorf("example %d: %d ids but %d mask entries", i, len(ex.IDs), len(ex.Mask))
		}
		if len(ex.IDs) > maxTokens {
			return nil, fmt.Errorf("example %d has %d tokens, more than the %d a micro-batch holds: raise the sequence length or truncate the data", i, len(ex.IDs), maxTokens)
		}
		if len(ex.IDs) == 0 {
			continue
		}
		if cur.Len()+len(ex.IDs) > maxTokens {
			out = append(out, cur)
			cur = &Batch{}
		}
		cur.AddSequence(ex.IDs, ex.Mask)
	}
	if cur.Len() > 0 {
		out = append(out, cur)
	}
	return out, nil
}
