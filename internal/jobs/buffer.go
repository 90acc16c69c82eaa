package jobs

// event is one encoded stream event. Its bytes are never modified after
// they are appended, so readers may hold on to them without copying.
type event struct {
	typ  string
	data []byte
}

// eventLog is an append-only log that keeps only its newest events: at most
// maxEvents of them and, beyond the newest one, at most maxBytes of data.
// Sequence numbers count every event ever appended, so a reader that knows
// its position can tell whether the events it still needs were dropped.
//
// The ring grows on demand: most jobs emit a handful of events, and a ring
// sized for the worst case in each of thousands of kept jobs would cost far
// more memory than the events themselves.
type eventLog struct {
	buf       []event
	first     int64 // sequence number of the oldest kept event
	next      int64 // sequence number the next event will get
	bytes     int
	maxEvents int
	maxBytes  int
}

func newEventLog(maxEvents, maxBytes int) *eventLog {
	return &eventLog{maxEvents: max(maxEvents, 1), maxBytes: max(maxBytes, 1)}
}

func (l *eventLog) push(e event) {
	if l.next-l.first == int64(len(l.buf)) {
		if len(l.buf) < l.maxEvents {
			l.grow()
		} else {
			l.dropOldest()
		}
	}
	l.buf[l.next%int64(len(l.buf))] = e
	l.next++
	l.bytes += len(e.data)
	for l.bytes > l.maxBytes && l.next-l.first > 1 {
		l.dropOldest()
	}
}

func (l *eventLog) grow() {
	n := min(max(16, 2*len(l.buf)), l.maxEvents)
	nb := make([]event, n)
	for s := l.first; s < l.next; s++ {
		nb[s%int64(n)] = l.buf[s%int64(len(l.buf))]
	}
	l.buf = nb
}

func (l *eventLog) dropOldest() {
	i := l.first % int64(len(l.buf))
	l.bytes -= len(l.buf[i].data)
	l.buf[i] = event{} // let the bytes be collected
	l.first++
}

// read appends to dst the events from sequence number pos on, at most limit
// of them, and returns the position after the last one copied. lost is the
// number of events at pos that are no longer kept; when it is not zero
// nothing is copied, because a stream with a hole in it must not pass for a
// whole one.
func (l *eventLog) read(pos int64, dst []event, limit int) (out []event, next int64, lost int64) {
	if pos < l.first {
		return dst, pos, l.first - pos
	}
	for pos < l.next && len(dst) < limit {
		dst = append(dst, l.buf[pos%int64(len(l.buf))])
		pos++
	}
	return dst, pos, 0
}
