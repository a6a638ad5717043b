package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hyperledger/fabric-protos-go-apiv2/common"
	"github.com/hyperledger/fabric-protos-go-apiv2/ledger/rwset"
	"github.com/hyperledger/fabric-protos-go-apiv2/ledger/rwset/kvrwset"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"google.golang.org/protobuf/proto"
)

// BlockFileName is the block file inside Config.Dir.
const BlockFileName = "blocks.dat"

type Config struct {
	Dir          string        // directory for the block file
	Channel      string        // channel id written into block 0
	BatchTimeout time.Duration // a block is cut this long after its first transaction was queued (0: 30 ms)
	BatchMaxTx   int           // ... or as soon as this many are queued (0: 200)
	// Validate runs the peer's per-transaction checks that need identities and returns the transaction id ("":
	// the ledger reads it from the channel header where that is readable), the validation code and, when VALID, the transaction's rwset (which must be the one inside the envelope:
	// replay re-parses it from there; nil means "parse it from the envelope"). It is called by the committer
	// goroutine only, one envelope at a time in block order; it is not called at replay. Nil: every
	// well-formed endorser or config transaction is VALID (for tests).
	Validate func(env *common.Envelope) (txid string, code peer.TxValidationCode, rws *rwset.TxReadWriteSet)
	Logf     func(format string, args ...any)
}

// txLoc is the tx index entry: where a transaction id was first committed and with which code. Fabric's block
// index (common/ledger/blkstorage/blockindex.go) likewise answers with the first occurrence, so a later
// DUPLICATE_TXID transaction never hides the original.
type txLoc struct {
	block, tx uint64
	code      peer.TxValidationCode
}

// Ledger is the channel's ledger: committed blocks, state, history, tx index, orderer.
//
// Concurrency: one committer goroutine (the cutter) validates and commits blocks, so commits are serialized.
// It owns a mutable state tree; after each durable block it publishes an immutable copy-on-write clone under
// mu. Simulators read the clone current at NewSimulator without locks, so a long simulation never holds up a
// commit. mu (short holds only) guards everything readers see.
type Ledger struct {
	cfg   Config
	store *blockStore

	mu       sync.RWMutex
	snap     *stateTree
	height   uint64
	lastHdr  *common.BlockHeader
	offsets  []int64 // offsets[n] = block n's record in the block file
	txIndex  map[string]txLoc
	hist     historyIndex
	commitCh chan struct{} // closed and replaced after every commit: wakes WaitTx/WaitHeight
	closed   bool
	fatal    error // a block could not be written; the ledger refuses new work

	master *stateTree // the committer's working state (Open, then the cutter goroutine only)

	qmu       sync.Mutex
	queue     []*common.Envelope
	firstAt   time.Time // when the oldest queued envelope arrived
	qclosed   bool
	kick      chan struct{}
	stop      chan struct{}
	stopped   chan struct{}
	closeOnce sync.Once
}

// Open creates block 0 (a CONFIG envelope) on a new dir; else replays the block file: every block is re-read,
// a torn tail is truncated, and state, history and the tx index are rebuilt from the blocks' VALID
// transactions (the codes come from TRANSACTIONS_FILTER; Validate is not called).
func Open(cfg Config) (*Ledger, error) {
	if cfg.BatchTimeout <= 0 {
		cfg.BatchTimeout = 30 * time.Millisecond
	}
	if cfg.BatchMaxTx <= 0 {
		cfg.BatchMaxTx = 200
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if cfg.Validate == nil {
		cfg.Validate = defaultValidate
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	l := &Ledger{
		cfg:      cfg,
		txIndex:  map[string]txLoc{},
		hist:     historyIndex{},
		commitCh: make(chan struct{}),
		master:   newStateTree(),
		kick:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		stopped:  make(chan struct{}),
	}
	store, err := openBlockStore(filepath.Join(cfg.Dir, BlockFileName), cfg.Logf, l.replayBlock)
	if err != nil {
		return nil, err
	}
	l.store = store
	if l.height == 0 {
		blk := newBlock(0, nil, [][]byte{genesisEnvelope(cfg.Channel)}, []peer.TxValidationCode{peer.TxValidationCode_VALID})
		raw, err := proto.Marshal(blk)
		if err == nil {
			var off int64
			if off, err = store.append(raw); err == nil {
				l.offsets, l.lastHdr, l.height = []int64{off}, blk.Header, 1
			}
		}
		if err != nil {
			store.close()
			return nil, fmt.Errorf("write block 0: %w", err)
		}
	} else {
		cfg.Logf("devledger: replayed %d blocks (%d transactions indexed)", l.height, len(l.txIndex))
	}
	l.snap = l.master.clone()
	go l.cutter()
	return l, nil
}

// replayBlock re-applies one block read from the file (Open only, before any reader exists).
func (l *Ledger) replayBlock(num int, off int64, raw []byte) error {
	b := &common.Block{}
	if err := proto.Unmarshal(raw, b); err != nil {
		return err
	}
	h := b.GetHeader()
	switch {
	case h == nil || h.Number != uint64(num):
		return fmt.Errorf("header number %d, want %d", h.GetNumber(), num)
	case num > 0 && !bytes.Equal(h.PreviousHash, headerHash(l.lastHdr)):
		return errors.New("previous hash does not match the previous block")
	case !bytes.Equal(h.DataHash, dataHash(b.GetData())):
		return errors.New("data hash does not match the block data")
	}
	filter, err := txFilter(b)
	if err != nil {
		return err
	}
	for i, envBytes := range b.Data.Data {
		env := &common.Envelope{}
		if err := proto.Unmarshal(envBytes, env); err != nil {
			continue // kept in the block as received; it can have been neither valid nor indexed
		}
		_, chdr, err := channelHeaderOf(env)
		if err != nil {
			continue
		}
		code := peer.TxValidationCode(filter[i])
		if code == peer.TxValidationCode_VALID && common.HeaderType(chdr.Type) == common.HeaderType_ENDORSER_TRANSACTION {
			_, _, rws, err := ParseEndorserTx(env)
			if err != nil {
				return fmt.Errorf("tx %d is VALID but: %w", i, err)
			}
			names, sets, err := parseKVRWSets(rws)
			if err != nil {
				return fmt.Errorf("tx %d is VALID but its rwset does not parse: %w", i, err)
			}
			l.replayWrites(names, sets, uint64(num), uint64(i), chdr)
		}
		if _, dup := l.txIndex[chdr.TxId]; chdr.TxId != "" && !dup {
			l.txIndex[chdr.TxId] = txLoc{block: uint64(num), tx: uint64(i), code: code}
		}
	}
	l.offsets = append(l.offsets, off)
	l.lastHdr = h
	l.height = uint64(num) + 1
	return nil
}

// replayWrites re-applies a VALID transaction's writes to the state and history (Open only). The history
// value of a delete is the write's (empty) value, as Fabric's history query returns it.
func (l *Ledger) replayWrites(names []string, sets []*kvrwset.KVRWSet, block, tx uint64, chdr *common.ChannelHeader) {
	for i, ns := range names {
		for _, w := range sets[i].Writes {
			applyWrite(l.master, ns, w, Version{block, tx})
			isDel := w.IsDelete || len(w.Value) == 0
			l.hist.add(ns, w.Key, block, tx, KeyMod{TxID: chdr.TxId, Value: w.Value, Timestamp: chdr.Timestamp, IsDelete: isDel})
		}
	}
}

// defaultValidate is the Validate used when Config.Validate is nil.
func defaultValidate(env *common.Envelope) (string, peer.TxValidationCode, *rwset.TxReadWriteSet) {
	txid, chdr, rws, err := ParseEndorserTx(env)
	if err == nil {
		return txid, peer.TxValidationCode_VALID, rws
	}
	if chdr != nil && common.HeaderType(chdr.Type) == common.HeaderType_CONFIG {
		return txid, peer.TxValidationCode_VALID, nil
	}
	return txid, peer.TxValidationCode_BAD_PAYLOAD, nil
}

// Close stops the cutter after it has committed what is already queued, wakes every waiter and closes the
// block file. Idempotent.
func (l *Ledger) Close() error {
	var err error
	l.closeOnce.Do(func() {
		l.qmu.Lock()
		l.qclosed = true
		l.qmu.Unlock()
		close(l.stop)
		<-l.stopped
		l.mu.Lock()
		l.closed = true
		close(l.commitCh)
		l.mu.Unlock()
		err = l.store.close()
	})
	return err
}

// NewSimulator returns a simulator over the state as of the last committed block.
func (l *Ledger) NewSimulator(txid string) (Simulator, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return nil, errors.New("devledger: ledger is closed")
	}
	return &simulator{l: l, txid: txid, snap: l.snap, height: l.height, ns: map[string]*nsRW{}}, nil
}

func (l *Ledger) history(ns, key string, height uint64) []KeyMod {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.hist.query(ns, key, height)
}

func (l *Ledger) Height() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.height
}

// Block reads a committed block from the block file.
func (l *Ledger) Block(number uint64) (*common.Block, error) {
	l.mu.RLock()
	h := l.height
	var off int64
	if number < h {
		off = l.offsets[number]
	}
	l.mu.RUnlock()
	if number >= h {
		return nil, fmt.Errorf("block [%d] does not exist: the ledger height is %d", number, h)
	}
	raw, err := l.store.read(off)
	if err != nil {
		return nil, fmt.Errorf("read block [%d]: %w", number, err)
	}
	b := &common.Block{}
	if err := proto.Unmarshal(raw, b); err != nil {
		return nil, fmt.Errorf("read block [%d]: %w", number, err)
	}
	return b, nil
}

// BlockchainInfo is what qscc's GetChainInfo answers (core/ledger/kvledger/kv_ledger.go GetBlockchainInfo).
func (l *Ledger) BlockchainInfo() *common.BlockchainInfo {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return &common.BlockchainInfo{
		Height:            l.height,
		CurrentBlockHash:  headerHash(l.lastHdr),
		PreviousBlockHash: l.lastHdr.PreviousHash,
	}
}

// TxByID: the committed envelope, its validation code and block number; found=false if never committed.
func (l *Ledger) TxByID(txid string) (env *common.Envelope, code peer.TxValidationCode, block uint64, found bool) {
	l.mu.RLock()
	loc, ok := l.txIndex[txid]
	l.mu.RUnlock()
	if !ok || txid == "" {
		return nil, 0, 0, false
	}
	b, err := l.Block(loc.block)
	if err != nil || int(loc.tx) >= len(b.GetData().GetData()) {
		l.cfg.Logf("devledger: TxByID %s: block %d: %v", txid, loc.block, err)
		return nil, loc.code, loc.block, true
	}
	env = &common.Envelope{}
	if err := proto.Unmarshal(b.Data.Data[loc.tx], env); err != nil {
		return nil, loc.code, loc.block, true
	}
	return env, loc.code, loc.block, true
}

// WaitTx blocks until txid is committed (valid or not) or ctx ends.
func (l *Ledger) WaitTx(ctx context.Context, txid string) (peer.TxValidationCode, uint64, error) {
	for {
		l.mu.RLock()
		loc, ok := l.txIndex[txid]
		ch, closed := l.commitCh, l.closed
		l.mu.RUnlock()
		if ok && txid != "" {
			return loc.code, loc.block, nil
		}
		if closed {
			return peer.TxValidationCode_INVALID_OTHER_REASON, 0, errors.New("devledger: ledger is closed")
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return peer.TxValidationCode_INVALID_OTHER_REASON, 0, ctx.Err()
		}
	}
}

// WaitHeight blocks until Height() > number (block `number` exists) or ctx ends.
func (l *Ledger) WaitHeight(ctx context.Context, number uint64) error {
	for {
		l.mu.RLock()
		h, ch, closed := l.height, l.commitCh, l.closed
		l.mu.RUnlock()
		if h > number {
			return nil
		}
		if closed {
			return errors.New("devledger: ledger is closed")
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Order hands an envelope to the block cutter and returns once it is queued (not committed). Duplicates are
// queued too: validation marks them DUPLICATE_TXID, which is what a client of Fabric observes.
func (l *Ledger) Order(env *common.Envelope) error {
	if env == nil {
		return errors.New("devledger: nil envelope")
	}
	l.mu.RLock()
	fatal := l.fatal
	l.mu.RUnlock()
	if fatal != nil {
		return fmt.Errorf("devledger: ledger stopped committing: %w", fatal)
	}
	l.qmu.Lock()
	if l.qclosed {
		l.qmu.Unlock()
		return errors.New("devledger: ledger is closed")
	}
	l.queue = append(l.queue, env)
	if len(l.queue) == 1 {
		l.firstAt = time.Now()
	}
	l.qmu.Unlock()
	select {
	case l.kick <- struct{}{}:
	default:
	}
	return nil
}
