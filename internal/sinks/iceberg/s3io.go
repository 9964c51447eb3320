package iceberg

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"sync"

	icebergio "github.com/apache/iceberg-go/io"
)

// iceberg-go opens a new IO for every catalog operation that reads or writes table metadata —
// creating, loading and committing a table each open one — and on s3 each IO is a new AWS SDK client:
// its configuration resolved again (a CA bundle parsed into a certificate pool of its own), an HTTP
// transport whose connections and TLS sessions are not shared, kept alive while they idle. A run
// registering forty tables opened a few hundred. Within one Register, the operations share one IO per
// bucket and properties instead.
//
// iceberg-go's scheme registry is process-wide and offers no way to hand a catalog an IO, so the
// s3:// factory is replaced (once, by Open) by one that shares IOs among operations whose context
// carries an ioShare, and otherwise does what iceberg-go's does. A shared IO is made with the share's
// context, not the first operation's: an IO keeps the context it is made with for all its requests.
// Either way the IO is made by iceberg-go's own s3 factory, reached through its s3a alias: the factory
// is not exported, and only the bucket of the location it is given counts.

// ioShare holds the IOs shared by the operations of one registration.
type ioShare struct {
	ctx context.Context // the registration's: the IOs' requests end with it
	mu  sync.Mutex
	ios map[string]icebergio.IO // by bucket and properties
}

type ioShareKey struct{}

// withSharedIO is ctx carrying a new ioShare for the s3 operations made with it.
func withSharedIO(ctx context.Context) context.Context {
	s := &ioShare{ios: map[string]icebergio.IO{}}
	ctx = context.WithValue(ctx, ioShareKey{}, s)
	s.ctx = ctx
	return ctx
}

// shareS3IO replaces iceberg-go's s3:// factory by sharedS3IO, once per process.
var shareS3IO = sync.OnceFunc(func() {
	icebergio.Unregister("s3")
	icebergio.Register("s3", sharedS3IO)
})

// sharedS3IO is the IO for the bucket of parsed with props: the one ctx's ioShare holds (made on first
// use), or without a share a new one, as iceberg-go's factory makes.
func sharedS3IO(ctx context.Context, parsed *url.URL, props map[string]string) (icebergio.IO, error) {
	bucket := "s3a://" + parsed.Host + "/"
	s, _ := ctx.Value(ioShareKey{}).(*ioShare)
	if s == nil {
		return icebergio.LoadFS(ctx, props, bucket)
	}
	key := s3IOKey(parsed.Host, props)
	s.mu.Lock()
	defer s.mu.Unlock()
	if fsys, ok := s.ios[key]; ok {
		return fsys, nil
	}
	fsys, err := icebergio.LoadFS(s.ctx, props, bucket)
	if err != nil {
		return nil, err
	}
	s.ios[key] = fsys
	return fsys, nil
}

// s3IOKey names a bucket with the properties its client is made from.
func s3IOKey(bucket string, props map[string]string) string {
	keys := make([]string, 0, len(props))
	for k := range props {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString(bucket)
	for _, k := range keys {
		b.WriteString("\x00" + k + "=" + props[k])
	}
	return b.String()
}
