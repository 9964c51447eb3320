package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/models"
	"github.com/ledgerlake/ledgerlake/internal/pipeline"
	"github.com/ledgerlake/ledgerlake/sql/fieldmap"
)

const selectionHelp = `Selection, as dbt's: a model or data test by name; +name adds every model it reads, name+ every model
that reads it (+name+ both); several selectors separated by spaces or commas, or the flag repeated. A data
test runs when it reads a chosen model, or is named; the key tests (key_unique_not_null_<table>) run when
nothing is selected, or when named.`

// selectors are the --select and --exclude flags.
type selectors struct{ include, exclude listFlag }

// listFlag gathers a repeatable flag's values, split at spaces and commas.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, " ") }

func (l *listFlag) Set(v string) error {
	*l = append(*l, strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' })...)
	return nil
}

func addSelectors(fs *flag.FlagSet, exclude bool) *selectors {
	s := &selectors{}
	fs.Var(&s.include, "select", "the models and tests to run (see Selection); default all")
	if exclude {
		fs.Var(&s.exclude, "exclude", "models and tests to leave out, same syntax")
	}
	return s
}

// choose resolves the selectors: the chosen models and tests, or a usage error.
func (s *selectors) choose() (*models.Selection, []*models.Model, []*models.Model, error) {
	ms, tests, err := models.Load()
	if err != nil {
		return nil, nil, nil, err
	}
	sel, err := models.Select(ms, tests, s.include, s.exclude)
	return sel, ms, tests, err
}

func buildCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return buildOrTest(ctx, "build", args, stdout, stderr)
}

func testCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return buildOrTest(ctx, "test", args, stdout, stderr)
}

// buildOrTest is build (the chosen models, then their data tests) and test (the data tests alone),
// over the warehouse as loaded: nothing is fetched.
func buildOrTest(ctx context.Context, name string, args []string, stdout, stderr io.Writer) int {
	what := "Rebuild the SQL models and run the data tests over the warehouse as it is loaded, without fetching or\n" +
		"loading anything (after changing a model or a fields: mapping). The models are built in a copy that replaces\n" +
		"the warehouse when done: queries meanwhile answer from the last state."
	if name == "test" {
		what = "Run the data tests over the warehouse as it is loaded, building nothing."
	}
	fs := newFlags(name, name+" [--config FILE | --db FILE] [--select SEL] [--exclude SEL]", what+"\n\n"+selectionHelp+"\n\n"+
		"Exit codes as run: 0 all built and passed; 1 a model or data test failed; 2 bad usage or selection; 75 a run\n"+
		"holds the lake or the warehouse.", stderr)
	cfgPath := fs.String("config", "", "pipeline file: its warehouse, its fields: mapping and memory limit, and its lake's lock (no run meanwhile)")
	db := fs.String("db", "", "the warehouse (instead of --config; the default fields mapping)")
	sels := addSelectors(fs, true)
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	sel, _, _, err := sels.choose()
	var se *models.SelectError
	if errors.As(err, &se) {
		fmt.Fprintf(stderr, "extract %s: %v\n", name, err)
		return exitUsage
	}
	if err != nil {
		fmt.Fprintf(stderr, "extract %s: %v\n", name, err)
		return exitFailed
	}
	if name == "test" {
		sel.Models = map[string]bool{}
	}
	warehouse, limit, fields := *db, config.DefaultWarehouseMemoryLimit, fieldmap.Mapping(nil)
	if *cfgPath != "" {
		cfg, err := config.LoadForReading(*cfgPath)
		if err != nil {
			return exitCodeFor(err, stderr)
		}
		warehouse, limit, fields = cfg.Warehouse, cfg.WarehouseMemoryLimit, cfg.Fields()
		// A run loads the warehouse while it holds the lake: building meanwhile would make its load wait.
		_, release, _, err := pipeline.LockLake(ctx, cfg, "extract "+name)
		if err != nil {
			return exitCodeFor(err, stderr)
		}
		defer release()
	}
	if warehouse == "" {
		fmt.Fprintf(stderr, "extract %s: give --config FILE or --db FILE\n", name)
		return exitUsage
	}
	if fields == nil {
		fields, _ = fieldmap.NewMapping("gsapi", nil)
	}
	res, err := pipeline.Build(ctx, warehouse, limit, fields, sel)
	if res.Models != nil {
		fmt.Fprintf(stdout, "%s over run %s in %s (%.1fs)\n", name, res.RunID, warehouse, res.Seconds)
		if len(res.Models.Built) > 0 {
			fmt.Fprintf(stdout, "built: %s\n", strings.Join(res.Models.Built, ", "))
		}
		printModels(stdout, res.Models)
	}
	if err != nil {
		return exitCodeFor(err, stderr)
	}
	if !res.Models.OK() {
		return exitFailed
	}
	return exitOK
}

func lsCmd(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("ls", "ls [--select SEL] [--exclude SEL]",
		"List the SQL models and data tests in the order build runs them, with what each reads.\n\n"+selectionHelp, stderr)
	sels := addSelectors(fs, true)
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	sel, ms, tests, err := sels.choose()
	if err != nil {
		fmt.Fprintln(stderr, "extract ls:", err)
		var se *models.SelectError
		if errors.As(err, &se) {
			return exitUsage
		}
		return exitFailed
	}
	rows := [][]string{{"kind", "name", "reads"}}
	for _, m := range ms {
		if sel.Models[m.Name] {
			rows = append(rows, []string{m.Kind, m.Name, strings.Join(append(append([]string{}, m.Deps...), m.Sources...), ", ")})
		}
	}
	for _, t := range tests {
		if sel.Tests[t.Name] {
			rows = append(rows, []string{t.Kind, t.Name, strings.Join(append(append([]string{}, t.Deps...), t.Sources...), ", ")})
		}
	}
	writeAligned(stdout, rows, nil)
	if len(sels.include) == 0 {
		fmt.Fprintln(stdout, "and a key test of every table with a key in force: key_unique_not_null_<table>")
	}
	return exitOK
}
