// Package auth authenticates and authorizes callers of pgvault's API.
//
// Authentication: every API request carries "Authorization: Bearer <JWT>".
// A Verifier checks the token against trusted issuers: static ones whose
// public keys it holds (the built-in Issuer) and external OpenID Connect
// issuers (discovery and a cached, rate-limited JWKS). Signatures are RS256 or
// ES256 only; iss, aud, exp, nbf and iat are checked by this package, not
// left to a library default. Failures are *Error values carrying Azure
// Resource Manager's codes and wording, rendered by the API as 401 with the
// WWW-Authenticate value of Verifier.Challenge.
//
// The built-in Issuer is an OAuth2 client-credentials token endpoint shaped
// like Microsoft Entra ID's v2.0 endpoints (token endpoint, OpenID
// configuration, JWKS), so that the official azidentity.ClientSecretCredential
// obtains tokens from it unchanged.
package auth
