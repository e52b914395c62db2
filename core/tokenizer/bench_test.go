package tokenizer

import (
	"strings"
	"testing"
)

// benchText is a few KB of mixed text: English prose, code, CJK, Cyrillic,
// emoji, numbers and whitespace runs.
var benchText = strings.Repeat(`The quick brown fox jumps over the lazy dog. Tokenizers split text into
pieces that a language model can embed; byte-level BPE never meets an unknown
character, while SentencePiece falls back to bytes for rare ones. In 2024,
about 1,234,567 documents were processed at 98.6% accuracy.

func main() {
	for i := 0; i < 10; i++ {
		fmt.Printf("%d\n", i*i)
	}
}

    def fib(n):
        return n if n < 2 else fib(n - 1) + fib(n - 2)

你好，世界！今天天气很好。日本語のテキスト。Русский текст и ελληνικά.
Emoji: 👍 🎉 👨‍👩‍👧‍👦 — "quotes", 'single', (parens) [brackets] {braces}.
`, 4)

// BenchmarkEncode reports encode throughput (MB/s) per reference tokenizer:
// "warm" with the per-word cache filled (the steady state of a data
// loader), "cold" with the cache emptied before every encode.
func BenchmarkEncode(b *testing.B) {
	for _, name := range refNames {
		tok := refTokenizer(b, name)
		b.Run(name+"/warm", func(b *testing.B) {
			tok.Encode(benchText, false)
			b.SetBytes(int64(len(benchText)))
			b.ResetTimer()
			for range b.N {
				tok.Encode(benchText, false)
			}
		})
		b.Run(name+"/cold", func(b *testing.B) {
			b.SetBytes(int64(len(benchText)))
			for range b.N {
				tok.model.cache = wordCache{}
				tok.Encode(benchText, false)
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, name := range refNames {
		tok := refTokenizer(b, name)
		ids := tok.Encode(benchText, false)
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(benchText)))
			for range b.N {
				tok.Decode(ids, false)
			}
		})
	}
}

func BenchmarkLoad(b *testing.B) {
	for _, name := range refNames {
		dir := refDir(b, name)
		b.Run(name, func(b *testing.B) {
			for range b.N {
				if _, err := Load(dir); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
