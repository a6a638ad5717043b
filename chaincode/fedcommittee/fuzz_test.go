package fedcommittee

// Fuzz and property tests of the contract's input validation. Under plain
// `go test` every target runs its seed corpus; `go test -fuzz=FuzzXxx` explores.
//
// Each target checks, against an oracle written here independently of
// validate.go (own base58/base32/varint decoding, no regular expressions):
//   - nothing panics, whatever the input;
//   - a failed transaction writes nothing (env.tx enforces it);
//   - an input the oracle calls invalid is always rejected, and for the
//     single-value validators a valid one is always accepted.
//
// These targets found two gaps, since closed in validate.go: CIDv0 strings
// that match the pattern but do not decode to a sha2-256 multihash, and
// non-canonical CIDv1 base32 spellings of one CID. The oracle now tolerates
// neither.

import (
	"crypto/sha256"
	"encoding/json"
	"math"
	"math/big"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// ------------------------------------------------------------------ oracle

const b58Alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

func refSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func refBase58Decode(s string) ([]byte, bool) {
	n := new(big.Int)
	for i := 0; i < len(s); i++ {
		d := strings.IndexByte(b58Alphabet, s[i])
		if d < 0 {
			return nil, false
		}
		n.Mul(n, big.NewInt(58))
		n.Add(n, big.NewInt(int64(d)))
	}
	zeros := 0
	for zeros < len(s) && s[zeros] == '1' {
		zeros++
	}
	return append(make([]byte, zeros), n.Bytes()...), true
}

func refBase58Encode(b []byte) string {
	n := new(big.Int).SetBytes(b)
	var out []byte
	mod := new(big.Int)
	for n.Sign() > 0 {
		n.DivMod(n, big.NewInt(58), mod)
		out = append(out, b58Alphabet[mod.Int64()])
	}
	for _, c := range b {
		if c != 0 {
			break
		}
		out = append(out, '1')
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return string(out)
}

// realCIDv0 is a genuine CIDv0: base58btc of the sha2-256 multihash of s.
func realCIDv0(s string) string {
	sum := sha256.Sum256([]byte(s))
	return refBase58Encode(append([]byte{0x12, 0x20}, sum[:]...))
}

// refBase32Decode decodes RFC 4648 lowercase base32 without padding. canonical
// is false when the unused low bits of the last character are not zero.
func refBase32Decode(s string) (out []byte, canonical, ok bool) {
	const alpha = "abcdefghijklmnopqrstuvwxyz234567"
	switch len(s) % 8 {
	case 1, 3, 6:
		return nil, false, false
	}
	var acc uint64
	bits := 0
	for i := 0; i < len(s); i++ {
		d := strings.IndexByte(alpha, s[i])
		if d < 0 {
			return nil, false, false
		}
		acc = acc<<5 | uint64(d)
		bits += 5
		if bits >= 8 {
			bits -= 8
			out = append(out, byte(acc>>uint(bits)))
			acc &= (1 << uint(bits)) - 1
		}
	}
	return out, acc == 0, true
}

func refVarint(b []byte) (uint64, []byte, bool) {
	var x uint64
	for i := 0; i < len(b) && i < 9; i++ {
		x |= uint64(b[i]&0x7f) << (7 * uint(i))
		if b[i] < 0x80 {
			return x, b[i+1:], true
		}
	}
	return 0, nil, false
}

// refCID is the strict CID rule: CIDv0 = base58btc of a sha2-256 multihash
// (0x12 0x20 + 32 bytes); CIDv1 = "b" + canonical lowercase base32 (the
// contract allows 8..200 characters) of version 1, a codec and a multihash
// whose length prefix matches a non-empty digest.
func refCID(s string) bool {
	if strings.HasPrefix(s, "Qm") {
		raw, ok := refBase58Decode(s)
		return len(s) == 46 && ok && len(raw) == 34 && raw[0] == 0x12 && raw[1] == 0x20
	}
	raw, canonical, ok := refCIDv1(s)
	return ok && canonical && raw
}

func refCIDv1(s string) (wellFormed, canonical, ok bool) {
	if !strings.HasPrefix(s, "b") || len(s) < 9 || len(s) > 201 {
		return false, false, false
	}
	raw, canonical, ok := refBase32Decode(s[1:])
	if !ok {
		return false, false, false
	}
	version, rest, ok := refVarint(raw)
	if !ok || version != 1 {
		return false, canonical, true
	}
	if _, rest, ok = refVarint(rest); !ok { // codec
		return false, canonical, true
	}
	if _, rest, ok = refVarint(rest); !ok { // multihash code
		return false, canonical, true
	}
	length, rest, ok := refVarint(rest)
	if !ok || length == 0 || uint64(len(rest)) != length {
		return false, canonical, true
	}
	return true, canonical, true
}

func cidAcceptable(s string) bool { return refCID(s) }

func refName(s string) bool { // [A-Za-z0-9][A-Za-z0-9._+-]{0,63}
	if len(s) < 1 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
		if !alnum && (i == 0 || !strings.ContainsRune("._+-", rune(c))) {
			return false
		}
	}
	return true
}

func refModelID(s string) bool { // [a-z0-9][a-z0-9._-]{0,63}
	if len(s) < 1 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := '0' <= c && c <= '9' || 'a' <= c && c <= 'z'
		if !alnum && (i == 0 || !strings.ContainsRune("._-", rune(c))) {
			return false
		}
	}
	return true
}

func refText(s string) bool {
	if len(s) > MaxTextLen || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) && math.Abs(v) <= MaxScoreAbs }

// ------------------------------------------------------------------ single validators

var cidSeeds = []string{
	"QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",
	"bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",
	"bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
	"bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvykv", // non-canonical last character
	"Qm" + strings.Repeat("1", 44),                                // pattern-valid, not sha2-256
	"Qm" + strings.Repeat("z", 44),
	"", "Q", "Qm", "b", "baaaaaaaa", "bafy", "BAFY", "zQm", "Qm0OIl",
	"bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdia",
	"b" + strings.Repeat("a", 200), "b" + strings.Repeat("7", 201),
	"baeaqaaa", "bafyaaaaaaaaaaaaaaaaaaaaaaaaaaa\x00", "Qm\u00e9" + strings.Repeat("a", 42),
}

func FuzzCheckCID(f *testing.F) {
	for _, s := range cidSeeds {
		f.Add(s)
	}
	f.Add(realCIDv0("fuzz"))
	f.Fuzz(func(t *testing.T, s string) {
		err := checkCID("cid", s)
		if refCID(s) && err != nil {
			t.Fatalf("valid CID %q rejected: %v", s, err)
		}
		if err == nil && !cidAcceptable(s) {
			t.Fatalf("invalid CID %q accepted", s)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "cid: ") {
			t.Fatalf("error does not name the field: %v", err)
		}
	})
}

func FuzzCheckSHA256(f *testing.F) {
	for _, s := range []string{shaOf("x"), strings.ToUpper(shaOf("x")), shaOf("x")[:63], shaOf("x") + "0",
		strings.Repeat("g", 64), "", " " + shaOf("x")[1:], shaOf("x")[:63] + "\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := checkSHA256("sha256", s)
		if (err == nil) != refSHA256(s) {
			t.Fatalf("checkSHA256(%q) = %v, oracle says valid=%v", s, err, refSHA256(s))
		}
		if err != nil && !strings.HasPrefix(err.Error(), "sha256: ") {
			t.Fatalf("error does not name the field: %v", err)
		}
	})
}

// ------------------------------------------------------------------ whole transactions

// fuzzSpec is a valid model spec with genuine CIDs.
func fuzzSpec(id string) ModelSpec {
	s := spec(id)
	s.InitialWeights.CID = realCIDv0("w0")
	for i := range s.Committee {
		s.Committee[i].ShardCID = realCIDv0(s.Committee[i].Member)
	}
	return s
}

func FuzzPublishModel(f *testing.F) {
	valid := fuzzSpec("fz")
	f.Add(mustJSON(valid))
	gossip := fuzzSpec("fz-g")
	gossip.Mode, gossip.RoundRules = ModeGossip, RoundRules{MaxParents: 2}
	f.Add(mustJSON(gossip))
	bad := []func(*ModelSpec){
		func(s *ModelSpec) { s.ModelID = "Upper Case" },
		func(s *ModelSpec) { s.InitialWeights.CID = "QmNotACid" },
		func(s *ModelSpec) { s.InitialWeights.SHA256 = strings.ToUpper(s.InitialWeights.SHA256) },
		func(s *ModelSpec) { s.Quorum = 4 },
		func(s *ModelSpec) { s.Committee[1] = s.Committee[0] },
		func(s *ModelSpec) { s.Acceptance.Threshold = ptr(1.5) },
		func(s *ModelSpec) { s.RoundRules.MaxParents = 1 },
		func(s *ModelSpec) { s.RewardRules.AcceptReward = -1 },
		func(s *ModelSpec) { s.Governance = &GovernanceRule{Policy: "dictator", Orgs: []string{"Org1MSP"}} },
	}
	for _, mutate := range bad {
		s := fuzzSpec("fz")
		mutate(&s)
		f.Add(mustJSON(s))
	}
	for _, s := range []string{"", "{", "[]", "null", `{"modelId":"fz"}`, mustJSON(valid) + "{}",
		strings.Replace(mustJSON(valid), `"quorum":2`, `"quorum":"2"`, 1),
		strings.Replace(mustJSON(valid), `"quorum":2`, `"quorum":2,"owner":"me"`, 1),
		strings.Replace(mustJSON(valid), `"quorum":2`, `"quorum":2e400`, 1),
		`{"modelId":` + strings.Repeat("[", 10000) + `}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input string) {
		e := newEnv(t)
		e.setupRoles()
		var out string
		err := e.tx(pub, func(ctx ctxT) error {
			var err error
			out, err = e.cc.PublishModel(ctx, input)
			return err
		})
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		var m Model
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatalf("result is not a model: %v", err)
		}
		checkModelInvariants(t, input, &m)
	})
}

// checkModelInvariants: what the oracle requires of every published model.
func checkModelInvariants(t *testing.T, input string, m *Model) {
	t.Helper()
	fail := func(what string) { t.Fatalf("accepted a spec with %s: %s", what, input) }
	if len(input) > MaxInputBytes {
		fail("an oversize input")
	}
	if !refModelID(m.ID) {
		fail("a bad modelId")
	}
	if !refName(m.Architecture.Name) || !refName(m.Architecture.Version) || !refName(m.Metric.Name) {
		fail("a bad name")
	}
	if !refSHA256(m.SpecSHA256) || !refSHA256(m.InitialWeights.SHA256) || !cidAcceptable(m.InitialWeights.CID) {
		fail("a bad object reference")
	}
	if n := int64(len(m.Committee)); n < 1 || n > MaxCommittee || m.Quorum < 1 || m.Quorum > n {
		fail("a bad committee size or quorum")
	}
	seen := map[string]bool{}
	for _, s := range m.Committee {
		if seen[s.Member] || !cidAcceptable(s.ShardCID) || !refSHA256(s.ShardSHA256) {
			fail("a bad committee seat")
		}
		seen[s.Member] = true
	}
	a := m.Acceptance
	if !finite(a.ScoreMin) || !finite(a.ScoreMax) || a.ScoreMin >= a.ScoreMax {
		fail("a bad score range")
	}
	switch a.Rule {
	case RuleThreshold:
		if a.Threshold == nil || *a.Threshold < a.ScoreMin || *a.Threshold > a.ScoreMax || a.MinDelta != nil {
			fail("a bad threshold rule")
		}
	case RuleImprovement:
		if a.MinDelta == nil || a.Threshold != nil || *a.MinDelta < 0 || *a.MinDelta > a.ScoreMax-a.ScoreMin {
			fail("a bad improvement rule")
		}
	case RuleMajority:
		if a.Threshold != nil || a.MinDelta != nil {
			fail("a bad majority rule")
		}
	default:
		fail("an unknown acceptance rule")
	}
	r := m.RoundRules
	switch m.Mode {
	case ModeFederated:
		if r.MinAccepted < 1 || r.MinAccepted > MaxMinAccepted || r.DeadlineSeconds < 1 ||
			r.DeadlineSeconds > MaxDeadlineSeconds || r.MaxRounds < 1 || r.MaxRounds > MaxRounds || r.MaxParents != 0 {
			fail("bad federated round rules")
		}
	case ModeGossip:
		if r.MaxParents < 1 || r.MaxParents > MaxParents || r.MinAccepted != 0 || r.DeadlineSeconds != 0 || r.MaxRounds != 0 {
			fail("bad gossip round rules")
		}
	default:
		fail("an unknown mode")
	}
	for _, v := range []int64{m.RewardRules.AcceptReward, m.RewardRules.RejectPenalty, m.RewardRules.VerdictReward} {
		if v < 0 || v > MaxRewardValue {
			fail("a reward out of range")
		}
	}
	if m.Status != ModelProposed || m.Publisher != pub.key() {
		fail("a wrong status or publisher")
	}
}

// activeFuzzModel: an active federated model "fz" (round 1 open on the
// initial weights) with committee com1..com3, quorum 2.
func activeFuzzModel(t *testing.T) *env {
	e := newEnv(t)
	e.setupRoles()
	s := fuzzSpec("fz")
	e.activeModel(s)
	return e
}

func fuzzUpdate(name string) map[string]any {
	return map[string]any{"round": 1, "baseCid": realCIDv0("w0"), "baseSha256": shaOf("w0"),
		"cid": realCIDv0(name), "sha256": shaOf(name), "numSamples": 100, "metrics": map[string]float64{"loss": 0.3}}
}

func FuzzSubmitUpdate(f *testing.F) {
	f.Add(mustJSON(fuzzUpdate("u")))
	for _, mutate := range []func(map[string]any){
		func(u map[string]any) { u["round"] = 2 },
		func(u map[string]any) { u["round"] = "1" },
		func(u map[string]any) { u["cid"] = "QmShort" },
		func(u map[string]any) { u["sha256"] = strings.ToUpper(shaOf("u")) },
		func(u map[string]any) { u["baseSha256"] = shaOf("other") },
		func(u map[string]any) { u["numSamples"] = 0 },
		func(u map[string]any) { u["numSamples"] = MaxSamples + 1 },
		func(u map[string]any) { u["metrics"] = map[string]float64{"lo ss": 1} },
		func(u map[string]any) { u["parents"] = []string{shaOf("p")} },
		func(u map[string]any) { u["weights"] = "AAAA" },
		func(u map[string]any) { u["metrics"] = map[string]any{"loss": "low"} },
	} {
		u := fuzzUpdate("u")
		mutate(u)
		f.Add(mustJSON(u))
	}
	for _, s := range []string{"", "{", "[]", `{"round":1}{}`, `{"round":1e999}`, `{"numSamples":-0}`,
		`{"metrics":{"a":1e308,"b":-1e308}}`, strings.Repeat(" ", 70000) + "{}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input string) {
		e := activeFuzzModel(t)
		var out string
		err := e.tx(prov1, func(ctx ctxT) error {
			var err error
			out, err = e.cc.SubmitUpdate(ctx, "fz", input)
			return err
		})
		if err != nil {
			return
		}
		var u Update
		if err := json.Unmarshal([]byte(out), &u); err != nil {
			t.Fatalf("result is not an update: %v", err)
		}
		fail := func(what string) { t.Fatalf("accepted an update with %s: %s", what, input) }
		if len(input) > MaxInputBytes {
			fail("an oversize input")
		}
		if u.Round != 1 || u.BaseCID != realCIDv0("w0") || u.BaseSHA256 != shaOf("w0") || len(u.Parents) != 0 {
			fail("a wrong round or base")
		}
		if !cidAcceptable(u.CID) || !refSHA256(u.SHA256) {
			fail("a bad object reference")
		}
		if u.NumSamples < 1 || u.NumSamples > MaxSamples {
			fail("numSamples out of range")
		}
		if len(u.Metrics) > MaxMetrics {
			fail("too many metrics")
		}
		for k, v := range u.Metrics {
			if !refName(k) || !finite(v) {
				fail("a bad metric")
			}
		}
		if u.Provider != prov1.key() || u.Status != UpdatePending {
			fail("a wrong provider or status")
		}
	})
}

func FuzzSubmitVerdict(f *testing.F) {
	for _, s := range []string{`{"score":0.9,"accept":true}`, `{"score":0.1,"accept":false,"reason":"worse"}`,
		`{"score":1.5,"accept":true}`, `{"score":-0.0,"accept":true}`, `{"accept":true}`, `{"score":0.5}`,
		`{"score":"0.5","accept":true}`, `{"score":0.5,"accept":"yes"}`, `{"score":0.5,"accept":1}`,
		`{"score":0.5,"accept":true,"reason":"a\u0000b"}`, `{"score":0.5,"accept":true,"bonus":5}`,
		`{"score":0.5,"accept":true,"reason":"` + strings.Repeat("x", 600) + `"}`,
		`{"score":0.5,"accept":true}{"score":0.9}`, `{"score":1e999,"accept":true}`, `{"score":null,"accept":null}`,
		`{"score":0.5,"accept":true,"reason":"\ud800"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input string) {
		e := activeFuzzModel(t)
		u, err := e.submit(prov1, "fz", fuzzUpdate("u"))
		if err != nil {
			t.Fatal(err)
		}
		err = e.tx(com1, func(ctx ctxT) error { return e.cc.SubmitVerdict(ctx, u.ID, input) })
		if err != nil {
			return
		}
		var vs []Verdict
		if err := e.query(nobody, &vs, func(ctx ctxT) (string, error) { return e.cc.GetVerdicts(ctx, u.ID) }); err != nil {
			t.Fatal(err)
		}
		if len(vs) != 1 {
			t.Fatalf("%d verdicts stored", len(vs))
		}
		v := vs[0]
		if len(input) > MaxInputBytes || !finite(v.Score) || v.Score < 0 || v.Score > 1 || !refText(v.Reason) {
			t.Fatalf("accepted an invalid verdict: %s", input)
		}
		// Both fields are required: the raw input must name them (exact keys or, as encoding/json
		// matches them, any letter case).
		var raw map[string]json.RawMessage
		if json.Unmarshal([]byte(input), &raw) != nil {
			t.Fatalf("accepted a verdict that is not a JSON object: %s", input)
		}
		has := func(key string) bool {
			for k, val := range raw {
				if strings.EqualFold(k, key) && string(val) != "null" {
					return true
				}
			}
			return false
		}
		if !has("score") || !has("accept") {
			t.Fatalf("accepted a verdict without score or accept: %s", input)
		}
	})
}
