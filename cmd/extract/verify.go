package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/pipeline"
)

func verifyCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("verify", "verify [--config FILE | --lake DIR|URL] [--since N] [--no-record]",
		"Prove the lake's history: the commit claims form an unbroken hash chain, each manifest matches the\n"+
			"sha256 its claim records, and every snapshot file, stored response body (evidence) and invoice PDF\n"+
			"matches its manifest. Names each problem (edited, removed, added, altered, missing, outside) and\n"+
			"exits 1 if there is one. The result is kept in the lake (_verify/<time>.json) unless --no-record;\n"+
			"extract docs --html shows the last one.", stderr)
	cfgPath := fs.String("config", "", "pipeline file whose output_dir to verify")
	dir := fs.String("lake", "", "output directory or object-store URL to verify (instead of --config)")
	since := fs.Int("since", 1, "check from this commit on (its link to the commit before included): a fast nightly check")
	noRecord := fs.Bool("no-record", false, "do not keep the result in the lake's _verify/ (the docs site shows the last one)")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	st, code := openLake(ctx, "verify", *cfgPath, *dir, stderr)
	if st == nil {
		return code
	}
	defer st.Close()
	at := time.Now().UTC()
	v, err := lake.Check(ctx, st, *since)
	if err != nil {
		fmt.Fprintln(stderr, "extract verify:", err)
		return exitFailed
	}
	v.At = at
	// The outcome is kept in the lake (_verify/) for the docs site's auditors' page. An auditor may hold
	// only read access: then it is not kept, which changes nothing of what verify found.
	if !*noRecord {
		if err := lake.RecordVerification(ctx, st, v); err != nil {
			fmt.Fprintf(stderr, "extract verify: the result could not be recorded in %s/ (%v); it stands as printed\n", lake.VerifyDir, err)
		}
	}
	printVerification(stdout, v)
	if len(v.Problems) > 0 {
		return exitFailed
	}
	return exitOK
}

// openLake opens the lake a reading command names, by its config (cfgPath) or its location (dir). On
// a problem it says so on stderr and returns nil and the exit code.
func openLake(ctx context.Context, cmd, cfgPath, dir string, stderr io.Writer) (lake.Store, int) {
	root, spool := dir, ""
	if cfgPath != "" {
		cfg, err := config.LoadForReading(cfgPath)
		if err != nil {
			return nil, exitCodeFor(err, stderr)
		}
		root, spool = cfg.OutputDir, pipeline.SpoolDir(cfg)
	}
	if root == "" {
		fmt.Fprintf(stderr, "extract %s: give --config FILE or --lake DIR\n", cmd)
		return nil, exitUsage
	}
	if !lake.IsURL(root) {
		if _, err := os.Stat(root); err != nil {
			fmt.Fprintf(stderr, "extract %s: %v\n", cmd, err)
			return nil, exitFailed
		}
	}
	st, err := lake.OpenStore(ctx, root, spool)
	if err != nil {
		fmt.Fprintf(stderr, "extract %s: %v\n", cmd, err)
		return nil, exitFailed
	}
	return st, exitOK
}

// printVerification tells what verify proved, problems first.
func printVerification(w io.Writer, v *lake.Verification) {
	for _, p := range v.Problems {
		var of []string
		if p.Commit > 0 {
			of = append(of, fmt.Sprintf("commit %d", p.Commit))
		}
		if p.RunID != "" {
			of = append(of, "run "+p.RunID)
		}
		where := ""
		if len(of) > 0 {
			where = " (" + strings.Join(of, ", ") + ")"
		}
		fmt.Fprintf(w, "%s  %s%s\n", p.Issue, p.Path, where)
	}
	if v.Head > 0 {
		fmt.Fprintf(w, "commits %d to %d checked; the chain's head (commit %d) has sha256 %s\n", v.Since, v.Head, v.Head, v.HeadSHA256)
	}
	if v.Unchained > 0 {
		fmt.Fprintf(w, "%d commits predate the hash chain (written by an older version): their files were checked against their manifests, which nothing fingerprints\n", v.Unchained)
	}
	if len(v.Fences) > 0 {
		fmt.Fprintf(w, "commits %v are fences: a run took the lock of a stalled run over, and nothing commits at them\n", v.Fences)
	}
	if v.Uncommitted > 0 {
		fmt.Fprintf(w, "%d files of runs that never committed (nothing reads them; the next run removes them)\n", v.Uncommitted)
	}
	fmt.Fprintf(w, "%d files checked, %d problems\n", v.Checked, len(v.Problems))
}
