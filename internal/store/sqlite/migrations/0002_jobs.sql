-- Jobs are the work queue (see store.Job). subscription_key and
-- resource_id_key hold lower-cased copies (computed in Go with
-- strings.ToLower) for case-insensitive lists. Times are fixed-width UTC text
-- (the zero time for unset ones), so they compare and sort as text.
CREATE TABLE jobs (
	id               TEXT NOT NULL PRIMARY KEY,
	kind             TEXT NOT NULL,
	subscription     TEXT NOT NULL,
	subscription_key TEXT NOT NULL,
	resource_id      TEXT NOT NULL,
	resource_id_key  TEXT NOT NULL,
	idempotency_key  TEXT NOT NULL,
	exclusive_key    TEXT NOT NULL,
	status           TEXT NOT NULL,
	input            BLOB,
	progress         BLOB,
	result           BLOB,
	error            BLOB,
	attempt          INTEGER NOT NULL,
	max_attempts     INTEGER NOT NULL,
	lease_owner      TEXT NOT NULL,
	lease_expires    TEXT NOT NULL,
	created          TEXT NOT NULL,
	started          TEXT NOT NULL,
	ended            TEXT NOT NULL
) STRICT;

-- An idempotency key is used once, ever.
CREATE UNIQUE INDEX jobs_idempotency_key ON jobs (idempotency_key) WHERE idempotency_key <> '';
-- An exclusive key is held by at most one job that has not ended. The
-- driver checks it before inserting, inside the same write transaction; the
-- index makes the rule hold whatever writes the table.
CREATE UNIQUE INDEX jobs_exclusive_key ON jobs (exclusive_key)
	WHERE exclusive_key <> '' AND status IN ('Queued', 'Running');

-- JobClaim: the oldest Queued job of some kinds, and Running jobs by lease end.
CREATE INDEX jobs_claim ON jobs (status, kind, created, id);
CREATE INDEX jobs_lease ON jobs (lease_expires) WHERE status = 'Running';

-- JobList, newest first, with or without a filter.
CREATE INDEX jobs_created ON jobs (created, id);
CREATE INDEX jobs_resource ON jobs (resource_id_key, created, id);
CREATE INDEX jobs_subscription ON jobs (subscription_key, created, id);
