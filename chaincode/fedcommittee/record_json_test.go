package fedcommittee

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

// fullModel sets every field of a Model, optional ones included, so that the
// golden JSON below pins each field's name, order and omitempty behaviour.
func fullModel() Model {
	var m Model
	m.DocType, m.ID, m.Publisher = "model", "m1", "Org1MSP/cHVi"
	m.Architecture = ArchitectureRef{Name: "mnist_cnn", Version: "1.0.0"}
	m.SpecSHA256 = "aa"
	m.InitialWeights = ObjectRef{CID: "Qm0", SHA256: "bb"}
	m.Metric = Metric{Name: "accuracy", HigherIsBetter: true}
	m.Acceptance = Acceptance{Rule: RuleThreshold, Threshold: ptr(0.5), MinDelta: ptr(0.1), ScoreMin: 0, ScoreMax: 1}
	m.Quorum = 2
	m.Committee = []CommitteeSeat{{Member: "Org1MSP/YQ==", ShardCID: "Qm1", ShardSHA256: "cc"}}
	m.Mode = ModeFederated
	m.RoundRules = RoundRules{MinAccepted: 1, DeadlineSeconds: 60, MaxRounds: 3, MaxParents: 0}
	m.RewardRules = RewardRules{AcceptReward: 10, RejectPenalty: 2, VerdictReward: 1}
	m.Allocation = &AllocationRule{Rule: AllocRandom, K: 2}
	m.Stopping = &StoppingRule{Target: ptr(0.9), Patience: 2, MinDelta: 0.01}
	m.Governance = &GovernanceRule{Policy: PolicyMajority, Orgs: []string{"Org1MSP"}}
	m.Rotation = &RotationRule{Size: 2, Candidates: []CommitteeSeat{{Member: "Org2MSP/Yg==", ShardCID: "Qm2", ShardSHA256: "dd"}}}
	m.Profile = &ModelProfile{Purpose: "digits", DataType: "image", DataFormat: "png", TrainingSamples: 10, Parameters: 20}
	m.Status, m.Approvals, m.Rejections = ModelActive, 2, 1
	m.Baseline = ptr(0.45)
	m.CurrentRound = 2
	m.Global = &ObjectRef{CID: "Qm3", SHA256: "ee"}
	m.Final = &ObjectRef{CID: "Qm4", SHA256: "ff"}
	m.FinalUpdate = "u1"
	m.AllocationSeed = "seed"
	m.Best = &BestModel{Round: 1, CID: "Qm5", SHA256: "gg", Score: 0.7}
	m.Stale, m.StopReason, m.RuleChanges = 1, StopTarget, 3
	m.CreatedTx, m.CreatedAt, m.UpdatedAt = "tx0", 100, 200
	return m
}

// fullData sets every field of a DataRegistration.
func fullData() *DataRegistration {
	d := &DataRegistration{DocType: "data", ModelID: "m1", Provider: "Org1MSP/cHJvdg==", TxID: "tx1", RegisteredAt: 1, UpdatedAt: 2}
	d.NumSamples, d.DataType, d.Format, d.ShareHistogram = 10, "image", "png", true
	d.LabelHistogram, d.Description = map[string]int64{"0": 4, "1": 6}, "scans"
	return d
}

// Written from the Model struct as it was before it embedded ModelSpec: the
// stored record and every query result must stay byte-identical.
const goldenFullModel = `{"docType":"model","id":"m1","publisher":"Org1MSP/cHVi","architecture":{"name":"mnist_cnn","version":"1.0.0"},"specSha256":"aa","initialWeights":{"cid":"Qm0","sha256":"bb"},"metric":{"name":"accuracy","higherIsBetter":true},"acceptance":{"rule":"threshold","threshold":0.5,"minDelta":0.1,"scoreMin":0,"scoreMax":1},"quorum":2,"committee":[{"member":"Org1MSP/YQ==","shardCid":"Qm1","shardSha256":"cc"}],"mode":"federated","roundRules":{"minAccepted":1,"deadlineSeconds":60,"maxRounds":3,"maxParents":0},"rewardRules":{"acceptReward":10,"rejectPenalty":2,"verdictReward":1},"status":"active","approvals":2,"rejections":1,"baseline":0.45,"currentRound":2,"global":{"cid":"Qm3","sha256":"ee"},"final":{"cid":"Qm4","sha256":"ff"},"finalUpdate":"u1","allocation":{"rule":"random","k":2},"stopping":{"target":0.9,"patience":2,"minDelta":0.01},"governance":{"policy":"majority","orgs":["Org1MSP"]},"rotation":{"size":2,"candidates":[{"member":"Org2MSP/Yg==","shardCid":"Qm2","shardSha256":"dd"}]},"profile":{"purpose":"digits","dataType":"image","dataFormat":"png","trainingSamples":10,"parameters":20},"allocationSeed":"seed","best":{"round":1,"cid":"Qm5","sha256":"gg","score":0.7},"roundsWithoutImprovement":1,"stopReason":"target","ruleChanges":3,"createdTx":"tx0","createdAt":100,"updatedAt":200}`

const goldenEmptyModel = `{"docType":"","id":"","publisher":"","architecture":{"name":"","version":""},"specSha256":"","initialWeights":{"cid":"","sha256":""},"metric":{"name":"","higherIsBetter":false},"acceptance":{"rule":"","scoreMin":0,"scoreMax":0},"quorum":0,"committee":null,"mode":"","roundRules":{"minAccepted":0,"deadlineSeconds":0,"maxRounds":0,"maxParents":0},"rewardRules":{"acceptReward":0,"rejectPenalty":0,"verdictReward":0},"status":"","approvals":0,"rejections":0,"currentRound":0,"createdTx":"","createdAt":0,"updatedAt":0}`

func TestModelJSONUnchanged(t *testing.T) {
	full := fullModel()
	b, err := json.Marshal(&full)
	require.NoError(t, err)
	require.Equal(t, goldenFullModel, string(b))
	b, err = json.Marshal(&Model{})
	require.NoError(t, err)
	require.Equal(t, goldenEmptyModel, string(b))
	// And back: a stored record decodes into the same value.
	var back Model
	require.NoError(t, json.Unmarshal([]byte(goldenFullModel), &back))
	require.Equal(t, full, back)
}

// Written from DataRegistration as it was before it embedded DataInput.
const goldenFullData = `{"docType":"data","modelId":"m1","provider":"Org1MSP/cHJvdg==","numSamples":10,"dataType":"image","format":"png","shareHistogram":true,"labelHistogram":{"0":4,"1":6},"description":"scans","txId":"tx1","registeredAt":1,"updatedAt":2}`

const goldenEmptyData = `{"docType":"","modelId":"","provider":"","numSamples":0,"dataType":"","format":"","shareHistogram":false,"txId":"","registeredAt":0,"updatedAt":0}`

func TestDataRegistrationJSONUnchanged(t *testing.T) {
	b, err := json.Marshal(fullData())
	require.NoError(t, err)
	require.Equal(t, goldenFullData, string(b))
	b, err = json.Marshal(&DataRegistration{})
	require.NoError(t, err)
	require.Equal(t, goldenEmptyData, string(b))
}
