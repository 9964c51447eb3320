package models

import (
	"maps"
	"slices"
	"strings"
	"testing"
)

func chosen(set map[string]bool) string { return strings.Join(slices.Sorted(maps.Keys(set)), " ") }

// dbt's selectors over sql/'s models: a name, +name (what it reads), name+ (what reads it), both;
// tests run when they read a chosen model or are named; exclude takes out; key tests run when
// nothing is selected or they are named.
func TestSelectAsDbt(t *testing.T) {
	ms, tests, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		include, exclude []string
		models, tests    string
		key              bool
	}{
		{nil, nil, "dim_organization fct_invoice fct_invoice_line reconciliation_gsapi_journal reconciliation_invoice_lines revenue_by_month stg_gsapi_invoice_lines stg_gsapi_invoices stg_signicat_invoice_lines stg_signicat_invoices",
			"every_line_has_its_invoice gsapi_datasync_matches_journal invoice_totals_match_lines", true},
		{[]string{"fct_invoice"}, nil, "fct_invoice", "every_line_has_its_invoice", false},
		{[]string{"+fct_invoice"}, nil, "fct_invoice stg_gsapi_invoices stg_signicat_invoices", "every_line_has_its_invoice", false},
		{[]string{"stg_signicat_invoices+"}, nil, "fct_invoice reconciliation_invoice_lines revenue_by_month stg_signicat_invoices", "every_line_has_its_invoice invoice_totals_match_lines", false},
		{[]string{"+reconciliation_invoice_lines+"}, []string{"stg_gsapi_invoice_lines", "every_line_has_its_invoice"},
			"fct_invoice fct_invoice_line reconciliation_invoice_lines stg_gsapi_invoices stg_signicat_invoice_lines stg_signicat_invoices", "invoice_totals_match_lines", false},
		{[]string{"gsapi_datasync_matches_journal", "key_unique_not_null_signicat_invoices"}, nil, "", "gsapi_datasync_matches_journal", false},
		{nil, []string{"key_unique_not_null_signicat_invoices"}, "", "", true},
	} {
		sel, err := Select(ms, tests, c.include, c.exclude)
		if err != nil {
			t.Fatal(err)
		}
		if c.include == nil && c.exclude != nil {
			if sel.KeyTests("signicat_invoices") || !sel.KeyTests("gsapi_organizations") {
				t.Errorf("exclude a key test: %t %t", sel.KeyTests("signicat_invoices"), sel.KeyTests("gsapi_organizations"))
			}
			continue
		}
		if got := chosen(sel.Models); got != c.models {
			t.Errorf("%v - %v: models %q, want %q", c.include, c.exclude, got, c.models)
		}
		if got := chosen(sel.Tests); got != c.tests {
			t.Errorf("%v - %v: tests %q, want %q", c.include, c.exclude, got, c.tests)
		}
		if sel.KeyTests("gsapi_organizations") != c.key || len(c.include) == 2 && !sel.KeyTests("signicat_invoices") {
			t.Errorf("%v: key tests", c.include)
		}
	}
	var se *SelectError
	if _, err := Select(ms, tests, []string{"+revenue_by_mnth"}, nil); err == nil || !strings.Contains(err.Error(), `did you mean "revenue_by_month"?`) {
		t.Errorf("misspelt: %v", err)
	} else if _, ok := err.(*SelectError); !ok {
		t.Errorf("%T, want %T", err, se)
	}
}
