package codegen

import "strings"

// ExtractCode takes the code out of a model's answer for language:
//
//   - the first non-empty fenced block (``` or ~~~, three or more, at the
//     start of a line, up to three spaces of indent) whose tag — the first
//     word after the fence — names the language ("go"/"golang";
//     "python"/"py"/"python3"; others as NormalizeLanguage has them);
//   - else the first non-empty fenced block whatever its tag (or, failing
//     that, one opened in the middle of a line: "Here it is: ```go");
//   - else a block whose fence is indented deeper (inside a list item);
//   - else the whole text, with any stray fence lines removed, from the
//     code's first line when sentences come before it (Go's package
//     clause, Python's first def, class or import), trimmed.
//
// A block left open at the end of the text (generation stopped inside it)
// runs to the end; if one of its lines ends with the fence ("}```"), it
// stops there. CRLF line ends become LF. Leading and trailing blank lines
// are dropped, indentation is kept, and non-empty code ends with one
// newline.
func ExtractCode(text, language string) string {
	lang := NormalizeLanguage(language)
	text = strings.ReplaceAll(text, "\r\n", "\n")
	lines := strings.Split(text, "\n")
	blocks, stray := fencedBlocks(lines)
	for _, b := range blocks {
		if b.tag != "" && NormalizeLanguage(b.tag) == lang && strings.TrimSpace(b.code) != "" {
			return tidy(b.code)
		}
	}
	for _, b := range blocks {
		if strings.TrimSpace(b.code) != "" {
			return tidy(b.code)
		}
	}
	// A fence opened in the middle of a line ("Here it is: ```go").
	if i := strings.Index(text, "```"); i >= 0 && strings.TrimSpace(text[strings.LastIndex(text[:i], "\n")+1:i]) != "" {
		if inline, _ := fencedBlocks(strings.Split(text[i:], "\n")); len(inline) > 0 && strings.TrimSpace(inline[0].code) != "" {
			return tidy(inline[0].code)
		}
	}
	// A fence indented past three spaces (a list item's "    ```go"): the
	// text from it, shifted left by its indent.
	for i, l := range lines {
		t := strings.TrimLeft(l, " \t")
		if !strings.HasPrefix(t, "```") && !strings.HasPrefix(t, "~~~") {
			continue
		}
		indent := l[:len(l)-len(t)]
		shifted := make([]string, len(lines)-i)
		for k, m := range lines[i:] {
			shifted[k] = strings.TrimPrefix(m, indent)
		}
		if deep, _ := fencedBlocks(shifted); len(deep) > 0 && strings.TrimSpace(deep[0].code) != "" {
			return tidy(deep[0].code)
		}
		break
	}
	var kept []string
	for i, l := range lines {
		if !stray[i] {
			kept = append(kept, l)
		}
	}
	return tidy(strings.Join(dropLeadingProse(kept, lang), "\n"))
}

// dropLeadingProse drops the sentences an unfenced answer opens with
// ("Here is the function:") when the code's start is unmistakable: Go's
// package clause; for Python a def, class or import line after lines that
// all end as sentences do.
func dropLeadingProse(lines []string, lang string) []string {
	for i, l := range lines {
		t := strings.TrimSpace(l)
		switch lang {
		case "go":
			if strings.HasPrefix(t, "package ") {
				return lines[i:]
			}
		case "python":
			for _, p := range []string{"def ", "class ", "import ", "from ", "async def "} {
				if strings.HasPrefix(l, p) {
					return lines[i:]
				}
			}
			if t != "" && !strings.HasSuffix(t, ":") && !strings.HasSuffix(t, ".") && !strings.HasSuffix(t, "!") {
				return lines // code, or prose that does not read as sentences
			}
		default:
			return lines
		}
	}
	return lines
}

type block struct {
	tag  string
	code string
}

// fencedBlocks finds the fenced blocks of lines, and marks every fence
// line.
func fencedBlocks(lines []string) ([]block, map[int]bool) {
	var blocks []block
	fences := map[int]bool{}
	for i := 0; i < len(lines); i++ {
		indent, ch, n, info, ok := openFence(lines[i])
		if !ok {
			continue
		}
		fences[i] = true
		tag := ""
		if f := strings.Fields(info); len(f) > 0 {
			tag = strings.ToLower(strings.Trim(f[0], "{}."))
		}
		var body []string
		closed := false
		j := i + 1
		for ; j < len(lines); j++ {
			if isCloseFence(lines[j], ch, n) {
				fences[j] = true
				closed = true
				break
			}
			body = append(body, dedent(lines[j], indent))
		}
		if !closed {
			// Generation stopped inside the block, or closed it at the
			// end of a code line ("}```").
			fence := strings.Repeat(string(ch), n)
			for k, l := range body {
				if t := strings.TrimRight(l, " \t"); strings.HasSuffix(t, fence) {
					body = append(body[:k:k], strings.TrimSuffix(t, fence))
					break
				}
			}
		}
		blocks = append(blocks, block{tag: tag, code: strings.Join(body, "\n")})
		i = j
	}
	return blocks, fences
}

// openFence reports whether line opens a fenced block: up to three spaces,
// then three or more backticks or tildes, then an info string (for
// backticks, one without backticks).
func openFence(line string) (indent int, ch byte, n int, info string, ok bool) {
	for indent < len(line) && indent < 4 && line[indent] == ' ' {
		indent++
	}
	if indent > 3 || indent >= len(line) {
		return 0, 0, 0, "", false
	}
	ch = line[indent]
	if ch != '`' && ch != '~' {
		return 0, 0, 0, "", false
	}
	for indent+n < len(line) && line[indent+n] == ch {
		n++
	}
	if n < 3 {
		return 0, 0, 0, "", false
	}
	info = strings.TrimSpace(line[indent+n:])
	if ch == '`' && strings.Contains(info, "`") {
		return 0, 0, 0, "", false
	}
	return indent, ch, n, info, true
}

// isCloseFence reports whether line closes a block opened with n ch's: up
// to three spaces, at least n of them, then only spaces.
func isCloseFence(line string, ch byte, n int) bool {
	t := strings.TrimRight(line, " \t")
	i := 0
	for i < len(t) && i < 4 && t[i] == ' ' {
		i++
	}
	if i > 3 {
		return false
	}
	rest := t[i:]
	return len(rest) >= n && strings.Trim(rest, string(ch)) == ""
}

// dedent removes up to indent leading spaces (the fence's own indent).
func dedent(line string, indent int) string {
	for k := 0; k < indent && strings.HasPrefix(line, " "); k++ {
		line = line[1:]
	}
	return line
}

// tidy drops leading and trailing blank lines and ends non-empty code with
// one newline.
func tidy(code string) string {
	lines := strings.Split(code, "\n")
	start, end := 0, len(lines)
	for start < end && strings.TrimSpace(lines[start]) == "" {
		start++
	}
	for end > start && strings.TrimSpace(lines[end-1]) == "" {
		end--
	}
	if start == end {
		return ""
	}
	lines = lines[start:end]
	lines[len(lines)-1] = strings.TrimRight(lines[len(lines)-1], " \t")
	return strings.Join(lines, "\n") + "\n"
}
