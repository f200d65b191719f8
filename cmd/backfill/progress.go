package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/sjbackfill/backfill/internal/runstore"
)

// How often progress is printed when the output is not a terminal.
const (
	watchPrintEvery = 5 * time.Second
	demoPrintEvery  = 5 * time.Second
)

// progressPrinter shows a run's progress. On a terminal it redraws one line in place; on
// anything else (a pipe, a CI log, `make demo` under a runner) it prints a line when the
// state changes, and otherwise when the line changed and `every` has passed since the last
// one, so a log gets a line every few seconds and never the same line twice.
type progressPrinter struct {
	w      io.Writer
	prefix string
	live   bool
	every  time.Duration

	drawn     bool
	last      string
	lastState runstore.State
	lastAt    time.Time
}

func newProgressPrinter(w io.Writer, prefix string, every time.Duration) *progressPrinter {
	return &progressPrinter{w: w, prefix: prefix, live: isTerminal(w), every: every}
}

// update shows the run as just read.
func (p *progressPrinter) update(r *runstore.Run) {
	line := p.prefix + progressLine(r)
	if p.live {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		p.drawn = true
		return
	}
	now := time.Now()
	if line == p.last || (r.State == p.lastState && now.Sub(p.lastAt) < p.every) {
		return
	}
	fmt.Fprintln(p.w, line)
	p.last, p.lastState, p.lastAt = line, r.State, now
}

// finish ends the redrawn line, so what follows starts on its own.
func (p *progressPrinter) finish() {
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progressLine renders a run's progress: a bar, the share done, the rate and the ETA. Before
// anything is counted (a queued run, a run still planning) it says so instead of 0/0.
func progressLine(r *runstore.Run) string {
	t := r.Total()
	counts := fmt.Sprintf("written %d  rejected %d  [%s]", t.Written, t.Rejected, r.State)
	p := r.Progress
	if p.Total == 0 {
		if r.State == runstore.Queued {
			return "waiting for a worker  [queued]"
		}
		return counts
	}
	const width = 30
	filled := min(int(p.Percent/100*width), width)
	bar := strings.Repeat("█", filled) + strings.Repeat("░", width-filled)
	line := fmt.Sprintf("%s %5.1f%%  %d/%d learners", bar, p.Percent, p.Done, p.Total)
	if p.Rate > 0 {
		line += fmt.Sprintf("  %.1f/s", p.Rate)
	}
	if p.ETASeconds > 0 {
		line += "  ETA " + (time.Duration(p.ETASeconds) * time.Second).String()
	}
	return line + "  " + counts
}
