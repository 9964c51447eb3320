package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/ledgerlake/ledgerlake/internal/sinks/duckdb"
)

// versionCmd prints what a bug report needs: the build's version and commit, and the Go and DuckDB it
// was built with.
func versionCmd(ctx context.Context, stdout, stderr io.Writer) int {
	v := buildVersion()
	duck, err := duckdbVersion(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "extract --version: DuckDB:", err)
		return exitFailed
	}
	fmt.Fprintf(stdout, "extract %s\ncommit  %s\ngo      %s %s/%s\nduckdb  %s\n", v.version, v.commit, runtime.Version(), runtime.GOOS, runtime.GOARCH, duck)
	return exitOK
}

// Set by `make build` (-ldflags -X), which knows the checkout; a plain go build falls back to what Go
// records in the binary.
var (
	linkedVersion string
	linkedCommit  string
)

type version struct{ version, commit string }

// buildVersion is the version and commit make build linked in, else the module version and the VCS
// stamp go build records.
func buildVersion() version {
	if linkedVersion != "" {
		return version{version: linkedVersion, commit: cmp.Or(linkedCommit, "(unknown)")}
	}
	v := version{version: "(unknown)", commit: "(unknown)"}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	v.version = cmp.Or(info.Main.Version, v.version)
	var rev, at, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev != "" {
		v.commit = rev
		if at != "" {
			v.commit += " (" + at + ")"
		}
		if modified == "true" {
			v.commit += ", with uncommitted changes"
		}
	}
	return v
}

// duckdbVersion is the linked DuckDB library's version and source id: "v1.5.0 (a1b2c3d)".
func duckdbVersion(ctx context.Context) (string, error) {
	db, err := duckdb.Open("")
	if err != nil {
		return "", err
	}
	defer db.Close()
	var v, src string
	if err := db.DB.QueryRowContext(ctx, "SELECT library_version, source_id FROM pragma_version()").Scan(&v, &src); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s (%s)", v, src), nil
}
