package ledger

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hyperledger/fabric-protos-go-apiv2/common"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
)

const killChildEnv = "DEVLEDGER_KILL_CHILD_DIR"

// TestKillChild is the child of TestKill9: it commits transactions from several goroutines forever and prints
// "COMMITTED <txid>" once WaitTx has returned VALID for it. It only runs when re-executed by TestKill9.
func TestKillChild(t *testing.T) {
	dir := os.Getenv(killChildEnv)
	if dir == "" {
		t.Skip("run by TestKill9 only")
	}
	l, err := Open(Config{Dir: dir, Channel: testChannel, BatchTimeout: 2 * time.Millisecond, BatchMaxTx: 5, Validate: testValidate})
	if err != nil {
		fmt.Println("OPEN FAILED", err)
		os.Exit(2)
	}
	var out sync.Mutex
	for w := 0; w < 4; w++ {
		go func() {
			for i := 0; ; i++ {
				txid := fmt.Sprintf("p%d-w%d-%d", os.Getpid(), w, i) // unique across rounds
				env := simulate(t, l, txid, func(s Simulator) {
					prev := get(t, s, "cc", fmt.Sprintf("w%d", w)) // the worker's own counter: no conflicts
					put(t, s, "cc", fmt.Sprintf("w%d", w), fmt.Sprint(i))
					put(t, s, "cc", txid, prev)
				})
				if err := l.Order(env); err != nil {
					return
				}
				code, _, err := l.WaitTx(context.Background(), txid)
				if err != nil || code != peer.TxValidationCode_VALID {
					fmt.Println("FAILED", txid, code, err)
					os.Exit(3)
				}
				out.Lock()
				fmt.Println("COMMITTED", txid)
				out.Unlock()
			}
		}()
	}
	select {} // until killed
}

// TestKill9 re-executes the test binary as a committing child, SIGKILLs it mid-run, reopens its directory and
// checks that every transaction the child saw committed is in the ledger exactly once and that the state is
// what the blocks' valid writes say.
func TestKill9(t *testing.T) {
	if os.Getenv(killChildEnv) != "" {
		t.Skip("child")
	}
	dir := t.TempDir()
	// Later rounds kill a child that replayed the earlier rounds' file, a few milliseconds after a report so
	// that the kill lands anywhere in a commit (the torn-tail test covers every byte offset deterministically).
	for round := 0; round < 4; round++ {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestKillChild$")
		cmd.Env = append(os.Environ(), killChildEnv+"="+dir)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var reported []string
		sc := bufio.NewScanner(stdout)
		deadline := time.AfterFunc(15*time.Second, func() { cmd.Process.Kill() })
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "OPEN FAILED") || strings.HasPrefix(line, "FAILED") {
				cmd.Process.Kill()
				t.Fatalf("child: %s", line)
			}
			if txid, ok := strings.CutPrefix(line, "COMMITTED "); ok {
				reported = append(reported, txid)
				if len(reported) == 40+round*7 {
					time.AfterFunc(time.Duration(round)*1500*time.Microsecond, func() { cmd.Process.Signal(syscall.SIGKILL) })
				}
			}
		}
		deadline.Stop()
		cmd.Wait()
		if len(reported) < 40 {
			t.Fatalf("round %d: child reported only %d commits", round, len(reported))
		}

		l := openTest(t, dir, 200, 2*time.Millisecond)
		count := map[string]int{}
		eachTx(t, l, func(_ uint64, _ int, env *common.Envelope, code peer.TxValidationCode) {
			if txid, _, _, err := ParseEndorserTx(env); err == nil {
				count[txid]++
				if code != peer.TxValidationCode_VALID {
					t.Errorf("%s committed as %v", txid, code)
				}
			}
		})
		for _, txid := range reported {
			if count[txid] != 1 {
				t.Errorf("round %d: reported %s found %d times", round, txid, count[txid])
			}
			if _, code, _, ok := l.TxByID(txid); !ok || code != peer.TxValidationCode_VALID {
				t.Errorf("round %d: TxByID(%s) = %v %v", round, txid, code, ok)
			}
		}
		for txid, c := range count {
			if c != 1 {
				t.Errorf("round %d: %s is in %d blocks", round, txid, c)
			}
		}
		if got, want := dumpState(l), replayWrites(t, l); !reflect.DeepEqual(got, want) {
			t.Errorf("round %d: state %d entries != replayed writes %d entries", round, len(got), len(want))
		}
		t.Logf("round %d: %d reported, %d in %d blocks", round, len(reported), len(count), l.Height())
		l.Close()
	}
}
