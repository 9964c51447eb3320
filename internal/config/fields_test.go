package config

import (
	"os"
	"strings"
	"testing"

	"github.com/ledgerlake/ledgerlake/sql/fieldmap"
)

var proposal = map[string]map[string]fieldmap.Entry{
	"datasync_invoices":      {"net_amount": {SQL: "summat__verollinen - summat__alv"}, "invoice_id": fieldmap.Column("tunniste")},
	"datasync_invoice_lines": {"currency": {From: "datasync_invoices.valuutta", Via: "laskun_tunniste = tunniste"}},
}

// Merged into a file that has a fields block (flow mappings, aligned comments, blank lines): the
// entries it names are replaced or added, every other line is as it was — comments, alignment, blank
// lines, ${VAR}s — and the file reads back to the merged mapping.
func TestMergeFieldsKeepsTheFile(t *testing.T) {
	raw, err := os.ReadFile("../../pipelines/demo-tenant-b.yaml")
	if err != nil {
		t.Fatal(err)
	}
	raw = []byte(strings.Replace(string(raw), "    keys:", "\n    keys:", 1)) // a blank line to keep
	notes := map[string]map[string]string{"datasync_invoices": {"net_amount": "# uncertain: a reason"}}
	out, err := MergeFields(raw, "gsapi", proposal, notes)
	if err != nil {
		t.Fatal(err)
	}
	got := string(out)
	if !strings.Contains(got, "invoice_journal_summary:\n        net_amount: total_net\n") {
		t.Errorf("the journal's own net_amount entry was lost:\n%s", got)
	}
	for _, line := range strings.Split(strings.TrimRight(string(raw), "\n"), "\n") {
		if strings.TrimSpace(line) == "net_amount: total_net" {
			continue // the invoices' one is replaced; the journal's is checked above
		}
		if !strings.Contains(got, line+"\n") {
			t.Errorf("line %q is gone or changed", line)
		}
	}
	for _, want := range []string{
		"        net_amount: {sql: \"summat__verollinen - summat__alv\"} # uncertain: a reason\n",
		"        invoice_id: tunniste\n",
		"        currency: {from: datasync_invoices.valuutta, via: laskun_tunniste = tunniste}\n",
		"    fields:                        # model field: this tenant's column",
		"${GSAPI_PASSWORD}",
		"\n\n    keys:",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("merged file lacks %q:\n%s", want, got)
		}
	}
	cfg, err := Parse(out, env(map[string]string{"LEDGERLAKE_SANDBOX_URL": "http://127.0.0.1:1", "SIGNICAT_CLIENT_ID": "i", "SIGNICAT_CLIENT_SECRET": "s",
		"GSAPI_USERNAME": "u", "GSAPI_PASSWORD": "p"}))
	if err != nil {
		t.Fatalf("the merged file does not load: %v\n%s", err, got)
	}
	f := cfg.Fields()
	for table, want := range map[string]map[string]fieldmap.Entry{
		"gsapi_datasync_invoices":       {"net_amount": proposal["datasync_invoices"]["net_amount"], "invoice_number": fieldmap.Column("invoice_no"), "invoice_id": fieldmap.Column("tunniste")},
		"gsapi_datasync_invoice_lines":  {"currency": proposal["datasync_invoice_lines"]["currency"], "net_amount": fieldmap.Column("line_net")},
		"gsapi_invoice_journal_summary": {"net_amount": fieldmap.Column("total_net")},
	} {
		for field, e := range want {
			if f[table][field] != e {
				t.Errorf("%s.%s = %v, want %v", table, field, f[table][field], e)
			}
		}
	}
}

// A file without fields gains the block at the end of its gsapi section, in the file's own
// indentation, and nothing else changes; a file without a gsapi section is refused.
func TestMergeFieldsAddsTheBlock(t *testing.T) {
	raw := "# a pipeline\noutput_dir: x   # aligned\nsources:\n    gsapi:\n        base_url: https://h   # here\n        jwt: ${J}\n\n        since: 2021-01-01\niceberg:\n    enabled: false\n"
	out, err := MergeFields([]byte(raw), "gsapi", proposal, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := "# a pipeline\noutput_dir: x   # aligned\nsources:\n    gsapi:\n        base_url: https://h   # here\n        jwt: ${J}\n\n        since: 2021-01-01\n" +
		"        fields:\n            datasync_invoices:\n                invoice_id: tunniste\n                net_amount: {sql: \"summat__verollinen - summat__alv\"}\n" +
		"            datasync_invoice_lines:\n                currency: {from: datasync_invoices.valuutta, via: laskun_tunniste = tunniste}\n" +
		"iceberg:\n    enabled: false\n"
	if string(out) != want {
		t.Errorf("merged:\n%s\nwant:\n%s", out, want)
	}
	if _, err := MergeFields([]byte("output_dir: x\nsources:\n  signicat: {base_url: https://h}\n"), "gsapi", proposal, nil); err == nil || !strings.Contains(err.Error(), "no sources.gsapi section") {
		t.Errorf("without a gsapi section: %v", err)
	}
}
