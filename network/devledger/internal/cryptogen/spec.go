package cryptogen

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// cryptoConfig is the part of crypto-config.yaml that Generate honours (cmd/cryptogen/main.go Config, OrgSpec,
// NodeTemplate, UsersSpec). OrdererOrgs are ignored: the devledger replaces the orderers.
type cryptoConfig struct {
	PeerOrgs []struct {
		Name          string `yaml:"Name"`
		Domain        string `yaml:"Domain"`
		EnableNodeOUs bool   `yaml:"EnableNodeOUs"`
		Template      struct {
			Count    int      `yaml:"Count"`
			Start    int      `yaml:"Start"`
			Hostname string   `yaml:"Hostname"`
			SANS     []string `yaml:"SANS"`
		} `yaml:"Template"`
		Specs []struct {
			Hostname string   `yaml:"Hostname"`
			SANS     []string `yaml:"SANS"`
		} `yaml:"Specs"`
		Users struct {
			Count int `yaml:"Count"`
		} `yaml:"Users"`
	} `yaml:"PeerOrgs"`
}

// ReadSpec reads the PeerOrgs of a crypto-config.yaml: Name, Domain, the peer Template's SANS and Users.Count.
// usersOverride > 0 replaces every org's user count. The devledger runs one peer per org, peer0, so it needs
// a Template with Start 0 (the default) and the default hostname; extra peers (Count > 1) are not generated.
// NodeOUs must be enabled: the chaincode and the policies tell roles apart by them.
func ReadSpec(cryptoConfigYAML []byte, usersOverride int) ([]OrgSpec, error) {
	var cfg cryptoConfig
	if err := yaml.Unmarshal(cryptoConfigYAML, &cfg); err != nil {
		return nil, fmt.Errorf("crypto-config: %w", err)
	}
	if len(cfg.PeerOrgs) == 0 {
		return nil, fmt.Errorf("crypto-config: no PeerOrgs")
	}
	var orgs []OrgSpec
	for i, po := range cfg.PeerOrgs {
		where := fmt.Sprintf("crypto-config: PeerOrgs[%d] (%s)", i, po.Name)
		switch {
		case po.Name == "" || po.Domain == "":
			return nil, fmt.Errorf("%s: Name and Domain are required", where)
		case !po.EnableNodeOUs:
			return nil, fmt.Errorf("%s: EnableNodeOUs must be true for the devledger", where)
		case len(po.Specs) > 0:
			return nil, fmt.Errorf("%s: explicit Specs are not supported by the devledger, use Template", where)
		case po.Template.Count < 1:
			return nil, fmt.Errorf("%s: Template.Count must be at least 1 (the devledger's peer0)", where)
		case po.Template.Start != 0 || (po.Template.Hostname != "" && po.Template.Hostname != "{{.Prefix}}{{.Index}}"):
			return nil, fmt.Errorf("%s: Template.Start/Hostname must keep cryptogen's defaults (peer0)", where)
		}
		for _, san := range po.Template.SANS {
			if strings.Contains(san, "{{") {
				return nil, fmt.Errorf("%s: templated SAN %q is not supported by the devledger", where, san)
			}
		}
		users := po.Users.Count
		if usersOverride > 0 {
			users = usersOverride
		}
		orgs = append(orgs, OrgSpec{
			Name:   po.Name,
			Domain: po.Domain,
			Users:  users,
			SANs:   append([]string(nil), po.Template.SANS...),
		})
	}
	return orgs, nil
}
