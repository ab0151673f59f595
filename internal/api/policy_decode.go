package api

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/pgvault/pgvault/internal/api/arm"
	"github.com/pgvault/pgvault/internal/vault"
)

// objectTyped peeks at the discriminator of a polymorphic object.
type objectTyped struct {
	ObjectType string `json:"objectType"`
}

// decodePolicy decodes the polymorphic properties of a policy PUT: rules and
// triggers are decoded by their objectType so that type errors name the exact
// field. Semantic rules are the vault service's business.
func decodePolicy(raw json.RawMessage) (*vault.BackupPolicy, *arm.Error) {
	const root = "properties"
	if len(raw) == 0 || string(raw) == "null" {
		return nil, arm.Errorf(http.StatusBadRequest, "MissingProperty", "The policy needs properties (objectType BackupPolicy, datasourceTypes, policyRules).").WithTarget(root)
	}
	var top struct {
		ObjectType      string            `json:"objectType"`
		DatasourceTypes []string          `json:"datasourceTypes"`
		PolicyRules     []json.RawMessage `json:"policyRules"`
	}
	if e := arm.DecodeJSON(raw, &top, root); e != nil {
		return nil, e
	}
	switch top.ObjectType {
	case "":
		return nil, arm.Errorf(http.StatusBadRequest, "MissingObjectType", "The policy properties need an objectType ('BackupPolicy').").WithTarget(root + ".objectType")
	case "BackupPolicy":
	default:
		return nil, arm.Errorf(http.StatusBadRequest, "InvalidObjectType", "The policy objectType must be 'BackupPolicy', not '%s'.", top.ObjectType).WithTarget(root + ".objectType")
	}
	bp := &vault.BackupPolicy{ObjectType: top.ObjectType, DatasourceTypes: top.DatasourceTypes}
	for i, rr := range top.PolicyRules {
		rule, e := decodeRule(rr, fmt.Sprintf("%s.policyRules[%d]", root, i))
		if e != nil {
			return nil, e
		}
		bp.PolicyRules = append(bp.PolicyRules, *rule)
	}
	return bp, nil
}

func decodeRule(raw json.RawMessage, target string) (*vault.PolicyRule, *arm.Error) {
	var peek objectTyped
	if e := arm.DecodeJSON(raw, &peek, target); e != nil {
		return nil, e
	}
	switch peek.ObjectType {
	case "":
		return nil, arm.Errorf(http.StatusBadRequest, "MissingObjectType", "The policy rule needs an objectType ('AzureBackupRule' or 'AzureRetentionRule').").WithTarget(target + ".objectType")
	case vault.ObjectRetentionRule:
		var r vault.PolicyRule
		if e := arm.DecodeJSON(raw, &r, target); e != nil {
			return nil, e
		}
		r.BackupParameters, r.DataStore, r.Trigger = nil, nil, nil
		return &r, nil
	case vault.ObjectBackupRule:
		var aux struct {
			vault.PolicyRule
			Trigger json.RawMessage `json:"trigger"`
		}
		if e := arm.DecodeJSON(raw, &aux, target); e != nil {
			return nil, e
		}
		r := aux.PolicyRule
		r.IsDefault, r.Lifecycles = nil, nil
		if len(aux.Trigger) > 0 && string(aux.Trigger) != "null" {
			t, e := decodeTrigger(aux.Trigger, target+".trigger")
			if e != nil {
				return nil, e
			}
			r.Trigger = t
		}
		return &r, nil
	}
	return nil, arm.Errorf(http.StatusBadRequest, "InvalidObjectType",
		"The policy rule objectType must be 'AzureBackupRule' or 'AzureRetentionRule', not '%s'.", peek.ObjectType).WithTarget(target + ".objectType")
}

func decodeTrigger(raw json.RawMessage, target string) (*vault.Trigger, *arm.Error) {
	var peek objectTyped
	if e := arm.DecodeJSON(raw, &peek, target); e != nil {
		return nil, e
	}
	switch peek.ObjectType {
	case vault.ObjectScheduleTrigger:
		var t vault.Trigger
		if e := arm.DecodeJSON(raw, &t, target); e != nil {
			return nil, e
		}
		return &t, nil
	case vault.ObjectAdhocTrigger:
		// Known to Azure, refused for PostgreSQL by the service.
		return &vault.Trigger{ObjectType: peek.ObjectType}, nil
	case "":
		return nil, arm.Errorf(http.StatusBadRequest, "MissingObjectType", "The trigger needs an objectType ('ScheduleBasedTriggerContext').").WithTarget(target + ".objectType")
	}
	return nil, arm.Errorf(http.StatusBadRequest, "InvalidObjectType",
		"The trigger objectType must be 'ScheduleBasedTriggerContext', not '%s'.", peek.ObjectType).WithTarget(target + ".objectType")
}
