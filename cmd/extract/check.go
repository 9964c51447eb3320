package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/httpclient"
	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/pipeline"
	"github.com/ledgerlake/ledgerlake/internal/sources/gsapi"
	"github.com/ledgerlake/ledgerlake/internal/sources/signicat"
)

func checkCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("check", "check --config FILE",
		"Try a pipeline file before the nightly run does: parse it, resolve its environment variables, build its\n"+
			"streams, sign in to each source (one token each: Signicat's token endpoint, GSAPI's /welcome) and check\n"+
			"that the lake and the warehouse's directory can be written. No data is fetched.\n"+
			"Exit 0 when all is well, 1 when a source refused or could not be reached or the lake cannot be written,\n"+
			"2 when the file itself is wrong (a key, a value, an unset variable).", stderr)
	cfgPath := fs.String("config", "", "pipeline file (YAML), e.g. pipelines/nightly.yaml")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if *cfgPath == "" {
		fmt.Fprintln(stderr, "extract check: --config is required")
		fs.Usage()
		return exitUsage
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return exitCodeFor(err, stderr)
	}
	// Few attempts: a check should answer in seconds, not wait out a nightly run's backoff.
	client := pipeline.Client(cfg, httpclient.Options{MaxAttempts: 2, AttemptTimeout: 30 * time.Second})
	streams, err := pipeline.Streams(cfg, client, nil, nil)
	if err != nil {
		return exitCodeFor(err, stderr)
	}
	vars := "none"
	if v := cfg.Variables(); len(v) > 0 {
		vars = strings.Join(v, ", ") + " set"
	}
	fmt.Fprintf(stdout, "config %s: valid, %d streams; environment variables: %s\n", *cfgPath, len(streams), vars)
	failed := false
	report := func(what string, began time.Time, err error, ok string) {
		if err != nil {
			failed = true
			fmt.Fprintf(stdout, "%-9s FAILED: %v\n", what, err)
			return
		}
		fmt.Fprintf(stdout, "%-9s %s (%.2fs)\n", what, ok, time.Since(began).Seconds())
	}
	if s := cfg.Sources.Signicat; s != nil {
		began := time.Now()
		report("signicat", began, signicat.New(s, cfg.Limits, client, time.Now).SignIn(ctx), "signed in: a token from "+s.TokenURL)
	}
	if g := cfg.Sources.GSAPI; g != nil {
		began := time.Now()
		how := "signed in: a VompApiToken from " + g.BaseURL + "/welcome"
		if g.JWT != "" {
			how = "the JWT is accepted by " + g.BaseURL + "/welcome"
		}
		report("gsapi", began, gsapi.New(g, cfg.Limits, client, time.Now).SignIn(ctx), how)
	}
	began := time.Now()
	note, err := checkLake(ctx, cfg)
	report("lake", began, err, note)
	if failed {
		fmt.Fprintln(stdout, "check failed; nothing was fetched")
		return exitFailed
	}
	fmt.Fprintln(stdout, "ok; nothing was fetched")
	return exitOK
}

// checkLake opens the lake and tries its lock, as a run's start does, and says what it found: a run
// in progress is not a fault of the config.
func checkLake(ctx context.Context, cfg *config.Config) (string, error) {
	st, release, _, err := pipeline.LockLake(ctx, cfg, "extract check")
	switch {
	case errors.Is(err, lake.ErrBusy):
		return lake.Redact(cfg.OutputDir) + ": a run holds it now (a run started meanwhile would be refused, exit 75)", nil
	case err != nil:
		return "", err
	}
	name := st.String()
	release()
	if err := pipeline.Writable(filepath.Dir(cfg.Warehouse)); err != nil {
		return "", err
	}
	return name + ": writable, no run in progress", nil
}
