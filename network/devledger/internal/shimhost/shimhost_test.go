package shimhost

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fedcommittee/fedcommittee/chaincode/fedcommittee"
	"github.com/hyperledger/fabric-chaincode-go/v2/shim"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

const (
	channel = "fedchannel"
	ccName  = "fedcommittee"
)

// logs collects logf lines.
type logs struct {
	mu    sync.Mutex
	lines []string
}

func (l *logs) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *logs) has(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, x := range l.lines {
		if strings.Contains(x, s) {
			return true
		}
	}
	return false
}

type env struct {
	t     *testing.T
	h     Host
	st    *store
	log   *logs
	ca    *testCA
	user  []byte // OU=client
	admin []byte // OU=admin
	n     int
}

func newEnv(t *testing.T, mk func(l *logs) Host) *env {
	e := &env{t: t, st: newStore(), log: &logs{}, ca: newCA(t, "ca.org1.test")}
	e.user, _ = e.ca.issue(t, "User1@org1.test", "client")
	e.admin, _ = e.ca.issue(t, "Admin@org1.test", "admin")
	e.h = mk(e.log)
	t.Cleanup(func() { e.h.Close() })
	return e
}

func inProcEnv(t *testing.T, cc shim.Chaincode) *env {
	return newEnv(t, func(l *logs) Host {
		h, err := NewInProc(ccName, cc, l.logf)
		if err != nil {
			t.Fatal(err)
		}
		return h
	})
}

func (e *env) txid() string {
	e.n++
	return fmt.Sprintf("%s-tx%d-%d", e.t.Name(), e.n, time.Now().UnixNano())
}

// call executes one invocation; a valid result's writes are committed.
func (e *env) call(ctx context.Context, who []byte, txid string, args ...string) (*Result, error) {
	sp, in := signedProposal(e.t, channel, txid, ccName, "Org1MSP", who, args...)
	sim := e.st.sim(txid)
	defer sim.Done()
	res, err := e.h.Execute(ctx, Request{ChannelID: channel, TxID: txid, Input: in, SignedProposal: sp, Sim: sim})
	if err == nil && res.Response.Status < 400 {
		sim.commit()
	}
	return res, err
}

func (e *env) ok(who []byte, args ...string) *Result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := e.call(ctx, who, e.txid(), args...)
	if err != nil {
		e.t.Fatalf("%v: %v", args, err)
	}
	if res.Response.Status != 200 {
		e.t.Fatalf("%v: status %d: %s", args, res.Response.Status, res.Response.Message)
	}
	return res
}

func TestInProcRealChaincode(t *testing.T) {
	cc, err := fedcommittee.NewChaincode()
	if err != nil {
		t.Fatal(err)
	}
	e := inProcEnv(t, cc)

	// Read-only on empty state: the creator comes from the SignedProposal.
	var who struct {
		Identity string `json:"identity"`
		MSPID    string `json:"mspId"`
		Admin    bool   `json:"admin"`
	}
	res := e.ok(e.user, "WhoAmI")
	if err := json.Unmarshal(res.Response.Payload, &who); err != nil {
		t.Fatalf("WhoAmI payload %q: %v", res.Response.Payload, err)
	}
	if who.MSPID != "Org1MSP" || who.Admin || !strings.HasPrefix(who.Identity, "Org1MSP/") {
		t.Fatalf("WhoAmI = %+v", who)
	}
	if res.Event != nil {
		t.Fatalf("query produced an event: %v", res.Event)
	}

	// A write transaction with an event: ChaincodeId and TxId filled in.
	txid := e.txid()
	res, err = e.call(context.Background(), e.admin, txid, "GrantRole", who.Identity, "provider")
	if err != nil || res.Response.Status != 200 {
		t.Fatalf("GrantRole: %v %v", err, res)
	}
	if res.Event == nil || res.Event.EventName != "RoleGranted" || res.Event.ChaincodeId != ccName || res.Event.TxId != txid {
		t.Fatalf("GrantRole event = %v", res.Event)
	}
	// Paginated range query (ListRoleHolders pages a composite-key range).
	res = e.ok(e.user, "ListRoleHolders", "provider", "10", "")
	if !strings.Contains(string(res.Response.Payload), who.Identity) || !strings.Contains(string(res.Response.Payload), `"count":1`) {
		t.Fatalf("ListRoleHolders = %s", res.Response.Payload)
	}
	// History of the account record.
	res = e.ok(e.user, "GetHistory", "account", who.Identity)
	if !strings.Contains(string(res.Response.Payload), txid) {
		t.Fatalf("GetHistory = %s", res.Response.Payload)
	}
	// A chaincode error: status 500 and the contract's message.
	res, err = e.call(context.Background(), e.user, e.txid(), "GrantRole", who.Identity, "publisher")
	if err != nil {
		t.Fatal(err)
	}
	if res.Response.Status != 500 || !strings.Contains(res.Response.Message, "is not an org admin") {
		t.Fatalf("non-admin GrantRole = %d %q", res.Response.Status, res.Response.Message)
	}
	if e.log.has("UNSUPPORTED") {
		t.Fatalf("the real chaincode used an unsupported request: %v", e.log.lines)
	}
	if n := e.st.openIters(); n != 0 {
		t.Fatalf("%d range iterators left open", n)
	}
}

// testCC exercises the protocol directly through the stub.
type testCC struct {
	mu      sync.Mutex
	release map[string]chan struct{} // "block" waits on release[txid]
	late    chan string              // what a blocked tx saw after release
}

func newTestCC() *testCC {
	return &testCC{release: map[string]chan struct{}{}, late: make(chan string, 4)}
}

func (c *testCC) gate(txid string) chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.release[txid] == nil {
		c.release[txid] = make(chan struct{})
	}
	return c.release[txid]
}

func (c *testCC) Init(stub shim.ChaincodeStubInterface) *peer.Response {
	return shim.Error("init refused")
}

func (c *testCC) Invoke(stub shim.ChaincodeStubInterface) *peer.Response {
	fn, args := stub.GetFunctionAndParameters()
	switch fn {
	case "put":
		for i := 0; i+1 < len(args); i += 2 {
			if err := stub.PutState(args[i], []byte(args[i+1])); err != nil {
				return shim.Error(err.Error())
			}
		}
		return shim.Success(nil)
	case "event":
		if err := stub.PutState("k", []byte("v")); err != nil {
			return shim.Error(err.Error())
		}
		if err := stub.SetEvent("Ev", []byte("payload")); err != nil {
			return shim.Error(err.Error())
		}
		return shim.Success([]byte("ok"))
	case "scan", "leak":
		return scanAll(stub, fn == "leak")
	case "page":
		return page(stub, args)
	case "history":
		return countHistory(stub, args[0])
	case "del":
		if err := stub.DelState(args[0]); err != nil {
			return shim.Error(err.Error())
		}
		return shim.Success(nil)
	case "get":
		v, err := stub.GetState(args[0])
		if err != nil {
			return shim.Error(err.Error())
		}
		return shim.Success(v)
	case "unsupported":
		return unsupportedCalls(stub)
	case "block":
		v, err := stub.GetState("a")
		if err != nil {
			return shim.Error(err.Error())
		}
		<-c.gate(stub.GetTxID())
		_, err = stub.GetState("a")
		c.late <- fmt.Sprint(err)
		return shim.Success(v)
	case "panic":
		panic("boom")
	}
	return shim.Error("unknown function " + fn)
}

// scanAll counts the whole key range in order; with leak it leaves the iterator open instead.
func scanAll(stub shim.ChaincodeStubInterface, leak bool) *peer.Response {
	it, err := stub.GetStateByRange("", "")
	if err != nil {
		return shim.Error(err.Error())
	}
	if leak {
		return shim.Success(nil) // never closed: the host closes it at the end of the tx
	}
	defer it.Close()
	n := 0
	last := ""
	for it.HasNext() {
		kv, err := it.Next()
		if err != nil {
			return shim.Error(err.Error())
		}
		if kv.Key <= last {
			return shim.Error("out of order: " + kv.Key)
		}
		last = kv.Key
		n++
	}
	return shim.Success([]byte(strconv.Itoa(n)))
}

// page reads one page (args: size, bookmark), then tries a write, which Fabric refuses after it.
func page(stub shim.ChaincodeStubInterface, args []string) *peer.Response {
	size, _ := strconv.Atoi(args[0])
	it, md, err := stub.GetStateByRangeWithPagination("", "", int32(size), args[1])
	if err != nil {
		return shim.Error(err.Error())
	}
	defer it.Close()
	var keys []string
	for it.HasNext() {
		kv, err := it.Next()
		if err != nil {
			return shim.Error(err.Error())
		}
		keys = append(keys, kv.Key)
	}
	werr := stub.PutState("x", []byte("y")) // Fabric refuses writes after a paginated query
	return shim.Success(fmt.Appendf(nil, "%d|%s|%d|%s|%v", len(keys), strings.Join(keys, ","), md.FetchedRecordsCount, md.Bookmark, werr))
}

// countHistory counts key's history entries, each with a txid and a timestamp.
func countHistory(stub shim.ChaincodeStubInterface, key string) *peer.Response {
	it, err := stub.GetHistoryForKey(key)
	if err != nil {
		return shim.Error(err.Error())
	}
	defer it.Close()
	n := 0
	for it.HasNext() {
		m, err := it.Next()
		if err != nil {
			return shim.Error(err.Error())
		}
		if m.TxId == "" || m.Timestamp == nil {
			return shim.Error("empty history entry")
		}
		n++
	}
	return shim.Success([]byte(strconv.Itoa(n)))
}

// unsupportedCalls makes each call the host does not serve and returns their errors, one a line.
func unsupportedCalls(stub shim.ChaincodeStubInterface) *peer.Response {
	var out []string
	_, err := stub.GetQueryResult(`{"selector":{}}`)
	out = append(out, fmt.Sprint(err))
	_, err = stub.GetPrivateData("coll", "k")
	out = append(out, fmt.Sprint(err))
	_, err = stub.GetStateValidationParameter("k")
	out = append(out, fmt.Sprint(err))
	r := stub.InvokeChaincode("other", [][]byte{[]byte("f")}, "")
	out = append(out, r.Message+string(r.Payload)) // the shim puts the peer's ERROR text in Payload
	return shim.Success([]byte(strings.Join(out, "\n")))
}

func TestProtocol(t *testing.T) {
	cc := newTestCC()
	e := inProcEnv(t, cc)

	// Event: ChaincodeId and TxId filled in.
	txid := e.txid()
	res, err := e.call(context.Background(), e.user, txid, "event")
	if err != nil || res.Response.Status != 200 || string(res.Response.Payload) != "ok" {
		t.Fatalf("event: %v %v", err, res)
	}
	if ev := res.Event; ev == nil || ev.ChaincodeId != ccName || ev.TxId != txid || ev.EventName != "Ev" || string(ev.Payload) != "payload" {
		t.Fatalf("event = %v", res.Event)
	}
	if v := e.ok(e.user, "get", "k"); string(v.Response.Payload) != "v" {
		t.Fatalf("get k = %q", v.Response.Payload)
	}
	e.ok(e.user, "del", "k")
	if v := e.ok(e.user, "get", "k"); len(v.Response.Payload) != 0 {
		t.Fatalf("get deleted k = %q", v.Response.Payload)
	}

	// 250 keys: three QueryResponse batches (100, 100, 50).
	var kv []string
	for i := range 250 {
		kv = append(kv, fmt.Sprintf("key%03d", i), "v")
	}
	e.ok(e.user, append([]string{"put"}, kv...)...)
	if r := e.ok(e.user, "scan"); string(r.Response.Payload) != "250" {
		t.Fatalf("scan = %s", r.Response.Payload)
	}
	e.ok(e.user, "leak")
	if n := e.st.openIters(); n != 0 {
		t.Fatalf("%d range iterators left open", n)
	}
	// Paginated: one response with metadata; writes refused afterwards.
	r := e.ok(e.user, "page", "3", "")
	want := "3|key000,key001,key002|3|key003|"
	if !strings.HasPrefix(string(r.Response.Payload), want) || !strings.Contains(string(r.Response.Payload), "paginated") {
		t.Fatalf("page = %q", r.Response.Payload)
	}
	r = e.ok(e.user, "page", "150", "key200")
	if !strings.HasPrefix(string(r.Response.Payload), "50|key200,") || !strings.Contains(string(r.Response.Payload), "|50||") {
		t.Fatalf("last page = %.60q...", r.Response.Payload)
	}
	// History: 150 versions, two batches.
	for range 149 {
		e.ok(e.user, "put", "h", "v")
	}
	e.ok(e.user, "put", "h", "v")
	if r := e.ok(e.user, "history", "h"); string(r.Response.Payload) != "150" {
		t.Fatalf("history = %s", r.Response.Payload)
	}

	// Init returning an error: the shim sends ERROR -> status 500.
	sp, in := signedProposal(t, channel, "init1", ccName, "Org1MSP", e.user, "init")
	sim := e.st.sim("init1")
	res, err = e.h.Execute(context.Background(), Request{ChannelID: channel, TxID: "init1", Input: in, SignedProposal: sp, Sim: sim, IsInit: true})
	sim.Done()
	if err != nil || res.Response.Status != 500 || res.Response.Message != "init refused" {
		t.Fatalf("init: %v %v", err, res)
	}

	// A panic is an error response, not the end of the program.
	res, err = e.call(context.Background(), e.user, e.txid(), "panic")
	if err != nil || res.Response.Status != 500 || !strings.Contains(res.Response.Message, "boom") {
		t.Fatalf("panic: %v %v", err, res)
	}
	if e.log.has("UNSUPPORTED") {
		t.Fatalf("unexpected UNSUPPORTED: %v", e.log.lines)
	}
}

func TestUnsupported(t *testing.T) {
	e := inProcEnv(t, newTestCC())
	r := e.ok(e.user, "unsupported")
	got := strings.Split(string(r.Response.Payload), "\n")
	for i, typ := range []string{"GET_QUERY_RESULT", "GET_STATE", "GET_STATE_METADATA", "INVOKE_CHAINCODE"} {
		if !strings.Contains(got[i], "devledger: "+typ+" is not supported by the embedded ledger") {
			t.Errorf("answer %d = %q, want %s not supported", i, got[i], typ)
		}
		if !e.log.has("UNSUPPORTED: " + typ) {
			t.Errorf("no UNSUPPORTED: %s log line in %q", typ, e.log.lines)
		}
	}
	if !strings.Contains(got[1], `private data collection "coll"`) {
		t.Errorf("private data answer = %q", got[1])
	}
}

func TestConcurrentAndAbandoned(t *testing.T) {
	cc := newTestCC()
	e := inProcEnv(t, cc)
	e.st.put(ccName, "a", []byte("A"), "seed")

	// tx1 blocks inside the chaincode; other txids run meanwhile.
	tx1 := "blocked-1"
	done1 := make(chan *Result, 1)
	go func() {
		res, err := e.call(context.Background(), e.user, tx1, "block")
		if err != nil {
			t.Error(err)
		}
		done1 <- res
	}()
	deadline := time.Now().Add(5 * time.Second)
	for e.h.(*host).cur.lookup(channel, tx1) == nil && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := e.call(context.Background(), e.user, fmt.Sprintf("par-%d", i), "get", "a")
			if err != nil || string(res.Response.Payload) != "A" {
				t.Errorf("parallel get %d: %v %v", i, err, res)
			}
		}()
	}
	wg.Wait()

	// Same txid while tx1 is in flight: refused.
	if _, err := e.call(context.Background(), e.user, tx1, "get", "a"); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("duplicate txid: %v", err)
	}
	// Same txid on another channel is another transaction.
	sp, in := signedProposal(t, "otherchannel", tx1, ccName, "Org1MSP", e.user, "get", "a")
	if res, err := e.h.Execute(context.Background(), Request{ChannelID: "otherchannel", TxID: tx1, Input: in, SignedProposal: sp, Sim: e.st.sim(tx1)}); err != nil || string(res.Response.Payload) != "A" {
		t.Fatalf("same txid, other channel: %v %v", err, res)
	}

	close(cc.gate(tx1))
	if res := <-done1; string(res.Response.Payload) != "A" {
		t.Fatalf("tx1 = %v", res)
	}
	<-cc.late

	// A timeout abandons the tx: the caller gets an error at once, the
	// chaincode's late request gets "no ledger context", its COMPLETED is
	// dropped, and the stream keeps working.
	tx2 := "blocked-2"
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	_, err := e.call(ctx, e.user, tx2, "block")
	cancel()
	if err == nil || !strings.Contains(err.Error(), "timeout expired") || !strings.Contains(err.Error(), tx2) {
		t.Fatalf("timed-out tx: %v", err)
	}
	close(cc.gate(tx2))
	if late := <-cc.late; !strings.Contains(late, "no ledger context") {
		t.Fatalf("late request answered %q", late)
	}
	deadline = time.Now().Add(5 * time.Second)
	for !e.log.has("dropping COMPLETED for transaction "+tx2) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if !e.log.has("dropping COMPLETED for transaction " + tx2) {
		t.Fatalf("late COMPLETED not dropped: %v", e.log.lines)
	}
	e.ok(e.user, "get", "a")

	// After Close, Execute fails clearly.
	e.h.Close()
	if _, err := e.call(context.Background(), e.user, "after-close", "get", "a"); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("after close: %v", err)
	}
}

// ccServer is a chaincode-as-a-service server as the fedcommittee binary runs
// it (shim.ChaincodeServer's Connect over gRPC+TLS), in this process so the
// test can stop and restart it.
type ccServer struct {
	srv  *grpc.Server
	addr string
}

func startCCServer(t *testing.T, addr string, cert tls.Certificate, cc shim.Chaincode) *ccServer {
	t.Helper()
	var lis net.Listener
	var err error
	for range 50 { // the port may take a moment to be free again after a stop
		if lis, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}})))
	peer.RegisterChaincodeServer(srv, &shim.ChaincodeServer{CCID: "fedcommittee_1.0:0123abcd", Address: addr, CC: cc})
	go srv.Serve(lis)
	return &ccServer{srv: srv, addr: lis.Addr().String()}
}

func TestCCaaS(t *testing.T) {
	cc, err := fedcommittee.NewChaincode()
	if err != nil {
		t.Fatal(err)
	}
	tlsCA := newCA(t, "tlsca.org1.test")
	certPEM, keyPEM := tlsCA.issue(t, "fedcommittee", "client", net.ParseIP("127.0.0.1"))
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	s := startCCServer(t, "127.0.0.1:0", cert, cc)
	t.Cleanup(func() { s.srv.Stop() })
	addr := s.addr

	var e *env
	e = newEnv(t, func(l *logs) Host {
		h, err := NewCCaaS(ccName, addr, tlsCA.pem, l.logf)
		if err != nil {
			t.Fatal(err)
		}
		return h
	})
	res := e.ok(e.user, "WhoAmI")
	if !strings.Contains(string(res.Response.Payload), `"mspId":"Org1MSP"`) {
		t.Fatalf("WhoAmI over CCaaS = %s", res.Response.Payload)
	}
	if !e.log.has(`registered as "fedcommittee_1.0:0123abcd"`) {
		t.Errorf("registration name not logged: %v", e.log.lines)
	}

	// Server gone: the next Execute fails, naming the address.
	s.srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_, err = e.call(ctx, e.user, e.txid(), "WhoAmI")
	cancel()
	if err == nil || !strings.Contains(err.Error(), addr) {
		t.Fatalf("Execute with the server down: %v", err)
	}
	t.Logf("server down: %v", err)
	// Still down: the redial is refused, again naming the address.
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	_, err = e.call(ctx, e.user, e.txid(), "WhoAmI")
	cancel()
	if err == nil || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "unavailable") {
		t.Fatalf("Execute with the server still down: %v", err)
	}
	t.Logf("still down: %v", err)

	// Restarted on the same address: redialled.
	s2 := startCCServer(t, addr, cert, cc)
	t.Cleanup(func() { s2.srv.Stop() })
	res = e.ok(e.user, "WhoAmI")
	if !strings.Contains(string(res.Response.Payload), `"mspId":"Org1MSP"`) {
		t.Fatalf("WhoAmI after restart = %s", res.Response.Payload)
	}

	// A wrong root CA is refused with a TLS error naming the address.
	other := newCA(t, "other")
	h, err := NewCCaaS(ccName, addr, other.pem, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	sp, in := signedProposal(t, channel, "tlsfail", ccName, "Org1MSP", e.user, "WhoAmI")
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := h.Execute(ctx, Request{ChannelID: channel, TxID: "tlsfail", Input: in, SignedProposal: sp, Sim: e.st.sim("tlsfail")}); err == nil || !strings.Contains(err.Error(), addr) {
		t.Fatalf("wrong CA: %v", err)
	}
}

// With maxInFlight transactions waiting to be sent, one more waits for a slot; if its caller gives
// up meanwhile it is never sent, and once slots free the stream serves again.
func TestInFlightBound(t *testing.T) {
	cc := newTestCC()
	e := inProcEnv(t, cc)
	e.st.put(ccName, "a", []byte("A"), "seed")
	h := e.h.(*host).cur
	for range maxInFlight { // a busy stream: every slot taken
		h.slots <- struct{}{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	_, err := e.call(ctx, e.user, "over-the-bound", "get", "a")
	cancel()
	if err == nil || !strings.Contains(err.Error(), "abandoned while waiting for the chaincode") {
		t.Fatalf("transaction beyond the bound: %v", err)
	}
	for range maxInFlight {
		<-h.slots
	}
	e.ok(e.user, "get", "a")
	if len(h.slots) != 0 {
		t.Fatalf("%d slots still taken after the transaction", len(h.slots))
	}
}
