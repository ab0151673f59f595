-- Resources are ARM documents. The *_key columns hold lower-cased copies
-- (computed in Go with strings.ToLower) for case-insensitive matching; the
-- other columns keep the case of the first write. refs is the JSON array of
-- Resource.Refs as written (NULL for none); resource_refs indexes it.
CREATE TABLE resources (
	id_key           TEXT NOT NULL PRIMARY KEY,
	id               TEXT NOT NULL,
	type             TEXT NOT NULL,
	type_key         TEXT NOT NULL,
	parent           TEXT NOT NULL,
	parent_key       TEXT NOT NULL,
	subscription     TEXT NOT NULL,
	subscription_key TEXT NOT NULL,
	name             TEXT NOT NULL,
	refs             TEXT,
	body             BLOB,
	etag             TEXT NOT NULL,
	created          TEXT NOT NULL,
	updated          TEXT NOT NULL
) STRICT;

CREATE INDEX resources_type ON resources (type_key, id_key);
CREATE INDEX resources_type_subscription ON resources (type_key, subscription_key, id_key);
CREATE INDEX resources_parent ON resources (parent_key, type_key, id_key);

CREATE TABLE resource_refs (
	from_key TEXT NOT NULL REFERENCES resources (id_key) ON DELETE CASCADE,
	to_key   TEXT NOT NULL,
	PRIMARY KEY (from_key, to_key)
) STRICT, WITHOUT ROWID;

CREATE INDEX resource_refs_to ON resource_refs (to_key, from_key);

CREATE TABLE operations (
	id           TEXT NOT NULL PRIMARY KEY,
	subscription TEXT NOT NULL,
	kind         TEXT NOT NULL,
	resource_id  TEXT NOT NULL,
	status       TEXT NOT NULL,
	input        BLOB,
	result       BLOB,
	error        BLOB,
	start_time   TEXT NOT NULL,
	end_time     TEXT NOT NULL
) STRICT;

CREATE INDEX operations_status ON operations (status, start_time, id);

CREATE TABLE meta (
	key   TEXT NOT NULL PRIMARY KEY,
	value TEXT NOT NULL
) STRICT, WITHOUT ROWID;
