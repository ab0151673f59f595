// Package arm holds the generic mechanics of Azure Resource Manager that every
// pgvault route shares: case-insensitive route matching, api-version checks,
// resource name rules, the error envelope, request and correlation IDs, JSON
// bodies, absolute paging links and long-running-operation headers.
//
// It knows nothing of vaults or policies; internal/api builds the routes.
package arm
