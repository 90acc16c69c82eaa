package jobs

import (
	"fmt"
	"testing"
)

func TestEventLog(t *testing.T) {
	l := newEventLog(100, 1<<20)
	for i := range 250 {
		l.push(event{typ: "token", data: []byte(fmt.Sprint(i))})
	}
	if len(l.buf) != 100 || l.first != 150 || l.next != 250 {
		t.Fatalf("buf %d first %d next %d", len(l.buf), l.first, l.next)
	}
	if _, next, lost := l.read(149, nil, 10); lost != 1 || next != 149 {
		t.Fatalf("read past the ring: lost %d next %d", lost, next)
	}
	evs, next, lost := l.read(150, nil, 1000)
	if lost != 0 || next != 250 || len(evs) != 100 {
		t.Fatalf("lost %d next %d len %d", lost, next, len(evs))
	}
	for i, e := range evs {
		if string(e.data) != fmt.Sprint(150+i) {
			t.Fatalf("event %d is %s", i, e.data)
		}
	}

	// The byte bound drops old events but always keeps the newest.
	l = newEventLog(100, 10)
	l.push(event{data: []byte("12345")})
	l.push(event{data: []byte("12345")})
	l.push(event{data: []byte("1")})
	if l.first != 1 || l.bytes != 6 {
		t.Fatalf("first %d bytes %d", l.first, l.bytes)
	}
	l.push(event{data: make([]byte, 50)})
	if l.first != 3 || l.next != 4 || l.bytes != 50 {
		t.Fatalf("oversized: first %d next %d bytes %d", l.first, l.next, l.bytes)
	}
}
