package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/httpclient"
	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/models"
)

// Report is a run's outcome as written beside its manifest (<run id>.report.json): what monitoring
// reads after a nightly run without parsing logs.
type Report struct {
	RunID      string    `json:"run_id"`
	Status     string    `json:"status"` // ok | partial (a stream failed) | failed (load, models or a data test) | interrupted
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	Seconds    float64   `json:"seconds"` // the whole run: streams, load, models and Iceberg
	Phases     Phases    `json:"phases"`
	Error      string    `json:"error,omitempty"`
	Totals     struct {
		Rows     int64 `json:"rows"`
		Requests int64 `json:"requests"`
		Retries  int64 `json:"retries"`
		Bytes    int64 `json:"bytes"`
		Failed   int   `json:"failed_streams"`
	} `json:"totals"`
	Streams []lake.StreamReport `json:"streams"`
	// Hosts is how each API host's concurrency limit went: found within per_host_concurrency, with
	// the 429s and 503s it met.
	Hosts   []lake.HostReport `json:"hosts,omitempty"`
	Models  *models.Report    `json:"models,omitempty"`
	Iceberg *IcebergReport    `json:"iceberg,omitempty"`
}

func writeReport(ctx context.Context, st lake.Store, res *Result, runErr error) error {
	m := res.Manifest
	r := Report{RunID: m.RunID, Status: m.Status, StartedAt: m.StartedAt, FinishedAt: res.FinishedAt, Phases: res.Phases, Streams: m.Streams, Hosts: m.Hosts, Models: res.Models, Iceberg: res.Iceberg}
	r.Seconds = round(r.FinishedAt.Sub(r.StartedAt).Seconds())
	for _, s := range m.Streams {
		r.Totals.Rows += s.Rows
		r.Totals.Requests += s.Requests
		r.Totals.Retries += s.Retries
		r.Totals.Bytes += s.Bytes
		if s.Status != "ok" {
			r.Totals.Failed++
		}
	}
	if runErr != nil {
		r.Error = runErr.Error()
	}
	switch {
	case m.Status == statusInterrupted || errors.Is(runErr, context.Canceled) || errors.Is(runErr, context.DeadlineExceeded):
		r.Status = statusInterrupted
	case runErr != nil || !res.OK() && r.Status == "ok":
		r.Status = "failed"
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return st.WriteFile(ctx, lake.ReportKey(m.RunID), append(b, '\n'))
}

// hostReports is how each host's concurrency went in the run (none without a client).
func hostReports(c *httpclient.Client) []lake.HostReport {
	if c == nil {
		return nil
	}
	var out []lake.HostReport
	for _, h := range c.Hosts() {
		r := lake.HostReport{Host: h.Host, Ceiling: h.Ceiling, Peak: h.Peak, Final: h.Final, Throttled: h.Throttled, MeanInFlight: h.MeanInFlight,
			PausedSeconds: h.PausedSeconds}
		for _, s := range h.Samples {
			r.Samples = append(r.Samples, lake.HostSample(s))
		}
		out = append(out, r)
	}
	return out
}
