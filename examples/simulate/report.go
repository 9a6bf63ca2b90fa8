package main

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// summary is what a table shows of a row's requests.
type summary struct {
	n, ok    int
	p50, p99 time.Duration
}

func summarize(reqs []request) summary {
	var s summary
	var lat []time.Duration
	for _, r := range reqs {
		s.n++
		if r.ok() {
			s.ok++
		}
		if r.Lat > 0 { // requests a killed instance never answered have none
			lat = append(lat, r.Lat)
		}
	}
	s.p50, s.p99 = percentile(lat, 50), percentile(lat, 99)
	return s
}

func (s summary) okPercent() float64 {
	if s.n == 0 {
		return 0
	}
	return 100 * float64(s.ok) / float64(s.n)
}

// percentile is the nearest-rank percentile; 0 for no samples.
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	return ds[(len(ds)*p+99)/100-1]
}

// printTable writes one scenario's table and, under it, why requests failed.
func printTable(w io.Writer, t *table, s settings) {
	fmt.Fprintf(w, "\n%s\n%s\n", t.title, wrap(t.setup, 78))
	if t.latencyBar {
		fmt.Fprintf(w, "bursts in bar: those whose p99 is within %dx a cold burst of the same size measured\nin the burst's own turn (runpool's rows: more than half)\n", barFactor)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	bar := ""
	if t.latencyBar {
		bar = "bursts in bar\t"
	}
	fmt.Fprintf(tw, "pool\tok\tp50\tp99\t%speak backends\tleft after %v\tleaked\t\n", bar, s.LeakWait)
	for _, r := range t.rows {
		if r.err != nil {
			continue
		}
		sm := summarize(r.reqs)
		if t.latencyBar {
			bar = fmt.Sprintf("%d of %d\t", inBar(r.bursts), len(r.bursts))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s%d\t%d\t%d\t\n", r.pool.label, percent(sm.okPercent()), ms(sm.p50), ms(sm.p99), bar, r.peak, r.left, r.leaked)
	}
	tw.Flush()
	for _, r := range t.rows {
		if r.err != nil {
			fmt.Fprintf(w, "  %s: did not run: %v\n", cmp.Or(r.pool.label, t.name), r.err)
			continue
		}
		if sm := summarize(r.reqs); sm.ok < sm.n {
			fmt.Fprintf(w, "  %s: %d of %d failed: %s\n", r.pool.label, sm.n-sm.ok, sm.n, errorCounts(r.reqs))
		}
	}
	if line := slotsRatio(t); line != "" {
		fmt.Fprintln(w, line)
	}
}

// slotsRatio compares, in a budget scenario, each slots row's p99 and
// p50 with the static division row's (staticDivision), a line each; ""
// when the table lacks the static row or every slots row.
func slotsRatio(t *table) string {
	var slots []*row
	var static *row
	for _, r := range t.rows {
		switch {
		case r.err != nil:
		case r.pool.slots:
			slots = append(slots, r)
		case r.pool.name == staticDivision:
			static = r
		}
	}
	if t.budget == 0 || static == nil {
		return ""
	}
	b := summarize(static.reqs)
	if b.p99 == 0 || b.p50 == 0 {
		return ""
	}
	var lines []string
	for _, r := range slots {
		a := summarize(r.reqs)
		lines = append(lines, fmt.Sprintf("%s / static division (%s): p99 %.2fx, p50 %.2fx",
			r.pool.label, static.pool.label, float64(a.p99)/float64(b.p99), float64(a.p50)/float64(b.p50)))
	}
	return strings.Join(lines, "\n")
}

// barFactor is the latency bar after a freeze: a burst's p99 within this
// many times the p99 of a cold burst of the same size (every request
// dials) measured in the burst's turn. A pool that recovers well pays
// for finding its connections stale, bounded by a probe, and then for
// at most a cold start.
const barFactor = 2

// within says whether a burst's p99 is within the bar of its own turn.
func (b freezeBurst) within() bool { return b.cold > 0 && b.p99 <= barFactor*b.cold }

// inBar counts the bursts within the bar of their own turns.
func inBar(bs []freezeBurst) int {
	n := 0
	for _, b := range bs {
		if b.within() {
			n++
		}
	}
	return n
}

// errorCounts names the kinds of failure and how often each happened.
func errorCounts(reqs []request) string {
	n := map[string]int{}
	for _, r := range reqs {
		if !r.ok() {
			n[errorKind(r.Err)]++
		}
	}
	kinds := slices.SortedFunc(maps.Keys(n), func(a, b string) int { return cmp.Compare(n[b], n[a]) })
	var parts []string
	for _, k := range kinds {
		parts = append(parts, fmt.Sprintf("%s (%d)", k, n[k]))
	}
	return strings.Join(parts, ", ")
}

func errorKind(msg string) string {
	switch {
	case strings.Contains(msg, "53300"):
		return "53300 too many clients"
	case strings.Contains(msg, errExited.Error()):
		return "lost: the instance was killed"
	case strings.Contains(msg, "deadline exceeded"), strings.Contains(msg, "timeout"):
		return "deadline exceeded"
	case strings.Contains(msg, "closed pool"), strings.Contains(msg, "database is closed"):
		return "refused: pool closed"
	case strings.Contains(msg, "reset by peer"):
		return "connection reset"
	}
	if len(msg) > 70 {
		msg = msg[:70] + "..."
	}
	return msg
}

// figures is what the verdict reads of one runpool row.
type figures struct {
	err      error  // the row could not run
	n, ok    int    // requests, and those served
	failures string // why requests failed (errorCounts)
	// latencyBar: more than half of the bursts must have their p99
	// within barFactor times the yardstick of their own turn.
	latencyBar bool
	bursts     []freezeBurst
	peak       int
	budget     int // 0: none
	leaked     int
}

// verdict holds one runpool row to runpool's bar and returns
// what it missed: every request served; where there is a latency bar,
// more than half of the bursts with p99 within 2x a cold burst of the
// same size measured in their own turn; peak backends within the budget; no
// backend leaked.
//
// Only latency is judged against a yardstick, as it alone moves with the
// machine's load, and only latency tolerates a minority of misses: a
// burst's yardstick is measured just before and after it, not while it
// runs, so one scheduling stall in a burst can put it over a bar its
// turn's dials met, while a pool that waits on stale connections after a
// freeze does so after every freeze. The other lines are hard.
func verdict(f figures) []string {
	if f.err != nil {
		return []string{fmt.Sprintf("did not run: %v", f.err)}
	}
	var miss []string
	switch {
	case f.n == 0:
		miss = append(miss, "no requests ran")
	case f.ok < f.n:
		miss = append(miss, fmt.Sprintf("%d of %d requests failed: %s", f.n-f.ok, f.n, f.failures))
	}
	if f.latencyBar {
		if m := latencyMiss(f.bursts); m != "" {
			miss = append(miss, m)
		}
	}
	if f.budget > 0 && f.peak > f.budget {
		miss = append(miss, fmt.Sprintf("peak %d backends over the budget of %d", f.peak, f.budget))
	}
	if f.leaked > 0 {
		miss = append(miss, fmt.Sprintf("%d backends leaked", f.leaked))
	}
	return miss
}

// latencyMiss is the latency bar's miss, "" when more than half of the
// bursts are within the bar of their own turns.
func latencyMiss(bs []freezeBurst) string {
	if len(bs) == 0 {
		return "no burst after a freeze measured to judge p99 against"
	}
	if 2*inBar(bs) > len(bs) {
		return ""
	}
	var over []string
	for i, b := range bs {
		switch {
		case b.cold <= 0:
			over = append(over, fmt.Sprintf("burst %d: no cold burst measured", i+1))
		case !b.within():
			over = append(over, fmt.Sprintf("burst %d: %s over %s", i+1, ms(b.p99), ms(barFactor*b.cold)))
		}
	}
	return fmt.Sprintf("p99 within %dx a cold burst of its turn in %d of %d bursts, not more than half (%s)",
		barFactor, inBar(bs), len(bs), strings.Join(over, ", "))
}

// verdicts holds runpool's rows to the bar (verdict) and returns one
// line per miss.
func verdicts(tables []*table) []string {
	var fails []string
	for _, t := range tables {
		for _, r := range t.rows {
			if !r.pool.runpool && r.pool.label != "" {
				continue // another pool's row; a row of no pool is the table's setup
			}
			sm := summarize(r.reqs)
			f := figures{err: r.err, n: sm.n, ok: sm.ok, latencyBar: t.latencyBar, bursts: r.bursts,
				peak: r.peak, budget: t.budget, leaked: r.leaked}
			if sm.ok < sm.n {
				f.failures = errorCounts(r.reqs)
			}
			for _, m := range verdict(f) {
				fails = append(fails, fmt.Sprintf("%s, %s: %s", t.name, cmp.Or(r.pool.label, "(setup)"), m))
			}
		}
	}
	return fails
}

func percent(p float64) string {
	if p == 100 || p == 0 {
		return fmt.Sprintf("%.0f%%", p)
	}
	return fmt.Sprintf("%.1f%%", p)
}

// ms formats a latency with three significant digits.
func ms(d time.Duration) string {
	switch {
	case d == 0:
		return "-"
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= 100*time.Millisecond:
		return fmt.Sprintf("%.0f ms", float64(d)/1e6)
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.2f ms", float64(d)/1e6)
}

// wrap breaks s into lines of at most width.
func wrap(s string, width int) string {
	var b strings.Builder
	n := 0
	for i, w := range strings.Fields(s) {
		if i > 0 && n+1+len(w) > width {
			b.WriteByte('\n')
			n = 0
		} else if i > 0 {
			b.WriteByte(' ')
			n++
		}
		b.WriteString(w)
		n += len(w)
	}
	return b.String()
}
