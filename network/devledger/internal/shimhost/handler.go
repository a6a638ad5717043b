package shimhost

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"google.golang.org/protobuf/proto"
)

// msgStream is the bidirectional chaincode stream as the peer sees it: the
// peer side of the in-process pipe, or the client side of
// peer.Chaincode/Connect. Send is called under the handler's send lock; Recv
// only from the handler's receive loop.
type msgStream interface {
	Send(*peer.ChaincodeMessage) error
	Recv() (*peer.ChaincodeMessage, error)
}

const (
	// registerTimeout bounds the wait for the chaincode's REGISTER.
	registerTimeout = 15 * time.Second
	// batchSize: results per QueryResponse between peer and shim
	// (core/chaincode/chaincode_support.go: QueryResponseGenerator{MaxResultLimit: 100}).
	batchSize = 100
	// totalQueryLimit is core.yaml ledger.state.totalQueryLimit (default
	// 100000): the most results one range or history query returns.
	totalQueryLimit = 100000
)

// handler is the peer side of one chaincode stream. Several transactions with
// different channel+txid run on it at once (Fabric keys its transaction
// contexts the same way, core/chaincode/transaction_contexts.go).
type handler struct {
	ccName  string
	st      msgStream
	closeFn func()
	logf    func(string, ...any)

	sendMu sync.Mutex
	slots  chan struct{} // one per transaction on the stream (maxInFlight)

	mu   sync.Mutex
	txs  map[string]*txCtx
	err  error         // why the stream ended (set before done is closed)
	done chan struct{} // closed when the stream is finished
	once sync.Once
}

// txCtx is one transaction in flight.
type txCtx struct {
	req    Request
	result chan *peer.ChaincodeMessage // COMPLETED or ERROR, buffered 1

	mu     sync.Mutex // held while a request of this tx uses req.Sim
	closed bool       // finished or abandoned: the simulator must not be touched
	iters  map[string]*queryIter
}

func ctxKey(channel, txid string) string { return channel + "\x00" + txid }

// newHandler runs the registration handshake on st (wait REGISTER, send
// REGISTERED and READY) and starts the receive loop.
func newHandler(ctx context.Context, ccName string, st msgStream, closeFn func(), logf func(string, ...any)) (*handler, error) {
	h := &handler{ccName: ccName, st: st, closeFn: closeFn, logf: logf, txs: map[string]*txCtx{}, done: make(chan struct{}),
		slots: make(chan struct{}, maxInFlight)}

	type recvd struct {
		msg *peer.ChaincodeMessage
		err error
	}
	first := make(chan recvd, 1)
	go func() {
		m, err := st.Recv()
		first <- recvd{m, err}
	}()
	timer := time.NewTimer(registerTimeout)
	defer timer.Stop()
	var r recvd
	select {
	case r = <-first:
	case <-timer.C:
		closeFn()
		return nil, fmt.Errorf("no REGISTER from the chaincode within %v", registerTimeout)
	case <-ctx.Done():
		closeFn()
		return nil, fmt.Errorf("waiting for the chaincode's REGISTER: %w", ctx.Err())
	}
	if r.err != nil {
		closeFn()
		return nil, fmt.Errorf("waiting for the chaincode's REGISTER: %w", r.err)
	}
	if r.msg == nil || r.msg.Type != peer.ChaincodeMessage_REGISTER {
		closeFn()
		return nil, fmt.Errorf("chaincode sent %v before REGISTER", r.msg.GetType())
	}
	id := &peer.ChaincodeID{}
	if err := proto.Unmarshal(r.msg.Payload, id); err != nil {
		closeFn()
		return nil, fmt.Errorf("REGISTER payload is not a ChaincodeID: %w", err)
	}
	if id.Name != ccName {
		// For chaincode-as-a-service the chaincode registers with its package
		// id (CORE_CHAINCODE_ID_NAME, e.g. "fedcommittee_1.0:<hash>"); the
		// namespace stays ccName either way.
		logf("devledger: chaincode %s registered as %q", ccName, id.Name)
	}
	// core/chaincode/handler.go HandleRegister + sendReady: REGISTERED, then
	// READY. READY carries no ChaincodeAdditionalParams here, so the shim
	// neither batches writes (WRITE_BATCH_STATE) nor asks GET_STATE_MULTIPLE.
	for _, t := range []peer.ChaincodeMessage_Type{peer.ChaincodeMessage_REGISTERED, peer.ChaincodeMessage_READY} {
		if err := h.send(&peer.ChaincodeMessage{Type: t}); err != nil {
			closeFn()
			return nil, fmt.Errorf("sending %v: %w", t, err)
		}
	}
	go h.recvLoop()
	return h, nil
}

func (h *handler) send(m *peer.ChaincodeMessage) error {
	h.sendMu.Lock()
	defer h.sendMu.Unlock()
	return h.st.Send(m)
}

// sendAsync sends without blocking the caller (the receive loop must never
// wait on a send); a failed send ends the stream.
func (h *handler) sendAsync(m *peer.ChaincodeMessage) {
	go func() {
		if err := h.send(m); err != nil {
			h.shutdown(fmt.Errorf("sending %v: %w", m.Type, err))
		}
	}()
}

func (h *handler) broken() bool {
	select {
	case <-h.done:
		return true
	default:
		return false
	}
}

func (h *handler) cause() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

// shutdown ends the stream once; transactions in flight fail with err.
func (h *handler) shutdown(err error) {
	h.once.Do(func() {
		h.mu.Lock()
		h.err = err
		h.mu.Unlock()
		close(h.done)
		h.closeFn()
	})
}

func (h *handler) recvLoop() {
	for {
		m, err := h.st.Recv()
		if err != nil {
			h.shutdown(fmt.Errorf("chaincode stream terminated: %w", err))
			return
		}
		if m == nil {
			h.shutdown(errors.New("chaincode stream terminated: nil message"))
			return
		}
		h.dispatch(m)
	}
}

func (h *handler) lookup(channel, txid string) *txCtx {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.txs[ctxKey(channel, txid)]
}

// dispatch routes one message from the chaincode (core/chaincode/handler.go
// handleMessageReadyState is the model).
func (h *handler) dispatch(m *peer.ChaincodeMessage) {
	switch m.Type {
	case peer.ChaincodeMessage_KEEPALIVE:
		// Ignored, as Fabric's peer does (core/chaincode/handler.go
		// handleMessage). Echoing would ping-pong forever: the shim itself
		// echoes every KEEPALIVE it receives (shim/handler.go handleMessage).
	case peer.ChaincodeMessage_COMPLETED, peer.ChaincodeMessage_ERROR:
		tx := h.lookup(m.ChannelId, m.Txid)
		if tx == nil {
			h.logf("devledger: chaincode %s: dropping %v for transaction %s on channel %q: no such transaction in flight (finished or abandoned)", h.ccName, m.Type, m.Txid, m.ChannelId)
			return
		}
		select {
		case tx.result <- m:
		default:
			h.logf("devledger: chaincode %s: dropping a second %v for transaction %s", h.ccName, m.Type, m.Txid)
		}
	case peer.ChaincodeMessage_GET_STATE, peer.ChaincodeMessage_PUT_STATE, peer.ChaincodeMessage_DEL_STATE,
		peer.ChaincodeMessage_GET_STATE_BY_RANGE, peer.ChaincodeMessage_QUERY_STATE_NEXT,
		peer.ChaincodeMessage_QUERY_STATE_CLOSE, peer.ChaincodeMessage_GET_HISTORY_FOR_KEY:
		go h.serve(m)
	default:
		h.sendAsync(h.unsupported(m, ""))
	}
}

// unsupported answers a request the embedded ledger cannot serve, and logs it
// with the token the test suite looks for.
func (h *handler) unsupported(m *peer.ChaincodeMessage, detail string) *peer.ChaincodeMessage {
	text := fmt.Sprintf("devledger: %v is not supported by the embedded ledger", m.Type)
	if detail != "" {
		text += " (" + detail + ")"
	}
	h.logf("devledger: UNSUPPORTED: %v from chaincode %s, transaction %s%s", m.Type, h.ccName, m.Txid, parenthesized(detail))
	return &peer.ChaincodeMessage{Type: peer.ChaincodeMessage_ERROR, Payload: []byte(text), Txid: m.Txid, ChannelId: m.ChannelId}
}

func parenthesized(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

// errUnsupported is returned by a request handler for a request the embedded
// ledger cannot serve (private data); detail says why.
type errUnsupported struct{ detail string }

func (e errUnsupported) Error() string { return e.detail }

func privateData(collection string) error {
	return errUnsupported{fmt.Sprintf("private data collection %q", collection)}
}

// serve answers one state request of a transaction in flight.
func (h *handler) serve(m *peer.ChaincodeMessage) {
	reply := func(payload []byte, err error) *peer.ChaincodeMessage {
		var u errUnsupported
		switch {
		case errors.As(err, &u):
			return h.unsupported(m, u.detail)
		case err != nil:
			// Fabric's wording (core/chaincode/handler.go HandleTransaction).
			return &peer.ChaincodeMessage{Type: peer.ChaincodeMessage_ERROR, Payload: []byte(fmt.Sprintf("%v failed: transaction ID: %s: %v", m.Type, m.Txid, err)), Txid: m.Txid, ChannelId: m.ChannelId}
		default:
			return &peer.ChaincodeMessage{Type: peer.ChaincodeMessage_RESPONSE, Payload: payload, Txid: m.Txid, ChannelId: m.ChannelId}
		}
	}
	tx := h.lookup(m.ChannelId, m.Txid)
	if tx == nil {
		h.sendAsync(reply(nil, errors.New("no ledger context (transaction finished or abandoned)")))
		return
	}
	tx.mu.Lock()
	var payload []byte
	var err error
	if tx.closed {
		err = errors.New("no ledger context (transaction finished or abandoned)")
	} else {
		payload, err = h.handle(tx, m)
	}
	tx.mu.Unlock()
	// Sent while the transaction may still be waiting: the shim waits for
	// this answer before it can send COMPLETED, so order is preserved.
	if err := h.send(reply(payload, err)); err != nil {
		h.shutdown(fmt.Errorf("sending the answer to %v: %w", m.Type, err))
	}
}

// request reads a shim request's payload into in; a bad one is answered as Fabric's handler does.
func request(payload []byte, in proto.Message) error {
	if err := proto.Unmarshal(payload, in); err != nil {
		return fmt.Errorf("unmarshal failed: %w", err)
	}
	return nil
}

// stateRequest reads a request on one key or range; one on a private data collection is refused.
func stateRequest(m *peer.ChaincodeMessage, in interface {
	proto.Message
	GetCollection() string
}) error {
	if err := request(m.Payload, in); err != nil {
		return err
	}
	if c := in.GetCollection(); c != "" {
		return privateData(c)
	}
	return nil
}

// handle serves m against tx.req.Sim; tx.mu is held.
func (h *handler) handle(tx *txCtx, m *peer.ChaincodeMessage) ([]byte, error) {
	sim := tx.req.Sim
	ns := h.ccName
	switch m.Type {
	case peer.ChaincodeMessage_GET_STATE:
		in := &peer.GetState{}
		if err := stateRequest(m, in); err != nil {
			return nil, err
		}
		return sim.GetState(ns, in.Key)
	case peer.ChaincodeMessage_PUT_STATE:
		in := &peer.PutState{}
		if err := stateRequest(m, in); err != nil {
			return nil, err
		}
		return nil, sim.PutState(ns, in.Key, in.Value)
	case peer.ChaincodeMessage_DEL_STATE:
		in := &peer.DelState{}
		if err := stateRequest(m, in); err != nil {
			return nil, err
		}
		return nil, sim.DelState(ns, in.Key)
	case peer.ChaincodeMessage_GET_STATE_BY_RANGE:
		return h.getStateByRange(tx, m)
	case peer.ChaincodeMessage_QUERY_STATE_NEXT:
		in := &peer.QueryStateNext{}
		if err := request(m.Payload, in); err != nil {
			return nil, err
		}
		it := tx.iters[in.Id]
		if it == nil {
			return nil, errors.New("query iterator not found")
		}
		return nextBatch(tx, in.Id, it)
	case peer.ChaincodeMessage_QUERY_STATE_CLOSE:
		in := &peer.QueryStateClose{}
		if err := request(m.Payload, in); err != nil {
			return nil, err
		}
		if it := tx.iters[in.Id]; it != nil {
			it.close()
			delete(tx.iters, in.Id)
		}
		return proto.Marshal(&peer.QueryResponse{HasMore: false, Id: in.Id})
	case peer.ChaincodeMessage_GET_HISTORY_FOR_KEY:
		in := &peer.GetHistoryForKey{}
		if err := request(m.Payload, in); err != nil {
			return nil, err
		}
		mods, err := sim.GetHistoryForKey(ns, in.Key)
		if err != nil {
			return nil, err
		}
		id := newIterID()
		it := historyIter(mods)
		tx.iters[id] = it
		return nextBatch(tx, id, it)
	}
	return nil, errUnsupported{"unexpected request"}
}

// getStateByRange follows core/chaincode/handler.go HandleGetStateByRange:
// QueryMetadata with a page size or a bookmark makes it a paginated query,
// answered in one QueryResponse carrying QueryResponseMetadata; otherwise the
// results come in batches of 100 (QUERY_STATE_NEXT for more).
func (h *handler) getStateByRange(tx *txCtx, m *peer.ChaincodeMessage) ([]byte, error) {
	in := &peer.GetStateByRange{}
	if err := stateRequest(m, in); err != nil {
		return nil, err
	}
	var md *peer.QueryMetadata
	if in.Metadata != nil {
		md = &peer.QueryMetadata{}
		if err := request(in.Metadata, md); err != nil {
			return nil, err
		}
	}
	id := newIterID()
	if md != nil && (md.PageSize != 0 || md.Bookmark != "") {
		limit := int32(totalQueryLimit)
		if md.PageSize > 0 && md.PageSize < limit {
			limit = md.PageSize
		}
		ri, page, err := tx.req.Sim.GetStateRangePage(h.ccName, in.StartKey, in.EndKey, limit, md.Bookmark)
		if err != nil {
			return nil, err
		}
		defer ri.Close()
		var results []*peer.QueryResultBytes
		for int32(len(results)) < limit {
			kv, err := ri.Next()
			if err != nil {
				return nil, err
			}
			if kv == nil {
				break
			}
			b, err := marshalKV(kv)
			if err != nil {
				return nil, err
			}
			results = append(results, b)
		}
		fetched, bookmark := page()
		mdb, err := proto.Marshal(&peer.QueryResponseMetadata{FetchedRecordsCount: fetched, Bookmark: bookmark})
		if err != nil {
			return nil, err
		}
		return proto.Marshal(&peer.QueryResponse{Results: results, HasMore: false, Id: id, Metadata: mdb})
	}
	ri, err := tx.req.Sim.GetStateRange(h.ccName, in.StartKey, in.EndKey)
	if err != nil {
		return nil, err
	}
	it := rangeIter(ri)
	tx.iters[id] = it
	return nextBatch(tx, id, it)
}

// newIterID returns a random UUID-shaped id, as Fabric's UUIDGenerator does.
func newIterID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// execute runs one invocation on this stream
// (core/chaincode/handler.go Execute).
// maxInFlight bounds the transactions waiting to be sent on one stream. A caller beyond it waits
// for a slot, where giving up (its context ending) costs nothing, and one whose caller gave up
// before its turn is not sent: a transaction once sent runs to its end even if abandoned, and its
// state requests share the stream with new transactions. Unbounded, 1,000 agents retrying
// timed-out queries queued thousands of sends ahead of the answers the running transactions
// waited for, and no query finished in time again.
const maxInFlight = 64

func (h *handler) execute(ctx context.Context, req Request) (*Result, error) {
	select {
	case h.slots <- struct{}{}: // given back once the transaction is sent, or known not to be
	case <-ctx.Done():
		return nil, fmt.Errorf("transaction %s abandoned while waiting for the chaincode: %w", req.TxID, ctx.Err())
	case <-h.done:
		return nil, fmt.Errorf("transaction %s: %w", req.TxID, h.cause())
	}
	key := ctxKey(req.ChannelID, req.TxID)
	tx := &txCtx{req: req, result: make(chan *peer.ChaincodeMessage, 1), iters: map[string]*queryIter{}}
	h.mu.Lock()
	if h.err != nil {
		err := h.err
		h.mu.Unlock()
		return nil, err
	}
	if h.txs[key] != nil {
		h.mu.Unlock()
		return nil, fmt.Errorf("txid: %s(%s) exists: the transaction is already executing", req.TxID, req.ChannelID)
	}
	h.txs[key] = tx
	h.mu.Unlock()
	defer h.finish(key, tx)

	payload, err := proto.Marshal(req.Input)
	if err != nil {
		return nil, fmt.Errorf("marshalling the chaincode input: %w", err)
	}
	typ := peer.ChaincodeMessage_TRANSACTION
	if req.IsInit {
		typ = peer.ChaincodeMessage_INIT
	}
	msg := &peer.ChaincodeMessage{Type: typ, Payload: payload, Txid: req.TxID, ChannelId: req.ChannelID, Proposal: req.SignedProposal}
	sent := make(chan error, 1)
	go func() {
		defer func() { <-h.slots }()
		if err := ctx.Err(); err != nil { // abandoned while the stream was busy: never sent
			sent <- nil
			return
		}
		sent <- h.send(msg)
	}()

	var resp *peer.ChaincodeMessage
	for resp == nil {
		select {
		case err := <-sent:
			if err != nil {
				h.shutdown(fmt.Errorf("sending %v: %w", typ, err))
				return nil, fmt.Errorf("transaction %s: sending %v: %w", req.TxID, typ, err)
			}
			sent = nil
		case resp = <-tx.result:
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, fmt.Errorf("transaction %s: timeout expired while executing transaction: %w", req.TxID, ctx.Err())
			}
			return nil, fmt.Errorf("transaction %s abandoned: %w", req.TxID, ctx.Err())
		case <-h.done:
			return nil, fmt.Errorf("transaction %s: %w", req.TxID, h.cause())
		}
	}

	if resp.Type == peer.ChaincodeMessage_ERROR {
		// The shim sends ERROR when Init returned status >= 400 or the
		// transaction could not run at all; the message is the payload.
		return &Result{Response: &peer.Response{Status: 500, Message: string(resp.Payload)}}, nil
	}
	res := &peer.Response{}
	if err := proto.Unmarshal(resp.Payload, res); err != nil {
		return nil, fmt.Errorf("transaction %s: COMPLETED payload is not a peer.Response: %w", req.TxID, err)
	}
	out := &Result{Response: res}
	if resp.ChaincodeEvent != nil {
		// The shim leaves these empty; the peer fills them in
		// (core/chaincode/chaincode_support.go processChaincodeExecutionResult).
		ev := proto.Clone(resp.ChaincodeEvent).(*peer.ChaincodeEvent)
		ev.ChaincodeId = h.ccName
		ev.TxId = req.TxID
		out.Event = ev
	}
	return out, nil
}

// finish forgets tx: later messages for it are answered "no ledger context"
// (requests) or dropped (COMPLETED/ERROR); its open iterators are closed.
func (h *handler) finish(key string, tx *txCtx) {
	h.mu.Lock()
	if h.txs[key] == tx {
		delete(h.txs, key)
	}
	h.mu.Unlock()
	tx.mu.Lock()
	tx.closed = true
	for id, it := range tx.iters {
		it.close()
		delete(tx.iters, id)
	}
	tx.mu.Unlock()
}
