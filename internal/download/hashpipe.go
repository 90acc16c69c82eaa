package download

import "hash"

// hashPipe hashes what a transfer writes on a goroutine of its own, so that
// hashing overlaps the network and the disk instead of adding to them. The
// transfer reads into buffers it takes from the pipe and hands each one
// back with the bytes to hash; a buffer is reused once hashed.
type hashPipe struct {
	h    hash.Hash
	work chan []byte
	free chan []byte
	n    int
}

func newHashPipe(h hash.Hash, buffers, size int) *hashPipe {
	p := &hashPipe{h: h, work: make(chan []byte, buffers), free: make(chan []byte, buffers), n: buffers}
	for range buffers {
		p.free <- make([]byte, size)
	}
	go p.run()
	return p
}

func (p *hashPipe) run() {
	for b := range p.work {
		p.h.Write(b)
		p.free <- b[:cap(b)]
	}
}

// buffer returns a buffer to read into, waiting for one to be hashed.
func (p *hashPipe) buffer() []byte { return <-p.free }

// hash queues b, a buffer from buffer, for hashing.
func (p *hashPipe) hash(b []byte) {
	if len(b) == 0 {
		p.free <- b[:cap(b)]
		return
	}
	p.work <- b
}

// drain waits until everything queued is hashed: then h may be read or
// reset.
func (p *hashPipe) drain() {
	held := make([][]byte, p.n)
	for i := range held {
		held[i] = <-p.free
	}
	for _, b := range held {
		p.free <- b
	}
}

// close drains the pipe and stops its goroutine.
func (p *hashPipe) close() {
	p.drain()
	close(p.work)
}
