package worker

import (
	"sync"
)

// loadState tracks model loading for /v1/ready and /v1/loading/progress.
type loadState struct {
	mu      sync.Mutex
	done    int64
	total   int64
	state   string // wire.StateLoading, StateReady or StateError
	err     string
	changed chan struct{}
}

func (l *loadState) set(done int64, state, errText string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.done, l.state, l.err = done, state, errText
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *loadState) get() (done, total int64, state, errText string, changed <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.done, l.total, l.state, l.err, l.changed
}
