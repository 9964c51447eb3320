package fieldmap

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// Expressions a tenant needs pass; anything that could break out of the parentheses the models wrap
// an expression in, or read another table, is refused with the reason.
func TestCheckExpression(t *testing.T) {
	for _, ok := range []string{
		"amounts__excl_vat + coalesce(rounding, 0)",
		`"odd;name" - "other--name"`,
		"'a,b;c--d' || x",
		"CASE status WHEN 'Maksettu' THEN 'Delivered' ELSE status END",
		"extract(year FROM invoice_date)",
		"round(x::DECIMAL(18,2) / 100, 2)",
		"E'it\\'s' || name",
		"selected_total - refund", // a word that only starts like SELECT
	} {
		if err := CheckExpression(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for bad, why := range map[string]string{
		"":                              "is empty",
		"a, b":                          "is a list",
		"a; DROP TABLE t":               "holds a ';'",
		"a) FROM t; --":                 "closes a parenthesis",
		"a /* note */":                  "holds a comment",
		"net -- excl. VAT":              "holds a comment",
		"(a + b":                        "open",
		"'unclosed":                     "unclosed '",
		`"unclosed`:                     `unclosed "`,
		"(SELECT max(x) FROM other)":    "holds SELECT",
		"x IN (select y from z)":        "holds SELECT",
		"unnest(tags)":                  "holds unnest",
		"E'\\''; DROP TABLE x; --'":     "holds a ';'",
		"1) UNION ALL (SELECT secret_1": "closes a parenthesis",
	} {
		if err := CheckExpression(bad); err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("%q: %v, want %q", bad, err, why)
		}
	}
}

// Each form renders as the SQL the models read, and YAML writes it back as a person would write it.
func TestEntryExprAndYAML(t *testing.T) {
	for _, c := range []struct {
		e          Entry
		expr, yaml string
	}{
		{Column("total_net"), `"total_net"`, "total_net"},
		{Entry{SQL: "gross - vat"}, "(gross - vat)", `{sql: "gross - vat"}`},
		{Entry{Value: "EUR"}, "'EUR'", "{value: EUR}"},
		{Entry{Value: "O'Hara"}, "'O''Hara'", "{value: O'Hara}"},
		{Entry{Value: "0"}, "0", "{value: 0}"},
		{Entry{From: "datasync_invoices.currency", Via: "ref = id"}, "", "{from: datasync_invoices.currency, via: ref = id}"},
	} {
		got := c.e.Expr("gsapi_datasync_invoice_lines", "sources.gsapi.fields.datasync_invoice_lines.currency")
		if c.expr != "" && got != c.expr {
			t.Errorf("%+v renders %s, want %s", c.e, got, c.expr)
		}
		b, err := yaml.Marshal(c.e)
		if err != nil || strings.TrimSpace(string(b)) != c.yaml {
			t.Errorf("%+v as YAML: %q %v, want %q", c.e, b, err, c.yaml)
		}
		var back Entry
		if err := yaml.Unmarshal(b, &back); err != nil || back != c.e {
			t.Errorf("%q read back as %+v (%v)", b, back, err)
		}
	}
	from := Entry{From: "datasync_invoices.currency", Via: "ref = id"}.Expr("gsapi_datasync_invoice_lines", "KEY")
	for _, want := range []string{`FROM "gsapi_datasync_invoices" _parent`, `_parent."id"::VARCHAR = "gsapi_datasync_invoice_lines"."ref"::VARCHAR`,
		`count(DISTINCT _parent."currency") > 1 THEN error('KEY: the rows of gsapi_datasync_invoices whose id is '`} {
		if !strings.Contains(from, want) {
			t.Errorf("from renders %s, without %s", from, want)
		}
	}
}
