package sources

import (
	"context"
	"iter"
	"sync"
)

// Parallel fetches every task with at most limit in flight and yields the pages as they complete. A
// fetch's slot is freed once its page is fetched, and up to limit fetched pages wait to be taken: a
// consumer that pauses (for a CPU, a checkpoint) does not stall the requests, while one slower than
// the API still slows them (backpressure), and memory stays bounded by 2×limit pages. The first error
// stops the rest.
func Parallel[T any](ctx context.Context, limit int, tasks []T, fetch func(context.Context, T) (Page, error)) iter.Seq2[Page, error] {
	return Fan(ctx, limit, func(yield func(T, error) bool) {
		for _, t := range tasks {
			if !yield(t, nil) {
				return
			}
		}
	}, fetch)
}

// Fan is Parallel over tasks that arrive as they are found — the ids of a listing's pages — each
// fetched as soon as it arrives and a slot is free; an error from tasks stops the rest and is yielded.
func Fan[T any](ctx context.Context, limit int, tasks iter.Seq2[T, error], fetch func(context.Context, T) (Page, error)) iter.Seq2[Page, error] {
	return func(yield func(Page, error) bool) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		type result struct {
			p   Page
			err error
		}
		limit = max(1, limit)
		out := make(chan result, limit)
		fetching := make(chan struct{}, limit)
		held := make(chan struct{}, 2*limit) // fetching, or fetched and not yet taken
		send := func(r result) {
			select {
			case out <- r:
			case <-ctx.Done():
				r.p.Close()
				<-held
			}
		}
		go func() {
			var wg sync.WaitGroup
			defer func() { wg.Wait(); close(out) }()
			for t, err := range tasks {
				if err == nil {
					err = acquire(ctx, held, fetching)
				}
				if err != nil {
					if acquire(ctx, held) == nil {
						send(result{err: err})
					}
					return
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					p, err := fetch(ctx, t)
					<-fetching
					send(result{p, err})
				}()
			}
		}()
		for r := range out {
			<-held
			if r.err == nil && ctx.Err() != nil {
				r.err = ctx.Err()
			}
			if !yield(r.p, r.err) || r.err != nil {
				cancel()
				for r := range out {
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

// acquire takes a slot of each channel in order, or fails when ctx ends.
func acquire(ctx context.Context, slots ...chan struct{}) error {
	for i, s := range slots {
		select {
		case s <- struct{}{}:
		case <-ctx.Done():
			for _, taken := range slots[:i] {
				<-taken
			}
			return ctx.Err()
		}
	}
	return nil
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
