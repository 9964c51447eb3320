package sources

import (
	"context"
	"iter"
	"sync"
)

// Parallel fetches every task with at most limit in flight and yields the pages as they complete. A
// task's slot is freed only once its page is taken, so a slow consumer slows the fetching
// (backpressure) and memory stays bounded by limit pages. The first error stops the rest.
func Parallel[T any](ctx context.Context, limit int, tasks []T, fetch func(context.Context, T) (Page, error)) iter.Seq2[Page, error] {
	return func(yield func(Page, error) bool) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		type result struct {
			p   Page
			err error
		}
		out := make(chan result)
		sem := make(chan struct{}, max(1, limit))
		go func() {
			var wg sync.WaitGroup
			defer func() { wg.Wait(); close(out) }()
			for _, t := range tasks {
				select {
				case sem <- struct{}{}:
				case <-ctx.Done():
					return
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer func() { <-sem }()
					p, err := fetch(ctx, t)
					select {
					case out <- result{p, err}:
					case <-ctx.Done():
					}
				}()
			}
		}()
		for r := range out {
			if r.err == nil && ctx.Err() != nil {
				r.err = ctx.Err()
			}
			if !yield(r.p, r.err) || r.err != nil {
				cancel()
				for range out {
				}
				return
			}
		}
		if err := ctx.Err(); err != nil {
			yield(Page{}, err)
		}
	}
}
