// Package laketest holds what tests of several packages need to look at a lake.
package laketest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/ledgerlake/ledgerlake/internal/lake"
)

// Content is every key of st but the lease's, each with the start of its content's sha256: two lakes
// (or one before and after) with the same Content hold the same files. The lease is left out because
// its holder renews it, and a holder stopped between its renewal's check and its write rewrites its own
// superseded lease generation once awake: nothing reads that entry, and no store condition refuses it.
func Content(t testing.TB, st lake.Store) string {
	t.Helper()
	es, err := st.List(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range es {
		if strings.HasPrefix(e.Key, "_lease/") {
			continue
		}
		data, err := st.ReadFile(t.Context(), e.Key)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		fmt.Fprintf(&b, "%s %s\n", e.Key, hex.EncodeToString(sum[:8]))
	}
	return b.String()
}
