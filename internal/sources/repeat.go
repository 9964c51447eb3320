package sources

import "fmt"

// PageDigests are the digests of the pages of one list read, to catch a page served again: a server
// that ignores the page it is asked for (GSAPI's datatables without a sortorder it honours), or one
// that mints a new next token for a page it already sent (Signicat's {data, next} lists), would
// otherwise have the same records loaded twice. The zero value is ready to use; it is not safe for
// concurrent use.
type PageDigests struct {
	seen map[[32]byte]int // digest → the first page that had it
}

// Repeat records page's digest and returns the earlier page with the same digest, or 0 when there is
// none. A page whose records are none must not be passed: empty pages are alike without repeating
// anything.
func (d *PageDigests) Repeat(page int, digest [32]byte) int {
	if other, ok := d.seen[digest]; ok {
		return other
	}
	if d.seen == nil {
		d.seen = map[[32]byte]int{}
	}
	d.seen[digest] = page
	return 0
}

// RepeatError is the error of a read whose page repeats an earlier page, where names the list and
// why says what the server did; the read fails instead of loading the records twice.
func RepeatError(where string, page, other int, why string) error {
	return fmt.Errorf("%s: page %d is identical to page %d — %s; failing instead of loading duplicates", where, page, other, why)
}
