package config

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ledgerlake/ledgerlake/sql/fieldmap"
)

const valid = `
output_dir: out/lake
warehouse: out/wh.duckdb
sources:
  signicat:
    base_url: https://api.signicat.com/account-management
    token_url: https://api.signicat.com/auth/open/connect/token
    client_id: ${SIGNICAT_CLIENT_ID}
    client_secret: ${SIGNICAT_CLIENT_SECRET}
    organization_id: o-abc
    since: 2019-01-01
    streams: [accounts]
  gsapi:
    base_url: https://api.goodsign.cloud/api/interface/gsapi
    username: ${GSAPI_USERNAME}
    password: ${GSAPI_PASSWORD}
    org_id: ${GSAPI_ORG}
    datatables:
      - table: ctransactiondata
        sortorder: ["raw_id asc"]
        key: raw_id
`

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

var goodEnv = map[string]string{"SIGNICAT_CLIENT_ID": "org-1", "SIGNICAT_CLIENT_SECRET": "s3cr#t: {yes}", "GSAPI_USERNAME": "u", "GSAPI_PASSWORD": "true", "GSAPI_ORG": "1202"}

func TestParseExpandsEnvironmentSafely(t *testing.T) {
	cfg, err := Parse([]byte(valid), env(goodEnv))
	if err != nil {
		t.Fatal(err)
	}
	s, g := cfg.Sources.Signicat, cfg.Sources.GSAPI
	// A secret with YAML syntax in it, or that looks like a boolean, stays the exact string.
	if s.ClientSecret.Value() != "s3cr#t: {yes}" || g.Password.Value() != "true" {
		t.Fatalf("secrets = %q, %q", s.ClientSecret.Value(), g.Password.Value())
	}
	if *g.OrgID != 1202 || s.Since.Format("2006-01-02") != "2019-01-01" || s.PageLimit != 100 || cfg.Concurrency != 8 {
		t.Fatalf("values: org %d since %s limit %d concurrency %d", *g.OrgID, s.Since, s.PageLimit, cfg.Concurrency)
	}
	if strings.Contains(fmt.Sprintf("%v %+v %#v", s.ClientSecret, *s, *s), "s3cr") {
		t.Fatal("a secret printed through fmt")
	}
}

func TestParseRefusesBadConfigsNamingTheKey(t *testing.T) {
	cases := []struct {
		name, edit, want string
		envNot           string
	}{
		{"typo", "output_dir:", `line 2: unknown key "outptu_dir" at the top level — did you mean "output_dir"?`, ""},
		{"missing env", "", "sources.signicat.client_secret: environment variable SIGNICAT_CLIENT_SECRET is not set", "SIGNICAT_CLIENT_SECRET"},
		{"plain http", "https://api.signicat.com/account-management", "plain http:// is accepted only for loopback", ""},
		{"no sortorder", `sortorder: ["raw_id asc"]`, "datatables[0] (table ctransactiondata): sortorder is required", ""},
		{"bad date", "since: 2019-01-01", `"2019-31-01" is not a date`, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			y := valid
			switch c.name {
			case "typo":
				y = strings.Replace(y, "output_dir:", "outptu_dir:", 1)
			case "plain http":
				y = strings.Replace(y, c.edit, "http://api.signicat.com/account-management", 1)
			case "no sortorder":
				y = strings.Replace(y, c.edit, "", 1)
			case "bad date":
				y = strings.Replace(y, c.edit, "since: 2019-31-01", 1)
			}
			e := map[string]string{}
			for k, v := range goodEnv {
				if k != c.envNot {
					e[k] = v
				}
			}
			_, err := Parse([]byte(y), env(e))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to contain %q", err, c.want)
			}
			if _, ok := err.(*Error); !ok {
				t.Fatalf("err is %T, want *config.Error (exit 2)", err)
			}
		})
	}
}

func TestLoopbackHTTPAccepted(t *testing.T) {
	for _, host := range []string{"127.0.0.1:8080", "localhost:9", "[::1]:80"} {
		y := strings.ReplaceAll(valid, "https://api.signicat.com", "http://"+host)
		if _, err := Parse([]byte(y), env(goodEnv)); err != nil {
			t.Errorf("%s: %v", host, err)
		}
	}
}

func TestShippedPipelinesParse(t *testing.T) {
	for _, f := range []string{"nightly.yaml", "demo.yaml", "demo-tenant-b.yaml"} {
		e := map[string]string{"LEDGERLAKE_SANDBOX_URL": "http://127.0.0.1:1", "SIGNICAT_ORGANIZATION_ID": "o-x"}
		for k, v := range goodEnv {
			e[k] = v
		}
		raw, err := os.ReadFile(filepath.Join("..", "..", "pipelines", f))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(raw, env(e)); err != nil {
			t.Errorf("pipelines/%s: %v", f, err)
		}
	}
}

// A tenant's field names and keys: what the models read is laid over the defaults, and a name the
// models do not read, or a key without columns, is refused naming the key (exit 2).
func TestTenantFieldsAndKeys(t *testing.T) {
	with := func(block string) string {
		return strings.Replace(valid, "    datatables:\n", block+"    datatables:\n", 1)
	}
	cfg, err := Parse([]byte(with("    fields:\n      datasync_invoices: {net_amount: total_net}\n    keys:\n      invoice_journal_accounting: [iheader_id, account, cost_centre]\n")), env(goodEnv))
	if err != nil {
		t.Fatal(err)
	}
	f := cfg.Fields()["gsapi_datasync_invoices"]
	if f["net_amount"] != fieldmap.Column("total_net") || f["tax_amount"] != fieldmap.Column("vat_amount") {
		t.Errorf("mapping %v: want net_amount from the config and tax_amount's default", f)
	}
	if k := cfg.Sources.GSAPI.Keys["invoice_journal_accounting"]; len(k) != 3 {
		t.Errorf("keys %v", k)
	}
	for block, want := range map[string]string{
		"    fields:\n      datasync_invoice: {net_amount: x}\n":   "sources.gsapi.fields.datasync_invoice: the models read no fields of gsapi_datasync_invoice",
		"    fields:\n      datasync_invoices: {net: x}\n":         `sources.gsapi.fields.datasync_invoices.net: the models read no field "net"`,
		"    fields:\n      datasync_invoices: {net_amount: ''}\n": "sources.gsapi.fields.datasync_invoices.net_amount: name the column that holds it",
		"    keys:\n      invoice_journal_accounting: []\n":        "sources.gsapi.keys.invoice_journal_accounting: list the columns",
		// Entries that are not one well-formed form, named by their key.
		"    fields:\n      datasync_invoices: {net_amount: {sql: 'a, b'}}\n":                   `sources.gsapi.fields.datasync_invoices.net_amount: sql "a, b" is a list`,
		"    fields:\n      datasync_invoices: {net_amount: {sql: 'a); DROP TABLE x; --'}}\n":   "closes a parenthesis it did not open",
		"    fields:\n      datasync_invoices: {net_amount: {sql: 'a -- net'}}\n":               "holds a comment",
		"    fields:\n      datasync_invoices: {net_amount: {sql: '(SELECT max(a) FROM t)'}}\n": "holds SELECT",
		// E'…' takes backslash escapes: the ';' is outside the string, as DuckDB reads it.
		"    fields:\n      datasync_invoices: {net_amount: {sql: \"E'\\\\''; DROP TABLE x; --'\"}}\n": "holds a ';'",
		"    fields:\n      datasync_invoices: {net_amount: {column: a, sql: b}}\n":                    "sets more than one of column, sql, from and value",
		"    fields:\n      datasync_invoice_lines: {currency: {from: datasync_invoices.currency}}\n":  "needs via",
		"    fields:\n      datasync_invoice_lines: {currency: {from: currency, via: x}}\n":            "<stream>.<column>",
		"    fields:\n      datasync_invoice_lines: {currency: {via: iheader_id}}\n":                   "via needs from",
		"    fields:\n      datasync_invoice_lines: {currency: {valu: EUR}}\n":                         "field valu not found in a fields entry",
		"    fields:\n      datasync_invoice_lines: {currency: [EUR]}\n":                               "a fields entry is a column name or",
	} {
		_, err := Parse([]byte(with(block)), env(goodEnv))
		if _, ok := err.(*Error); !ok || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want a config error containing %q", block, err, want)
		}
	}
}

// Every form of a fields entry parses to what it says, over the defaults.
func TestFieldsEntryForms(t *testing.T) {
	block := `    fields:
      datasync_invoices:
        net_amount: {sql: "amounts__excl_vat + coalesce(rounding, 0)"}
        currency: {value: EUR}
        total_amount: {column: total_gross}
      datasync_invoice_lines:
        currency: {from: datasync_invoices.currency, via: iheader_id}
        tax_amount: {from: datasync_invoices.vat, via: "invoice_ref = iheader_id"}
`
	cfg, err := Parse([]byte(strings.Replace(valid, "    datatables:\n", block+"    datatables:\n", 1)), env(goodEnv))
	if err != nil {
		t.Fatal(err)
	}
	f := cfg.Fields()
	for _, c := range []struct {
		table, field string
		want         fieldmap.Entry
	}{
		{"gsapi_datasync_invoices", "net_amount", fieldmap.Entry{SQL: "amounts__excl_vat + coalesce(rounding, 0)"}},
		{"gsapi_datasync_invoices", "currency", fieldmap.Entry{Value: "EUR"}},
		{"gsapi_datasync_invoices", "total_amount", fieldmap.Column("total_gross")},
		{"gsapi_datasync_invoices", "tax_amount", fieldmap.Column("vat_amount")},
		{"gsapi_datasync_invoice_lines", "currency", fieldmap.Entry{From: "datasync_invoices.currency", Via: "iheader_id"}},
		{"gsapi_datasync_invoice_lines", "tax_amount", fieldmap.Entry{From: "datasync_invoices.vat", Via: "invoice_ref = iheader_id"}},
	} {
		if got := f[c.table][c.field]; got != c.want {
			t.Errorf("%s.%s = %+v, want %+v", c.table, c.field, got, c.want)
		}
	}
	l, ok := f["gsapi_datasync_invoice_lines"]["tax_amount"].Link("gsapi")
	if want := (fieldmap.Link{Parent: "gsapi_datasync_invoices", Column: "vat", Own: "invoice_ref", ParentKey: "iheader_id"}); !ok || l != want {
		t.Errorf("link %+v, want %+v", l, want)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(valid)
	f.Add("sources: {gsapi: {base_url: 'https://x', jwt: j, datatables: [{table: t}]}}")
	f.Add("output_dir: [1, 2")
	f.Add("sources:\n  signicat:\n    sinse: 2019-01-01\n")
	f.Add("concurrency: eight\nsources: {gsapi: {base_url: 'https://x', jwt: j}}")
	f.Fuzz(func(t *testing.T, y string) {
		for _, parse := range []func([]byte, func(string) (string, bool)) (*Config, error){Parse, ParseForReading} {
			cfg, err := parse([]byte(y), env(goodEnv))
			if err == nil && cfg.Sources.Signicat == nil && cfg.Sources.GSAPI == nil {
				t.Fatal("a config without sources was accepted")
			}
			if err != nil {
				if _, ok := err.(*Error); !ok {
					t.Fatalf("error of type %T: %v", err, err)
				}
				// Messages speak of keys and values, never of the Go types behind them.
				if strings.Contains(err.Error(), "config.") {
					t.Fatalf("a Go type in the message: %v", err)
				}
			}
		}
	})
}

func TestWarehouseMemoryLimit(t *testing.T) {
	base := "output_dir: x\nsources:\n  gsapi:\n    base_url: https://h\n    jwt: j\n"
	for _, c := range []struct {
		yaml, want, err string
	}{
		{base, "96MB", ""},
		{base + "warehouse_memory_limit: 2GB\n", "2GB", ""},
		{base + "warehouse_memory_limit: 512 MiB\n", "512 MiB", ""},
		{base + "warehouse_memory_limit: lots\n", "", `warehouse_memory_limit: "lots" is not a size`},
		{base + "warehouse_memory_limit: 512\n", "", "is not a size"},
	} {
		cfg, err := Parse([]byte(c.yaml), func(string) (string, bool) { return "", false })
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%q: error %v, want %q", c.yaml, err, c.err)
		case c.err == "" && (err != nil || cfg.WarehouseMemoryLimit != c.want):
			t.Errorf("%q: %v, limit %q, want %q", c.yaml, err, cfg.WarehouseMemoryLimit, c.want)
		}
	}
}

// The limits read durations, sizes and percentages as people write them, default what is unset, and
// refuse what cannot hold, naming the key.
func TestLimits(t *testing.T) {
	cfg, err := Parse([]byte("stall_timeout: 90s\nmax_retry_after: 5m\nmax_run_time: 2h30m\nmax_pages: 500\nmax_shrink: 20%\nmax_page_bytes: 2GiB\nmax_value_bytes: 16MB\nmax_pdf_bytes: 1048576\n"+valid), env(goodEnv))
	if err != nil {
		t.Fatal(err)
	}
	l := cfg.Limits
	if l.StallTimeout.String() != "1m30s" || l.MaxRetryAfter.String() != "5m0s" || l.MaxRunTime.String() != "2h30m0s" || l.MaxPages != 500 ||
		l.MaxShrink != 20 || l.MaxPageBytes != 2<<30 || l.MaxValueBytes != 16e6 || l.MaxPDFBytes != 1<<20 {
		t.Fatalf("limits %+v", l)
	}
	def, err := Parse([]byte(valid), env(goodEnv))
	if err != nil || def.Limits != DefaultLimits || def.Limits != (Limits{}).OrDefaults() {
		t.Fatalf("defaults %+v (%v)", def.Limits, err)
	}
	for edit, want := range map[string]string{
		"stall_timeout: soon\n":                         `"soon" is not a duration`,
		"max_page_bytes: lots\n":                        `"lots" is not a size`,
		"max_shrink: 150%\n":                            "max_shrink: 150% is not a share",
		"max_shrink: half\n":                            `"half" is not a percentage`,
		"max_value_bytes: 2GiB\nmax_page_bytes: 1GiB\n": "max_value_bytes (2GiB) is larger than max_page_bytes (1GiB)",
		"max_pages: -1\n":                               "max_pages must be positive",
	} {
		if _, err := Parse([]byte(edit+valid), env(goodEnv)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err %v, want %q", edit, err, want)
		}
	}
}

// A misspelt key is named with its line and the nearest valid key, in the file's terms: no Go type
// names. A key that is valid elsewhere says where it belongs; one near nothing lists the keys.
func TestUnknownKeysSuggestTheNearest(t *testing.T) {
	for _, c := range []struct{ from, to, want string }{
		{"    since: 2019-01-01", "    sinse: 2019-01-01", `line 11: unknown key "sinse" under sources.signicat — did you mean "since"?`},
		{"    org_id: ${GSAPI_ORG}", "    orgid: ${GSAPI_ORG}", `line 17: unknown key "orgid" under sources.gsapi — did you mean "org_id"?`},
		{"        key: raw_id", "        Key: raw_id", `line 21: unknown key "Key" under sources.gsapi.datatables[0] — did you mean "key"?`},
		{"output_dir: out/lake", "since: 2019-01-01", `line 2: unknown key "since" at the top level — it belongs under sources.signicat or sources.gsapi`},
		{"output_dir: out/lake", "output_dir: out/lake\nmax_shrnk: 20%", `line 3: unknown key "max_shrnk" at the top level — did you mean "max_shrink"?`},
		{"output_dir: out/lake", "colour: blue", `line 2: unknown key "colour" at the top level; the keys here are output_dir, warehouse, sources, concurrency`},
	} {
		y := strings.Replace(valid, c.from, c.to, 1)
		for _, parse := range []func([]byte, func(string) (string, bool)) (*Config, error){Parse, ParseForReading} {
			_, err := parse([]byte(y), env(map[string]string{}))
			if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "config.") {
				t.Errorf("%s: %v\nwant %s", c.to, err, c.want)
			}
		}
	}
}

// A value of the wrong kind is named with its line and key; one that came from the environment is
// not printed (it may be a secret).
func TestValuesOfTheWrongKind(t *testing.T) {
	for _, c := range []struct{ from, to, want string }{
		{"output_dir: out/lake", "output_dir: out/lake\nconcurrency: eight", `line 3: concurrency: "eight" is not a whole number`},
		{"output_dir: out/lake", "output_dir: out/lake\niceberg: {enabled: perhaps}", `line 3: iceberg.enabled: "perhaps" is not true or false`},
		{"    streams: [accounts]", "    streams: accounts", `line 12: sources.signicat.streams: "accounts" is not a list`},
		{"output_dir: out/lake", "output_dir: [a, b]", `line 2: output_dir: a list is not a single value`},
	} {
		_, err := Parse([]byte(strings.Replace(valid, c.from, c.to, 1)), env(goodEnv))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v\nwant %s", c.to, err, c.want)
		}
	}
	e := maps.Clone(goodEnv)
	e["GSAPI_ORG"] = "s3cr3t-not-a-number"
	_, err := Parse([]byte(valid), env(e))
	if err == nil || !strings.Contains(err.Error(), "line 17: sources.gsapi.org_id: the value of ${GSAPI_ORG} is not a whole number") || strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("org_id from the environment: %v", err)
	}
}

// A command that only reads needs no credential: unset variables under sources leave their values
// empty, and set ones are not even read for the credentials. What it reads itself must still be set.
func TestParseForReadingNeedsNoSecrets(t *testing.T) {
	cfg, err := ParseForReading([]byte(valid), env(map[string]string{}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.OutputDir != "out/lake" || cfg.Sources.Signicat.Since.Format("2006-01-02") != "2019-01-01" || len(cfg.Sources.GSAPI.Datatables) != 1 {
		t.Errorf("what readers use: %+v", cfg)
	}
	cfg, err = ParseForReading([]byte(valid), env(goodEnv))
	if err != nil {
		t.Fatal(err)
	}
	s, g := cfg.Sources.Signicat, cfg.Sources.GSAPI
	if s.ClientID != "" || s.ClientSecret != "" || g.Username != "" || g.Password != "" || *g.OrgID != 1202 {
		t.Errorf("a reader resolved credentials: %q %q %q %q, org %d", s.ClientID, s.ClientSecret.Value(), g.Username, g.Password.Value(), *g.OrgID)
	}
	y := strings.Replace(valid, "output_dir: out/lake", "output_dir: ${LAKE}", 1)
	if _, err := ParseForReading([]byte(y), env(goodEnv)); err == nil || !strings.Contains(err.Error(), "output_dir: environment variable LAKE is not set") {
		t.Errorf("output_dir from an unset variable: %v", err)
	}
	// A command that calls the APIs still needs every credential.
	if _, err := Parse([]byte(valid), env(map[string]string{"GSAPI_ORG": "1"})); err == nil || !strings.Contains(err.Error(), "environment variable SIGNICAT_CLIENT_ID is not set") {
		t.Errorf("run without credentials: %v", err)
	}
}

// Every key is documented from its field: a doc comment, a type in words, an example; the defaults
// are what validate fills in; a key marked required is one the config cannot do without.
func TestReferenceDocumentsEveryKey(t *testing.T) {
	keys, err := Reference()
	if err != nil {
		t.Fatal(err)
	}
	byPath := map[string]Key{}
	for _, k := range keys {
		byPath[k.Path] = k
		if k.Doc == "" || k.Type == "" || k.Example == "" && k.Type != "mapping" && k.Type != "list of mappings" {
			t.Errorf("%s is not documented: %+v (give its field a doc comment and an example tag)", k.Path, k)
		}
		if strings.Contains(k.Doc, "config.") || strings.HasPrefix(k.Type, "*") {
			t.Errorf("%s speaks Go: %+v", k.Path, k)
		}
	}
	for path, want := range map[string]Key{
		"output_dir":                           {Type: "text", Default: "data/lake"},
		"concurrency":                          {Type: "whole number", Default: "8"},
		"warehouse_memory_limit":               {Type: "text", Default: DefaultWarehouseMemoryLimit},
		"iceberg.enabled":                      {Type: "true or false", Default: "true"},
		"sources.signicat.since":               {Type: "date (YYYY-MM-DD)", Default: "2019-01-01"},
		"sources.signicat.page_limit":          {Type: "whole number", Default: "100"},
		"sources.signicat.account_detail_days": {Type: "whole number", Default: "7"},
		"sources.signicat.client_secret":       {Type: "text (a secret)", Required: true, Secret: true},
		"sources.gsapi.org_id":                 {Type: "whole number", Default: "0"},
		"sources.gsapi.datatables[].pagesize":  {Type: "whole number", Default: "10000"},
		"sources.gsapi.datatables[].sortorder": {Type: "list of text", Required: true},
		"sources.gsapi.keys":                   {Type: "mapping of name → list of text"},
	} {
		got := byPath[path]
		if got.Type != want.Type || got.Default != want.Default || got.Required != want.Required || got.Secret != want.Secret {
			t.Errorf("%s: %+v, want %+v", path, got, want)
		}
	}
	if d := byPath["sources.signicat.page_limit"].Doc; d != "The items per page of the {data, next} lists (1 to 1000)." {
		t.Errorf("page_limit's doc %q", d)
	}
	// required is true to the validation: without the key, the minimal config is refused.
	for _, k := range keys {
		if !k.Required {
			continue
		}
		name := k.Path[strings.LastIndexAny(k.Path, ".]")+1:]
		y := regexp.MustCompile(`\b`+name+`: ("[^"]*"|\[[^]]*\]|\w+),? ?`).ReplaceAllString(minimal, "")
		if _, err := Parse([]byte(y), env(nil)); err == nil {
			t.Errorf("%s is marked required, but a config without it passes", k.Path)
		}
	}
}

// Two datatables whose names make the same table name (gsapi_datatable_foo_bar) would share its files
// and checkpoints, and a name with no letter or digit makes none: both are refused, naming them.
func TestDatatablesStoredAsOneTableAreRefused(t *testing.T) {
	block := func(tables ...string) string {
		var b strings.Builder
		for _, name := range tables {
			fmt.Fprintf(&b, "      - table: %q\n        sortorder: [\"raw_id asc\"]\n        key: raw_id\n", name)
		}
		return strings.Replace(valid, "    datatables:\n", "    datatables:\n"+b.String(), 1)
	}
	for tables, want := range map[[2]string]string{
		{"Foo-Bar", "foo_bar"}: "datatables[1] (table foo_bar): would be stored as table gsapi_datatable_foo_bar, as table Foo-Bar is",
		{"FooBar", "foo bar"}:  "datatables[1] (table foo bar): would be stored as table gsapi_datatable_foo_bar, as table FooBar is",
		{"***", "other"}:       "datatables[0] (table ***): the name has no letter or digit",
		{"foo_bar", "foo_baz"}: "",
	} {
		_, err := Parse([]byte(block(tables[0], tables[1])), env(goodEnv))
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("%q: %v, want %q", tables, err, want)
		}
	}
}
