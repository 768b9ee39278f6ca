package loadgen

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// Progress prints a one-line progress report, rewritten in place (\r) twice a second:
// how many of a total are done and at what rate.
type Progress struct {
	w     io.Writer
	label string
	total int64
	done  atomic.Int64
	start time.Time
	stop  chan struct{}
	wg    sync.WaitGroup
}

// NewProgress starts reporting to w; a nil w reports nothing.
func NewProgress(w io.Writer, label string, total int) *Progress {
	p := &Progress{w: w, label: label, total: int64(total), start: time.Now(), stop: make(chan struct{})}
	if w != nil {
		p.wg.Go(p.loop)
	}
	return p
}

// Add counts n more done.
func (p *Progress) Add(n int) { p.done.Add(int64(n)) }

// Done stops reporting and ends the line.
func (p *Progress) Done() {
	close(p.stop)
	p.wg.Wait()
	if p.w != nil {
		p.print()
		fmt.Fprintln(p.w)
	}
}

func (p *Progress) loop() {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.print()
		}
	}
}

func (p *Progress) print() {
	n := p.done.Load()
	el := time.Since(p.start)
	rate := float64(n) / max(el.Seconds(), 1e-9)
	fmt.Fprintf(p.w, "\r%s: %s / %s (%s/s, %s)   ", p.label, Thousands(float64(n)), Thousands(float64(p.total)),
		Thousands(rate), el.Round(time.Second))
}

// Thousands formats a count with thousands separators: 1234567 -> "1,234,567".
func Thousands(f float64) string {
	n := int64(f + 0.5)
	s := fmt.Sprint(n)
	if n < 0 {
		return s
	}
	out := make([]byte, 0, len(s)+len(s)/3)
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}
