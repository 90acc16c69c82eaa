package scheduling

import (
	"container/list"
	"encoding/binary"
	"hash/maphash"
	"slices"
	"strings"
	"sync"

	"github.com/rbee/rbee/internal/queen/workers"
	"github.com/rbee/rbee/internal/wire"
)

// Cache-aware routing. A worker keeps the KV cache of the prompts it ran,
// so the next turn of a conversation is quickest where the last one ran:
// there only its new tokens are evaluated. The queen remembers, for the
// prefixes of every prompt it routed, the worker that ran it, and sends a
// request whose long prefix one of them holds there, as long as that
// worker has a free slot; otherwise (and for a request that shares only a
// short prefix with anything, like a system prompt) the Policy decides as
// without it, so that load never piles onto one worker.
const (
	// affinityKeys bounds the prefixes remembered, of all models; the
	// least recently used go first. A key costs about 100 bytes.
	affinityKeys = 1 << 16
	// The prefixes of a raw prompt are keyed every textFineBlock bytes
	// up to textFine, so that short prompts continued route too, then
	// every textBlock bytes.
	textFineBlock = 64
	textFine      = 1024
	textBlock     = 256
	// maxReply bounds the reply text kept to key the next turn's prefix;
	// a longer reply is not keyed.
	maxReply = 1 << 20
)

// prefixSeed seeds the hash of every prefix key of this process.
var prefixSeed = maphash.MakeSeed()

// prefix is a request's prompt as the keys of its prefixes, shortest
// first: for a chat, one per message from the second on (the model and
// messages[0..k]); for a raw prompt, one at each block boundary and one of
// the whole prompt. Equal prefixes of one model have equal keys.
type prefix struct {
	keys []uint64
	// route: keys[route:] are long enough to route by: at least two
	// messages (more than a system prompt), or half a raw prompt.
	route int
	chat  bool
	// state keys what the reply continues: a chat's whole conversation,
	// or a raw prompt's first done bytes, its whole blocks; tail is the
	// rest of a raw prompt.
	state uint64
	done  int
	tail  string
}

// mix is the key of the prefix keyed h followed by parts, each length
// prefixed so that boundaries between them are unambiguous.
func mix(h uint64, parts ...string) uint64 {
	var m maphash.Hash
	m.SetSeed(prefixSeed)
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], h)
	m.Write(b[:])
	for _, p := range parts {
		binary.LittleEndian.PutUint64(b[:], uint64(len(p)))
		m.Write(b[:])
		m.WriteString(p)
	}
	return m.Sum64()
}

// prefixOf keys req's prompt for model (the name the queue knows it by).
func prefixOf(model string, req *wire.InferenceRequest) *prefix {
	if len(req.Messages) > 0 {
		p := &prefix{chat: true, state: mix(0, "chat", model)}
		for i, m := range req.Messages {
			p.state = mix(p.state, m.Role, m.Content)
			if i > 0 { // a first message alone never routes
				p.keys = append(p.keys, p.state)
			}
		}
		return p
	}
	p := &prefix{}
	var ends []int
	p.keys, ends, p.state, p.done = textKeys(mix(0, "text", model), 0, req.Prompt)
	p.tail = req.Prompt[p.done:]
	for i, end := range ends {
		if 2*end >= len(req.Prompt) {
			p.route = i
			break
		}
	}
	return p
}

// blockAt is the length of the block of a raw prompt that starts at
// byte at, a boundary.
func blockAt(at int) int {
	if at < textFine {
		return textFineBlock
	}
	return textBlock
}

// textKeys keys the prefixes of a raw prompt s that end at a block boundary
// or at its end, continuing from state, the key of the at bytes before s
// (at is a boundary): it returns their keys, where each ends, and the key
// of the prefix up to the last boundary and where it ends.
func textKeys(state uint64, at int, s string) (keys []uint64, ends []int, last uint64, lastAt int) {
	for n := blockAt(at); len(s) >= n; n = blockAt(at) {
		state = mix(state, s[:n])
		at += n
		s = s[n:]
		keys, ends = append(keys, state), append(ends, at)
	}
	last, lastAt = state, at
	if s != "" {
		keys, ends = append(keys, mix(state, s)), append(ends, at+len(s))
	}
	return keys, ends, last, lastAt
}

// replyKeys are the keys of the prompt followed by reply (the assistant's
// message, for a chat) that the prompt's keys do not already hold.
func (p *prefix) replyKeys(reply string) []uint64 {
	if p.chat {
		keys := []uint64{mix(p.state, "assistant", reply)}
		// Clients often send a reply back trimmed.
		if t := strings.TrimSpace(reply); t != reply {
			keys = append(keys, mix(p.state, "assistant", t))
		}
		return keys
	}
	if reply == "" {
		return nil
	}
	keys, _, _, _ := textKeys(p.state, p.done, p.tail+reply)
	return keys
}

// workerRef is one worker process: an id may be taken again by another
// after its worker is gone, whose cache is not the first one's.
type workerRef struct {
	id, url string
	pid     int
}

func refOf(w workers.Worker) workerRef { return workerRef{id: w.WorkerID, url: w.URL, pid: w.PID} }

func (r workerRef) is(w workers.Worker) bool {
	return w.WorkerID == r.id && w.URL == r.url && w.PID == r.pid
}

// affinity remembers which worker ran each prefix, least recently used
// forgotten first. Its lock is taken after the queue's and before the
// registry's.
type affinity struct {
	max int

	mu    sync.Mutex
	keys  map[uint64]*list.Element // of *placed
	order list.List                // most recently used first
}

type placed struct {
	key uint64
	w   workerRef
}

func newAffinity(max int) *affinity {
	return &affinity{max: max, keys: make(map[uint64]*list.Element)}
}

// record notes that w holds the prefixes keyed keys.
func (a *affinity) record(keys []uint64, w workerRef) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, k := range keys {
		if el := a.keys[k]; el != nil {
			el.Value.(*placed).w = w
			a.order.MoveToFront(el)
			continue
		}
		a.keys[k] = a.order.PushFront(&placed{key: k, w: w})
		for a.order.Len() > a.max {
			a.dropLocked(a.order.Back())
		}
	}
}

func (a *affinity) dropLocked(el *list.Element) {
	delete(a.keys, el.Value.(*placed).key)
	a.order.Remove(el)
}

// choose returns the candidate that holds the longest prefix of p long
// enough to route by, if any does. A prefix whose worker is gone (or is
// another process by now) is forgotten on the way.
func (a *affinity) choose(p *prefix, cands []workers.Worker, reg *workers.Registry) (workers.Worker, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	// The prefixes of one conversation are mostly on one worker: whether
	// it is alive is asked once.
	var (
		asked       workerRef
		alive, sure bool
	)
	for i := len(p.keys) - 1; i >= p.route; i-- {
		el := a.keys[p.keys[i]]
		if el == nil {
			continue
		}
		ref := el.Value.(*placed).w
		if j := slices.IndexFunc(cands, ref.is); j >= 0 {
			a.order.MoveToFront(el)
			return cands[j], true
		}
		// Busy, draining, or gone: only the last is forgotten.
		if !sure || ref != asked {
			w, ok := reg.Get(ref.id)
			asked, sure, alive = ref, true, ok && w.GoneSince.IsZero() && ref.is(w)
		}
		if !alive {
			a.dropLocked(el)
		}
	}
	return workers.Worker{}, false
}

// len is the number of prefixes remembered.
func (a *affinity) len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.keys)
}

// follow wraps the fn of a request of prefix p that runs on w: once the
// worker has read the prompt (its first token, or its end), w holds its
// prefixes; at the end, also those of the prompt followed by the reply,
// which the next turn of a conversation starts with. A nil affinity or
// prefix records nothing.
func (a *affinity) follow(p *prefix, w workers.Worker, fn func(wire.Event) error) func(wire.Event) error {
	if a == nil || p == nil {
		return fn
	}
	ref := refOf(w)
	var (
		read  bool
		reply strings.Builder
	)
	return func(e wire.Event) error {
		if !read && (e.Type == wire.TypeToken || e.Type == wire.TypeEnd) {
			read = true
			a.record(p.keys, ref)
		}
		switch e.Type {
		case wire.TypeToken:
			if reply.Len() <= maxReply {
				reply.WriteString(e.T)
			}
		case wire.TypeEnd:
			if reply.Len() <= maxReply {
				a.record(p.replyKeys(reply.String()), ref)
			}
		}
		return fn(e)
	}
}
