package ledger

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
)

// Block file format: one record per block, appended in block order:
//
//	[8-byte big-endian length n][n bytes: marshalled common.Block][4-byte big-endian CRC-32C of those n bytes]
//
// Fabric's block files (common/ledger/blkstorage/blockfile_mgr.go) also store length-prefixed serialized
// blocks and, on start, truncate a partially written last block. We add a checksum so that a record whose
// length made it to disk but whose bytes did not is recognised as torn too.
const (
	recHeader  = 8
	recTrailer = 4
	// maxRecord bounds a length field so a garbage length cannot make us allocate gigabytes.
	maxRecord = 1 << 30
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// blockStore is used by one writer (the committer, or Open before it starts); read may run concurrently.
type blockStore struct {
	f      *os.File
	size   int64 // end of the last complete record
	blocks int   // number of complete records
}

// openBlockStore opens (creating if needed) the block file and scans it, calling each for every complete,
// checksummed record in order. A damaged record that reaches the end of the file (a write cut short by a crash)
// is cut off: the file is truncated to the end of the last good record. Damage followed by more data is not a
// torn tail but corruption, and is an error. An error returned by each stops the scan and is returned.
func openBlockStore(path string, logf func(string, ...any), each func(num int, off int64, raw []byte) error) (*blockStore, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	bs := &blockStore{f: f}
	if err := bs.scan(logf, each); err != nil {
		f.Close()
		return nil, err
	}
	return bs, nil
}

func (bs *blockStore) scan(logf func(string, ...any), each func(num int, off int64, raw []byte) error) error {
	st, err := bs.f.Stat()
	if err != nil {
		return err
	}
	fileSize := st.Size()
	data := make([]byte, fileSize)
	if _, err := io.ReadFull(io.NewSectionReader(bs.f, 0, fileSize), data); err != nil {
		return err
	}
	off := int64(0)
	for off < fileSize {
		raw, reason := record(data[off:])
		if reason != "" {
			return bs.cutTail(data, off, reason, logf)
		}
		if err := each(bs.blocks, off, raw); err != nil {
			return fmt.Errorf("block file %s: block %d at offset %d: %w", bs.f.Name(), bs.blocks, off, err)
		}
		bs.blocks++
		off += recHeader + int64(len(raw)) + recTrailer
	}
	bs.size = off
	return nil
}

// record parses one record at the start of b; a non-empty reason says why it is not a complete good record.
func record(b []byte) (raw []byte, reason string) {
	if len(b) < recHeader {
		return nil, "incomplete length prefix"
	}
	n := binary.BigEndian.Uint64(b)
	if n == 0 || n > maxRecord {
		return nil, fmt.Sprintf("implausible record length %d", n)
	}
	if uint64(len(b)-recHeader) < n+recTrailer {
		return nil, "record extends past the end of the file"
	}
	raw = b[recHeader : recHeader+n]
	if crc32.Checksum(raw, castagnoli) != binary.BigEndian.Uint32(b[recHeader+n:]) {
		return nil, "checksum mismatch"
	}
	return raw, ""
}

// cutTail truncates a torn last record at off, or refuses when good-looking data follows the damage.
func (bs *blockStore) cutTail(data []byte, off int64, reason string, logf func(string, ...any)) error {
	rest := data[off:]
	torn := len(rest) < recHeader || len(bytes.Trim(rest, "\x00")) == 0
	if !torn {
		n := binary.BigEndian.Uint64(rest)
		// The damaged record is the last thing in the file (or claims to run past its end).
		torn = n <= maxRecord && uint64(len(rest)) <= recHeader+n+recTrailer
	}
	if !torn {
		return fmt.Errorf("block file %s is corrupt at offset %d (block %d): %s, and data follows",
			bs.f.Name(), off, bs.blocks, reason)
	}
	logf("devledger: block file %s: torn tail at offset %d (block %d: %s): truncating %d bytes",
		bs.f.Name(), off, bs.blocks, reason, len(rest))
	if err := bs.f.Truncate(off); err != nil {
		return err
	}
	if err := bs.f.Sync(); err != nil {
		return err
	}
	bs.size = off
	return nil
}

// append writes one block record and fsyncs it: the block is durable when append returns. On failure the file
// is cut back to its previous end so that a later append does not follow a half record. It returns the
// record's offset.
func (bs *blockStore) append(raw []byte) (int64, error) {
	rec := make([]byte, recHeader+len(raw)+recTrailer)
	binary.BigEndian.PutUint64(rec, uint64(len(raw)))
	copy(rec[recHeader:], raw)
	binary.BigEndian.PutUint32(rec[recHeader+len(raw):], crc32.Checksum(raw, castagnoli))
	if _, err := bs.f.WriteAt(rec, bs.size); err != nil {
		_ = bs.f.Truncate(bs.size)
		return 0, err
	}
	if err := bs.f.Sync(); err != nil {
		_ = bs.f.Truncate(bs.size)
		return 0, err
	}
	off := bs.size
	bs.size += int64(len(rec))
	bs.blocks++
	return off, nil
}

// read returns the marshalled block at a record offset. Safe concurrently with append (pread).
func (bs *blockStore) read(off int64) ([]byte, error) {
	var hdr [recHeader]byte
	if _, err := bs.f.ReadAt(hdr[:], off); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint64(hdr[:])
	if n == 0 || n > maxRecord {
		return nil, errors.New("bad record length")
	}
	raw := make([]byte, n)
	if _, err := bs.f.ReadAt(raw, off+recHeader); err != nil {
		return nil, err
	}
	return raw, nil
}

func (bs *blockStore) close() error { return bs.f.Close() }
