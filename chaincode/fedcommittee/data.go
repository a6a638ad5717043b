package fedcommittee

import (
	"fmt"
	"strconv"

	"github.com/hyperledger/fabric-contract-api-go/v2/contractapi"
)

// Key types of the protocol rules.
const (
	keyData       = "data"    // data~modelId~provider               DataRegistration
	keyDataCount  = "datacnt" // datacnt~modelId                     number of registrations
	keyAllocation = "alloc"   // alloc~modelId~round(%06d)           Allocation
	keyRotation   = "rot"     // rot~modelId~round(%06d)             Rotation (committee of that round)
	keyRuleChange = "rchange" // rchange~proposalId                  RuleChange
	keyRuleModel  = "rcmodel" // rcmodel~modelId~proposalId          index
)

// DataInput is the RegisterData input document: metadata about a provider's
// data set, never its content.
type DataInput struct {
	NumSamples     int64            `json:"numSamples"`
	DataType       string           `json:"dataType"`
	Format         string           `json:"format"`
	ShareHistogram bool             `json:"shareHistogram"`
	LabelHistogram map[string]int64 `json:"labelHistogram,omitempty"`
	Description    string           `json:"description,omitempty"`
}

// DataRegistration is a provider's data set metadata for one model.
type DataRegistration struct {
	DocType        string           `json:"docType"`
	ModelID        string           `json:"modelId"`
	Provider       string           `json:"provider"`
	NumSamples     int64            `json:"numSamples"`
	DataType       string           `json:"dataType"`
	Format         string           `json:"format"`
	ShareHistogram bool             `json:"shareHistogram"`
	LabelHistogram map[string]int64 `json:"labelHistogram,omitempty"`
	Description    string           `json:"description,omitempty"`
	TxID           string           `json:"txId"`
	RegisteredAt   int64            `json:"registeredAt"`
	UpdatedAt      int64            `json:"updatedAt"`
}

// RegisterData records (or replaces) the caller's data set metadata for a
// proposed or active model. The caller must hold the provider role. A label
// histogram is accepted only with shareHistogram true (the data owner's
// consent) and must not count more samples than numSamples. Registered
// providers are the pool of the random and reputation allocation rules.
func (c *Contract) RegisterData(ctx contractapi.TransactionContextInterface, modelID, input string) (string, error) {
	t, err := newTx(ctx)
	if err != nil {
		return "", err
	}
	who, err := getCaller(ctx)
	if err != nil {
		return "", err
	}
	if err := t.requireRole(who, RoleProvider); err != nil {
		return "", err
	}
	m, err := t.loadModel(modelID)
	if err != nil {
		return "", err
	}
	if m.Status != ModelProposed && m.Status != ModelActive {
		return "", fmt.Errorf("model %s is %s: data can no longer be registered", m.ID, m.Status)
	}
	var in DataInput
	if err := decodeStrict("RegisterData input", input, &in); err != nil {
		return "", err
	}
	if err := validateData(&in); err != nil {
		return "", err
	}
	dk, err := t.key(keyData, m.ID, who.Key)
	if err != nil {
		return "", err
	}
	var d DataRegistration
	found, err := t.getJSON(dk, &d)
	if err != nil {
		return "", err
	}
	if !found {
		n, err := t.dataCount(m.ID)
		if err != nil {
			return "", err
		}
		if n >= MaxDataRegistrants {
			return "", fmt.Errorf("model %s already has %d data registrations (limit)", m.ID, n)
		}
		ck, err := t.key(keyDataCount, m.ID)
		if err != nil {
			return "", err
		}
		if err := t.stub.PutState(ck, []byte(strconv.FormatInt(n+1, 10))); err != nil {
			return "", fmt.Errorf("writing state: %v", err)
		}
		d.RegisteredAt = t.now
	}
	d = DataRegistration{DocType: "data", ModelID: m.ID, Provider: who.Key, NumSamples: in.NumSamples,
		DataType: in.DataType, Format: in.Format, ShareHistogram: in.ShareHistogram,
		LabelHistogram: in.LabelHistogram, Description: in.Description, TxID: t.txID,
		RegisteredAt: d.RegisteredAt, UpdatedAt: t.now}
	if err := t.putJSON(dk, &d); err != nil {
		return "", err
	}
	if err := t.emit(Event{Type: EvDataRegistered, ModelID: m.ID, Mode: m.Mode, Status: m.Status,
		Provider: who.Key, Count: d.NumSamples}, who.Key); err != nil {
		return "", err
	}
	return toJSON(&d)
}

func validateData(in *DataInput) error {
	if err := checkRange("numSamples", in.NumSamples, 1, MaxSamples); err != nil {
		return err
	}
	if err := checkName("dataType", in.DataType); err != nil {
		return err
	}
	if err := checkName("format", in.Format); err != nil {
		return err
	}
	if err := checkText("description", in.Description); err != nil {
		return err
	}
	if len(in.LabelHistogram) > 0 && !in.ShareHistogram {
		return fmt.Errorf("labelHistogram: given but shareHistogram is false (the data owner has not allowed it)")
	}
	if len(in.LabelHistogram) > MaxHistogramBins {
		return fmt.Errorf("labelHistogram: %d bins, limit is %d", len(in.LabelHistogram), MaxHistogramBins)
	}
	var sum int64
	for _, label := range sortedKeys(in.LabelHistogram) {
		if err := checkName("labelHistogram key", label); err != nil {
			return err
		}
		n := in.LabelHistogram[label]
		if err := checkRange("labelHistogram."+label, n, 0, in.NumSamples); err != nil {
			return err
		}
		sum += n
	}
	if sum > in.NumSamples {
		return fmt.Errorf("labelHistogram: counts sum to %d, more than numSamples %d", sum, in.NumSamples)
	}
	if len(in.LabelHistogram) == 0 {
		in.LabelHistogram = nil
	}
	return nil
}

// dataCount reads the number of data registrations of a model.
func (t *txCtx) dataCount(modelID string) (int64, error) {
	ck, err := t.key(keyDataCount, modelID)
	if err != nil {
		return 0, err
	}
	b, err := t.getState(ck)
	if err != nil {
		return 0, err
	}
	if b == nil {
		return 0, nil
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("decoding stored record: bad registration count")
	}
	return n, nil
}

// GetDataRegistration returns one provider's data registration for a model.
func (c *Contract) GetDataRegistration(ctx contractapi.TransactionContextInterface, modelID, provider string) (string, error) {
	t, err := newTx(ctx)
	if err != nil {
		return "", err
	}
	if err := checkModelID(modelID); err != nil {
		return "", err
	}
	if _, err := checkIdentityKey("provider", provider); err != nil {
		return "", err
	}
	dk, err := t.key(keyData, modelID, provider)
	if err != nil {
		return "", err
	}
	var d DataRegistration
	found, err := t.getJSON(dk, &d)
	if err != nil {
		return "", err
	}
	if !found {
		return "", fmt.Errorf("provider %s has no data registration for model %s", provider, modelID)
	}
	return toJSON(&d)
}

// ListDataRegistrations pages through the data registrations of a model,
// ordered by provider identity.
func (c *Contract) ListDataRegistrations(ctx contractapi.TransactionContextInterface, modelID, pageSize, bookmark string) (string, error) {
	t, err := newTx(ctx)
	if err != nil {
		return "", err
	}
	if err := checkModelID(modelID); err != nil {
		return "", err
	}
	return t.pageOf(keyData, []string{modelID}, pageSize, bookmark, func(b []byte) (any, error) {
		var d DataRegistration
		return d, jsonUnmarshal(b, &d)
	})
}
