package jsonrec

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
)

// Opening follows a JSON text as it is written to it and says at its end whether the text stopped
// inside an object, an array or a string (Open). It only counts nesting and quotes, a pass cheap
// enough for every answer as it arrives; Truncated then settles, exactly, the rare text it finds open.
// A text that does not start with an object or an array (an HTML error page, a PDF) is never open.
type Opening struct {
	lead      int // the bytes of a BOM seen before the text; -1 after whitespace
	started   bool
	container bool // the text starts with '{' or '['
	depth     int
	inString  bool
	escaped   bool
}

// Write follows p; it never fails.
func (o *Opening) Write(p []byte) (int, error) {
	i := 0
	if !o.started {
		i = o.start(p)
	}
	if !o.container {
		return len(p), nil
	}
	for ; i < len(p); i++ {
		switch c := p[i]; {
		case o.escaped:
			o.escaped = false
		case o.inString:
			o.escaped, o.inString = c == '\\', c != '"'
		case c == '"':
			o.inString = true
		case c == '{' || c == '[':
			o.depth++
		case c == '}' || c == ']':
			o.depth--
		}
	}
	return len(p), nil
}

// start skips what comes before the text's first byte, and returns where in p the text begins.
func (o *Opening) start(p []byte) int {
	for i, c := range p {
		switch {
		case o.lead >= 0 && o.lead < len(bom) && c == bom[o.lead]:
			o.lead++
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			o.lead = -1 // a BOM comes first or not at all
		default:
			o.started, o.container = true, c == '{' || c == '['
			return i
		}
	}
	return len(p)
}

// Open reports whether the text written so far stops inside its object or array.
func (o *Opening) Open() bool { return o.container && (o.depth > 0 || o.inString) }

// Truncated reports whether the JSON text read from r, an object or an array, ends inside it: the
// document is incomplete, cut short on its way, as opposed to complete (whatever follows it) or invalid
// before its end, which decoding reports as the final error it is. A leading BOM is skipped; a text
// that is not an object or an array (all these APIs answer) is never called truncated.
func Truncated(r io.Reader) bool {
	br := bufio.NewReader(r)
	if b, err := br.Peek(len(bom)); err == nil && string(b) == bom {
		_, _ = br.Discard(len(bom))
	}
	for {
		c, err := br.ReadByte()
		if err != nil {
			return false
		}
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			if c != '{' && c != '[' {
				return false
			}
			_ = br.UnreadByte()
			break
		}
	}
	dec := json.NewDecoder(br)
	depth := 0
	for {
		t, err := dec.Token()
		switch {
		case errors.Is(err, io.ErrUnexpectedEOF):
			return true
		case err == io.EOF:
			return depth > 0
		case err != nil:
			return false
		}
		switch t {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
		if depth == 0 {
			return false
		}
	}
}
