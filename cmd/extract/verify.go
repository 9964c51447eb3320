package main

import (
	"context"
	"fmt"
	"io"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/lake"
)

func verifyCmd(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("verify", "verify [--config FILE | --lake DIR]",
		"Re-hash every snapshot file, stored response body (evidence) and invoice PDF against the run manifests;\n"+
			"name any file that is missing or altered and exit 1 if there is one.", stderr)
	cfgPath := fs.String("config", "", "pipeline file whose output_dir to verify")
	dir := fs.String("lake", "", "output directory to verify (instead of --config)")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	root := *dir
	if *cfgPath != "" {
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			return exitCodeFor(err, stderr)
		}
		root = cfg.OutputDir
	}
	if root == "" {
		fmt.Fprintln(stderr, "extract verify: give --config FILE or --lake DIR")
		return exitUsage
	}
	checked, problems, err := lake.Verify(root)
	if err != nil {
		fmt.Fprintln(stderr, "extract verify:", err)
		return exitFailed
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
