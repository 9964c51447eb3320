package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/ledgerlake/ledgerlake/internal/lake"
)

func evidenceCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("evidence", "evidence [--config FILE | --lake DIR|URL] SHA256",
		"Print a stored response body (or invoice PDF) exactly as the API sent it, checked against its\n"+
			"sha256: the one a row's _evidence_sha256 names, or a manifest lists. A unique prefix of at least 8\n"+
			"hex digits will do. Fails, printing nothing, if the stored body does not match.\n\n"+
			"Example: extract evidence --config pipelines/nightly.yaml 3f9a2c71 | jq .", stderr)
	cfgPath := fs.String("config", "", "pipeline file whose output_dir to read")
	dir := fs.String("lake", "", "output directory or object-store URL to read (instead of --config)")
	pos, code := parseArgs(fs, args)
	if code >= 0 {
		return code
	}
	if len(pos) != 1 || len(pos[0]) < 8 {
		fmt.Fprintln(stderr, "extract evidence: give the sha256 of one body (at least its first 8 hex digits)")
		return exitUsage
	}
	st, code := openLake(ctx, "evidence", *cfgPath, *dir, stderr)
	if st == nil {
		return code
	}
	defer st.Close()
	e, err := findEvidence(ctx, st, strings.ToLower(pos[0]))
	if err == nil {
		var b []byte
		if b, err = lake.ReadEvidence(ctx, st, e); err == nil {
			_, err = stdout.Write(b)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "extract evidence: %v\n", err)
		return exitFailed
	}
	return exitOK
}

// findEvidence is the body a committed manifest lists with a sha256 starting with prefix.
func findEvidence(ctx context.Context, st lake.Store, prefix string) (lake.Evidence, error) {
	ms, err := lake.ReadManifests(ctx, st)
	if err != nil {
		return lake.Evidence{}, err
	}
	found := map[string]lake.Evidence{}
	for _, m := range ms {
		for _, e := range slices.Concat(m.Evidence, m.PDFs) {
			if strings.HasPrefix(e.SHA256, prefix) {
				found[e.SHA256] = e
			}
		}
	}
	switch len(found) {
	case 0:
		return lake.Evidence{}, fmt.Errorf("no manifest in %s lists a body with sha256 %s…", st, prefix)
	case 1:
		for _, e := range found {
			return e, nil
		}
	}
	return lake.Evidence{}, fmt.Errorf("%d bodies have a sha256 starting %s: give more digits", len(found), prefix)
}
