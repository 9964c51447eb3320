package sandbox

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
)

// obj is a JSON object that keeps its key order, as the real APIs' payloads do.
type obj []field

type field struct {
	k string
	v any
}

// get returns the value of key k, or nil.
func (o obj) get(k string) any {
	for _, f := range o {
		if f.k == k {
			return f.v
		}
	}
	return nil
}

// MarshalJSON writes the fields in order.
func (o obj) MarshalJSON() ([]byte, error) { return appendJSON(nil, o) }

// marshalValue renders v as encoding/json does with HTML escaping off.
func marshalValue(v any) ([]byte, error) { return appendJSON(nil, v) }

// appendJSON appends v to b as encoding/json would (HTML characters unescaped). The generators' own
// types are written directly: going through encoding/json, every nested object's MarshalJSON output
// was re-validated and compacted, which made the sandbox's CPU a third of a benchmark's (make bench
// --pprof) on the machine it shares with the pipeline. Anything else goes through encoding/json.
func appendJSON(b []byte, v any) ([]byte, error) {
	var err error
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case obj:
		b = append(b, '{')
		for i, f := range x {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, f.k)
			b = append(b, ':')
			if b, err = appendJSON(b, f.v); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	case string:
		return appendString(b, x), nil
	case money:
		return append(b, formatCents(int64(x))...), nil
	case int:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(b, x, 10), nil
	case bool:
		return strconv.AppendBool(b, x), nil
	case []obj:
		return appendArray(b, x)
	case []any:
		return appendArray(b, x)
	}
	return appendEncoded(b, v)
}

// appendArray writes a slice as a JSON array; a nil slice is null, as encoding/json writes it.
func appendArray[T any](b []byte, x []T) ([]byte, error) {
	if x == nil {
		return append(b, "null"...), nil
	}
	b = append(b, '[')
	for i, e := range x {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = appendJSON(b, e); err != nil {
			return nil, err
		}
	}
	return append(b, ']'), nil
}

func appendEncoded(b []byte, v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return append(b, bytes.TrimRight(buf.Bytes(), "\n")...), nil
}

// appendString writes printable ASCII without quotes or backslashes as is; anything that needs
// escaping (or is not ASCII) goes through encoding/json.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x7f {
			b, _ = appendEncoded(b, s) // a string always encodes
			return b
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// money is an amount in cents rendered as a JSON number with two decimals, so sums are exact.
type money int64

// MarshalJSON renders cents as a decimal number, e.g. 12345 → 123.45, -5 → -0.05.
func (m money) MarshalJSON() ([]byte, error) {
	return []byte(formatCents(int64(m))), nil
}

func formatCents(c int64) string {
	sign := ""
	if c < 0 {
		sign, c = "-", -c
	}
	frac := strconv.FormatInt(c%100, 10)
	if len(frac) == 1 {
		frac = "0" + frac
	}
	return sign + strconv.FormatInt(c/100, 10) + "." + frac
}

// writeJSON answers with one JSON document.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := marshalValue(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// writeRaw answers with a JSON document held as bytes (the verbatim published examples).
func writeRaw(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// arrayWriter streams a JSON array one element at a time, so a window of a million records never sits
// in memory.
type arrayWriter struct {
	w     http.ResponseWriter
	bw    *bufio.Writer
	n     int
	err   error
	begun bool
}

func newArrayWriter(w http.ResponseWriter) *arrayWriter {
	return &arrayWriter{w: w, bw: bufio.NewWriterSize(w, 64<<10)}
}

// header sets headers that must precede the body; call before the first add.
func (a *arrayWriter) begin() {
	if a.begun {
		return
	}
	a.begun = true
	a.w.Header().Set("Content-Type", "application/json; charset=utf-8")
	a.w.WriteHeader(http.StatusOK)
	a.bw.WriteByte('[')
}

func (a *arrayWriter) add(v any) bool {
	a.begin()
	if a.err != nil {
		return false
	}
	if a.n > 0 {
		a.bw.WriteByte(',')
	}
	a.n++
	b, err := marshalValue(v)
	if err != nil {
		a.err = err
		return false
	}
	_, a.err = a.bw.Write(b)
	return a.err == nil
}

func (a *arrayWriter) end() {
	a.begin()
	a.bw.WriteByte(']')
	_ = a.bw.Flush()
}
