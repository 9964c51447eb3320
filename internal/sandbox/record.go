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
func (o obj) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(f.k)
		b.Write(k)
		b.WriteByte(':')
		v, err := marshalValue(f.v)
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func marshalValue(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
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
