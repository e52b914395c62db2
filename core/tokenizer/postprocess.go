package tokenizer

// postProcessor adds the special tokens of a single sequence (only called
// when Encode's addSpecial is true).
type postProcessor interface {
	process(ids []int) []int
}

type postProcessorSeq []postProcessor

func (seq postProcessorSeq) process(ids []int) []int {
	for _, p := range seq {
		ids = p.process(ids)
	}
	return ids
}

// templateItem is one element of a TemplateProcessing "single" template:
// either the sequence ($A) or a special token's ids.
type templateItem struct {
	sequence bool
	ids      []int
}

type templatePost struct {
	single []templateItem
}

func (t *templatePost) process(ids []int) []int {
	n := len(ids)
	for _, it := range t.single {
		n += len(it.ids)
	}
	out := make([]int, 0, n)
	for _, it := range t.single {
		if it.sequence {
			out = append(out, ids...)
		} else {
			out = append(out, it.ids...)
		}
	}
	return out
}

// bertPost is BertProcessing / RobertaProcessing for one sequence:
// cls $A sep.
type bertPost struct {
	cls, sep int
}

func (b bertPost) process(ids []int) []int {
	out := make([]int, 0, len(ids)+2)
	out = append(out, b.cls)
	out = append(out, ids...)
	return append(out, b.sep)
}

// noopPost is the ByteLevel post-processor: it only adjusts offsets.
type noopPost struct{}

func (noopPost) process(ids []int) []int { return ids }
