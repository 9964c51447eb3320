package main

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/dustin/go-humanize"
)

// outputFormats are the formats query and invoices write (parquet is written by DuckDB, see COPY).
var outputFormats = []string{"table", "csv", "json", "jsonl", "markdown", "parquet"}

// resultWriter writes one statement's answer in one format.
type resultWriter interface {
	header(cols []column) error
	row(cols []column, vals []any) error
	// footer ends the answer: shown rows were written, more were left out (said on note by the
	// machine formats, whose output must stay parseable).
	footer(shown int, more int64, note io.Writer) error
}

func newWriter(format string, w io.Writer) resultWriter {
	switch format {
	case "csv":
		return &csvWriter{w: w}
	case "json":
		return &jsonWriter{w: w, array: true}
	case "jsonl":
		return &jsonWriter{w: w}
	case "markdown":
		return &markdownWriter{w: w}
	}
	return &tableWriter{w: w}
}

// nullText is NULL as a table shows it, apart from the empty string.
const nullText = "NULL"

// tableWriter aligns the answer in columns under a rule; NULL reads NULL, numbers are right-aligned,
// a cell longer than 60 characters is cut with "…".
type tableWriter struct {
	w     io.Writer
	rows  [][]string
	right map[int]bool
}

func (t *tableWriter) header(cols []column) error {
	t.right = map[int]bool{}
	head := make([]string, len(cols))
	for i, c := range cols {
		head[i] = c.name
		t.right[i] = c.numeric()
	}
	t.rows = [][]string{head}
	return nil
}

func (t *tableWriter) row(cols []column, vals []any) error {
	rec := make([]string, len(vals))
	for i, v := range vals {
		if v == nil {
			rec[i] = nullText
		} else {
			rec[i] = strings.ReplaceAll(text(cols[i], v), "\n", "⏎")
		}
	}
	t.rows = append(t.rows, rec)
	return nil
}

func (t *tableWriter) footer(shown int, more int64, _ io.Writer) error {
	writeAligned(t.w, t.rows, t.right)
	_, err := io.WriteString(t.w, rowsNote(shown, more)+"\n")
	return err
}

// rowsNote counts the rows of a table: "(3 rows)", or what --max-rows left out.
func rowsNote(shown int, more int64) string {
	if more == 0 {
		if shown == 1 {
			return "(1 row)"
		}
		return fmt.Sprintf("(%s rows)", humanize.Comma(int64(shown)))
	}
	return fmt.Sprintf("(%s rows shown; %s more rows — --max-rows 0 shows all, --format csv or json writes them)",
		humanize.Comma(int64(shown)), humanize.Comma(more))
}

// machineNote says on note what --max-rows left out of a machine format's output.
func machineNote(note io.Writer, more int64) error {
	if more > 0 {
		_, err := fmt.Fprintf(note, "%s more rows not written (--max-rows; 0 writes all)\n", humanize.Comma(more))
		return err
	}
	return nil
}

// csvWriter writes RFC 4180 CSV: NULL is an empty field, the empty string "".
type csvWriter struct{ w io.Writer }

func (c *csvWriter) header(cols []column) error {
	fields := make([]string, len(cols))
	for i, col := range cols {
		fields[i] = csvField(col.name)
	}
	_, err := io.WriteString(c.w, strings.Join(fields, ",")+"\n")
	return err
}

func (c *csvWriter) row(cols []column, vals []any) error {
	fields := make([]string, len(vals))
	for i, v := range vals {
		if v != nil {
			fields[i] = csvField(text(cols[i], v))
		}
	}
	_, err := io.WriteString(c.w, strings.Join(fields, ",")+"\n")
	return err
}

func (c *csvWriter) footer(_ int, more int64, note io.Writer) error { return machineNote(note, more) }

// csvField quotes a value where CSV needs it, and always the empty string (which NULL is not).
func csvField(s string) string {
	if s == "" || strings.ContainsAny(s, ",\"\r\n") || strings.TrimSpace(s) != s {
		return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
	}
	return s
}

// jsonWriter writes each row as an object whose keys keep the columns' order: as one array per
// answer (several answers make a sequence of arrays, which jq reads), or as JSON lines.
type jsonWriter struct {
	w     io.Writer
	array bool
	n     int
	keys  [][]byte
}

func (j *jsonWriter) header(cols []column) error {
	j.n, j.keys = 0, make([][]byte, len(cols))
	for i, c := range cols {
		j.keys[i], _ = marshalJSON(c.name)
	}
	return nil
}

func (j *jsonWriter) row(cols []column, vals []any) error {
	var b strings.Builder
	switch {
	case j.array && j.n == 0:
		b.WriteString("[\n  ")
	case j.array:
		b.WriteString(",\n  ")
	}
	b.WriteByte('{')
	for i, v := range vals {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(j.keys[i])
		b.WriteByte(':')
		b.Write(jsonOf(cols[i], v))
	}
	b.WriteByte('}')
	if !j.array {
		b.WriteByte('\n')
	}
	j.n++
	_, err := io.WriteString(j.w, b.String())
	return err
}

func (j *jsonWriter) footer(_ int, more int64, note io.Writer) error {
	if j.array {
		end := "\n]\n"
		if j.n == 0 {
			end = "[]\n"
		}
		if _, err := io.WriteString(j.w, end); err != nil {
			return err
		}
	}
	return machineNote(note, more)
}

// markdownWriter writes a GitHub-flavoured Markdown table; NULL reads NULL.
type markdownWriter struct{ w io.Writer }

func (m *markdownWriter) header(cols []column) error {
	names, rule := make([]string, len(cols)), make([]string, len(cols))
	for i, c := range cols {
		names[i], rule[i] = mdCell(c.name), "---"
		if c.numeric() {
			rule[i] = "---:"
		}
	}
	_, err := fmt.Fprintf(m.w, "| %s |\n|%s|\n", strings.Join(names, " | "), strings.Join(rule, "|"))
	return err
}

func (m *markdownWriter) row(cols []column, vals []any) error {
	cells := make([]string, len(vals))
	for i, v := range vals {
		cells[i] = nullText
		if v != nil {
			cells[i] = mdCell(text(cols[i], v))
		}
	}
	_, err := fmt.Fprintf(m.w, "| %s |\n", strings.Join(cells, " | "))
	return err
}

func (m *markdownWriter) footer(shown int, more int64, _ io.Writer) error {
	if more == 0 {
		return nil
	}
	_, err := fmt.Fprintf(m.w, "\n%s\n", rowsNote(shown, more))
	return err
}

// mdCell keeps a value in its cell: | escaped, line breaks as <br>.
func mdCell(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "<br>"), "\n", "<br>")
}

// writeAligned prints rows as a table with a rule under the header; right aligns the columns in right.
func writeAligned(w io.Writer, rows [][]string, right map[int]bool) {
	if len(rows) == 0 {
		return
	}
	width := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, c := range r {
			if l := utf8.RuneCountInString(c); i < len(width) && l > width[i] {
				width[i] = min(l, 60)
			}
		}
	}
	for k, r := range rows {
		var b strings.Builder
		for i, c := range r {
			if utf8.RuneCountInString(c) > 60 {
				c = string([]rune(c)[:59]) + "…"
			}
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(c))
			if i > 0 {
				b.WriteString("  ")
			}
			if right[i] {
				b.WriteString(pad + c)
			} else {
				b.WriteString(c + pad)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
		if k == 0 {
			var rule strings.Builder
			for i := range width {
				if i > 0 {
					rule.WriteString("  ")
				}
				rule.WriteString(strings.Repeat("─", width[i]))
			}
			fmt.Fprintln(w, rule.String())
		}
	}
}
