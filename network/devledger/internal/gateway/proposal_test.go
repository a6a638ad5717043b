package gateway

import (
	"strings"
	"testing"

	"github.com/hyperledger/fabric-protos-go-apiv2/common"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"google.golang.org/protobuf/proto"
)

// A proposal broken at each layer is refused with the endorser's words, naming that layer's message.
func TestUnpackProposalNamesTheMessageThatDidNotParse(t *testing.T) {
	garbage := []byte{0xff, 0xff, 0xff}
	mustMarshal := func(m proto.Message) []byte {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := map[string][]byte{
		"error unmarshalling Proposal: ":      garbage,
		"error unmarshalling Header: ":        mustMarshal(&peer.Proposal{Header: garbage}),
		"error unmarshalling ChannelHeader: ": mustMarshal(&peer.Proposal{Header: mustMarshal(&common.Header{ChannelHeader: garbage})}),
	}
	for want, bytes := range cases {
		_, err := unpackProposal(&peer.SignedProposal{ProposalBytes: bytes})
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("got %v, want an error starting %q", err, want)
		}
	}
}
