package codegen

import "testing"

func TestExtractCode(t *testing.T) {
	goCode := "package solution\n\nfunc F() int {\n\treturn 1\n}\n"
	cases := []struct {
		name, lang, text, want string
	}{
		{"go fence", "go", "Here you go:\n```go\n" + goCode + "```\nDone.", goCode},
		{"golang tag", "go", "```golang\n" + goCode + "```", goCode},
		{"fence without language", "go", "```\n" + goCode + "```\n", goCode},
		{"matching tag wins over earlier block", "go", "```sh\ngo test\n```\nthen\n```go\n" + goCode + "```\n", goCode},
		{"first of two go blocks", "go", "```go\n" + goCode + "```\n```go\npackage other\n```\n", goCode},
		{"no match takes the first block", "go", "```text\nhello\n```\n```sh\nls\n```", "hello\n"},
		{"python py tag", "python", "```py\ndef f():\n    return 1\n```", "def f():\n    return 1\n"},
		{"python alias language", "py", "```python3\nx = 1\n```", "x = 1\n"},
		{"info string after tag", "go", "```go title=\"f.go\"\n" + goCode + "```", goCode},
		{"unterminated at end", "go", "```go\n" + goCode + "\n", goCode},
		{"unterminated, cut mid-line", "go", "Sure.\n```go\npackage solution\n\nfunc F() int {\n\treturn", "package solution\n\nfunc F() int {\n\treturn\n"},
		{"closed at the end of a code line", "go", "```go\npackage solution\n\nfunc F() {}```\nMore text", "package solution\n\nfunc F() {}\n"},
		{"no fence", "go", "\n\n  " + goCode + "\n\n", "  " + goCode},
		{"CRLF", "go", "```go\r\npackage solution\r\n\r\nfunc F() {}\r\n```\r\n", "package solution\n\nfunc F() {}\n"},
		{"tilde fence", "python", "~~~python\nx = 1\n~~~", "x = 1\n"},
		{"longer fence holds a shorter one", "go", "````go\n// ```\npackage p\n````", "// ```\npackage p\n"},
		{"indented fence is dedented", "python", "1. Code:\n   ```python\n   def f():\n       pass\n   ```", "def f():\n    pass\n"},
		{"blank lines trimmed, indentation kept", "python", "```python\n\n\n    x = 1\n\n\n```", "    x = 1\n"},
		{"empty block skipped", "go", "```go\n```\n```go\npackage p\n```", "package p\n"},
		{"prompt ended inside the fence: stray closing fence", "go", goCode + "```\n", goCode},
		{"fence opened mid-line", "go", "Here it is: ```go\n" + goCode + "```", goCode},
		{"empty", "go", "  \n", ""},
		{"fence inside a list item", "go", "1. Code:\n    ```go\n    package a\n\n    func A() {}\n    ```\n2. Done.", "package a\n\nfunc A() {}\n"},
		{"unfenced Go after a sentence", "go", "Here is the solution:\n" + goCode, goCode},
		{"unfenced Python after sentences", "python", "Sure! Here it is.\nThe function:\ndef f():\n    return 1\n", "def f():\n    return 1\n"},
		{"unfenced Python that starts with code", "python", "x = 1\ndef f():\n    return x\n", "x = 1\ndef f():\n    return x\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := ExtractCode(c.text, c.lang); got != c.want {
				t.Errorf("ExtractCode(%q, %q)\n got %q\nwant %q", c.text, c.lang, got, c.want)
			}
		})
	}
}

func TestNormalizeLanguage(t *testing.T) {
	for in, want := range map[string]string{"": "go", "Go": "go", "golang": "go", "py": "python", "Python3": "python", "Rust": "rust"} {
		if got := NormalizeLanguage(in); got != want {
			t.Errorf("NormalizeLanguage(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCleanPlan(t *testing.T) {
	for in, want := range map[string]string{
		"1. Loop.\r\n2. Return.\r\n":                    "1. Loop.\n2. Return.",
		"Plan: 1. Loop. 2. Return.":                     "1. Loop. 2. Return.",
		"1. Loop.\n2. Return.\n\n```go\npackage p\n```": "1. Loop.\n2. Return.",
		"  \n": "",
	} {
		if got := CleanPlan(in); got != want {
			t.Errorf("CleanPlan(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCodeFile(t *testing.T) {
	for _, c := range []struct{ lang, code, file, want string }{
		{"go", "package main\n\nfunc main() {}\n", "", "main.go"},
		{"go", "// Command x.\npackage main // x\n", "", "main.go"},
		{"go", "package solution\n\n// not package main\n", "", "solution.go"},
		{"go", "package mainly\n", "", "solution.go"},
		{"python", "x = 1\n", "", "solution.py"},
		{"rust", "fn main() {}\n", "", "solution.rs"},
		{"cobol", "", "", "solution.txt"},
		{"go", "package main\n", "cmd.go", "cmd.go"},
	} {
		if got := codeFile(c.lang, c.code, Check{File: c.file}); got != c.want {
			t.Errorf("codeFile(%q, %q, %q) = %q, want %q", c.lang, c.code, c.file, got, c.want)
		}
	}
}
