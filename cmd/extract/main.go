// Command extract exports the Signicat Account Management API and the Good Sign GSAPI into typed
// Parquet snapshots and a DuckDB warehouse. Run `extract help` for the commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/pipeline"
)

// Exit codes, fixed by DESIGN.md.
const (
	exitOK      = 0
	exitFailed  = 1 // a stream or check failed; the rest completed and was kept
	exitUsage   = 2 // bad usage or config; nothing was fetched
	usageHeader = `extract — export Signicat and Good Sign billing data to Parquet and DuckDB

Usage:
  extract run --config FILE [--streams a,b] [--full-refresh] [--pdf]   the nightly job
  extract demo                        run pipelines/demo.yaml against the built-in sandbox
  extract sandbox [--addr] [--scale] [--latency] [--faults]   serve the simulated APIs
  extract query [--db FILE] [--format table|csv|json] SQL      query the warehouse (read-only)
  extract invoices [--org ID] [--from D] [--to D] [--as-of T] [--lines] [--format F] [--pdf-dir DIR]
                                      auditors: invoices as a past run held them, with provenance
  extract verify [--config FILE]      re-hash snapshots, evidence and PDFs against their manifests
  extract docs [--db FILE] [--out F]  Markdown documentation of every table, column and model
  extract docs --html DIR [--config FILE | --db FILE --lake DIR]
                                      the same as a page to look at: tables, lineage, runs, tests, manifests
  extract serve [--addr 127.0.0.1:8080] [--config FILE | --db FILE --lake DIR]   that page, live
  extract fields --config FILE [--suggest [--probe] [--write]]
                                      propose your tenant's field mapping from its data, with the evidence

Run "extract COMMAND --help" for a command's flags.
Exit codes: 0 success; 1 a stream or check failed (others completed and were kept); 2 bad usage or config.
`
)

// command is one subcommand.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

var commands = map[string]command{
	"run":      {"the nightly job", runCmd},
	"demo":     {"run the demo pipeline against the built-in sandbox", demoCmd},
	"sandbox":  {"serve the simulated APIs", sandboxCmd},
	"query":    {"run SQL against the warehouse", queryCmd},
	"verify":   {"re-hash snapshots, evidence and PDFs against their manifests", verifyCmd},
	"invoices": {"historical invoices with provenance", invoicesCmd},
	"docs":     {"document every table and column", docsCmd},
	"serve":    {"serve the documentation page live", serveCmd},
	"fields":   {"propose or list where the models read the tenant's fields", fieldsCmd},
}

func main() {
	pipeline.SetMemoryLimit()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// The first signal asks for a clean stop (completed streams are kept); restoring the default
		// lets a second one end the process at once.
		<-ctx.Done()
		stop()
	}()
	os.Exit(Main(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// Main runs the CLI and returns the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, usageHeader)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "extract: unknown command %q\n\n%s", args[0], usageHeader)
		return exitUsage
	}
	return c.run(ctx, args[1:], stdout, stderr)
}

// newFlags makes a flag set whose --help prints the usage line, the description and the flags.
func newFlags(name, usage, description string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: extract %s\n\n%s\n\nFlags:\n", usage, description)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args and maps problems to exit codes: 0 for --help, 2 for bad usage, -1 to go on.
func parseFlags(fs *flag.FlagSet, args []string) int {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	return -1
}

// newLogger logs to stderr: text for people, JSON for log collectors.
func newLogger(format string, stderr io.Writer) (*slog.Logger, error) {
	if progressTo(stderr) != nil {
		stderr = clearLine{stderr}
	}
	switch format {
	case "", "text":
		return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo})), nil
	case "json":
		return slog.New(slog.NewJSONHandler(stderr, nil)), nil
	}
	return nil, fmt.Errorf("--log-format must be text or json, not %q", format)
}

// exitCodeFor maps an error to an exit code, printing it.
func exitCodeFor(err error, stderr io.Writer) int {
	var ce *config.Error
	if errors.As(err, &ce) {
		fmt.Fprintln(stderr, "extract:", err)
		return exitUsage
	}
	fmt.Fprintln(stderr, "extract:", err)
	return exitFailed
}
