package fedcommittee

import (
	"bytes"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

var (
	sha256Re   = regexp.MustCompile(`^[0-9a-f]{64}$`)
	modelIDRe  = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	nameRe     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$`)
	mspIDRe    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	certIDRe   = regexp.MustCompile(`^[A-Za-z0-9+/=]+$`)
	updateIDRe = regexp.MustCompile(`^[0-9a-f]{64}$`) // update id = the Fabric tx id
	base58Re   = regexp.MustCompile(`^Qm[1-9A-HJ-NP-Za-km-z]{44}$`)
	base32Re   = regexp.MustCompile(`^b[a-z2-7]{8,200}$`)
	b32        = base32.StdEncoding.WithPadding(base32.NoPadding)
)

// decodeStrict decodes one JSON object from input into out. Unknown fields,
// trailing data and oversized input are errors, so a typo in a field name can
// never be silently ignored.
func decodeStrict(what, input string, out any) error {
	if len(input) == 0 {
		return fmt.Errorf("%s: empty JSON input", what)
	}
	if len(input) > MaxInputBytes {
		return fmt.Errorf("%s: JSON input is %d bytes, limit is %d", what, len(input), MaxInputBytes)
	}
	if !bytes.HasPrefix(bytes.TrimSpace([]byte(input)), []byte("{")) {
		return fmt.Errorf("%s: invalid JSON: input must be an object", what)
	}
	dec := json.NewDecoder(strings.NewReader(input))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			typeErr.Field = jsonFieldPath(reflect.TypeOf(out), typeErr.Field)
		}
		return fmt.Errorf("%s: invalid JSON: %v", what, err)
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: invalid JSON: trailing data after the object", what)
	}
	return checkJSONKeys(what, input, reflect.TypeOf(out))
}

func checkSHA256(field, v string) error {
	if !sha256Re.MatchString(v) {
		return fmt.Errorf("%s: %q is not a sha256 (64 lowercase hex characters)", field, v)
	}
	return nil
}

// checkCID accepts CIDv0 (base58btc "Qm…", 46 chars: a sha2-256 multihash)
// and CIDv1 in lowercase base32 ("b…"), whose bytes must decode to
// version 1, a codec, and a well-formed multihash.
func checkCID(field, v string) error {
	if strings.HasPrefix(v, "Qm") {
		if !base58Re.MatchString(v) {
			return fmt.Errorf("%s: %q is not a CIDv0 (\"Qm\" followed by 44 base58 characters)", field, v)
		}
		// The pattern alone admits strings that decode to other multihashes.
		if raw := base58Decode(v); len(raw) != 34 || raw[0] != 0x12 || raw[1] != 0x20 {
			return fmt.Errorf("%s: %q is not a CIDv0: it does not decode to a sha2-256 multihash", field, v)
		}
		return nil
	}
	if !base32Re.MatchString(v) {
		return fmt.Errorf("%s: %q is not a CID (CIDv0 \"Qm…\" or CIDv1 lowercase base32 \"b…\")", field, v)
	}
	raw, err := b32.DecodeString(strings.ToUpper(v[1:]))
	if err != nil {
		return fmt.Errorf("%s: %q is not a CIDv1: base32 decoding failed", field, v)
	}
	if err := checkCIDv1Bytes(raw); err != nil {
		return fmt.Errorf("%s: %q is not a CIDv1: %v", field, v, err)
	}
	// Non-zero padding bits in the last character decode to the same bytes: one CID, several
	// spellings. Only the canonical one is accepted, so equal CIDs are equal strings.
	if "b"+strings.ToLower(b32.EncodeToString(raw)) != v {
		return fmt.Errorf("%s: %q is not a CIDv1 in canonical base32", field, v)
	}
	return nil
}

const base58Alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

// base58Decode decodes base58btc (Bitcoin alphabet); nil on a character outside it.
func base58Decode(s string) []byte {
	out := []byte{}
	for _, c := range []byte(s) {
		carry := strings.IndexByte(base58Alphabet, c)
		if carry < 0 {
			return nil
		}
		for i := len(out) - 1; i >= 0; i-- {
			carry += int(out[i]) * 58
			out[i] = byte(carry)
			carry >>= 8
		}
		for ; carry > 0; carry >>= 8 {
			out = append([]byte{byte(carry)}, out...)
		}
	}
	for i := 0; i < len(s) && s[i] == '1'; i++ {
		out = append([]byte{0}, out...)
	}
	return out
}

func checkCIDv1Bytes(raw []byte) error {
	version, n := uvarint(raw)
	if n <= 0 || version != 1 {
		return errors.New("version is not 1")
	}
	raw = raw[n:]
	if _, n = uvarint(raw); n <= 0 {
		return errors.New("bad codec")
	}
	raw = raw[n:]
	if _, n = uvarint(raw); n <= 0 {
		return errors.New("bad multihash code")
	}
	raw = raw[n:]
	length, n := uvarint(raw)
	if n <= 0 {
		return errors.New("bad multihash length")
	}
	if uint64(len(raw[n:])) != length || length == 0 {
		return errors.New("multihash digest length mismatch")
	}
	return nil
}

// uvarint decodes an unsigned varint (multiformats); n <= 0 on error.
func uvarint(b []byte) (uint64, int) {
	var x uint64
	var s uint
	for i, c := range b {
		if i == 9 {
			return 0, -1
		}
		if c < 0x80 {
			return x | uint64(c)<<s, i + 1
		}
		x |= uint64(c&0x7f) << s
		s += 7
	}
	return 0, 0
}

func checkObjectRef(field string, r ObjectRef) error {
	if err := checkCID(field+".cid", r.CID); err != nil {
		return err
	}
	return checkSHA256(field+".sha256", r.SHA256)
}

func checkModelID(v string) error {
	if !modelIDRe.MatchString(v) {
		return fmt.Errorf("modelId: %q must match %s", v, modelIDRe.String())
	}
	return nil
}

func checkUpdateID(field, v string) error {
	if !updateIDRe.MatchString(v) {
		return fmt.Errorf("%s: %q is not an update id (64 lowercase hex characters)", field, v)
	}
	return nil
}

// checkUpdateIDs checks a list of distinct update ids, each named
// field[i] in an error.
func checkUpdateIDs(field string, ids []string) error {
	for i, id := range ids {
		f := fmt.Sprintf("%s[%d]", field, i)
		if err := checkUpdateID(f, id); err != nil {
			return err
		}
		if slices.Contains(ids[:i], id) {
			return fmt.Errorf("%s: %s is listed twice", f, id)
		}
	}
	return nil
}

func checkName(field, v string) error {
	if !nameRe.MatchString(v) {
		return fmt.Errorf("%s: %q must match %s", field, v, nameRe.String())
	}
	return nil
}

// checkIdentityKey checks "<MSPID>/<base64 cert id>" as built by identityKey.
func checkIdentityKey(field, v string) (string, error) {
	msp, id, ok := strings.Cut(v, "/")
	if !ok || len(v) > 2200 || !mspIDRe.MatchString(msp) || !certIDRe.MatchString(id) {
		return "", fmt.Errorf("%s: %q is not an identity key (\"<MSPID>/<base64 client id>\")", field, v)
	}
	return msp, nil
}

func checkRole(v string) error {
	switch v {
	case RolePublisher, RoleProvider, RoleCommittee:
		return nil
	}
	return fmt.Errorf("role: %q is not one of publisher, provider, committee", v)
}

// checkText bounds free text (reasons) and keeps control characters out of
// the ledger and the logs.
func checkText(field, v string) error {
	if len(v) > MaxTextLen {
		return fmt.Errorf("%s: %d bytes, limit is %d", field, len(v), MaxTextLen)
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("%s: not valid UTF-8", field)
	}
	for _, r := range v {
		if unicode.IsControl(r) {
			return fmt.Errorf("%s: contains a control character", field)
		}
	}
	return nil
}

func checkFinite(field string, v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > MaxScoreAbs {
		return fmt.Errorf("%s: %v is out of range (|x| <= %g)", field, v, MaxScoreAbs)
	}
	return nil
}

func checkRange(field string, v, lo, hi int64) error {
	if v < lo || v > hi {
		return fmt.Errorf("%s: %d is out of range [%d, %d]", field, v, lo, hi)
	}
	return nil
}

// parseRoundArg parses a round number passed as a transaction argument.
func parseRoundArg(v string) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 || n > MaxRounds {
		return 0, fmt.Errorf("round: %q is not a round number in [1, %d]", v, MaxRounds)
	}
	return n, nil
}

// parseScoreArg parses a score passed as a transaction argument.
func parseScoreArg(v string) (float64, error) {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return 0, fmt.Errorf("score: %q is not a number", v)
	}
	return f, checkFinite("score", f)
}

// parsePageSize maps "" to the default and bounds the rest.
func parsePageSize(v string) (int32, error) {
	if v == "" {
		return DefaultPageSize, nil
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil || n < 1 || n > MaxPageSize {
		return 0, fmt.Errorf("pageSize: %q is not a number in [1, %d]", v, MaxPageSize)
	}
	return int32(n), nil
}

func checkScoreInRange(m *Model, field string, v float64) error {
	if err := checkFinite(field, v); err != nil {
		return err
	}
	if v < m.Acceptance.ScoreMin || v > m.Acceptance.ScoreMax {
		return fmt.Errorf("%s: %v is outside the model's score range [%v, %v]", field, v, m.Acceptance.ScoreMin, m.Acceptance.ScoreMax)
	}
	return nil
}
