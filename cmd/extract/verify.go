package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/pipeline"
)

func verifyCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("verify", "verify [--config FILE | --lake DIR|URL]",
		"Re-hash every snapshot file, stored response body (evidence) and invoice PDF against the run manifests;\n"+
			"name any file that is missing or altered and exit 1 if there is one.", stderr)
	cfgPath := fs.String("config", "", "pipeline file whose output_dir to verify")
	dir := fs.String("lake", "", "output directory or object-store URL to verify (instead of --config)")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	root, spool := *dir, ""
	if *cfgPath != "" {
		cfg, err := config.Load(*cfgPath)
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
	checked, problems, err := lake.Verify(st)
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
