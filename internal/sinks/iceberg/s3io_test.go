package iceberg

import (
	"context"
	"testing"

	icebergio "github.com/apache/iceberg-go/io"
)

// The metadata reads and writes of one registration on s3 go through one IO per bucket and
// properties: iceberg-go asks for one per operation, and each used to be a new AWS SDK client. Outside
// a registration, and in another one, each asks for its own: an IO keeps the context it was made with,
// and a registration's ends with it.
func TestS3IOIsSharedWithinARegistration(t *testing.T) {
	shareS3IO()
	props := map[string]string{icebergio.S3Region: "eu-north-1", icebergio.S3EndpointURL: "http://127.0.0.1:1"}
	load := func(ctx context.Context, loc string, props map[string]string) icebergio.IO {
		t.Helper()
		fsys, err := icebergio.LoadFS(ctx, props, loc)
		if err != nil {
			t.Fatal(err)
		}
		return fsys
	}
	reg := withSharedIO(context.Background())
	op, cancel := context.WithCancel(reg) // an operation's own context, ended when it is done
	a := load(op, "s3://lake/_iceberg/t/metadata/00001.metadata.json", props)
	cancel()
	if b := load(reg, "s3://lake/signicat_invoices/part-0.parquet", map[string]string{icebergio.S3EndpointURL: "http://127.0.0.1:1", icebergio.S3Region: "eu-north-1"}); b != a {
		t.Error("two locations in one bucket with the same properties got two IOs within a registration")
	}
	if c := load(reg, "s3://other/x", props); c == a {
		t.Error("another bucket got the same IO")
	}
	if d := load(reg, "s3://lake/x", map[string]string{icebergio.S3Region: "eu-west-1", icebergio.S3EndpointURL: "http://127.0.0.1:1"}); d == a {
		t.Error("other properties (region) got the same IO")
	}
	if e := load(withSharedIO(context.Background()), "s3://lake/x", props); e == a {
		t.Error("another registration got the first one's IO")
	}
	if f := load(context.Background(), "s3://lake/x", props); f == a {
		t.Error("an operation outside any registration got a registration's IO")
	}
}
