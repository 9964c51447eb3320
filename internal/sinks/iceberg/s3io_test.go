package iceberg

import (
	"context"
	"testing"

	icebergio "github.com/apache/iceberg-go/io"
)

// Every metadata read and write of a table on s3 goes through one IO per bucket and properties:
// iceberg-go asks for one per operation, and each used to be a new AWS SDK client.
func TestS3IOIsSharedPerBucketAndProperties(t *testing.T) {
	shareS3IO()
	ctx := context.Background()
	props := map[string]string{icebergio.S3Region: "eu-north-1", icebergio.S3EndpointURL: "http://127.0.0.1:1"}
	load := func(loc string, props map[string]string) icebergio.IO {
		t.Helper()
		fsys, err := icebergio.LoadFS(ctx, props, loc)
		if err != nil {
			t.Fatal(err)
		}
		return fsys
	}
	a := load("s3://lake/_iceberg/t/metadata/00001.metadata.json", props)
	if b := load("s3://lake/signicat_invoices/part-0.parquet", map[string]string{icebergio.S3EndpointURL: "http://127.0.0.1:1", icebergio.S3Region: "eu-north-1"}); b != a {
		t.Error("two locations in one bucket with the same properties got two IOs")
	}
	if c := load("s3://other/x", props); c == a {
		t.Error("another bucket got the same IO")
	}
	if d := load("s3://lake/x", map[string]string{icebergio.S3Region: "eu-west-1", icebergio.S3EndpointURL: "http://127.0.0.1:1"}); d == a {
		t.Error("other properties (region) got the same IO")
	}
}
