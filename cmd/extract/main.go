// Command extract exports the Signicat Account Management API and the Good Sign GSAPI into typed
// Parquet snapshots and a DuckDB warehouse. Run `extract help` for the commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/parquet"
	"github.com/ledgerlake/ledgerlake/internal/pipeline"
)

// Exit codes, fixed by DESIGN.md; every command keeps to them.
const (
	exitOK     = 0
	exitFailed = 1 // a stream or check failed; the rest completed and was kept
	exitUsage  = 2 // bad usage or config; nothing was fetched
	// exitRefused is sysexits' EX_TEMPFAIL: a start refused because the lake is busy (another run holds
	// it) or cannot be written. Nothing was fetched or changed; try again later, or fix the permissions.
	exitRefused = 75
	// An interrupted command exits 128 + the signal's number, as a shell reports a process a signal
	// ended: 130 for SIGINT (Ctrl-C), 143 for SIGTERM.
	exitSignalBase = 128
)

const usageHeader = `extract — export Signicat and Good Sign billing data to Parquet and DuckDB

Usage:
  extract run --config FILE [--streams a,b] [--full-refresh] [--pdf]   the nightly job
  extract demo                        run pipelines/demo.yaml against the built-in sandbox
  extract sandbox [--addr] [--scale] [--latency] [--faults]   serve the simulated APIs
  extract config                      the reference of every configuration key (docs/config.md)
  extract check --config FILE         parse the config, resolve the environment, sign in to each source

  extract query [--db FILE] [--format F] [--max-rows N] [SQL | --file F | -]   query the warehouse (read-only)
  extract invoices [--org ID] [--from D] [--to D] [--as-of T] [--lines] [--format F] [--pdf-dir DIR]
                                      auditors: invoices as a past run held them, with provenance
  extract verify [--config FILE | --lake DIR] [--since N]   prove the commit chain, manifests and files
  extract evidence [--config FILE | --lake DIR] SHA256   a stored response body, as the API sent it
  extract status [--config FILE] [--json] [STREAM…]   each stream's last run, rows, watermark, next window
  extract reset --config FILE STREAM…  make the next run fetch these streams again from since

  extract build [--config FILE] [--select SEL] [--exclude SEL]   rebuild the SQL models, run the data tests
  extract test [--config FILE] [--select SEL]   run the data tests alone
  extract ls [--select SEL]           the models and data tests in build order

  extract docs [--db FILE] [--out F]  Markdown documentation of every table, column and model
  extract docs --html DIR [--config FILE | --db FILE --lake DIR]
                                      the same as a page to look at: tables, lineage, runs, tests, manifests
  extract serve [--addr 127.0.0.1:8080] [--config FILE | --db FILE --lake DIR]   that page, live
  extract fields --config FILE [--suggest [--probe] [--write]]
                                      propose your tenant's field mapping from its data, with the evidence
  extract --version                   version, commit, Go and DuckDB versions

Run "extract COMMAND --help" for a command's flags. Commands that only read (query, invoices, verify,
evidence, status, docs, serve) never need the API credentials a config names.

Exit codes: 0 success; 1 a stream, model, data test or check failed (others completed and were kept);
2 bad usage or config (nothing was fetched); 75 start refused: the lake is busy (another run) or not
writable (nothing was fetched); 130 interrupted by SIGINT (Ctrl-C), 143 by SIGTERM (streams that
completed were kept).
`

// command is one subcommand.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
	// serves marks a command whose normal end is a signal (serve, sandbox): it exits 0 on one.
	serves bool
}

var commands = map[string]command{
	"run":      {"the nightly job", runCmd, false},
	"demo":     {"run the demo pipeline against the built-in sandbox", demoCmd, false},
	"sandbox":  {"serve the simulated APIs", sandboxCmd, true},
	"query":    {"run SQL against the warehouse", queryCmd, false},
	"verify":   {"prove the commit chain, the manifests and every file they list", verifyCmd, false},
	"invoices": {"historical invoices with provenance", invoicesCmd, false},
	"evidence": {"print a stored response body or PDF exactly as the API sent it", evidenceCmd, false},
	"docs":     {"document every table and column", docsCmd, false},
	"serve":    {"serve the documentation page live", serveCmd, true},
	"fields":   {"propose or list where the models read the tenant's fields", fieldsCmd, false},
	"config":   {"the reference of every configuration key", configCmd, false},
	"check":    {"try a pipeline file: parse, environment, sign in", checkCmd, false},
	"status":   {"where each stream stands", statusCmd, false},
	"reset":    {"fetch streams again from since at the next run", resetCmd, false},
	"build":    {"rebuild the SQL models and run the data tests", buildCmd, false},
	"test":     {"run the data tests", testCmd, false},
	"ls":       {"list the models and data tests in build order", lsCmd, false},
}

func main() {
	pipeline.SetMemoryLimit()
	if err := parquet.RegisterZstd(); err != nil {
		fmt.Fprintln(os.Stderr, "extract:", err)
		os.Exit(1)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		// The first signal asks for a clean stop (completed streams are kept); restoring the default
		// lets a second one end the process at once.
		sig := <-sigs
		signal.Reset(os.Interrupt, syscall.SIGTERM)
		if s, ok := sig.(syscall.Signal); ok {
			cancel(Interruption{s})
		}
	}()
	os.Exit(Main(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// Interruption is the cause of a context a signal cancelled. It is a context.Canceled, so code that
// checks for cancellation needs to know nothing of signals.
type Interruption struct{ Signal syscall.Signal }

func (i Interruption) Error() string { return "interrupted by " + signalName(i.Signal) }

// Is makes an Interruption a context.Canceled.
func (i Interruption) Is(target error) bool { return target == context.Canceled }

func signalName(s syscall.Signal) string {
	switch s {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return s.String()
}

// interruptedCode is the exit code of a command ctx's signal interrupted (130, 143), or 0 if none did.
func interruptedCode(ctx context.Context) int {
	var in Interruption
	if errors.As(context.Cause(ctx), &in) {
		return exitSignalBase + int(in.Signal)
	}
	return 0
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
	if args[0] == "--version" || args[0] == "version" {
		return versionCmd(ctx, stdout, stderr)
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "extract: unknown command %q\n\n%s", args[0], usageHeader)
		return exitUsage
	}
	code := c.run(ctx, args[1:], stdout, stderr)
	if sig := interruptedCode(ctx); sig != 0 && !c.serves && code != exitUsage {
		return sig
	}
	return code
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

// parseArgs is parseFlags for commands with arguments: flags may stand before, between or after them
// (`query "SELECT 1" --format csv`), and "--" ends the flags. It returns the arguments in order.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, int) {
	var pos []string
	for {
		if code := parseFlags(fs, args); code >= 0 {
			return nil, code
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), -1
		}
		if len(rest) == 0 {
			return pos, -1
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// exitCodeFor prints err and maps it to an exit code: 2 for a config problem, 75 for a start the
// lake refused, else 1.
func exitCodeFor(err error, stderr io.Writer) int {
	fmt.Fprintln(stderr, "extract:", err)
	var ce *config.Error
	switch {
	case errors.As(err, &ce):
		return exitUsage
	case errors.Is(err, pipeline.ErrRefused):
		return exitRefused
	}
	return exitFailed
}
