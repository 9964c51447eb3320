// Package duckdbtest is for tests only: another process holding a warehouse open for writing, as a
// second run or an analyst's read-write session does (DuckDB locks the file for the whole process).
// The holder is the test binary itself, started again: its TestMain calls ServeHolder first.
package duckdbtest

import (
	"database/sql"
	"fmt"
	"io"
	"os"
	"os/exec"
	"testing"

	_ "github.com/duckdb/duckdb-go/v2" // the "duckdb" database/sql driver
)

// holderEnv names the warehouse a test binary started by Hold opens and holds.
const holderEnv = "LEDGERLAKE_TEST_HOLD_WAREHOUSE"

// ServeHolder makes this test binary the holding process when Hold started it: it opens the
// warehouse for writing, says so on stdout, holds it until its stdin closes and exits. Otherwise it
// returns at once. Call it first in TestMain.
func ServeHolder() {
	path := os.Getenv(holderEnv)
	if path == "" {
		return
	}
	db, err := sql.Open("duckdb", path)
	if err == nil {
		err = db.Ping() // the open that takes DuckDB's lock
	}
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("holding")
	_, _ = io.Copy(io.Discard, os.Stdin) // until the test closes our stdin
	db.Close()
	os.Exit(0)
}

// Hold runs this test binary as another process that opens path for writing and holds it until
// release is called or the test ends. It returns once the warehouse is held.
func Hold(t testing.TB, path string) (release func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), holderEnv+"="+path)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := false
	release = func() {
		if !done {
			done = true
			in.Close()
			_ = cmd.Wait()
		}
	}
	t.Cleanup(release)
	line := make([]byte, 256)
	if n, _ := out.Read(line); string(line[:n]) != "holding\n" {
		release()
		t.Fatalf("the holding process: %q", line[:n])
	}
	return release
}
