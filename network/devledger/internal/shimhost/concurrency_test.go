package shimhost

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Many transactions at once on the one in-process stream all finish, each with its own answer:
// the stream interleaves their state requests and range batches without mixing them up or making
// one wait for another to end (1,000 agents' queries share it in a scale run).
func TestManyConcurrentTransactions(t *testing.T) {
	e := inProcEnv(t, newTestCC())
	runConcurrent(t, e)
	hd := e.h.(*host).cur
	hd.mu.Lock()
	open := len(hd.txs)
	hd.mu.Unlock()
	if open != 0 {
		t.Fatalf("%d transactions still registered on the stream", open)
	}
}

// The same on a pool of streams, where a txid in flight is still refused as a duplicate (it is
// routed to the stream that runs it) and Close ends every stream.
func TestPoolOfStreams(t *testing.T) {
	cc := newTestCC()
	e := newEnv(t, func(l *logs) Host {
		h, err := NewInProcPool(ccName, cc, l.logf, 8)
		if err != nil {
			t.Fatal(err)
		}
		return h
	})
	runConcurrent(t, e)

	blocked := make(chan error, 1)
	go func() {
		_, err := e.call(context.Background(), e.user, "pool-dup", "block")
		blocked <- err
	}()
	inFlight := func() bool {
		for _, h := range e.h.(*pool).hosts {
			if h.cur.lookup(channel, "pool-dup") != nil {
				return true
			}
		}
		return false
	}
	for deadline := time.Now().Add(5 * time.Second); !inFlight() && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	for range 16 { // every retry reaches the stream running it, whatever the pool's size
		if _, err := e.call(context.Background(), e.user, "pool-dup", "get", "k0001"); err == nil || !strings.Contains(err.Error(), "exists") {
			t.Fatalf("the same txid in flight on a pool: %v", err)
		}
	}
	close(cc.gate("pool-dup"))
	if err := <-blocked; err != nil {
		t.Fatal(err)
	}
	<-cc.late
	if _, err := NewInProcPool(ccName, cc, nil, 0); err == nil {
		t.Fatal("a pool of no streams was accepted")
	}
	e.h.Close()
	if _, err := e.call(context.Background(), e.user, "after-close", "get", "k0001"); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("after close: %v", err)
	}
}

// runConcurrent runs 1,000 transactions at once on e's host and fails on any wrong answer.
func runConcurrent(t *testing.T, e *env) {
	t.Helper()
	for i := range concurrentKeys {
		e.st.put(ccName, fmt.Sprintf("k%04d", i), []byte(strconv.Itoa(i)), "seed")
	}
	const n = 1000
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- oneConcurrent(e, i, concurrentKeys)
		}()
	}
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		if err != nil {
			failed++
			if failed <= 5 {
				t.Error(err)
			}
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d concurrent transactions failed", failed, n)
	}
}

// concurrentKeys: a range of three batches, so a scan asks QUERY_STATE_NEXT twice.
const concurrentKeys = 250

// oneConcurrent runs transaction i: even ones scan the whole range, odd ones read key i % keys.
func oneConcurrent(e *env, i, keys int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args, want := []string{"get", fmt.Sprintf("k%04d", i%keys)}, strconv.Itoa(i%keys)
	if i%2 == 0 {
		args, want = []string{"scan"}, strconv.Itoa(keys)
	}
	res, err := e.call(ctx, e.user, fmt.Sprintf("concurrent-%d", i), args...)
	switch {
	case err != nil:
		return fmt.Errorf("transaction %d: %w", i, err)
	case res.Response.Status != 200 || string(res.Response.Payload) != want:
		return fmt.Errorf("transaction %d (%v): status %d, payload %q, want %q", i, args, res.Response.Status, res.Response.Payload, want)
	}
	return nil
}
