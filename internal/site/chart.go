package site

import (
	"fmt"
	"html/template"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/lake"
)

// Series is one line of a chart: a value per run.
type Series struct {
	Name   string
	Values []float64
}

// Chart sizes, in pixels.
const (
	chartW, chartH              = 560, 190
	padL, padR, padT, padB      = 52, 14, 14, 30
	sparkW, sparkH, sparkMargin = 150, 26, 4
)

// lineChart draws series over runs (oldest left) with a point per run, each a link to the run's page
// titled with its value. name becomes data-chart, for tests and the page's script.
func lineChart(name, unit string, runs []*Run, series ...Series) template.HTML {
	top := 0.0
	for _, s := range series {
		for _, v := range s.Values {
			top = math.Max(top, v)
		}
	}
	top = niceCeil(top)
	x := func(i int) float64 {
		if len(runs) == 1 {
			return padL + (chartW-padL-padR)/2
		}
		return padL + float64(i)*(chartW-padL-padR)/float64(len(runs)-1)
	}
	y := func(v float64) float64 { return chartH - padB - v/top*(chartH-padT-padB) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" data-chart="%s" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s per run">`,
		name, chartW, chartH, chartW, chartH, esc(unit))
	for k := 0; k <= 4; k++ {
		v := top * float64(k) / 4
		fmt.Fprintf(&b, `<line class="grid" x1="%d" x2="%d" y1="%.1f" y2="%.1f"/><text class="tick" x="%d" y="%.1f" text-anchor="end">%s</text>`,
			padL, chartW-padR, y(v), y(v), padL-6, y(v)+4, compact(v))
	}
	layout := "Jan 2"
	if len(runs) > 0 {
		switch span := runs[len(runs)-1].Started.Sub(runs[0].Started); {
		case span < time.Hour:
			layout = "15:04:05"
		case span < 72*time.Hour:
			layout = "Jan 2 15:04"
		}
	}
	for _, i := range labelled(len(runs)) {
		anchor := "middle"
		switch {
		case len(runs) == 1:
		case i == 0:
			anchor = "start"
		case i == len(runs)-1:
			anchor = "end"
		}
		fmt.Fprintf(&b, `<text class="tick" x="%.1f" y="%d" text-anchor="%s">%s</text>`, x(i), chartH-padB+18, anchor, runs[i].Started.UTC().Format(layout))
	}
	for k, s := range series {
		var pts []string
		for i, v := range s.Values {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(i), y(v)))
		}
		fmt.Fprintf(&b, `<polyline class="line s%d" points="%s"/>`, k, strings.Join(pts, " "))
		for i, v := range s.Values {
			fmt.Fprintf(&b, `<a href="#run/%s"><circle class="point s%d" data-run="%s" data-value="%s" cx="%.1f" cy="%.1f" r="4"><title>%s · %s: %s %s</title></circle></a>`,
				esc(runs[i].ID), k, esc(runs[i].ID), strconv.FormatFloat(v, 'f', -1, 64), x(i), y(v), esc(runs[i].ID), esc(s.Name), number(v), esc(unit))
		}
	}
	b.WriteString(`</svg>`)
	if len(series) > 1 {
		b.WriteString(`<div class="legend">`)
		for k, s := range series {
			fmt.Fprintf(&b, `<span class="key s%d"></span>%s `, k, esc(s.Name))
		}
		b.WriteString(`</div>`)
	}
	return template.HTML(b.String())
}

// hostChart draws one host's concurrency limit over a run as steps (it holds until the next change),
// the ceiling as a dashed line, and at each change the requests then in flight as points titled with
// the figures.
func hostChart(h lake.HostReport) template.HTML {
	if len(h.Samples) == 0 {
		return ""
	}
	end := max(h.Samples[len(h.Samples)-1].Seconds, 1)
	top := float64(h.Ceiling)
	for _, p := range h.Samples {
		top = math.Max(top, float64(max(p.Limit, p.InFlight)))
	}
	top = niceCeil(top)
	x := func(sec float64) float64 { return padL + sec/end*(chartW-padL-padR) }
	y := func(v float64) float64 { return chartH - padB - v/top*(chartH-padT-padB) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" data-chart="host:%s" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="concurrency of %s over the run">`,
		esc(h.Host), chartW, chartH, chartW, chartH, esc(h.Host))
	for k := 0; k <= 4; k++ {
		v := top * float64(k) / 4
		fmt.Fprintf(&b, `<line class="grid" x1="%d" x2="%d" y1="%.1f" y2="%.1f"/><text class="tick" x="%d" y="%.1f" text-anchor="end">%s</text>`,
			padL, chartW-padR, y(v), y(v), padL-6, y(v)+4, compact(v))
	}
	for k, anchor := range []string{"start", "middle", "end"} {
		sec := end * float64(k) / 2
		fmt.Fprintf(&b, `<text class="tick" x="%.1f" y="%d" text-anchor="%s">%s s</text>`, x(sec), chartH-padB+18, anchor, compact(sec))
	}
	fmt.Fprintf(&b, `<line class="line ceiling" x1="%d" x2="%d" y1="%.1f" y2="%.1f"><title>ceiling (per_host_concurrency): %d</title></line>`,
		padL, chartW-padR, y(float64(h.Ceiling)), y(float64(h.Ceiling)), h.Ceiling)
	var pts []string
	for i, p := range h.Samples {
		next := end
		if i+1 < len(h.Samples) {
			next = h.Samples[i+1].Seconds
		}
		pts = append(pts, fmt.Sprintf("%.1f,%.1f %.1f,%.1f", x(p.Seconds), y(float64(p.Limit)), x(next), y(float64(p.Limit))))
	}
	fmt.Fprintf(&b, `<polyline class="line s0" points="%s"/>`, strings.Join(pts, " "))
	for _, p := range h.Samples {
		fmt.Fprintf(&b, `<circle class="point s1" cx="%.1f" cy="%.1f" r="2.5"><title>at %s s: limit %d, %d in flight</title></circle>`,
			x(p.Seconds), y(float64(p.InFlight)), number(p.Seconds), p.Limit, p.InFlight)
	}
	b.WriteString(`</svg><div class="legend"><span class="key s0"></span>limit <span class="key s1"></span>in flight at each change <span class="key ceiling"></span>ceiling</div>`)
	return template.HTML(b.String())
}

// sparkline is a small line of one stream's values over the runs, a point per run.
func sparkline(name string, runs []*Run, values []float64) template.HTML {
	top := 0.0
	for _, v := range values {
		top = math.Max(top, v)
	}
	if top == 0 {
		top = 1
	}
	x := func(i int) float64 {
		if len(values) == 1 {
			return sparkW / 2
		}
		return sparkMargin + float64(i)*(sparkW-2*sparkMargin)/float64(len(values)-1)
	}
	y := func(v float64) float64 { return sparkH - sparkMargin - v/top*(sparkH-2*sparkMargin) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="spark" data-chart="%s" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d">`, esc(name), sparkW, sparkH, sparkW, sparkH)
	var pts []string
	for i, v := range values {
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(i), y(v)))
	}
	fmt.Fprintf(&b, `<polyline class="line s0" points="%s"/>`, strings.Join(pts, " "))
	for i, v := range values {
		fmt.Fprintf(&b, `<circle class="point s0" data-run="%s" cx="%.1f" cy="%.1f" r="2"><title>%s: %s</title></circle>`, esc(runs[i].ID), x(i), y(v), esc(runs[i].ID), number(v))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// labelled picks the runs whose date the x axis shows: the first, the last, and up to three between.
func labelled(n int) []int {
	switch {
	case n == 0:
		return nil
	case n <= 5:
		out := make([]int, n)
		for i := range out {
			out[i] = i
		}
		return out
	}
	return []int{0, n / 4, n / 2, 3 * n / 4, n - 1}
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten (at least 1), so axis ticks are round.
func niceCeil(v float64) float64 {
	if v <= 1 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// compact renders an axis value: 1500 → 1.5k, 2000000 → 2M.
func compact(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', -1, 64) + "M"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'f', -1, 64) + "k"
	}
	return strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64)
}

// number renders a value with thousands separators and at most two decimals: 12345.678 → 12,345.68.
func number(v float64) string {
	s := strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64)
	whole, frac, _ := strings.Cut(s, ".")
	neg := strings.HasPrefix(whole, "-")
	whole = strings.TrimPrefix(whole, "-")
	var b strings.Builder
	for i, r := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	out := b.String()
	if frac != "" {
		out += "." + frac
	}
	if neg {
		out = "-" + out
	}
	return out
}
