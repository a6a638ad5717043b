package fedcommittee

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCIDValidator(t *testing.T) {
	good := []string{
		"QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",              // CIDv0
		"bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi", // CIDv1 dag-pb sha2-256
		"bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", // CIDv1 raw sha2-256
	}
	for _, c := range good {
		require.NoError(t, checkCID("cid", c), c)
	}
	bad := map[string]string{
		"":   "is not a CID",
		"Qm": "is not a CIDv0",
		"Qm0000000000000000000000000000000000000000000O":               "is not a CIDv0", // 0 and O are not base58
		"QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdGx":              "is not a CIDv0",
		"BAFYBEIGDYRZT5SFP7UDM7HU76UH7Y26NF3EFUYLQABF3OCLGTQY55FBZDI":  "is not a CID",
		"bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzd":   "digest length mismatch",
		"bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdia": "is not a CIDv1",
		"baaaaaaaaaaaaaaaa": "version is not 1",
		"zb2rhe5P4gXftAwvA4eXQ5HJwsER2owDyS9sKaQRRVQPn93bA": "is not a CID",
		"b" + strings.Repeat("a", 300):                      "is not a CID",
		// Pattern-valid, but decodes to something other than a sha2-256 multihash.
		"Qm" + strings.Repeat("1", 44): "does not decode to a sha2-256 multihash",
		// The same bytes as the raw CIDv1 above, spelled with non-zero padding bits.
		"bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvykv": "not a CIDv1 in canonical base32",
	}
	for c, want := range bad {
		errContains(t, checkCID("cid", c), want)
	}
	// Truncated CIDv1 bytes at every stage.
	for _, raw := range [][]byte{{}, {0x01}, {0x01, 0x70}, {0x01, 0x70, 0x12}, {0x01, 0x70, 0x12, 0x00}, {0x01, 0x70, 0x12, 0x80}} {
		require.Error(t, checkCIDv1Bytes(raw), "%x", raw)
	}
	_, n := uvarint([]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80})
	require.Equal(t, -1, n)
	v, n := uvarint([]byte{0xac, 0x02})
	require.Equal(t, uint64(300), v)
	require.Equal(t, 2, n)
}

func TestSmallValidators(t *testing.T) {
	require.NoError(t, checkSHA256("h", shaOf("x")))
	errContains(t, checkSHA256("h", strings.ToUpper(shaOf("x"))), "64 lowercase hex")
	_, err := checkIdentityKey("k", "Org1MSP/"+strings.Repeat("A", 2300))
	errContains(t, err, "is not an identity key")
	_, err = parseRoundArg("10001")
	errContains(t, err, "[1, 10000]")
	f, err := parseScoreArg("0.25")
	require.NoError(t, err)
	require.Equal(t, 0.25, f)
	_, err = parseScoreArg("Inf")
	errContains(t, err, "out of range")
	n, err := parsePageSize("")
	require.NoError(t, err)
	require.Equal(t, int32(DefaultPageSize), n)
	require.InDelta(t, 0.5, reputation(0, 0), 1e-12)
	require.InDelta(t, 0.75, reputation(2, 0), 1e-12)
}

func TestDecodeStrictKeys(t *testing.T) {
	type inner struct {
		Score float64 `json:"score"`
	}
	type doc struct {
		CID     string             `json:"cid"`
		Metrics map[string]float64 `json:"metrics"`
		Items   []inner            `json:"items"`
	}
	var d doc
	require.NoError(t, decodeStrict("update", `{"cid":"x","metrics":{"Acc":1,"acc":2},"items":[{"score":1}]}`, &d))
	require.Equal(t, map[string]float64{"Acc": 1, "acc": 2}, d.Metrics, "map keys are data: any case")
	for input, want := range map[string]string{
		`{"CID":"x"}`:                         `unknown field "CID" (field names are case-sensitive)`,
		`{"cid":"x","cid":"y"}`:               `duplicate key "cid"`,
		`{"metrics":{"a":1,"a":2}}`:           `update.metrics: invalid JSON: duplicate key "a"`,
		`{"items":[{"score":1},{"Score":2}]}`: `update.items[1]: invalid JSON: unknown field "Score"`,
	} {
		var d doc
		errContains(t, decodeStrict("update", input, &d), want)
	}
}

// A wrongly typed field is named as the input spells it, whatever Go
// structs the record is built from: the messages below are those the
// contract gave before ModelSpec was split into embedded parts.
func TestDecodeErrorNamesTheJSONField(t *testing.T) {
	const prefix = "PublishModel input: invalid JSON: json: cannot unmarshal "
	for in, want := range map[string]string{
		`{"quorum":"2"}`:                               "string into Go struct field ModelSpec.quorum of type int64",
		`{"committee":[{"member":1}]}`:                 "number into Go struct field CommitteeSeat.committee.member of type string",
		`{"rotation":{"candidates":[{"shardCid":2}]}}`: "number into Go struct field CommitteeSeat.rotation.candidates.shardCid of type string",
		`{"acceptance":{"threshold":"x"}}`:             "string into Go struct field Acceptance.acceptance.threshold of type float64",
		`{"architecture":{"name":3}}`:                  "number into Go struct field ArchitectureRef.architecture.name of type string",
	} {
		var spec ModelSpec
		require.EqualError(t, decodeStrict("PublishModel input", in, &spec), prefix+want)
	}
	var d DataInput
	require.EqualError(t, decodeStrict("RegisterData input", `{"numSamples":"x"}`, &d),
		"RegisterData input: invalid JSON: json: cannot unmarshal string into Go struct field DataInput.numSamples of type int64")
}
