package pg

import (
	"context"
	"time"
)

// SetConnectTimeout shortens the connect timeout for a test; the returned func restores it.
func SetConnectTimeout(d time.Duration) (restore func()) {
	old := connectTimeout
	connectTimeout = d
	return func() { connectTimeout = old }
}

// IdentifySystem opens a replication connection and runs IDENTIFY_SYSTEM, as the last
// check of CheckBackup does, with info standing for what the earlier checks learnt.
func IdentifySystem(ctx context.Context, c Conn, info *ServerInfo) (string, error) {
	c = c.withDefaults()
	sysID, err := identifySystem(ctx, c, info)
	return sysID, maskCheckError(err, c.Password)
}

// ParseServerVersion is parseServerVersion.
var ParseServerVersion = parseServerVersion
