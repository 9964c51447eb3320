package pipeline

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"

	"github.com/ledgerlake/ledgerlake/internal/lake"
)

// A refused start (exit 75) is told apart from other errors by what refused it: a busy lake, or one
// that cannot be written. A full disk or an unreadable manifest is a failure like any other.
func TestRefusedIsBusyOrNotWritable(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("%w (/lake); wait for it to finish", lake.ErrBusy), true},
		{&os.PathError{Op: "open", Path: "/lake/.lock", Err: syscall.EACCES}, true},
		{&os.PathError{Op: "open", Path: "/lake/.lock", Err: syscall.EROFS}, true},
		{&os.PathError{Op: "write", Path: "/lake/x", Err: syscall.ENOSPC}, false},
		{errors.New("manifest unreadable"), false},
		{nil, false},
	} {
		if got := errors.Is(refused(c.err), ErrRefused); got != c.want {
			t.Errorf("%v: refused %t, want %t", c.err, got, c.want)
		}
	}
}
