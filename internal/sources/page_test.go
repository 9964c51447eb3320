package sources

import (
	"bytes"
	stdjson "encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/ledgerlake/ledgerlake/internal/jsonrec"
	"github.com/ledgerlake/ledgerlake/internal/spool"
)

// A page whose body is null holds no records, and says so with ErrNull naming the request, so the
// pipeline reports it instead of passing it silently.
func TestNullPageIsEmptyAndNamesTheRequest(t *testing.T) {
	for _, body := range []string{"null", " null\r\n"} {
		n := 0
		count := func(Record) error { n++; return nil }
		_, err := Page{Body: spool.Bytes([]byte(body)), Where: "GET /datasync?option=CallTickets"}.Each(count)
		if !errors.Is(err, jsonrec.ErrNull) || !strings.Contains(err.Error(), "GET /datasync?option=CallTickets") || n != 0 {
			t.Errorf("Page.Each(%q) = %v after %d records; want jsonrec.ErrNull naming the request", body, err, n)
		}
	}
}

func TestPageEachFiltersAndNamesTheRequest(t *testing.T) {
	var raws []string
	body := []byte("[ {\"id\":1},\n {\"id\": 2} ,{\"id\":3}]")
	p := Page{Body: spool.Bytes(body), Where: "GET /x", Keep: func(r Record, raw []byte) bool {
		raws = append(raws, string(raw))
		return r["id"] != stdjson.Number("2")
	}}
	var ids []string
	if _, err := p.Each(func(r Record) error { ids = append(ids, string(r["id"].(stdjson.Number))); return nil }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ids, []string{"1", "3"}) {
		t.Errorf("kept %v", ids)
	}
	// Keep sees each record's bytes as sent, without the whitespace around them.
	if want := []string{`{"id":1}`, `{"id": 2}`, `{"id":3}`}; !reflect.DeepEqual(raws, want) {
		t.Errorf("raw records %q, want %q", raws, want)
	}
	var readerRaws []string
	if _, err := jsonrec.EachRawInReader(iotest.OneByteReader(bytes.NewReader(body)), jsonrec.DefaultMaxValueBytes, func(_ Record, raw []byte) error {
		readerRaws = append(readerRaws, string(raw))
		return nil
	}); err != nil || !reflect.DeepEqual(readerRaws, raws) {
		t.Errorf("the reader's raw records %q (%v), want %q", readerRaws, err, raws)
	}
	bad := Page{Body: spool.Bytes([]byte(`<html>`)), Where: "GET /datasync?option=Invoices"}
	if _, err := bad.Each(func(Record) error { return nil }); err == nil || !bytes.Contains([]byte(err.Error()), []byte("GET /datasync?option=Invoices: response is not a JSON array")) {
		t.Errorf("error %v", err)
	}
}
