package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/site"
)

func serveCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("serve", "serve [--addr 127.0.0.1:8080] [--config FILE | --db FILE [--lake DIR|URL]] [--runs 30]",
		"Serve the page extract docs --html writes, live: each visit reads the warehouse as it is then, read-only\n"+
			"(a run loading meanwhile is not blocked, nor blocks it). Only GET and HEAD are answered.", stderr)
	addr := fs.String("addr", "127.0.0.1:8080", "listen address (loopback by default: the page shows sample rows of every table)")
	db := fs.String("db", "", "warehouse to show")
	src := siteFlags(fs)
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	src.db = *db
	st, code := src.prepare(ctx, "serve", stderr)
	if code >= 0 {
		return code
	}
	if st != nil {
		defer st.Close()
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(stderr, "extract serve:", err)
		return exitFailed
	}
	var mu sync.Mutex // one collection at a time: a burst of reloads does not open the warehouse N times
	h := site.Handler(func(ctx context.Context) (*site.Site, error) {
		mu.Lock()
		defer mu.Unlock()
		return src.collect(ctx, st)
	}, func(err error) { fmt.Fprintln(stderr, "extract serve:", err) })
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stdout, "serving %s read-only at http://%s/ (Ctrl-C stops)\n", src.db, ln.Addr())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		fmt.Fprintln(stderr, "extract serve:", err)
		return exitFailed
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shut); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(stderr, "extract serve:", err)
	}
	return exitOK
}
