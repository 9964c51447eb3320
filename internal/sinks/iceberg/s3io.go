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
// registering forty tables opened a few hundred. shareS3IO makes the s3:// scheme hand out one IO per
// bucket and properties (an IO holds no per-operation state: iceberg-go never closes one).
//
// The scheme registry is iceberg-go's and process-wide; only this package reads tables through it. The
// IO itself is still made by iceberg-go's own s3 factory, reached through its s3a alias: the factory
// is not exported, and its buckets accept every S3 scheme's locations.

// sharedS3 holds the IOs handed out for s3:// locations, by bucket and properties.
var sharedS3 struct {
	sync.Mutex
	ios map[string]icebergio.IO
}

// shareS3IO replaces iceberg-go's s3:// factory by one that shares IOs, once per process.
var shareS3IO = sync.OnceFunc(func() {
	icebergio.Unregister("s3")
	icebergio.Register("s3", sharedS3IO)
})

// sharedS3IO is the IO for the bucket of parsed with props, made on first use.
func sharedS3IO(ctx context.Context, parsed *url.URL, props map[string]string) (icebergio.IO, error) {
	key := s3IOKey(parsed.Host, props)
	sharedS3.Lock()
	defer sharedS3.Unlock()
	if fsys, ok := sharedS3.ios[key]; ok {
		return fsys, nil
	}
	fsys, err := icebergio.LoadFS(ctx, props, "s3a://"+parsed.Host+"/")
	if err != nil {
		return nil, err
	}
	if sharedS3.ios == nil {
		sharedS3.ios = map[string]icebergio.IO{}
	}
	sharedS3.ios[key] = fsys
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
