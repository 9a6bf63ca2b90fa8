package main

import (
	"bytes"
	"fmt"
	"html"
	"math"
	"os"
	"time"
)

// The chart: for each freeze scenario a column, for each pool a panel
// of every request's latency (log scale) against the time since the
// pool's instance started, the freezes shaded. Hand-written SVG.

const (
	panelW, panelH = 520, 130
	padL, padT     = 60, 30
	gapX, gapY     = 40, 45
)

// writeChart writes the chart of the freeze tables to path.
func writeChart(path string, tables []*table, s settings) error {
	var cols []*table
	for _, t := range tables {
		if t.name == "blackhole" || t.name == "reset" {
			cols = append(cols, t)
		}
	}
	if len(cols) == 0 {
		return fmt.Errorf("-svg: the chart shows the freeze scenarios, and none ran")
	}
	var span time.Duration // the longest row
	for _, t := range cols {
		for _, r := range t.rows {
			for _, q := range append(r.warm, r.reqs...) {
				span = max(span, time.Duration(q.Start-r.start.UnixNano())+q.Lat)
			}
		}
	}
	span = max(span, time.Second)
	lo, hi := math.Log10(0.5), math.Log10(float64(s.Deadline)/1e6*1.5) // ms
	nrows := len(cols[0].rows)
	width := padL + len(cols)*(panelW+gapX)
	height := padT + nrows*(panelH+gapY) + 20

	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="16" font-size="13">Latency of each request (log scale) around freezes of %v (shaded); NAT idle timeout %v, deadline %v. Blue: served; red: failed; grey: warm-up.</text>`+"\n",
		padL, s.Freeze, s.NATIdle, s.Deadline)
	for ci, t := range cols {
		for ri, r := range t.rows {
			x0 := float64(padL + ci*(panelW+gapX))
			y0 := float64(padT + ri*(panelH+gapY) + 15)
			px := func(at int64) float64 {
				return x0 + float64(at-r.start.UnixNano())/float64(span)*panelW
			}
			py := func(d time.Duration) float64 {
				v := math.Log10(max(float64(d)/1e6, 0.5))
				return y0 + panelH - (min(v, hi)-lo)/(hi-lo)*panelH
			}
			sm := summarize(r.reqs)
			fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" font-size="12">%s, %s: %s served, p99 %s</text>`+"\n",
				x0, y0-5, html.EscapeString(r.pool.label), html.EscapeString(t.title[len("Freeze behind a "):]), percent(sm.okPercent()), ms(sm.p99))
			fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="%d" height="%d" fill="none" stroke="#999"/>`+"\n", x0, y0, panelW, panelH)
			for _, f := range r.freezes {
				fmt.Fprintf(&b, `<rect x="%.1f" y="%.0f" width="%.1f" height="%d" fill="#ddd"/>`+"\n", px(f[0].UnixNano()), y0, px(f[1].UnixNano())-px(f[0].UnixNano()), panelH)
			}
			for _, ms := range []float64{1, 10, 100, 1000} {
				if v := math.Log10(ms); v >= lo && v <= hi {
					y := py(time.Duration(ms * 1e6))
					fmt.Fprintf(&b, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#eee"/><text x="%.0f" y="%.1f" text-anchor="end">%s</text>`+"\n",
						x0, y, x0+panelW, y, x0-4, y+4, tickLabel(ms))
				}
			}
			for sec := 0; time.Duration(sec)*time.Second <= span; sec += 5 {
				x := x0 + float64(time.Duration(sec)*time.Second)/float64(span)*panelW
				fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle">%ds</text>`+"\n", x, y0+panelH+13, sec)
			}
			dot := func(q request, color string) {
				x, y := px(q.Start), py(q.Lat)
				if q.ok() {
					fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="2" fill="%s"/>`+"\n", x, y, color)
				} else {
					fmt.Fprintf(&b, `<path d="M%.1f %.1fl5 5m0 -5l-5 5" stroke="#d22" stroke-width="1.5"/>`+"\n", x-2.5, y-2.5)
				}
			}
			for _, q := range r.warm {
				dot(q, "#aaa")
			}
			for _, q := range r.reqs {
				dot(q, "#1f5fbf")
			}
		}
	}
	b.WriteString("</svg>\n")
	return os.WriteFile(path, b.Bytes(), 0o644)
}

func tickLabel(ms float64) string {
	if ms >= 1000 {
		return fmt.Sprintf("%.0fs", ms/1000)
	}
	return fmt.Sprintf("%.0fms", ms)
}
