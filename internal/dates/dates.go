// Package dates holds the date window a windowed stream is read in: the one type the sources send,
// the pipeline tracks and the lake records, so "window" means the same two instants everywhere.
package dates

import "time"

// Window is a stretch of time as sent to an API, both ends inclusive (DESIGN.md: window ends are
// inclusive datetimes with milliseconds), in the tenant's wall clock as UTC.
type Window struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}
