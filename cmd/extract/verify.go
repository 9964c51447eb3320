package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/pipeline"
)

func verifyCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("verify", "verify [--config FILE | --lake DIR|URL] [--no-record]",
		"Re-hash every snapshot file, stored response body (evidence) and invoice PDF against the run manifests;\n"+
			"name any file that is missing or altered and exit 1 if there is one. The result is kept in the lake\n"+
			"(_verify/<time>.json) unless --no-record; extract docs --html shows the last one.", stderr)
	cfgPath := fs.String("config", "", "pipeline file whose output_dir to verify")
	dir := fs.String("lake", "", "output directory or object-store URL to verify (instead of --config)")
	noRecord := fs.Bool("no-record", false, "do not keep the result in the lake's _verify/ (the docs site shows the last one)")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	root, spool := *dir, ""
	if *cfgPath != "" {
		cfg, err := config.LoadForReading(*cfgPath)
		if err != nil {
			return exitCodeFor(err, stderr)
		}
		root, spool = cfg.OutputDir, pipeline.SpoolDir(cfg)
	}
	if root == "" {
		fmt.Fprintln(stderr, "extract verify: give --config FILE or --lake DIR")
		return exitUsage
	}
	if !lake.IsURL(root) {
		if _, err := os.Stat(root); err != nil {
			fmt.Fprintln(stderr, "extract verify:", err)
			return exitFailed
		}
	}
	st, err := lake.OpenStore(ctx, root, spool)
	if err != nil {
		fmt.Fprintln(stderr, "extract verify:", err)
		return exitFailed
	}
	defer st.Close()
	head, err := lake.Head(st)
	if err != nil {
		fmt.Fprintln(stderr, "extract verify:", err)
		return exitFailed
	}
	at := time.Now().UTC()
	checked, problems, err := lake.Verify(st)
	if err != nil {
		fmt.Fprintln(stderr, "extract verify:", err)
		return exitFailed
	}
	// The outcome is kept in the lake (_verify/) for the docs site's auditors' page. An auditor may hold
	// only read access: then it is not kept, which changes nothing of what verify found.
	if !*noRecord {
		if err := lake.RecordVerification(st, &lake.Verification{At: at, Checked: checked, Problems: problems, Head: head}); err != nil {
			fmt.Fprintf(stderr, "extract verify: the result could not be recorded in %s/ (%v); it stands as printed\n", lake.VerifyDir, err)
		}
	}
	for _, p := range problems {
		fmt.Fprintf(stdout, "%s  %s (run %s)\n", p.Issue, p.Path, p.RunID)
	}
	fmt.Fprintf(stdout, "%d files checked, %d problems\n", checked, len(problems))
	if len(problems) > 0 {
		return exitFailed
	}
	return exitOK
}
