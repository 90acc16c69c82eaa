package jobs

import (
	"net"
	"net/http"
	"time"
)

// Liveness bounds between rbee processes. A process that stops answering
// (SIGSTOP, a swapped-out or frozen machine) keeps its sockets open and its
// kernel keeps accepting connections and bytes, so only silence tells:
// every call has a connect and a response-header timeout, and every stream
// a ping while quiet and an idle timeout on the reading side.
const (
	// HeartbeatInterval is how often a worker reports to the queen, and
	// the pace of every liveness check: streams ping when quiet this long.
	HeartbeatInterval = 2 * time.Second
	// StreamIdleTimeout is how long a stream may stay silent (no event, no
	// ping) before its reader gives it up: five missed pings.
	StreamIdleTimeout = 5 * HeartbeatInterval
	// DialTimeout bounds a connect to another rbee process.
	DialTimeout = 5 * time.Second
	// ResponseHeaderTimeout bounds the wait for an answer's headers. Every
	// rbee endpoint answers at once (a stream sends its headers before its
	// first event, however long that takes), so a process that does not
	// answer in this time is not answering.
	ResponseHeaderTimeout = 10 * time.Second
	// WriteTimeout bounds each write of every rbee stream (job, inference,
	// loading progress, OpenAI): a reader that lets one stall this long is
	// cut off.
	WriteTimeout = 10 * time.Second
)

// NewHTTPClient returns the HTTP client rbee processes call each other
// with (CLI to queen, queen to hives and workers, hive to workers, worker
// heartbeats): connect and response-header timeouts, TCP keep-alives, and
// many idle connections per host, since a worker serving many streams
// would otherwise open and close one for nearly every request. It has no
// overall Timeout: streams are long, and Client.StreamPath bounds their
// silence instead.
func NewHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: DialTimeout, KeepAlive: 15 * time.Second}).DialContext
	t.ResponseHeaderTimeout = ResponseHeaderTimeout
	t.MaxIdleConnsPerHost = 256
	t.MaxIdleConns = 4096
	return &http.Client{Transport: t}
}

// defaultHTTP is Client's when its HTTP is nil.
var defaultHTTP = NewHTTPClient()
