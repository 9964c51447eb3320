// Package redact hides credentials in text before anything writes it. A credential known anywhere in
// the process — a configured secret, a token obtained at run time, a Basic header sent — is hidden from
// everything the process writes, in every form a server could echo it back: as is, base64 (at any
// alignment inside a longer base64 text), URL-, JSON- and HTML-escaped, and hex. The registry is
// process-wide on purpose: a log line, an error, a report and a site page are written by different
// parts of the program, and each must hide what any other part learnt.
package redact

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"net/url"
	"slices"
	"strings"
	"sync"
)

// Mask replaces every credential found.
const Mask = "REDACTED"

// MinLength is the shortest value taken as a credential: shorter ones would mask ordinary words, and
// no API issues them.
const MinLength = 6

// The registry. Slices are replaced, never changed in place, so a reader may keep the one it took.
var (
	mu      sync.RWMutex
	known   = map[string]bool{} // the credentials as added
	needles []string            // every form of every credential, longest first
	echoes  []string            // the forms a JSON answer would carry one in (see Contains)
	masker  *strings.Replacer
)

// Add registers credentials; values shorter than MinLength are ignored.
func Add(secrets ...string) {
	mu.Lock()
	defer mu.Unlock()
	ns, es := slices.Clone(needles), slices.Clone(echoes)
	for _, s := range secrets {
		if len(s) < MinLength || known[s] {
			continue
		}
		known[s] = true
		ns = append(ns, forms(s)...)
		es = append(es, jsonForms(s)...)
	}
	if len(ns) == len(needles) {
		return
	}
	needles, echoes = longestFirst(ns), longestFirst(es)
	pairs := make([]string, 0, 2*len(needles))
	for _, n := range needles {
		pairs = append(pairs, n, Mask)
	}
	masker = strings.NewReplacer(pairs...)
}

func longestFirst(ss []string) []string {
	slices.SortFunc(ss, func(a, b string) int {
		if d := len(b) - len(a); d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	return slices.Compact(ss)
}

// AddBasic registers what an HTTP Basic header carries: the password, and user:password in every form.
func AddBasic(user, password string) {
	Add(password, user+":"+password)
}

// AddHeader registers the credential of an Authorization-style header value: "Bearer t", "Basic b64"
// (and the user:password inside it), or a bare token.
func AddHeader(v string) {
	scheme, rest, found := strings.Cut(strings.TrimSpace(v), " ")
	if !found {
		Add(scheme)
		return
	}
	rest = strings.TrimSpace(rest)
	Add(rest)
	if strings.EqualFold(scheme, "Basic") {
		if b, err := base64.StdEncoding.DecodeString(rest); err == nil {
			if user, pass, ok := strings.Cut(string(b), ":"); ok {
				AddBasic(user, pass)
			}
		}
	}
}

// String returns s with every known credential masked.
func String(s string) string {
	mu.RLock()
	m := masker
	mu.RUnlock()
	if m == nil {
		return s
	}
	return m.Replace(s)
}

// Strings masks each element of ss in place and returns it.
func Strings(ss []string) []string {
	for i, s := range ss {
		ss[i] = String(s)
	}
	return ss
}

// Contains reports whether b holds a known credential as a JSON text would carry it (as is, or JSON-
// escaped): the check of every answer's body, so it looks for a few forms, not all of String's.
func Contains(b []byte) bool {
	mu.RLock()
	ns := echoes
	mu.RUnlock()
	for _, n := range ns {
		if bytes.Contains(b, []byte(n)) {
			return true
		}
	}
	return false
}

// Longest is the length of the longest form Contains looks for: a reader that checks a stream in
// chunks keeps that many bytes minus one of the previous chunk.
func Longest() int {
	mu.RLock()
	defer mu.RUnlock()
	if len(echoes) == 0 {
		return 0
	}
	return len(echoes[0])
}

// Error wraps err so that its text is masked; errors.Is and errors.As still see err.
func Error(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := err.(masked); ok {
		return err
	}
	return masked{err}
}

type masked struct{ err error }

func (m masked) Error() string { return String(m.err.Error()) }
func (m masked) Unwrap() error { return m.err }

// jsonForms are s as it stands inside a JSON string: as is, and escaped by the usual encoders.
func jsonForms(s string) []string {
	out := []string{s}
	for _, escapeHTML := range []bool{true, false} {
		var b strings.Builder
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(escapeHTML)
		if enc.Encode(s) == nil {
			js := strings.TrimSuffix(b.String(), "\n")
			js = js[1 : len(js)-1]
			out = append(out, js, strings.ReplaceAll(js, "/", `\/`))
		}
	}
	out = append(out, escapedForms(s, `\u%04x`, `\u%04X`)...)
	return slices.Compact(out)
}

// escapedForms are s with its punctuation, or every character, written in one of the escape layouts
// (fmt layouts of one byte: a JSON \u escape, a percent escape, in either hex case): escapes a server
// may choose where the usual encoders leave a character as it is ('-' as \u002d or %2D). Only for
// ASCII s, whose characters each escape alone.
func escapedForms(s string, layouts ...string) []string {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return nil
		}
	}
	var out []string
	for _, layout := range layouts {
		for _, all := range []bool{false, true} {
			var b strings.Builder
			for i := 0; i < len(s); i++ {
				if c := s[i]; all || !isAlnum(c) {
					fmt.Fprintf(&b, layout, c)
				} else {
					b.WriteByte(c)
				}
			}
			out = append(out, b.String())
		}
	}
	return out
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// forms are the ways a server could echo s back.
func forms(s string) []string {
	texts := []string{s, url.QueryEscape(s), url.PathEscape(s)}
	out := append(slices.Clone(texts), html.EscapeString(s), hex.EncodeToString([]byte(s)), strings.ToUpper(hex.EncodeToString([]byte(s))))
	out = append(out, jsonForms(s)...)
	out = append(out, escapedForms(s, "%%%02X", "%%%02x")...)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		for _, t := range texts {
			out = append(out, enc.EncodeToString([]byte(t)))
			out = append(out, base64Inner(enc, t)...)
		}
	}
	var kept []string
	for _, f := range out {
		if len(f) >= MinLength {
			kept = append(kept, f)
		}
	}
	return kept
}

// base64Inner are the parts of s's base64 that do not depend on what comes before or after it, at each
// of the three alignments s can have inside a longer text: a form body echoed as base64 carries one.
func base64Inner(enc *base64.Encoding, s string) []string {
	var out []string
	for k := range 3 {
		b := enc.EncodeToString(append(make([]byte, k), s...))
		// Character c covers bits [6c, 6c+6); s covers bits [8k, 8(k+len)).
		start, end := (8*k+5)/6, 8*(k+len(s))/6
		if end-start >= MinLength && end <= len(b) {
			out = append(out, b[start:end])
		}
	}
	return out
}
