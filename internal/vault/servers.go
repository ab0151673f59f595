package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/pgvault/pgvault/internal/pg"
	"github.com/pgvault/pgvault/internal/store"
)

// Resource types of PostgreSQL servers.
const (
	TypeServer             = "Microsoft.DBforPostgreSQL/flexibleServers"
	TypeLtrBackupOperation = "Microsoft.DBforPostgreSQL/flexibleServers/ltrBackupOperations"
)

// Server states (ServerState); pgvault uses Ready and Disabled.
const (
	ServerReady    = "Ready"
	ServerDisabled = "Disabled"
)

// ServerID returns the ARM ID of a PostgreSQL flexible server.
func ServerID(sub, rg, name string) string {
	return ResourceGroupID(sub, rg) + "/providers/Microsoft.DBforPostgreSQL/flexibleServers/" + name
}

var serverNameRule = regexp.MustCompile(`^[a-zA-Z0-9]+(-[a-zA-Z0-9]+)*$`)

// ValidateServerName applies the spec's server name rule: 3 to 63 letters,
// digits and single hyphens between them.
func ValidateServerName(name string) *Error {
	if len(name) < 3 || len(name) > 63 || !serverNameRule.MatchString(name) {
		return invalid("InvalidResourceName", "serverName",
			"The server name '%s' is invalid: use 3 to 63 letters and digits, with single hyphens between them.", name)
	}
	return nil
}

// Server is a PostgreSQL server registered with pgvault, in the shape of
// Azure's flexible server resource.
type Server struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Type       string            `json:"type"`
	Location   string            `json:"location"`
	Tags       map[string]string `json:"tags,omitempty"`
	SystemData *SystemData       `json:"systemData,omitempty"`
	Properties ServerProperties  `json:"properties"`
}

// ServerProperties are the properties of a server. Only names of Azure's
// model are used, plus the documented extension Pgvault.
type ServerProperties struct {
	// FullyQualifiedDomainName is the host (name or IP address), optionally
	// with ":port" (a pgvault extension, since Azure's model has no port).
	FullyQualifiedDomainName string `json:"fullyQualifiedDomainName"`
	AdministratorLogin       string `json:"administratorLogin"`
	// AdministratorLoginPassword is write-only: never stored in clear, never returned.
	AdministratorLoginPassword string `json:"administratorLoginPassword,omitempty"`
	// Version is the server's major version, read from the server.
	Version string `json:"version,omitempty"`
	// MinorVersion is the full version string, e.g. "15.18".
	MinorVersion string `json:"minorVersion,omitempty"`
	// State is Ready when pgvault can reach the server with its
	// credentials, Disabled otherwise.
	State string `json:"state,omitempty"`
	// Pgvault holds what Azure's model cannot say.
	Pgvault *ServerExtension `json:"pgvault,omitempty"`
}

// ServerExtension is pgvault's extension of the server model.
type ServerExtension struct {
	// Port is the TCP port (default 5432).
	Port int `json:"port,omitempty"`
	// SSLMode is libpq's sslmode: disable, allow, prefer (default), require, verify-ca, verify-full.
	SSLMode string `json:"sslMode,omitempty"`
	// Database to connect to (default postgres).
	Database string `json:"database,omitempty"`
	// SystemIdentifier is the server's pg_control system identifier.
	SystemIdentifier string `json:"systemIdentifier,omitempty"`
	// LastCheckedAt is when pgvault last reached (or failed to reach) the server.
	LastCheckedAt *time.Time `json:"lastCheckedAt,omitempty"`
	// StateReason says why the state is Disabled.
	StateReason string `json:"stateReason,omitempty"`
}

// serverRecord is a server as stored: the password sealed by the secret box.
type serverRecord struct {
	Server
	SealedPassword string `json:"sealedPassword"`

	sub, parent string // from the store row
}

var sslModes = []string{"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}

// parseHostPort splits "host", "host:port" or "[v6]:port".
func parseHostPort(fqdn string, port int) (string, int, *Error) {
	host := fqdn
	if h, p, err := net.SplitHostPort(fqdn); err == nil {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return "", 0, invalid("InvalidPropertyValue", "properties.fullyQualifiedDomainName", "The port in '%s' is not a TCP port.", fqdn)
		}
		if port != 0 && port != n {
			return "", 0, invalid("InvalidPropertyValue", "properties.pgvault.port", "The port %d differs from the one in fullyQualifiedDomainName '%s'.", port, fqdn)
		}
		host, port = h, n
	}
	if port == 0 {
		port = 5432
	}
	if port < 1 || port > 65535 {
		return "", 0, invalid("InvalidPropertyValue", "properties.pgvault.port", "%d is not a TCP port.", port)
	}
	if host == "" || strings.ContainsAny(host, " /\\@?#") {
		return "", 0, invalid("InvalidPropertyValue", "properties.fullyQualifiedDomainName", "'%s' is not a host name or address.", fqdn)
	}
	return host, port, nil
}

// PutServer registers a PostgreSQL server (or updates its registration). It
// connects to the server to read its version; a server pgvault cannot reach
// with the given credentials is refused with the reason.
func (s *Service) PutServer(ctx context.Context, sub, rg, name string, in *Server, by Principal) (srv *Server, created bool, err error) {
	if s.secrets == nil {
		return nil, false, errors.New("vault: no secret box configured: servers cannot be registered")
	}
	p := in.Properties
	if strings.TrimSpace(in.Location) == "" {
		return nil, false, invalid("LocationRequired", "location", "The location property is required for this definition.")
	}
	group, err := s.ResourceGroup(ctx, sub, rg)
	if err != nil {
		return nil, false, err
	}
	oldRec, err := s.serverRecord(ctx, sub, rg, name)
	if err != nil && !isNotFound(err) {
		return nil, false, err
	}
	if oldRec == nil {
		if e := ValidateServerName(name); e != nil {
			return nil, false, e
		}
	}
	ext := ServerExtension{}
	if p.Pgvault != nil {
		ext = *p.Pgvault
	}
	if p.FullyQualifiedDomainName == "" {
		return nil, false, invalid("MissingProperty", "properties.fullyQualifiedDomainName", "The server's host is required in properties.fullyQualifiedDomainName (host or host:port).")
	}
	host, port, e := parseHostPort(p.FullyQualifiedDomainName, ext.Port)
	if e != nil {
		return nil, false, e
	}
	if p.AdministratorLogin == "" {
		return nil, false, invalid("MissingProperty", "properties.administratorLogin", "The login pgvault uses (a superuser or a role with REPLICATION) is required.")
	}
	if ext.SSLMode == "" {
		ext.SSLMode = "prefer"
	} else if e := checkEnum(&ext.SSLMode, sslModes, "properties.pgvault.sslMode"); e != nil {
		return nil, false, e
	}
	if ext.Database == "" {
		ext.Database = "postgres"
	}
	id := ServerID(sub, group.Name, name)
	password := p.AdministratorLoginPassword
	if oldRec != nil {
		id, name = oldRec.ID, oldRec.Name
		if !strings.EqualFold(oldRec.Location, in.Location) {
			return nil, false, newError(KindConflict, "InvalidResourceLocation", "location",
				"The server '%s' is registered in location '%s'; it cannot move to '%s'.", name, oldRec.Location, in.Location)
		}
		if password == "" { // keep the stored password when none is given
			if password, err = s.secrets.Open(oldRec.SealedPassword, oldRec.ID); err != nil {
				return nil, false, unreadablePassword(oldRec.Name, err)
			}
		}
	} else if password == "" {
		return nil, false, invalid("MissingProperty", "properties.administratorLoginPassword", "The password of the administrator login is required.")
	}
	conn := pg.Conn{Host: host, Port: port, User: p.AdministratorLogin, Password: password, Database: ext.Database, SSLMode: ext.SSLMode}
	info, err := pg.Probe(ctx, conn)
	if err != nil {
		return nil, false, serverCheckError(err, name)
	}
	now := s.nowUTC()
	ext.Port, ext.SystemIdentifier, ext.LastCheckedAt, ext.StateReason = port, info.SystemIdentifier, &now, ""
	rec := &serverRecord{Server: Server{
		ID: id, Name: name, Type: TypeServer, Location: in.Location, Tags: in.Tags,
		SystemData: &SystemData{CreatedBy: by.ID, CreatedByType: by.Type, CreatedAt: now, LastModifiedBy: by.ID, LastModifiedByType: by.Type, LastModifiedAt: now},
		Properties: ServerProperties{
			FullyQualifiedDomainName: host, AdministratorLogin: p.AdministratorLogin,
			Version: strconv.Itoa(info.Major), MinorVersion: info.Version, State: ServerReady, Pgvault: &ext,
		},
	}}
	rec.SealedPassword = s.secrets.Seal(password, id)
	opts := store.PutOptions{IfNoneMatch: true}
	if oldRec != nil {
		rec.SystemData.CreatedBy, rec.SystemData.CreatedByType, rec.SystemData.CreatedAt = oldRec.SystemData.CreatedBy, oldRec.SystemData.CreatedByType, oldRec.SystemData.CreatedAt
		opts = store.PutOptions{}
	}
	if err := s.writeServer(ctx, sub, group.ID, rec, opts); err != nil {
		return nil, false, err
	}
	out := rec.Server
	return &out, oldRec == nil, nil
}

// serverCheckError turns a failed PostgreSQL check into a client error.
func serverCheckError(err error, name string) error {
	var ce *pg.CheckError
	if errors.As(err, &ce) {
		return &Error{Kind: KindInvalid, Code: ce.Code, Target: "properties", Err: err,
			Message: fmt.Sprintf("pgvault cannot use the PostgreSQL server '%s': %s", name, ce.Message)}
	}
	return err
}

func (s *Service) writeServer(ctx context.Context, sub, parent string, rec *serverRecord, opts store.PutOptions) error {
	body, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("while encoding server: %w", err)
	}
	err = s.store.ResourcePut(ctx, &store.Resource{
		ID: rec.ID, Type: TypeServer, Parent: parent, Subscription: sub, Name: rec.Name, Body: body, ETag: newETag(),
		Created: rec.SystemData.CreatedAt, Updated: rec.SystemData.LastModifiedAt,
	}, opts)
	switch {
	case errors.Is(err, store.ErrParentNotFound):
		return newError(KindNotFound, "ResourceGroupNotFound", "resourceGroupName", "The resource group of server '%s' could not be found.", rec.Name)
	case errors.Is(err, store.ErrAlreadyExists), errors.Is(err, store.ErrPreconditionFailed):
		return &Error{Kind: KindPreconditionFailed, Code: "ConcurrentUpdate", Message: "The server was changed by another request at the same time; retry.", Err: err}
	case err != nil:
		return storeErr("writing server", err)
	}
	return nil
}

func (s *Service) serverRecord(ctx context.Context, sub, rg, name string) (*serverRecord, error) {
	r, err := s.store.ResourceGet(ctx, ServerID(sub, rg, name))
	if errors.Is(err, store.ErrNotFound) {
		if _, gerr := s.ResourceGroup(ctx, sub, rg); gerr != nil {
			return nil, gerr
		}
		return nil, newError(KindNotFound, "ResourceNotFound", "serverName",
			"The Resource 'Microsoft.DBforPostgreSQL/flexibleServers/%s' under resource group '%s' was not found.", name, rg)
	}
	if err != nil {
		return nil, storeErr("reading server", err)
	}
	return decodeServer(r)
}

func decodeServer(r *store.Resource) (*serverRecord, error) {
	var rec serverRecord
	if err := json.Unmarshal(r.Body, &rec); err != nil {
		return nil, fmt.Errorf("while decoding server %q: %w", r.ID, err)
	}
	rec.ID, rec.Name, rec.sub, rec.parent = r.ID, r.Name, r.Subscription, r.Parent
	return &rec, nil
}

// Server returns a registered server (without its password).
func (s *Service) Server(ctx context.Context, sub, rg, name string) (*Server, error) {
	rec, err := s.serverRecord(ctx, sub, rg, name)
	if err != nil {
		return nil, err
	}
	return &rec.Server, nil
}

// ListServers lists the servers of a resource group (rg != "") or subscription.
func (s *Service) ListServers(ctx context.Context, sub, rg, after string, pageSize int) (Page[*Server], error) {
	p := store.ListParams{Type: TypeServer, Subscription: sub, After: after}
	if rg != "" {
		if _, err := s.ResourceGroup(ctx, sub, rg); err != nil {
			return Page[*Server]{}, err
		}
		p.Parent = ResourceGroupID(sub, rg)
	}
	return listPage(ctx, s.store, p, pageSize, func(r *store.Resource) (*Server, error) {
		rec, err := decodeServer(r)
		if err != nil {
			return nil, err
		}
		return &rec.Server, nil
	})
}

// DeleteServer removes a server's registration; refused while a backup
// instance protects it.
func (s *Service) DeleteServer(ctx context.Context, sub, rg, name string) (bool, error) {
	err := s.store.ResourceDelete(ctx, ServerID(sub, rg, name), store.DeleteOptions{RefuseIfReferenced: true})
	switch {
	case errors.Is(err, store.ErrNotFound):
		if _, gerr := s.ResourceGroup(ctx, sub, rg); gerr != nil {
			return false, gerr
		}
		return false, nil
	case errors.Is(err, store.ErrReferenced):
		return false, newError(KindConflict, "ServerIsProtected", "serverName",
			"The server '%s' is protected by a backup instance; stop protection and delete the backup instance first.", name)
	case err != nil:
		return false, storeErr("deleting server", err)
	}
	return true, nil
}

// unreadablePassword is the error for a stored password the secrets key
// cannot open: the key file was lost or replaced.
func unreadablePassword(name string, err error) *Error {
	return &Error{Kind: KindConflict, Code: "UserErrorServerCredentialsUnreadable", Target: "properties.administratorLoginPassword", Err: err,
		Message: fmt.Sprintf("The stored password of server '%s' cannot be decrypted: pgvault's secrets key is not the one it was stored with. Register the server again with its password (PUT with administratorLoginPassword).", name)}
}

// conn returns how to reach a registered server.
func (s *Service) conn(rec *serverRecord) (pg.Conn, error) {
	password, err := s.secrets.Open(rec.SealedPassword, rec.ID)
	if err != nil {
		return pg.Conn{}, unreadablePassword(rec.Name, err)
	}
	ext := rec.Properties.Pgvault
	if ext == nil {
		ext = &ServerExtension{Port: 5432, SSLMode: "prefer", Database: "postgres"}
	}
	return pg.Conn{Host: rec.Properties.FullyQualifiedDomainName, Port: ext.Port, User: rec.Properties.AdministratorLogin,
		Password: password, Database: ext.Database, SSLMode: ext.SSLMode}, nil
}

// recordState stores the outcome of a check of the server (Ready or
// Disabled with the reason); failures to store it are logged only.
func (s *Service) recordState(ctx context.Context, rec *serverRecord, checkErr error) {
	now := s.nowUTC()
	ext := *rec.Properties.Pgvault
	ext.LastCheckedAt = &now
	rec.Properties.State, ext.StateReason = ServerReady, ""
	if checkErr != nil {
		rec.Properties.State = ServerDisabled
		var ce *pg.CheckError
		if errors.As(checkErr, &ce) {
			ext.StateReason = ce.Code + ": " + ce.Message
		} else {
			ext.StateReason = "the check could not complete"
		}
	}
	rec.Properties.Pgvault = &ext
	if err := s.writeServer(ctx, rec.sub, rec.parent, rec, store.PutOptions{}); err != nil {
		s.log.Warn("recording a server's state failed", "server", rec.ID, "err", err)
	}
}

// --- long-term retention pre-backup ---

// ContainerBytes is how much data one LTR container takes: ltrPreBackup asks
// for one container per started TiB of the server's data (at least one).
const ContainerBytes = 1 << 40

var backupNameRule = regexp.MustCompile(`^[a-zA-Z0-9]+(-[a-zA-Z0-9]+)*$`)

// LtrPreBackup checks everything a long-term-retention backup of a server
// needs and answers how many storage containers it will write to.
func (s *Service) LtrPreBackup(ctx context.Context, sub, rg, name, backupName string) (int, error) {
	rec, err := s.ltrPrecheck(ctx, sub, rg, name, backupName)
	if err != nil {
		return 0, err
	}
	info, err := s.checkServer(ctx, rec)
	if err != nil {
		return 0, err
	}
	return ltrContainers(info), nil
}

// ltrContainers is the number of storage containers a backup of the server
// writes to: one per started ContainerBytes of data, at least one.
func ltrContainers(info *pg.ServerInfo) int {
	return max(1, int(math.Ceil(float64(info.DataSizeBytes)/ContainerBytes)))
}

// ltrPrecheck runs the checks of a long-term-retention backup that need no
// connection to the server: the backup name is valid and unused, the server
// is registered, and no LTR backup of it is running. It returns the server.
func (s *Service) ltrPrecheck(ctx context.Context, sub, rg, name, backupName string) (*serverRecord, error) {
	if backupName == "" {
		return nil, invalid("MissingProperty", "backupSettings.backupName", "The backup name is required in backupSettings.backupName.")
	}
	if len(backupName) > 128 || !backupNameRule.MatchString(backupName) {
		return nil, invalid("InvalidBackupName", "backupSettings.backupName",
			"The backup name '%s' is invalid: use letters and digits with single hyphens between them, at most 128 characters.", backupName)
	}
	rec, err := s.serverRecord(ctx, sub, rg, name)
	if err != nil {
		return nil, err
	}
	if _, err := s.store.ResourceGet(ctx, ltrBackupID(rec.ID, backupName)); err == nil {
		return nil, ltrNameTaken(backupName, name)
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, storeErr("reading LTR backups", err)
	}
	if running, err := s.ltrBackupRunning(ctx, rec.ID); err != nil {
		return nil, err
	} else if running != "" {
		return nil, ltrInProgress(running, name)
	}
	return rec, nil
}

func ltrNameTaken(backupName, server string) *Error {
	return newError(KindConflict, "LtrBackupNameAlreadyExists", "backupSettings.backupName",
		"A long-term retention backup named '%s' already exists for server '%s'; choose another name.", backupName, server)
}

func ltrInProgress(running, server string) *Error {
	return newError(KindConflict, "LtrBackupInProgress", "serverName",
		"The long-term retention backup '%s' of server '%s' is still running; wait for it to finish.", running, server)
}

// ltrBackupRunning returns the name of a running LTR backup of a server, or "".
func (s *Service) ltrBackupRunning(ctx context.Context, serverID string) (string, error) {
	rs, err := s.store.ResourceList(ctx, store.ListParams{Type: TypeLtrBackupOperation, Parent: serverID})
	if err != nil {
		return "", storeErr("listing LTR backups", err)
	}
	for _, r := range rs {
		var op struct {
			Properties struct {
				Status string `json:"status"`
			} `json:"properties"`
		}
		if err := json.Unmarshal(r.Body, &op); err != nil {
			return "", fmt.Errorf("while decoding LTR backup %q: %w", r.ID, err)
		}
		if op.Properties.Status == "Running" {
			return r.Name, nil
		}
	}
	return "", nil
}

// checkServer runs the backup checks on a registered server and records
// the resulting state.
func (s *Service) checkServer(ctx context.Context, rec *serverRecord) (*pg.ServerInfo, error) {
	conn, err := s.conn(rec)
	if err != nil {
		return nil, err
	}
	info, err := pg.CheckBackup(ctx, conn)
	s.recordState(context.WithoutCancel(ctx), rec, err)
	if err != nil {
		return nil, serverCheckError(err, rec.Name)
	}
	return info, nil
}
