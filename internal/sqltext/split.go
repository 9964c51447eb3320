// Package sqltext reads SQL text as DuckDB does, without parsing it: where its statements end.
package sqltext

import (
	"strings"
	"unicode"
)

// Split cuts SQL text into its statements at the semicolons that end them, as DuckDB's
// lexer (PostgreSQL's) reads the text: not inside 'strings' (with ” and, in E'…', backslash escapes),
// "identifiers", $tag$dollar-quoted$tag$ strings, -- line comments or /* nested block comments */.
// Statements that hold nothing but comments and space are dropped; each is returned without its
// semicolon. The driver would run them all and show only the last result; each is shown here.
func Split(text string) []string {
	var out []string
	start := 0
	emit := func(end int) {
		if s := strings.TrimSpace(text[start:end]); hasCode(s) {
			out = append(out, s)
		}
	}
	for i := 0; i < len(text); {
		switch c := text[i]; {
		case c == ';':
			emit(i)
			i++
			start = i
		case c == '\'':
			escapes := i > 0 && (text[i-1] == 'E' || text[i-1] == 'e') && (i < 2 || !isIdent(text[i-2]))
			i = skipQuoted(text, i, '\'', escapes)
		case c == '"':
			i = skipQuoted(text, i, '"', false)
		case c == '-' && strings.HasPrefix(text[i:], "--"):
			i = skipLine(text, i)
		case c == '/' && strings.HasPrefix(text[i:], "/*"):
			i = skipBlock(text, i)
		case c == '$' && (i == 0 || !isIdent(text[i-1])):
			i = skipDollar(text, i)
		default:
			i++
		}
	}
	emit(len(text))
	return out
}

// skipQuoted returns the index after the quoted text starting at text[i] (a doubled quote is one;
// with escapes, a backslash escapes the next byte). Unterminated text runs to the end.
func skipQuoted(text string, i int, q byte, escapes bool) int {
	for i++; i < len(text); i++ {
		switch {
		case escapes && text[i] == '\\':
			i++
		case text[i] == q && i+1 < len(text) && text[i+1] == q:
			i++
		case text[i] == q:
			return i + 1
		}
	}
	return len(text)
}

func skipLine(text string, i int) int {
	if j := strings.IndexByte(text[i:], '\n'); j >= 0 {
		return i + j + 1
	}
	return len(text)
}

// skipBlock returns the index after the block comment at text[i], counting nested ones.
func skipBlock(text string, i int) int {
	depth := 0
	for i < len(text) {
		switch {
		case strings.HasPrefix(text[i:], "/*"):
			depth++
			i += 2
		case strings.HasPrefix(text[i:], "*/"):
			depth--
			i += 2
			if depth == 0 {
				return i
			}
		default:
			i++
		}
	}
	return len(text)
}

// skipDollar returns the index after a $tag$…$tag$ string at text[i]; a $ that opens none ($1, a
// parameter) is one character.
func skipDollar(text string, i int) int {
	j := i + 1
	for j < len(text) && isIdent(text[j]) && !(j == i+1 && text[j] >= '0' && text[j] <= '9') {
		j++
	}
	if j >= len(text) || text[j] != '$' {
		return i + 1
	}
	tag := text[i : j+1]
	if k := strings.Index(text[j+1:], tag); k >= 0 {
		return j + 1 + k + len(tag)
	}
	return len(text)
}

func isIdent(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}

// hasCode reports whether s holds more than comments and space.
func hasCode(s string) bool {
	for i := 0; i < len(s); {
		switch {
		case strings.HasPrefix(s[i:], "--"):
			i = skipLine(s, i)
		case strings.HasPrefix(s[i:], "/*"):
			i = skipBlock(s, i)
		case unicode.IsSpace(rune(s[i])):
			i++
		default:
			return true
		}
	}
	return false
}
