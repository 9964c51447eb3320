package lake_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/lake/s3test"
)

// BenchmarkCheck verifies a lake shaped like a few nightly runs of the demo (each: 300 snapshot files,
// 8 evidence packs of 400 bodies, a PDF pack of 100) on a directory and on a bucket, reporting the
// bucket's requests per check.
func BenchmarkCheck(b *testing.B) {
	srv, err := s3test.Start("lake")
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	for _, kv := range s3test.Env() {
		k, v, _ := strings.Cut(kv, "=")
		b.Setenv(k, v)
	}
	for name, loc := range map[string]string{"dir": b.TempDir(), "s3": srv.URL("lake", "bench")} {
		st, err := lake.OpenStore(b.Context(), loc, b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		for i := range 3 {
			commitDemoLikeRun(b, st, i)
		}
		b.Run(name, func(b *testing.B) {
			before := srv.Requests.Load()
			for b.Loop() {
				v, err := lake.Check(b.Context(), st, 1)
				if err != nil || len(v.Problems) > 0 {
					b.Fatalf("%v, %+v", err, v)
				}
			}
			if name == "s3" {
				b.ReportMetric(float64(srv.Requests.Load()-before)/float64(b.N), "requests/op")
			}
		})
	}
}

// commitDemoLikeRun commits run i with the demo's shape of files and evidence (see BenchmarkCheck).
func commitDemoLikeRun(b *testing.B, st lake.Store, i int) {
	id := lake.NewRunID(time.Date(2026, 12, 1+i, 2, 0, 0, 0, time.UTC))
	m := &lake.Manifest{RunID: id, Status: "ok"}
	for j := range 300 {
		key := fmt.Sprintf("t%02d/run_date=2026-12-%02d/%s-%05d.parquet", j%30, 1+i, id, j)
		data := []byte(fmt.Sprintf("rows of %s part %d %0900d", id, j, j))
		if err := st.WriteFile(b.Context(), key, data); err != nil {
			b.Fatal(err)
		}
		sum := sha256.Sum256(data)
		m.Files = append(m.Files, lake.FileInfo{Path: key, Table: "t", Rows: 10, Bytes: int64(len(data)), SHA256: hex.EncodeToString(sum[:])})
	}
	es := lake.NewEvidenceStore(st, id)
	for k := range 9 {
		p := es.Pack(b.Context(), fmt.Sprintf("t%d", k))
		for j := range 400 {
			pdf := k == 8
			if pdf && j == 100 {
				break
			}
			data := fmt.Appendf(nil, `{"run":%d,"pack":%d,"invoice":"INV-%d","lines":"%0300d"}`, i, k, j, j)
			do := p.PutJSON
			if pdf {
				data, do = fmt.Appendf(nil, "%%PDF-1.7 %d %d %d %01500d", i, k, j, j), p.PutPDF
			}
			e, err := do(body(b, data, 1<<20))
			if err != nil {
				b.Fatal(err)
			}
			if pdf {
				m.PDFs = append(m.PDFs, e)
			} else {
				m.Evidence = append(m.Evidence, e)
			}
		}
		if err := p.Seal(); err != nil {
			b.Fatal(err)
		}
		m.Packs = append(m.Packs, p.Sealed()...)
	}
	head, err := lake.Head(b.Context(), st)
	if err != nil {
		b.Fatal(err)
	}
	if err := lake.Commit(b.Context(), st, m, head); err != nil {
		b.Fatal(err)
	}
}
