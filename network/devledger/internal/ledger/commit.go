package ledger

import (
	"time"

	"github.com/hyperledger/fabric-protos-go-apiv2/common"
	"github.com/hyperledger/fabric-protos-go-apiv2/ledger/rwset/kvrwset"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"google.golang.org/protobuf/proto"
)

// cutter is the orderer's block cutter and the peer's committer in one goroutine: a block is cut when
// BatchMaxTx envelopes are queued or BatchTimeout after the first of them arrived (Fabric's orderer
// BatchSize.MaxMessageCount / BatchTimeout), then validated and committed before the next one is cut.
// On Close it commits whatever is still queued and exits.
func (l *Ledger) cutter() {
	defer close(l.stopped)
	for {
		l.qmu.Lock()
		n, first, stopping := len(l.queue), l.firstAt, l.qclosed
		l.qmu.Unlock()
		wait := l.cfg.BatchTimeout - time.Since(first)
		switch {
		case n >= l.cfg.BatchMaxTx || (n > 0 && (stopping || wait <= 0)):
			l.cut()
			continue
		case stopping:
			return
		}
		var timer *time.Timer
		var fire <-chan time.Time
		if n > 0 {
			timer = time.NewTimer(wait)
			fire = timer.C
		}
		select {
		case <-l.kick:
		case <-fire:
		case <-l.stop:
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// cut takes up to BatchMaxTx envelopes off the queue and commits them as one block. Envelopes left behind start
// a new batch whose timer starts now.
func (l *Ledger) cut() {
	l.qmu.Lock()
	n := min(len(l.queue), l.cfg.BatchMaxTx)
	batch := l.queue[:n:n]
	l.queue = append([]*common.Envelope(nil), l.queue[n:]...)
	if len(l.queue) > 0 {
		l.firstAt = time.Now()
	}
	l.qmu.Unlock()
	l.mu.RLock()
	fatal := l.fatal
	l.mu.RUnlock()
	if fatal != nil {
		l.cfg.Logf("devledger: dropping %d transactions: the ledger stopped committing: %v", len(batch), fatal)
		return
	}
	l.commitBlock(batch)
}

// histAdd is a history entry waiting for its block to be durable.
type histAdd struct {
	ns, key   string
	block, tx uint64
	mod       KeyMod
}

// commitBlock validates a batch as a peer would and appends it as the next block.
//
// Per transaction, in block order (Fabric: core/committer/txvalidator/v20/validator.go, then
// core/ledger/kvledger/txmgmt/validation/validator.go):
//  1. Config.Validate (signatures, endorsement policy, headers);
//  2. if VALID: DUPLICATE_TXID when the txid is in the committed index or was used by an earlier transaction
//     of this block (whatever that one's code);
//  3. if VALID: MVCC and phantom checks against the committed state plus the earlier VALID transactions'
//     writes; a VALID transaction's writes then enter that view with version {block, tx}.
//
// The committer's working tree takes the writes during validation, but nothing is visible to readers until the
// block is fsynced: only then are the new state snapshot, the tx index, history and height published and the
// waiters woken. If the write fails, the working tree is rebuilt from the last published snapshot and the
// ledger stops accepting transactions (their fate would otherwise be unknowable).
func (l *Ledger) commitBlock(envs []*common.Envelope) {
	l.mu.RLock()
	num, prev := l.height, headerHash(l.lastHdr)
	l.mu.RUnlock()

	view := &blockView{state: l.master, updated: map[string]bool{}}
	raws := make([][]byte, len(envs))
	codes := make([]peer.TxValidationCode, len(envs))
	txids := make([]string, len(envs))
	inBlock := map[string]bool{}
	var hist []histAdd
	for i, env := range envs {
		raw, err := proto.Marshal(env)
		if err != nil { // cannot happen for an Envelope (bytes fields only); keep the block well formed
			raw = []byte{}
		}
		raws[i] = raw
		tx := l.checkTx(env, view, inBlock)
		if tx.code == peer.TxValidationCode_VALID {
			view.apply(tx.names, tx.sets, Version{num, uint64(i)})
			hist = append(hist, tx.history(num, uint64(i))...)
		} else {
			l.cfg.Logf("devledger: block %d tx %d [%s] invalid: %s", num, i, tx.txid, tx.code)
		}
		if tx.txid != "" {
			inBlock[tx.txid] = true
		}
		txids[i], codes[i] = tx.txid, tx.code
	}

	blk := newBlock(num, prev, raws, codes)
	raw, err := proto.Marshal(blk)
	var off int64
	if err == nil {
		off, err = l.store.append(raw)
	}
	if err != nil {
		l.cfg.Logf("devledger: FATAL: cannot write block %d (%d transactions lost): %v", num, len(envs), err)
		l.mu.Lock()
		l.master = l.snap.clone()
		l.fatal = err
		l.mu.Unlock()
		return
	}
	l.publish(blk, off, txids, codes, hist)
}

// txOutcome is one transaction of the block being cut: its id and code and, when VALID, its writes.
type txOutcome struct {
	txid  string
	code  peer.TxValidationCode
	chdr  *common.ChannelHeader // nil when the envelope has none
	names []string
	sets  []*kvrwset.KVRWSet
}

// checkTx validates env as the next transaction of the block: the configured validation, a txid
// already seen (earlier in this block or committed), the read-write set's parse, then MVCC
// against view, which holds the block's earlier VALID writes.
func (l *Ledger) checkTx(env *common.Envelope, view *blockView, inBlock map[string]bool) txOutcome {
	txid, code, rws := l.cfg.Validate(env)
	_, chdr, herr := channelHeaderOf(env)
	if txid == "" && herr == nil {
		txid = chdr.TxId
	}
	if code == peer.TxValidationCode_VALID && txid != "" && (inBlock[txid] || l.committed(txid)) {
		code = peer.TxValidationCode_DUPLICATE_TXID
	}
	tx := txOutcome{txid: txid, chdr: chdr}
	if code == peer.TxValidationCode_VALID && herr == nil &&
		common.HeaderType(chdr.Type) == common.HeaderType_ENDORSER_TRANSACTION {
		var err error
		if rws == nil {
			if _, _, rws, err = ParseEndorserTx(env); err != nil {
				code = peer.TxValidationCode_BAD_PAYLOAD
			}
		}
		if code == peer.TxValidationCode_VALID {
			if tx.names, tx.sets, err = parseKVRWSets(rws); err != nil {
				code = peer.TxValidationCode_BAD_RWSET
			}
		}
	}
	if code == peer.TxValidationCode_VALID {
		code = view.mvccCheck(tx.names, tx.sets)
	}
	tx.code = code
	return tx
}

// history is what a VALID transaction at (block, tx) adds to its keys' histories.
func (tx txOutcome) history(block, i uint64) []histAdd {
	var out []histAdd
	for j, ns := range tx.names {
		for _, w := range tx.sets[j].Writes {
			out = append(out, histAdd{ns, w.Key, block, i, KeyMod{
				TxID: tx.txid, Value: w.Value, Timestamp: tx.chdr.GetTimestamp(), IsDelete: w.IsDelete || len(w.Value) == 0,
			}})
		}
	}
	return out
}

// publish makes a written block visible: state snapshot, height, txid index and histories, then
// wakes whoever waits for a commit.
func (l *Ledger) publish(blk *common.Block, off int64, txids []string, codes []peer.TxValidationCode, hist []histAdd) {
	num := blk.Header.Number
	snap := l.master.clone()
	l.mu.Lock()
	l.snap = snap
	l.height = num + 1
	l.lastHdr = blk.Header
	l.offsets = append(l.offsets, off)
	for i, txid := range txids {
		if _, seen := l.txIndex[txid]; txid != "" && !seen {
			l.txIndex[txid] = txLoc{block: num, tx: uint64(i), code: codes[i]}
		}
	}
	for _, h := range hist {
		l.hist.add(h.ns, h.key, h.block, h.tx, h.mod)
	}
	close(l.commitCh)
	l.commitCh = make(chan struct{})
	l.mu.Unlock()
}

func (l *Ledger) committed(txid string) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	_, ok := l.txIndex[txid]
	return ok
}
