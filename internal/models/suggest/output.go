package suggest

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// Summary says in one line what the suggestion read and found.
func (s *Suggestion) Summary() string {
	c, u, m := s.Counts()
	return fmt.Sprintf("from %s invoices, %s lines and %s summary-journal rows: %d fields certain, %d uncertain, %d not found",
		num(s.Invoices), num(s.Lines), num(s.Journal), c, u, m)
}

// Note is the field's verdict and evidence in a sentence or two: what the YAML's comment above it says.
func (f *Field) Note() string {
	switch {
	case !f.Found():
		return "NOT FOUND " + f.Field + ": " + f.Missing
	case f.Certain:
		return f.Field + " ← " + f.Entry.String() + ": " + strings.Join(f.Evidence, "; ")
	}
	return "UNCERTAIN " + f.Field + " ← " + f.Entry.String() + ": " + strings.Join(f.Evidence, "; ") + " — " + f.Doubt
}

// YAML is the proposal as a fields: block ready to paste under sources.gsapi: each field with its
// evidence in a comment above it, uncertain ones marked, fields not found left out with the reason.
func (s *Suggestion) YAML() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# extract fields --suggest, %s.\n# Paste under sources.gsapi in the pipeline file, or run again with --write to merge it there.\nfields:\n", s.Summary())
	stream := ""
	for _, f := range s.Fields {
		if st := strings.TrimPrefix(f.Table, "gsapi_"); st != stream {
			stream = st
			fmt.Fprintf(&b, "  %s:\n", stream)
		}
		for _, line := range wrap(f.Note(), 100) {
			fmt.Fprintf(&b, "    # %s\n", line)
		}
		if f.Found() {
			v, _ := yaml.Marshal(f.Entry)
			fmt.Fprintf(&b, "    %s: %s\n", f.Field, strings.TrimSpace(string(v)))
		}
	}
	return b.String()
}

// wrap breaks text into lines of at most width characters at spaces, indenting the continuations.
func wrap(text string, width int) []string {
	var out []string
	line := ""
	for _, w := range strings.Fields(text) {
		if line != "" && len(line)+1+len(w) > width {
			out = append(out, line)
			line = "  " + w
			continue
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	return append(out, line)
}
