package lake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"gocloud.dev/blob"
	_ "gocloud.dev/blob/fileblob" // file://
	_ "gocloud.dev/blob/memblob"  // mem://
	_ "gocloud.dev/blob/s3blob"   // s3:// (gs:// and azblob:// with -tags gcs, azblob)
	"gocloud.dev/gcerrors"

	"github.com/ledgerlake/ledgerlake/internal/durable"
	"github.com/ledgerlake/ledgerlake/internal/retry"
)

// StallTimeout is how long one request to a bucket may go without progress (no bytes read, or a small
// request unanswered) before it is abandoned and retried: a GET that hangs must not hang the run.
var StallTimeout = 60 * time.Second

// LeaseTTL is how long a bucket's lock outlives its holder's last heartbeat: a run killed on another
// machine holds the lake that long (one killed on this machine is recognised at once).
var LeaseTTL = 2 * time.Minute

// bucketAttempts bounds the retries of one operation on a bucket (the SDK retries each request too).
const bucketAttempts = 6

// resumeProgress is how far a GET must move a read before it fails for the read's failures to count
// from zero again (see resumingReader.Read).
const resumeProgress = 1 << 20

// Bucket is a lake in an object store, through gocloud.dev/blob: credentials come from the provider's
// usual chain (environment, shared config, instance or workload identity), never from the config.
// Object stores have no rename: a file is uploaded whole to its final key (a PUT is atomic), and the
// run's files count only once the manifest that lists them is committed (Commit).
type Bucket struct {
	b        *blob.Bucket
	location string // for messages: the URL without its query
	spool    string
	mu       sync.Mutex
	gen      int    // the lease generation this store holds (0: none)
	tookOver string // whose expired lease Lock took over ("" if the lock was free or its holder dead)
}

// OpenBucket opens the bucket of an object-store URL; the URL's path is the lake's prefix in it, and
// its query is the driver's (e.g. s3's endpoint, region, use_path_style). Files are staged in spool.
func OpenBucket(ctx context.Context, location, spool string) (*Bucket, error) {
	u, err := url.Parse(location)
	if err != nil {
		return nil, fmt.Errorf("output_dir %q: %w", location, err)
	}
	prefix := ""
	if u.Scheme != "file" {
		prefix = strings.Trim(u.Path, "/")
		u.Path = ""
	}
	q := u.Query()
	if u.Scheme == "s3" && q.Get("awssdk") == "" {
		q.Set("awssdk", "v2")
	}
	if u.Scheme == "file" && q.Get("metadata") == "" {
		q.Set("metadata", "skip") // no .attrs file beside each file: the manifests hold what matters
	}
	u.RawQuery = q.Encode()
	b, err := blob.OpenBucket(ctx, u.String())
	if err != nil {
		if tag := map[string]string{"gs": "gcs", "azblob": "azblob"}[u.Scheme]; tag != "" && strings.Contains(err.Error(), "no driver registered") {
			return nil, fmt.Errorf("output_dir %s: this build has no %s:// driver; build with go build -tags %s ./cmd/extract", Redact(location), u.Scheme, tag)
		}
		// The driver's message repeats the URL it was given, query included: show it redacted.
		return nil, fmt.Errorf("output_dir %s: %s", Redact(location), strings.ReplaceAll(err.Error(), u.String(), Redact(location)))
	}
	if prefix != "" {
		b = blob.PrefixedBucket(b, prefix+"/")
	}
	if spool == "" {
		spool = os.TempDir()
	}
	if err := os.MkdirAll(spool, 0o755); err != nil {
		b.Close()
		return nil, err
	}
	return &Bucket{b: b, location: Redact(location), spool: spool}, nil
}

// Redact drops a URL's query and user information, which may carry credentials: what messages and
// pages show of a lake's location.
func Redact(location string) string {
	if !IsURL(location) {
		return location
	}
	u, err := url.Parse(location)
	if err != nil {
		return "(unparseable URL)"
	}
	u.RawQuery, u.User = "", nil
	return u.String()
}

// bucketPolicy spaces a bucket operation's attempts: 50 ms to 150 ms before the second, up to 5 s.
var bucketPolicy = retry.Policy{MinBackoff: 100 * time.Millisecond, MaxBackoff: 5 * time.Second}

// retry runs op until it succeeds, fails for a reason a retry cannot mend (not found, already there,
// refused), or bucketAttempts tries have failed, as retry.Policy decides. A cancelled ctx ends the
// wait at once: Ctrl-C interrupts a retrying call.
func (s *Bucket) retry(ctx context.Context, what, key string, op func(ctx context.Context) error) error {
	for attempt := 1; ; attempt++ {
		err := op(ctx)
		d := bucketPolicy.Decide(ctx, attempt, nil, s.final(what, key, err))
		if !d.Retry {
			if d.Err != nil && ctx.Err() != nil {
				return fmt.Errorf("%s %s in %s: %w (after: %v)", what, key, s.location, d.Err, err)
			}
			return d.Err
		}
		if attempt == bucketAttempts {
			return fmt.Errorf("%s %s in %s: %d attempts failed: %w", what, key, s.location, bucketAttempts, err)
		}
		if werr := retry.Wait(ctx, d.Wait); werr != nil {
			return fmt.Errorf("%s %s in %s: %w (after: %v)", what, key, s.location, werr, err)
		}
	}
}

// final marks the errors of a bucket operation that no retry can mend (retry.Final), as fs errors
// where they mean one: a missing key, a key already taken (a conditional write refused), a request
// refused for its credentials or arguments. Others (throttling, server errors, timeouts, resets)
// are left to retry.
func (s *Bucket) final(what, key string, err error) error {
	switch gcerrors.Code(err) {
	case gcerrors.OK:
		return nil
	case gcerrors.NotFound:
		return retry.Final(fmt.Errorf("%s %s: %w", what, key, fs.ErrNotExist))
	case gcerrors.FailedPrecondition:
		return retry.Final(fmt.Errorf("%s %s: %w", what, key, fs.ErrExist))
	case gcerrors.PermissionDenied, gcerrors.InvalidArgument, gcerrors.Unimplemented:
		return retry.Final(fmt.Errorf("%s %s in %s: %w", what, key, s.location, err))
	}
	if pastEnd(err) {
		return retry.Final(fmt.Errorf("%s %s: %w", what, key, errPastEnd))
	}
	return err
}

// errPastEnd is a ranged read that starts at or past the object's end: nothing to read there.
var errPastEnd = errors.New("the range starts past the end of the object")

// pastEnd reports whether err is a bucket's answer to a range that starts at or past the object's end
// (HTTP 416, S3's InvalidRange), which gocloud does not classify: no retry changes it.
func pastEnd(err error) bool {
	var code interface{ ErrorCode() string }
	if errors.As(err, &code) && code.ErrorCode() == "InvalidRange" {
		return true
	}
	var status interface{ HTTPStatusCode() int }
	return errors.As(err, &status) && status.HTTPStatusCode() == 416
}

// timed is ctx bounded by StallTimeout, for requests that carry little data.
func timed(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, StallTimeout)
}

// Create implements Store: the file is staged in the spool directory and uploaded whole on Publish,
// so a failed upload is retried from the staged copy and never leaves a part at the key.
func (s *Bucket) Create(ctx context.Context, key string) (File, error) {
	f, err := os.CreateTemp(s.spool, durable.TempPrefix+"upload-*")
	if err != nil {
		return nil, err
	}
	return &bucketFile{File: f, s: s, key: key, ctx: ctx}, nil
}

type bucketFile struct {
	*os.File
	s    *Bucket
	key  string
	ctx  context.Context // Create's: it bounds the upload on Publish, whose signature has none
	done bool
}

func (f *bucketFile) Publish() error {
	if f.done {
		return fmt.Errorf("%s already committed or aborted", f.key)
	}
	defer f.Abort()
	size, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return err
	}
	return f.s.upload(f.ctx, f.key, f.File, size, nil)
}

func (f *bucketFile) Commit() error { return f.Publish() }

func (f *bucketFile) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.Close()
	os.Remove(f.Name())
}

// upload PUTs size bytes of r (read from its start on every attempt) to key.
func (s *Bucket) upload(ctx context.Context, key string, r io.ReadSeeker, size int64, opts *blob.WriterOptions) error {
	return s.retry(ctx, "upload", key, func(ctx context.Context) error {
		if _, err := r.Seek(0, io.SeekStart); err != nil {
			return err
		}
		// A whole file per attempt: the stall timeout, plus a second per MB at a slow 1 MB/s.
		ctx, cancel := context.WithTimeout(ctx, StallTimeout+time.Duration(size>>20)*time.Second)
		defer cancel()
		o := blob.WriterOptions{ContentType: "application/octet-stream"}
		if opts != nil {
			o.IfNotExist = opts.IfNotExist
		}
		return s.b.Upload(ctx, key, io.LimitReader(r, size), &o)
	})
}

// WriteFile implements Store: a PUT is atomic and durable once answered.
func (s *Bucket) WriteFile(ctx context.Context, key string, data []byte) error {
	return s.upload(ctx, key, strings.NewReader(string(data)), int64(len(data)), nil)
}

// WriteStream implements Store, staging what fill writes so that a failed upload can be retried.
func (s *Bucket) WriteStream(ctx context.Context, key string, fill func(io.Writer) error) error {
	f, err := s.Create(ctx, key)
	if err != nil {
		return err
	}
	if err := fill(f); err != nil {
		f.Abort()
		return err
	}
	return f.Publish()
}

// CreateExclusive implements Store with a conditional PUT (If-None-Match: *). An attempt whose answer
// was lost may have succeeded: a retry that finds key taken reads it back, and the same bytes are ours.
func (s *Bucket) CreateExclusive(ctx context.Context, key string, data []byte) error {
	return s.createExclusive(ctx, key, strings.NewReader(string(data)), int64(len(data)))
}

// CreateExclusiveStream implements Store: what fill writes is staged in the spool directory, then
// uploaded like CreateExclusive.
func (s *Bucket) CreateExclusiveStream(ctx context.Context, key string, fill func(io.Writer) error) error {
	f, err := os.CreateTemp(s.spool, durable.TempPrefix+"upload-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if err := fill(f); err != nil {
		return err
	}
	size, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return err
	}
	return s.createExclusive(ctx, key, f, size)
}

func (s *Bucket) createExclusive(ctx context.Context, key string, r io.ReadSeeker, size int64) error {
	tries := 0
	err := s.upload(ctx, key, &countingSeeker{ReadSeeker: r, n: &tries}, size, &blob.WriterOptions{IfNotExist: true})
	if errors.Is(err, fs.ErrExist) && tries > 1 {
		if same, serr := s.sameContent(ctx, key, r, size); serr == nil && same {
			return nil
		}
	}
	return err
}

// sameContent reports whether key holds exactly the size bytes of r.
func (s *Bucket) sameContent(ctx context.Context, key string, r io.ReadSeeker, size int64) (bool, error) {
	got, err := s.ReadFile(ctx, key)
	if err != nil || int64(len(got)) != size {
		return false, err
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return false, err
	}
	want, err := io.ReadAll(io.LimitReader(r, size))
	return err == nil && string(got) == string(want), err
}

// countingSeeker counts the rewinds to the start: the attempts of an upload.
type countingSeeker struct {
	io.ReadSeeker
	n *int
}

func (c *countingSeeker) Seek(off int64, whence int) (int64, error) {
	if off == 0 && whence == io.SeekStart {
		*c.n++
	}
	return c.ReadSeeker.Seek(off, whence)
}

// ReadFile implements Store.
func (s *Bucket) ReadFile(ctx context.Context, key string) ([]byte, error) {
	rc, err := s.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// Open implements Store. A read that stalls for StallTimeout, or fails midway, is resumed where it
// stopped by a ranged GET (see resumingReader.Read).
func (s *Bucket) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	return s.OpenRange(ctx, key, 0, -1)
}

// OpenRange implements Store, resuming a read like Open; n < 0 reads to the end.
func (s *Bucket) OpenRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	r := &resumingReader{s: s, key: key, ctx: ctx, off: off, end: -1}
	if n >= 0 {
		r.end = off + n
	}
	if err := r.open(); err != nil {
		if errors.Is(err, errPastEnd) {
			return io.NopCloser(strings.NewReader("")), nil // fewer bytes where the object ends sooner: none
		}
		return nil, err
	}
	return r, nil
}

type resumingReader struct {
	ctx    context.Context // Open's: it bounds every GET of the read, whose Read has none
	s      *Bucket
	key    string
	off    int64
	end    int64 // where the read stops (-1: the end of the object)
	failed int   // GETs failed in a row (see Read)
	got    int64 // bytes read by the current GET
	cur    *blob.Reader
	cancel context.CancelFunc
	watch  *time.Timer // cancels the current GET when it makes no progress for StallTimeout
}

func (r *resumingReader) open() error {
	return r.s.retry(r.ctx, "read", r.key, func(ctx context.Context) error {
		ctx, cancel := context.WithCancel(ctx)
		t := time.AfterFunc(StallTimeout, cancel)
		n := int64(-1)
		if r.end >= 0 {
			n = r.end - r.off
		}
		rd, err := r.s.b.NewRangeReader(ctx, r.key, r.off, n, &blob.ReaderOptions{BeforeRead: quietRanges})
		if err != nil {
			t.Stop()
			cancel()
			return err
		}
		r.cur, r.cancel, r.watch, r.got = rd, cancel, t, 0
		return nil
	})
}

// quietRanges stops the S3 SDK from printing, for every ranged GET, that the answer carries no
// checksum to validate: S3 sends the whole object's checksum only with the whole object.
func quietRanges(as func(any) bool) error {
	var opts *[]func(*s3.Options)
	if as(&opts) {
		*opts = append(*opts, func(o *s3.Options) { o.DisableLogOutputChecksumValidationSkipped = true })
	}
	return nil
}

// Read reads from the current GET, resuming after the last byte read with a new one when it fails: up
// to bucketAttempts failures in a row. A GET that read resumeProgress bytes before it failed starts the
// count again, so a long read (a pack, a large PDF) over a connection that drops now and then goes on
// while each GET moves it well forward, and one that drops every few bytes still ends.
func (r *resumingReader) Read(p []byte) (int, error) {
	for {
		if r.end >= 0 && r.off >= r.end {
			return 0, io.EOF // a range read whole: asking again for nothing would be refused
		}
		if r.cur == nil {
			if err := r.open(); err != nil {
				if errors.Is(err, errPastEnd) {
					r.end = r.off // the object ends where the read stopped (see pastEnd)
					return 0, io.EOF
				}
				return 0, err
			}
		}
		r.watch.Reset(StallTimeout)
		n, err := r.cur.Read(p)
		r.off += int64(n)
		r.got += int64(n)
		if err == nil || err == io.EOF {
			return n, err
		}
		if r.got >= resumeProgress {
			r.failed = 0
		}
		r.failed++
		r.closeCurrent()
		if r.failed >= bucketAttempts {
			return n, fmt.Errorf("read %s in %s at byte %d: %w", r.key, r.s.location, r.off, err)
		}
		if n > 0 {
			return n, nil // the next Read resumes after these bytes
		}
	}
}

func (r *resumingReader) closeCurrent() {
	if r.cur == nil {
		return
	}
	r.watch.Stop()
	r.cancel()
	r.cur.Close()
	r.cur = nil
}

func (r *resumingReader) Close() error {
	r.closeCurrent()
	return nil
}

// Exists implements Store.
func (s *Bucket) Exists(ctx context.Context, key string) (bool, error) {
	var ok bool
	err := s.retry(ctx, "stat", key, func(ctx context.Context) error {
		ctx, cancel := timed(ctx)
		defer cancel()
		var err error
		ok, err = s.b.Exists(ctx, key)
		return err
	})
	return ok, err
}

// List implements Store.
func (s *Bucket) List(ctx context.Context, prefix string) ([]Entry, error) {
	if prefix != "" {
		prefix = strings.TrimSuffix(prefix, "/") + "/"
	}
	var out []Entry
	for token := blob.FirstPageToken; len(token) > 0; {
		var page []*blob.ListObject
		err := s.retry(ctx, "list", prefix, func(ctx context.Context) error {
			ctx, cancel := timed(ctx)
			defer cancel()
			var err error
			var next []byte
			page, next, err = s.b.ListPage(ctx, token, 1000, &blob.ListOptions{Prefix: prefix})
			if err == nil {
				token = next
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		for _, o := range page {
			if !o.IsDir {
				out = append(out, Entry{Key: o.Key, Size: o.Size})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Remove implements Store.
func (s *Bucket) Remove(ctx context.Context, key string) error {
	err := s.retry(ctx, "delete", key, func(ctx context.Context) error {
		ctx, cancel := timed(ctx)
		defer cancel()
		return s.b.Delete(ctx, key)
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// RemoveAll implements Store.
func (s *Bucket) RemoveAll(ctx context.Context, prefix string) error {
	es, err := s.List(ctx, prefix)
	if err != nil {
		return err
	}
	for _, e := range es {
		if err := s.Remove(ctx, e.Key); err != nil {
			return err
		}
	}
	return nil
}

// Sync implements Store: an answered PUT is already durable.
func (s *Bucket) Sync(ctx context.Context) error { return nil }

// RemoveTemps implements Store: a bucket holds no half-written files (a PUT is all or nothing), but a
// killed process leaves files in the spool directory: staged uploads, downloads for a load, spooled
// responses. Call it only while holding the lake's lock.
func (s *Bucket) RemoveTemps(ctx context.Context) (int, error) {
	es, err := os.ReadDir(s.spool)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range es {
		if strings.HasPrefix(e.Name(), durable.TempPrefix) {
			if err := os.RemoveAll(path.Join(s.spool, e.Name())); err == nil {
				n++
			}
		}
	}
	return n, nil
}

// LocalPath implements Store: a bucket's keys are not local files.
func (s *Bucket) LocalPath(string) (string, bool) { return "", false }

// Close implements Store.
func (s *Bucket) Close() error { return s.b.Close() }

// String implements Store.
func (s *Bucket) String() string { return s.location }

// leaseDir holds a bucket's lock: one object per generation, _lease/<generation>.json. Taking the lock
// is creating the next generation conditionally, so of two runs starting together exactly one wins;
// the holder renews its generation's expiry, and a run that finds the newest generation expired (or
// its process gone from this machine) takes the next one. A holder that finds a newer generation than
// its own has lost the lock and stops.
const leaseDir = "_lease"

// lease is a generation's content.
type lease struct {
	Owner    string    `json:"owner"` // the run id
	Host     string    `json:"host"`
	PID      int       `json:"pid"`
	Expires  time.Time `json:"expires"`
	Released bool      `json:"released,omitempty"`
}

func leaseKey(gen int) string { return fmt.Sprintf("%s/%012d.json", leaseDir, gen) }

// Lock implements Store with a lease (see leaseDir).
func (s *Bucket) Lock(ctx context.Context, owner string) (func(), <-chan struct{}, error) {
	gen, err := newestNumbered(ctx, s, leaseDir, leaseKey)
	if err != nil {
		return nil, nil, err
	}
	host, _ := os.Hostname()
	if gen > 0 {
		var l lease
		b, err := s.ReadFile(ctx, leaseKey(gen))
		if err == nil {
			err = json.Unmarshal(b, &l)
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("reading the lock %s: %w", leaseKey(gen), err)
		}
		dead := l.Host == host && !processAlive(l.PID)
		if err == nil && !l.Released && time.Now().Before(l.Expires) && !dead {
			return nil, nil, fmt.Errorf("%w (%s, run %s on %s, pid %d; its lock expires at %s unless renewed); wait for it to finish",
				ErrBusy, s.location, l.Owner, l.Host, l.PID, l.Expires.UTC().Format(time.RFC3339))
		}
		if err == nil && !l.Released && !dead {
			// Expired, but its holder may only be stalled and wake up: see Fence.
			s.tookOver = fmt.Sprintf("%s on %s (pid %d, lease generation %d, expired %s)", l.Owner, l.Host, l.PID, gen, l.Expires.UTC().Format(time.RFC3339))
		}
	}
	mine := gen + 1
	l := lease{Owner: owner, Host: host, PID: os.Getpid(), Expires: time.Now().Add(LeaseTTL)}
	b, _ := json.Marshal(l)
	if err := s.CreateExclusive(ctx, leaseKey(mine), b); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, nil, fmt.Errorf("%w (%s: another run took the lock just now); wait for it to finish", ErrBusy, s.location)
		}
		return nil, nil, err
	}
	s.mu.Lock()
	s.gen = mine
	s.mu.Unlock()
	for g := gen - 1; g > 0 && g > gen-4; g-- {
		_ = s.Remove(ctx, leaseKey(g)) // older generations: tidiness only
	}
	// The lease is renewed and released until release is called, not until ctx ends: an interrupted
	// run still commits the streams that completed, under its lock.
	keep := context.WithoutCancel(ctx)
	lost, stop, done := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(LeaseTTL / 4)
		defer t.Stop()
		renewed := time.Now()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			if taken, err := s.Exists(keep, leaseKey(mine+1)); err == nil && taken {
				close(lost)
				return
			}
			l.Expires = time.Now().Add(LeaseTTL)
			b, _ := json.Marshal(l)
			if err := s.WriteFile(keep, leaseKey(mine), b); err == nil {
				renewed = time.Now()
			} else if time.Since(renewed) > LeaseTTL/2 {
				close(lost) // it may expire before we can renew it: stop before another run may start
				return
			}
		}
	}()
	var once sync.Once
	release := func() {
		once.Do(func() {
			close(stop)
			<-done
			l.Released = true
			b, _ := json.Marshal(l)
			if taken, err := s.Exists(keep, leaseKey(mine+1)); err == nil && !taken {
				_ = s.WriteFile(keep, leaseKey(mine), b)
			}
		})
	}
	return release, lost, nil
}

// Held implements Store: the lease is ours as long as no newer generation exists.
func (s *Bucket) Held(ctx context.Context) error {
	s.mu.Lock()
	gen := s.gen
	s.mu.Unlock()
	if gen == 0 {
		return nil
	}
	taken, err := s.Exists(ctx, leaseKey(gen+1))
	if err != nil {
		return fmt.Errorf("checking the lock on %s: %w", s.location, err)
	}
	if taken {
		return fmt.Errorf("%w (%s, lease generation %d)", ErrLockLost, s.location, gen+1)
	}
	return nil
}

// takenOver is whose expired lease st's Lock took over: a holder that may be stalled rather than dead.
func takenOver(st Store) string {
	if b, ok := st.(*Bucket); ok {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.tookOver
	}
	return ""
}

// processAlive reports whether a process of this machine is running.
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
