package metrics

import (
	"fmt"
	"io"
	"sync"
)

// Collector writes the current values of one part of the daemon. It is
// called once per scrape, from the scraping goroutine, so it must be safe to
// call concurrently with that part's own work (the Stats snapshots are).
type Collector func(w *Writer)

// Registry holds the collectors /metrics runs. The zero value is empty and
// ready; it is safe for concurrent use.
type Registry struct {
	mu         sync.Mutex
	collectors []Collector
}

// NewRegistry returns a Registry holding cs.
func NewRegistry(cs ...Collector) *Registry {
	r := &Registry{}
	r.Register(cs...)
	return r
}

// Register adds collectors; nil ones are ignored.
func (r *Registry) Register(cs ...Collector) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range cs {
		if c != nil {
			r.collectors = append(r.collectors, c)
		}
	}
}

// Gather runs every collector into a new Writer. A collector that panics
// loses only its own samples: the panic is reported by the Writer's Err.
func (r *Registry) Gather() *Writer {
	r.mu.Lock()
	cs := append([]Collector(nil), r.collectors...)
	r.mu.Unlock()
	w := NewWriter()
	for i, c := range cs {
		collectSafely(w, i, c)
	}
	return w
}

func collectSafely(w *Writer, i int, c Collector) {
	defer func() {
		if p := recover(); p != nil {
			w.Errorf("collector %d panicked: %v", i, p)
		}
	}()
	c(w)
}

// WriteTo gathers and writes the text format; problems the collectors
// reported are returned after the output is written.
func (r *Registry) WriteTo(out io.Writer) (int64, error) {
	w := r.Gather()
	n, err := w.WriteTo(out)
	if err != nil {
		return n, fmt.Errorf("writing metrics: %w", err)
	}
	if err := w.Err(); err != nil {
		return n, fmt.Errorf("collecting metrics: %w", err)
	}
	return n, nil
}
