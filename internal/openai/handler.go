// Package openai is the queen's OpenAI-compatible API: POST
// /v1/chat/completions and /v1/completions (streamed or not), GET /v1/models
// and /v1/models/{id}, with OpenAI's request fields, answers and error
// shape, so that the official OpenAI clients work against rbee unchanged.
//
// The package turns OpenAI requests into worker inference requests and the
// worker's token stream back into OpenAI answers; choosing a worker (and
// starting one) is the Backend's, which the queen implements. Conversations
// go to the worker as messages: the worker renders them with the model's own
// chat template.
package openai

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/rbee/rbee/internal/apikeys"
	"github.com/rbee/rbee/internal/httpapi"
	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/wire"
)

// DefaultMaxBody bounds a request body: a conversation may hold
// wire.MaxPromptBytes of text, which JSON escaping can double.
const DefaultMaxBody = 4 << 20

// Backend runs inference for the API. The queen implements it.
type Backend interface {
	// Models lists the models the API serves: every model in the catalog
	// of a live hive, and every model a worker serves.
	Models(ctx context.Context) ([]Model, error)
	// Generate runs req on a worker of model, starting one when none runs,
	// and calls fn with each token event and then the end event of the
	// worker's stream; fn's error stops the generation. It returns the end
	// event. When ctx ends first, the generation is stopped on the worker.
	// Its errors are *wire.Error: wire.CodeUnknownModel for a model
	// nobody has, wire.CodeQueueFull when every worker is full, ...
	Generate(ctx context.Context, model string, req wire.InferenceRequest, fn func(wire.Event) error) (wire.Event, error)
}

// KeyChecker looks up presented API keys; *apikeys.Checker is one.
type KeyChecker interface {
	Check(presented string) (apikeys.Result, error)
}

// Options configures a Server. Zero fields take the documented defaults.
type Options struct {
	Backend Backend
	// Keys, when it holds at least one key, makes every request need a
	// valid one. nil: no key store.
	Keys KeyChecker
	// Token is the queen_token: also accepted as a key; required when set
	// and no key exists.
	Token string
	// MaxBody bounds request bodies; DefaultMaxBody.
	MaxBody int64
	// WriteTimeout bounds each write of a stream, so that a client that
	// stops reading is cut off (and its generation stopped);
	// jobs.WriteTimeout (10 s).
	WriteTimeout time.Duration
	Logger       *slog.Logger     // slog.Default()
	Now          func() time.Time // time.Now
}

// Server serves the OpenAI-compatible endpoints.
type Server struct {
	opt     Options
	log     *slog.Logger
	handler http.Handler // serve behind the gate
}

// New returns a Server.
func New(opt Options) *Server {
	if opt.MaxBody <= 0 {
		opt.MaxBody = DefaultMaxBody
	}
	if opt.WriteTimeout <= 0 {
		opt.WriteTimeout = jobs.WriteTimeout
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	s := &Server{opt: opt, log: opt.Logger}
	s.handler = s.gate().Wrap(http.HandlerFunc(s.serve))
	return s
}

// Paths are the URL paths the API serves (under /v1/models/ too).
var Paths = []string{"/v1/chat/completions", "/v1/completions", "/v1/models", "/v1/models/"}

// serve answers one API request that passed the gate.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	var err error
	switch p := r.URL.Path; {
	case p == "/v1/chat/completions":
		err = s.only(r, http.MethodPost, func() error { return s.chat(w, r) })
	case p == "/v1/completions":
		err = s.only(r, http.MethodPost, func() error { return s.completions(w, r) })
	case p == "/v1/models":
		err = s.only(r, http.MethodGet, func() error { return s.listModels(w, r) })
	case len(p) > len("/v1/models/"):
		err = s.only(r, http.MethodGet, func() error { return s.getModel(w, r, p[len("/v1/models/"):]) })
	default:
		err = wire.Errorf(wire.CodeUnknownURL, "Invalid URL (%s %s)", r.Method, p)
	}
	if err != nil {
		s.writeError(w, r, err)
	}
}

func (s *Server) only(r *http.Request, method string, serve func() error) error {
	if r.Method != method {
		return wire.Errorf(wire.CodeMethod, "%s is not allowed on %s; use %s", r.Method, r.URL.Path, method)
	}
	return serve()
}

// decode reads a JSON request body into v, and refuses the fields of
// refused that it holds. Unknown fields are tolerated: OpenAI clients and
// SDKs add their own.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any, refused map[string]refusal) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opt.MaxBody))
	if err == nil {
		err = decodeJSON(body, v)
	}
	if err == nil {
		if e := checkFields(body, refused); e != nil {
			return e
		}
		return nil
	}
	var (
		tooBig  *http.MaxBytesError
		typeErr *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &tooBig):
		return wire.Errorf(wire.CodeTooLarge, "the request body is larger than %d bytes", tooBig.Limit)
	case errors.Is(err, io.EOF):
		return wire.Errorf(wire.CodeInvalidJSON, "the request body is empty: send a JSON object")
	case httpapi.IsTimeout(err):
		return wire.Errorf(wire.CodeRequestTimeout, "the request body did not arrive in time")
	case errors.As(err, &typeErr) && typeErr.Field != "":
		// Fields of an embedded struct come prefixed with its name.
		field := strings.TrimPrefix(typeErr.Field, "sampler.")
		return badParam(field, "%s must be %s, not a JSON %s", field, jsonKind(typeErr.Type.Kind().String()), typeErr.Value)
	}
	var fe fieldError
	if errors.As(err, &fe) {
		return badParam(fe.field, "%s", fe.msg)
	}
	return wire.Errorf(wire.CodeInvalidJSON, "the request body is not valid JSON: %v", err)
}

// fieldError is a field whose value has the wrong shape, found by a
// field's own UnmarshalJSON.
type fieldError struct{ field, msg string }

func (e fieldError) Error() string { return e.msg }

// decodeJSON decodes one JSON value, with nothing after it.
func decodeJSON(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	err := dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); !errors.Is(terr, io.EOF) {
			err = terr
			if err == nil {
				err = errors.New("trailing data after the JSON object")
			}
		}
	}
	return err
}

func jsonKind(goKind string) string {
	switch goKind {
	case "int64", "int", "uint32":
		return "an integer"
	case "float64":
		return "a number"
	case "bool":
		return "true or false"
	case "string":
		return "a string"
	case "slice":
		return "a list"
	}
	return "an object"
}

// newID returns an OpenAI-style object id, e.g. "chatcmpl-<24 chars>".
func newID(prefix string) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	var b [24]byte
	_, _ = rand.Read(b[:])
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return prefix + string(b[:])
}
