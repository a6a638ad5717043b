package shimhost

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Many transactions at once on the one in-process stream all finish, each with its own answer:
// the stream interleaves their state requests and range batches without mixing them up or making
// one wait for another to end (1,000 agents' queries share it in a scale run).
func TestManyConcurrentTransactions(t *testing.T) {
	e := inProcEnv(t, newTestCC())
	const keys = 250 // a range of three batches: QUERY_STATE_NEXT twice per scan
	for i := range keys {
		e.st.put(ccName, fmt.Sprintf("k%04d", i), []byte(strconv.Itoa(i)), "seed")
	}
	const n = 1000
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- oneConcurrent(e, i, keys)
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
	hd := e.h.(*host).cur
	hd.mu.Lock()
	open := len(hd.txs)
	hd.mu.Unlock()
	if open != 0 {
		t.Fatalf("%d transactions still registered on the stream", open)
	}
}

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
