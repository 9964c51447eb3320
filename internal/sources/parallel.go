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
						p.Close()
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

// InOrder fetches like Parallel but yields the pages in the order of tasks: a page that completes
// early waits for those before it. Windowed streams read their windows newest first through it, so
// that a window's records are read only after the next window's (see the GSAPI windows). At most
// limit tasks are fetching or waiting to be taken, so memory stays bounded by limit pages.
func InOrder[T any](ctx context.Context, limit int, tasks []T, fetch func(context.Context, T) (Page, error)) iter.Seq2[Page, error] {
	return func(yield func(Page, error) bool) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		type result struct {
			p   Page
			err error
		}
		// Each task's result has a slot of its own; the slots queue in task order, limit-1 ahead of the
		// one being waited for.
		slots := make(chan chan result, max(1, limit)-1)
		go func() {
			defer close(slots)
			for _, t := range tasks {
				slot := make(chan result, 1)
				select {
				case slots <- slot:
				case <-ctx.Done():
					return
				}
				go func() {
					p, err := fetch(ctx, t)
					slot <- result{p, err}
				}()
			}
		}()
		for slot := range slots {
			r := <-slot
			if r.err == nil && ctx.Err() != nil {
				r.err = ctx.Err()
			}
			if !yield(r.p, r.err) || r.err != nil {
				cancel()
				for slot := range slots {
					r := <-slot
					r.p.Close()
				}
				return
			}
		}
		if err := ctx.Err(); err != nil {
			yield(Page{}, err)
		}
	}
}
