package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/rbee/rbee/internal/config"
	"github.com/rbee/rbee/internal/engine"
	"github.com/rbee/rbee/internal/httpapi"
	"github.com/rbee/rbee/internal/llama"
	"github.com/rbee/rbee/internal/queen"
	"github.com/rbee/rbee/internal/wire"
	"github.com/rbee/rbee/internal/worker"
)

// routing runs the same conversations through a queen with two workers of
// one model (the real queen and worker servers, in this process, over
// HTTP), with cache-aware routing and with the policy alone, and counts the
// prompt tokens the workers' caches served.
func routing(model string) {
	fmt.Printf("\n## Through the queen, two workers of %s (2 slots each), 8 conversations of 6 turns, 2 requests at a time\n\n", model)
	fmt.Println("| routing | prompt tokens | served by the caches | share | prompt tokens on w1 / w2 |")
	fmt.Println("|---|---:|---:|---:|---:|")
	for _, on := range []bool{true, false} {
		per := fleetRun(model, on)
		var prompt, cached int64
		for _, c := range per {
			prompt += c.PromptTokens
			cached += c.CachedTokens
		}
		name := "policy alone (--cache-routing=false)"
		if on {
			name = "cache-aware (default)"
		}
		fmt.Printf("| %s | %d | %d | %.1f%% | %d / %d |\n", name, prompt, cached, 100*float64(cached)/float64(prompt), per[0].PromptTokens, per[1].PromptTokens)
	}
}

func fleetRun(model string, cacheRouting bool) []wire.CacheStats {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir, err := os.MkdirTemp("", "rbee-bench-chat")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	qln := listen()
	qurl := "http://" + qln.Addr().String()
	q := queen.New(queen.Options{
		URL: qurl, Loopback: true, HiveTokenDir: dir, NoCacheRouting: !cacheRouting,
		Hives: func() ([]config.Hive, error) { return nil, nil },
	})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { _ = q.Serve(ctx, qln) })
	hiveTok, _, err := config.HiveTokens{Dir: dir}.Ensure("localhost")
	if err != nil {
		log.Fatal(err)
	}
	var ws []*worker.Server
	for _, id := range []string{"w1", "w2"} {
		ln := listen()
		w := worker.New(worker.Config{
			WorkerID: id, HiveID: "localhost", ModelName: "m", URL: "http://" + ln.Addr().String(),
			QueenURL: qurl, Token: httpapi.WorkerToken(hiveTok, id), Loopback: true, Slots: 2, QueueCap: 16,
			Load: func(func(float32)) (engine.Model, error) {
				return llama.Load(model, llama.Options{Threads: 1, CtxSize: 2048, Slots: 2})
			},
		})
		ws = append(ws, w)
		wg.Go(func() { _ = w.Serve(ctx, ln) })
	}
	deadline := time.Now().Add(time.Minute)
	for !bothReady(q) {
		if time.Now().After(deadline) {
			log.Fatal("the workers did not register with the queen")
		}
		time.Sleep(50 * time.Millisecond)
	}

	r := rand.New(rand.NewPCG(4, 4))
	words := strings.Fields("once upon a time there was a little girl named lily she loved to play outside in the park one day saw big red ball")
	say := func(n int) string {
		var b strings.Builder
		for i := range n {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(words[r.IntN(len(words))])
		}
		return b.String()
	}
	system := say(150)
	convs := make([][]wire.ChatMessage, 8)
	for i := range convs {
		convs[i] = []wire.ChatMessage{{Role: "system", Content: system}}
	}
	for range 6 {
		for i := range convs {
			convs[i] = append(convs[i], wire.ChatMessage{Role: "user", Content: say(20)})
		}
		var mu sync.Mutex
		sem := make(chan struct{}, 2)
		var cw sync.WaitGroup
		for i := range convs {
			sem <- struct{}{}
			cw.Go(func() {
				defer func() { <-sem }()
				reply := chat(qurl, convs[i])
				mu.Lock()
				defer mu.Unlock()
				convs[i] = append(convs[i], wire.ChatMessage{Role: "assistant", Content: reply})
			})
		}
		cw.Wait()
	}
	var per []wire.CacheStats
	for _, w := range ws {
		if c := w.Ready().Cache; c != nil {
			per = append(per, *c)
		} else {
			per = append(per, wire.CacheStats{})
		}
	}
	return per
}

func listen() net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	return ln
}

func bothReady(q *queen.Server) bool {
	n := 0
	for _, w := range q.Workers().List() {
		if w.State == wire.StateReady {
			n++
		}
	}
	return n == 2
}

// chat sends one turn through the queen's OpenAI API and returns the reply.
func chat(qurl string, msgs []wire.ChatMessage) string {
	body, _ := json.Marshal(map[string]any{"model": "m", "messages": msgs, "max_tokens": 30, "temperature": 0})
	resp, err := http.Post(qurl+"/v1/chat/completions", "application/json", bytes.NewReader(body))
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Choices []struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&out) != nil || len(out.Choices) == 0 {
		log.Fatalf("chat: %s", resp.Status)
	}
	return out.Choices[0].Message.Content
}
