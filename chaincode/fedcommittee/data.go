package fedcommittee

import (
	"fmt"

	"github.com/hyperledger/fabric-contract-api-go/v2/contractapi"
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

// DataRegistration is a provider's data set metadata for one model: its
// DataInput, where the record has always had those fields.
type DataRegistration struct {
	DocType  string `json:"docType"`
	ModelID  string `json:"modelId"`
	Provider string `json:"provider"`
	DataInput
	TxID         string `json:"txId"`
	RegisteredAt int64  `json:"registeredAt"`
	UpdatedAt    int64  `json:"updatedAt"`
}

// RegisterData records (or replaces) the caller's data set metadata for a
// proposed or active model. The caller must hold the provider role. A label
// histogram is accepted only with shareHistogram true (the data owner's
// consent) and must not count more samples than numSamples. Registered
// providers are the pool of the random and reputation allocation rules.
//
// The transaction reads and writes only the caller's own registration, so
// any number of providers can register in one block without conflicting.
// There is deliberately no per-model count: a counter that every provider
// writes made concurrent registrations conflict (MVCC) with each other.
// MaxDataRegistrants is kept where it matters, by the transactions that
// read every registration: the allocation of a round (allocate) takes the
// pool from at most that many registrations, and a round closes short of
// minAccepted (everyoneFinal) only when there are fewer.
func (c *Contract) RegisterData(ctx contractapi.TransactionContextInterface, modelID, input string) (string, error) {
	var in DataInput
	return runJSON(ctx, opening{holds(RoleProvider), onModel(modelID),
		modelIs(": data can no longer be registered", ModelProposed, ModelActive),
		decoded("RegisterData input", input, &in), valid(in.check)},
		func(t *txCtx) (any, error) {
			m, who := t.model, t.who
			prev, found, err := t.findData(m.ID, who.Key)
			if err != nil {
				return nil, err
			}
			d := DataRegistration{DocType: "data", ModelID: m.ID, Provider: who.Key, DataInput: in,
				TxID: t.txID, RegisteredAt: t.now, UpdatedAt: t.now}
			if found {
				d.RegisteredAt = prev.RegisteredAt
			}
			if err := t.saveData(&d); err != nil {
				return nil, err
			}
			return &d, t.emit(Event{Type: EvDataRegistered, ModelID: m.ID, Mode: m.Mode, Status: m.Status,
				Provider: who.Key, Count: d.NumSamples})
		})
}

func (in *DataInput) check() error {
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

// GetDataRegistration returns one provider's data registration for a model.
func (c *Contract) GetDataRegistration(ctx contractapi.TransactionContextInterface, modelID, provider string) (string, error) {
	return query(ctx, opening{modelIDArg(modelID), identityArg("provider", provider)}, func(t *txCtx) (any, error) {
		d, found, err := t.findData(modelID, provider)
		if err == nil && !found {
			err = notFound("provider %s has no data registration for model %s", provider, modelID)
		}
		return d, err
	})
}

// ListDataRegistrations pages through the data registrations of a model,
// ordered by provider identity.
func (c *Contract) ListDataRegistrations(ctx contractapi.TransactionContextInterface, modelID, pageSize, bookmark string) (string, error) {
	return query(ctx, opening{modelIDArg(modelID)}, func(t *txCtx) (any, error) {
		return t.pageData(modelID, pageSize, bookmark)
	})
}
