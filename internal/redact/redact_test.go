package redact

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"html"
	"io/fs"
	"log/slog"
	"net/url"
	"strings"
	"testing"
)

// Every form a server could echo a credential in is masked, wherever it stands in the text.
func TestEveryEchoedFormIsMasked(t *testing.T) {
	secret := "s3cr3t/+=&<value>"
	AddBasic("someone", "pa$$:word/42")
	Add(secret)
	basic := base64.StdEncoding.EncodeToString([]byte("someone:pa$$:word/42"))
	form := url.Values{"grant_type": {"client_credentials"}, "client_secret": {secret}}.Encode()
	echoes := map[string]string{
		"plain":            "invalid_client: " + secret,
		"query-escaped":    "body: " + form,
		"path-escaped":     "/x/" + url.PathEscape(secret),
		"json-escaped":     `{"echo":"s3cr3t\/+=&<value>"}`,
		"html-escaped":     "<p>" + html.EscapeString(secret) + "</p>",
		"hex":              hex.EncodeToString([]byte(secret)),
		"base64":           base64.StdEncoding.EncodeToString([]byte(secret)),
		"base64url":        base64.URLEncoding.EncodeToString([]byte(secret)),
		"basic header":     "Authorization: Basic " + basic,
		"form as base64 0": base64.StdEncoding.EncodeToString([]byte(form)),
		"form as base64 1": base64.StdEncoding.EncodeToString([]byte("x" + form)),
		"form as base64 2": base64.StdEncoding.EncodeToString([]byte("xy" + form)),
		"password alone":   "password=pa$$:word/42",
		// Escapes the usual encoders do not make, which a server may (the hostile probe of session 42).
		"json, punctuation escaped": `{"echo":"s3cr3t\u002f\u002b\u003d\u0026\u003cvalue\u003e"}`,
		"json, every byte escaped":  `{"echo":"` + everyByte(secret, `\u%04X`) + `"}`,
		"percent, punctuation":      "secret=s3cr3t%2F%2B%3D%26%3Cvalue%3E",
		"percent, every byte":       "secret=" + everyByte(secret, "%%%02x"),
	}
	for name, text := range echoes {
		got := String(text)
		if strings.Contains(got, secret) || strings.Contains(got, "pa$$:word/42") || !strings.Contains(got, Mask) {
			t.Errorf("%s: %q → %q", name, text, got)
		}
		// Contains checks answers' bodies for what a JSON text would carry: as is, or JSON-escaped.
		if jsonText := name == "plain" || strings.HasPrefix(name, "json") || name == "password alone"; Contains([]byte(text)) != jsonText {
			t.Errorf("%s: Contains = %v", name, !jsonText)
		}
	}
	if s := "nothing secret here"; String(s) != s || Contains([]byte(s)) {
		t.Errorf("an ordinary text was changed")
	}
}

// everyByte is s with each byte written in layout.
func everyByte(s, layout string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		fmt.Fprintf(&b, layout, s[i])
	}
	return b.String()
}

// Short values are not credentials: masking them would garble every message.
func TestShortValuesAreNotMasked(t *testing.T) {
	Add("abc", "")
	if got := String("abc def"); got != "abc def" {
		t.Fatalf("got %q", got)
	}
}

func TestHeaderValuesAreRegistered(t *testing.T) {
	AddHeader("Bearer tok-" + strings.Repeat("z", 20))
	AddHeader("Basic " + base64.StdEncoding.EncodeToString([]byte("u:header-password")))
	for _, s := range []string{"tok-" + strings.Repeat("z", 20), "header-password"} {
		if strings.Contains(String("x "+s+" y"), s) {
			t.Errorf("%s not masked", s)
		}
	}
}

func TestErrorsAndLogsAreMasked(t *testing.T) {
	Add("logged-secret-1")
	err := Error(&fs.PathError{Op: "open", Path: "logged-secret-1", Err: fs.ErrNotExist})
	if strings.Contains(err.Error(), "logged-secret-1") || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("got %v", err)
	}
	var buf bytes.Buffer
	log := slog.New(Handler(slog.NewJSONHandler(&buf, nil))).With("base", "logged-secret-1")
	log.Warn("token logged-secret-1", "error", errors.New("echo logged-secret-1"), "n", 3,
		slog.Group("g", "v", "logged-secret-1"), "any", []string{"logged-secret-1"})
	if strings.Contains(buf.String(), "logged-secret-1") || !strings.Contains(buf.String(), `"n":3`) {
		t.Fatalf("log: %s", buf.String())
	}
}
