"""Versioned schema migrations of the PostGIS store.

Each :class:`Migration` is frozen SQL: once released it never changes; a
change to the layers adds a new one.  A migration may also fill in data
first (``backfill``, Python run in the same transaction before the SQL).  ``schema_version`` records what has
been applied.  :func:`upgrade` applies the missing ones in order, in one
transaction, under an advisory lock so that two upgrading processes never
interleave.  ``tests/test_postgis.py`` checks that the migrated tables match
:mod:`gisapp.schema`, so a new field without a migration fails the tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import psycopg
import pyarrow as pa

from gisapp.formats.geojson import geometry_texts
from gisapp.progress import SILENT, Progress
from gisapp.store.base import StoreError

#: Key of the advisory lock held while migrating (any constant bigint).
_LOCK_KEY = 0x6769736170700001


@dataclass(frozen=True)
class Migration:
    """One step of the schema: its version, what it does, and its SQL."""

    version: int
    description: str
    sql: str
    backfill: Callable[[psycopg.Connection], None] | None = None


_V1 = """
CREATE TABLE gisapp_meta (
    key text PRIMARY KEY,
    value jsonb NOT NULL
);

-- Count and extent of each layer, kept by every write in its transaction,
-- so that 'gisapp layers' and /healthz never scan a layer.
CREATE TABLE gisapp_layers (
    name text PRIMARY KEY,
    count bigint NOT NULL DEFAULT 0,
    minx double precision, miny double precision,
    maxx double precision, maxy double precision
);
INSERT INTO gisapp_layers (name) VALUES
    ('wards'), ('construction_permits'), ('sidewalk_permits'), ('findings');

CREATE TABLE wards (
    ward_key text COLLATE "C" NOT NULL,
    ward_code text COLLATE "C",
    name text COLLATE "C",
    district text COLLATE "C",
    valid_from date,
    valid_to date,
    successor_code text COLLATE "C",
    approximate integer,
    source text COLLATE "C",
    search_text text COLLATE "C" NOT NULL DEFAULT '',
    geom geometry(MultiPolygon, 5899)
);
CREATE UNIQUE INDEX ix_wards_ward_key ON wards (ward_key);
CREATE INDEX ix_wards_ward_code ON wards (ward_code);
CREATE INDEX ix_wards_geom ON wards USING gist (geom);

CREATE TABLE construction_permits (
    dossier_code text COLLATE "C" NOT NULL,
    permit_no text COLLATE "C",
    ward_code text COLLATE "C",
    status text COLLATE "C",
    procedure text COLLATE "C",
    work_category text COLLATE "C",
    channel text COLLATE "C",
    received_on date,
    due_on date,
    completed_on date,
    issued_on date,
    owner_name text COLLATE "C",
    owner_id_no text COLLATE "C",
    site_address text COLLATE "C",
    street text COLLATE "C",
    map_sheet_no text COLLATE "C",
    parcel_no text COLLATE "C",
    plot_area_m2 double precision,
    footprint_m2 double precision,
    floor_area_m2 double precision,
    floors integer,
    height_m double precision,
    search_text text COLLATE "C" NOT NULL DEFAULT '',
    geom geometry(MultiPolygon, 5899)
);
CREATE UNIQUE INDEX ix_construction_permits_dossier_code ON construction_permits (dossier_code);
CREATE INDEX ix_construction_permits_ward_code ON construction_permits (ward_code);
CREATE INDEX ix_construction_permits_status ON construction_permits (status);
CREATE INDEX ix_construction_permits_procedure ON construction_permits (procedure);
CREATE INDEX ix_construction_permits_channel ON construction_permits (channel);
CREATE INDEX ix_construction_permits_received_on ON construction_permits (received_on);
CREATE INDEX ix_construction_permits_geom ON construction_permits USING gist (geom);

CREATE TABLE sidewalk_permits (
    permit_no text COLLATE "C" NOT NULL,
    ward_code text COLLATE "C",
    purpose text COLLATE "C",
    status text COLLATE "C",
    channel text COLLATE "C",
    applicant_name text COLLATE "C",
    address text COLLATE "C",
    street text COLLATE "C",
    start_on date,
    end_on date,
    sidewalk_width_m double precision,
    used_width_m double precision,
    used_area_m2 double precision,
    construction_dossier_code text COLLATE "C",
    search_text text COLLATE "C" NOT NULL DEFAULT '',
    geom geometry(MultiPolygon, 5899)
);
CREATE UNIQUE INDEX ix_sidewalk_permits_permit_no ON sidewalk_permits (permit_no);
CREATE INDEX ix_sidewalk_permits_ward_code ON sidewalk_permits (ward_code);
CREATE INDEX ix_sidewalk_permits_status ON sidewalk_permits (status);
CREATE INDEX ix_sidewalk_permits_channel ON sidewalk_permits (channel);
CREATE INDEX ix_sidewalk_permits_purpose ON sidewalk_permits (purpose);
CREATE INDEX ix_sidewalk_permits_start_on ON sidewalk_permits (start_on);
CREATE INDEX ix_sidewalk_permits_end_on ON sidewalk_permits (end_on);
CREATE INDEX ix_sidewalk_permits_construction_dossier_code ON sidewalk_permits (construction_dossier_code);
CREATE INDEX ix_sidewalk_permits_geom ON sidewalk_permits USING gist (geom);

CREATE TABLE findings (
    finding_id text COLLATE "C" NOT NULL,
    kind text COLLATE "C",
    a_id text COLLATE "C",
    b_id text COLLATE "C",
    ward_code text COLLATE "C",
    overlap_area_m2 double precision,
    distance_m double precision,
    overlap_start date,
    overlap_end date,
    overlap_days integer,
    detail text COLLATE "C",
    search_text text COLLATE "C" NOT NULL DEFAULT '',
    geom geometry(MultiPolygon, 5899)
);
CREATE UNIQUE INDEX ix_findings_finding_id ON findings (finding_id);
CREATE INDEX ix_findings_ward_code ON findings (ward_code);
CREATE INDEX ix_findings_kind ON findings (kind);
CREATE INDEX ix_findings_overlap_start ON findings (overlap_start);
CREATE INDEX ix_findings_geom ON findings USING gist (geom);
"""

_V2 = """
-- Wards are looked up by their period of validity (the ward in force on a
-- date); findings are filtered by their end date as well as their start.
CREATE INDEX ix_wards_valid_from ON wards (valid_from);
CREATE INDEX ix_findings_overlap_end ON findings (overlap_end);
"""

_V3 = """
-- Owner and applicant names, folded like search_text, that ``q`` searches for
-- signed-in staff only.  Rows loaded before this version have it empty until
-- they are written again (an import or 'gisapp seed').
ALTER TABLE wards ADD COLUMN search_personal text COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE construction_permits ADD COLUMN search_personal text COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE sidewalk_permits ADD COLUMN search_personal text COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE findings ADD COLUMN search_personal text COLLATE "C" NOT NULL DEFAULT '';
"""

_V4 = """
-- A counter every write raises in its own transaction: readers that see new
-- data see the new number with it, so it validates cached tiles (ETag).
-- The random token tells this database from one dropped and created again
-- under the same name (whose counter starts again at 0).
CREATE TABLE gisapp_version (
    id integer PRIMARY KEY CHECK (id = 1),
    token text NOT NULL DEFAULT md5(random()::text || clock_timestamp()::text),
    version bigint NOT NULL
);
INSERT INTO gisapp_version (id, version) VALUES (1, 0);
"""

_V5 = """
-- Each geometry as RFC 7946 GeoJSON text in WGS84, written with the row, so
-- that API pages are read, not reprojected and formatted.  Rows loaded before
-- this version have it NULL (computed when read) until written again.
ALTER TABLE wards ADD COLUMN geometry_geojson text;
ALTER TABLE construction_permits ADD COLUMN geometry_geojson text;
ALTER TABLE sidewalk_permits ADD COLUMN geometry_geojson text;
ALTER TABLE findings ADD COLUMN geometry_geojson text;
"""

_V6 = """
-- Every row now has its stored GeoJSON (the backfill filled rows loaded
-- before version 5), so API pages and exports read it and never compute it;
-- a row written without it (outside gisapp) is refused.
ALTER TABLE wards ALTER COLUMN geometry_geojson SET NOT NULL;
ALTER TABLE construction_permits ALTER COLUMN geometry_geojson SET NOT NULL;
ALTER TABLE sidewalk_permits ALTER COLUMN geometry_geojson SET NOT NULL;
ALTER TABLE findings ALTER COLUMN geometry_geojson SET NOT NULL;
"""

_V7 = """
-- The sidewalks layer: the walkable sidewalk between the kerb and the lot
-- fronts, split at cross streets (the occupancy check measures the free
-- passage on it; street_class picks the fee rate).
CREATE TABLE sidewalks (
    sidewalk_id text COLLATE "C" NOT NULL,
    ward_code text COLLATE "C",
    street text COLLATE "C",
    width_m double precision,
    street_class text COLLATE "C",
    search_text text COLLATE "C" NOT NULL DEFAULT '',
    geom geometry(MultiPolygon, 5899),
    search_personal text COLLATE "C" NOT NULL DEFAULT '',
    geometry_geojson text NOT NULL
);
CREATE UNIQUE INDEX ix_sidewalks_sidewalk_id ON sidewalks (sidewalk_id);
CREATE INDEX ix_sidewalks_ward_code ON sidewalks (ward_code);
CREATE INDEX ix_sidewalks_geom ON sidewalks USING gist (geom);
INSERT INTO gisapp_layers (name) VALUES ('sidewalks');
"""

#: The layer tables of version 5 and their keys.
_V6_TABLES = (("wards", "ward_key"), ("construction_permits", "dossier_code"),
              ("sidewalk_permits", "permit_no"), ("findings", "finding_id"))
_BACKFILL_BATCH = 20_000


def _backfill_geojson(con: psycopg.Connection) -> None:
    """Fill ``geometry_geojson`` where it is NULL with the text a write stores (:func:`geometry_texts`).

    Byte for byte what a fresh write would store, so API pages and exports
    agree whichever way a row got its text.  Rows are read from a cursor in
    their physical order and updated in batches in that order: the rows an
    update moves to the table's end keep their map order among themselves.
    """
    for table, key in _V6_TABLES:
        with con.cursor(name=f"gisapp_backfill_{table}", binary=True) as cur:
            cur.itersize = _BACKFILL_BATCH
            cur.execute(f"SELECT {key}, ST_AsBinary(geom) FROM {table} WHERE geometry_geojson IS NULL ORDER BY ctid")
            while rows := cur.fetchmany(_BACKFILL_BATCH):
                texts = geometry_texts(pa.array([r[1] for r in rows], pa.binary())).to_pylist()
                con.execute(f"UPDATE {table} t SET geometry_geojson = v.text "
                            f"FROM unnest(%s::text[], %s::text[]) AS v(key, text) WHERE t.{key} = v.key",
                            [[r[0] for r in rows], texts])


_V8 = """
-- Status history (gisapp/history.py): one row per status a dossier or a
-- sidewalk permit entered, appended by every write that changes a status
-- and by imports of a one-stop system's history export.  Not a map layer.
CREATE TABLE status_changes (
    seq bigserial PRIMARY KEY,
    layer text COLLATE "C" NOT NULL,
    key text COLLATE "C" NOT NULL,
    status text COLLATE "C" NOT NULL,
    changed_on date NOT NULL,
    changed_at text COLLATE "C" NOT NULL DEFAULT '',
    note text,
    -- the day of the key's next change (NULL for its last): the status on day D
    -- is the row with changed_on <= D < next_on, found without sorting
    next_on date
);
-- Newest change first per key: "status as of a day" is DISTINCT ON over it
-- in order, and one probe per row for a filter on the status of that day.
CREATE INDEX ix_status_changes_key ON status_changes
    (layer, key, changed_on DESC, changed_at DESC, seq DESC) INCLUDE (status);
"""

_V9 = """
-- Inspection records (issue 18): who inspected what, when, where, with what
-- outcome, and up to 5 photos stored here as bytea (never on one server's
-- disk).  A photo is found by its random token, which is its URL.
CREATE TABLE inspections (
    inspection_id text COLLATE "C" PRIMARY KEY,
    target_layer text COLLATE "C",
    target_key text COLLATE "C",
    inspector text COLLATE "C" NOT NULL,
    inspected_at timestamptz NOT NULL,
    inspection_type text COLLATE "C" NOT NULL,
    outcome text COLLATE "C" NOT NULL,
    notes text COLLATE "C" NOT NULL DEFAULT '',
    ward_code text COLLATE "C",
    position geometry(Point, 5899) NOT NULL,
    occupancy geometry(Geometry, 5899)
);
CREATE INDEX ix_inspections_target ON inspections (target_layer, target_key);
CREATE INDEX ix_inspections_position ON inspections USING gist (position);
CREATE TABLE inspection_photos (
    token text COLLATE "C" PRIMARY KEY,
    inspection_id text COLLATE "C" NOT NULL REFERENCES inspections (inspection_id),
    seq integer NOT NULL,
    width integer NOT NULL,
    height integer NOT NULL,
    data bytea NOT NULL
);
CREATE INDEX ix_inspection_photos_inspection ON inspection_photos (inspection_id, seq);
"""

_V10 = """
-- The change log: one row per feature a write inserts, updates or deletes, or per layer a large bulk
-- load replaces whole, appended in the write's transaction under the store's write lock and numbered
-- on from the last seq (never a sequence: see gisapp.store.postgis._append_changes).  Its id, in the
-- cursors of /api/changes, is gisapp_version's token.
CREATE TABLE gisapp_changes (
    seq bigint PRIMARY KEY,
    layer text COLLATE "C" NOT NULL,
    key text COLLATE "C",
    kind text COLLATE "C" NOT NULL CHECK (kind IN ('insert', 'update', 'delete', 'replace')),
    status text COLLATE "C",
    changed_at timestamptz NOT NULL
);
-- The day filter's works start of dossiers (gisapp.store.base.works_start_expression), for the map's slider.
CREATE INDEX ix_construction_permits_works_start ON construction_permits (coalesce(issued_on, received_on));
"""

_V11 = """
-- The box (EPSG:5899) of each logged feature's geometry before and after the write, so that a tile
-- renderer re-renders only the tiles a write touched; NULL for a 'replace' and for entries from before.
ALTER TABLE gisapp_changes ADD COLUMN minx double precision, ADD COLUMN miny double precision,
    ADD COLUMN maxx double precision, ADD COLUMN maxy double precision;
"""

_V13 = """
-- A hash of each finding's fields and geometry (gisapp.store.postgis.row_hashes), written with the row, so that
-- a full analysis replacing the findings writes only those that changed (NULL: unknown, written again).
ALTER TABLE findings ADD COLUMN row_hash bigint;
"""

_V14 = """
-- The findings' hashes in order from a small index (an index-only scan) rather than a scan of every finding's row:
-- a replace of the findings reads them all (gisapp.store.postgis._stored_hashes), and deletes the rows whose hash
-- is gone by it.
CREATE INDEX IF NOT EXISTS ix_findings_row_hash ON findings (row_hash);
"""

_V15 = """
-- Each row's properties as the JSON text an items page writes (gisapp.store.base.PROPERTIES_COLUMN): the
-- public fields' object, and the personal fields' members that pages for signed-in staff splice in (NULL on
-- layers without personal fields), written with the row, so that a page reads one text per feature instead
-- of every field.  Rows loaded before this version have them NULL (their pages read the fields) until
-- written again.
ALTER TABLE wards ADD COLUMN properties_json text, ADD COLUMN properties_personal text;
ALTER TABLE construction_permits ADD COLUMN properties_json text, ADD COLUMN properties_personal text;
ALTER TABLE sidewalk_permits ADD COLUMN properties_json text, ADD COLUMN properties_personal text;
ALTER TABLE findings ADD COLUMN properties_json text, ADD COLUMN properties_personal text;
ALTER TABLE sidewalks ADD COLUMN properties_json text, ADD COLUMN properties_personal text;
"""

_V16 = """
-- No query filters sidewalk permits on their dossier (a dossier's page finds them by the search text, then
-- compares the field), so its index only cost every load (~0.5 s of the server's time at 1M) and every write.
DROP INDEX IF EXISTS ix_sidewalk_permits_construction_dossier_code;
"""

_V17 = """
-- A dossier's page selects the sidewalk permits naming it (gisapp.filters.Filter.dossiers) and the findings naming
-- it (Filter.involving: a_id or b_id) by equality, no longer by the search text (a scan of every row: 0.3-1.5 s
-- at 1M).  The dossier code's index is partial: only the permits naming a dossier (~27 %) are in it.
CREATE INDEX IF NOT EXISTS ix_sidewalk_permits_construction_dossier_code ON sidewalk_permits
    (construction_dossier_code) WHERE construction_dossier_code IS NOT NULL;
CREATE INDEX IF NOT EXISTS ix_findings_a_id ON findings (a_id);
CREATE INDEX IF NOT EXISTS ix_findings_b_id ON findings (b_id);
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "layer tables with GiST and B-tree indexes, metadata, layer statistics", _V1),
    Migration(2, "indexes on ward validity and finding end dates", _V2),
    Migration(3, "personal search text (owner names) for signed-in staff", _V3),
    Migration(4, "data version raised by every write (validates cached tiles)", _V4),
    Migration(5, "geometry as WGS84 GeoJSON text beside each row (fast API pages)", _V5),
    Migration(6, "stored GeoJSON filled in rows loaded before version 5, then required", _V6, _backfill_geojson),
    Migration(7, "sidewalks layer (free passage of the occupancy check, fee classes)", _V7),
    Migration(8, "status history (status_changes) of dossiers and sidewalk permits", _V8),
    Migration(9, "inspection records with their photos (issue 18)", _V9),
    Migration(10, "change log of every write (GET /api/changes), index of dossiers' works start (day filter)", _V10),
    Migration(11, "box of each change-log entry's old and new geometry (incremental tiles)", _V11),
    Migration(13, "hash of each finding's values (a replace of the findings writes only what changed)", _V13),
    Migration(14, "index of the findings' hashes (their stored hashes read from it by a replace)", _V14),
    Migration(15, "properties as JSON text beside each row (fast API pages)", _V15),
    Migration(16, "index of sidewalk permits' dossier codes dropped (no query uses it)", _V16),
    Migration(17, "indexes of the permits naming a dossier (partial) and of the findings' a_id and b_id "
                  "(a dossier's page)", _V17),
)
LATEST = MIGRATIONS[-1].version


def one(cursor: psycopg.Cursor) -> tuple:
    """The row of a query that always answers one (an aggregate, a one-row table)."""
    row = cursor.fetchone()
    if row is None:
        raise StoreError("the database answered no row to a query that always has one")
    return row


def applied_versions(con: psycopg.Connection) -> set[int]:
    """The versions recorded in ``schema_version`` (none without that table)."""
    exists = one(con.execute("SELECT to_regclass('schema_version') IS NOT NULL"))[0]
    if not exists:
        return set()
    return {r[0] for r in con.execute("SELECT version FROM schema_version")}


def current_version(con: psycopg.Connection) -> int:
    """The applied schema version of the database; 0 when it has none.

    The last of :data:`MIGRATIONS` up to which every one is applied: a database that a build with a later
    migration but without an earlier one has migrated (versions are handed out to branches ahead) reports
    the version before the gap, so that :func:`upgrade` applies the missing ones.  A version newer than
    every known one is reported as it is.
    """
    applied = applied_versions(con)
    if applied and max(applied) > LATEST:
        return max(applied)
    version = 0
    for m in MIGRATIONS:
        if m.version not in applied:
            break
        version = m.version
    return version


def ensure_postgis(con: psycopg.Connection) -> str:
    """The PostGIS version of the database, creating the extension if allowed.

    :class:`StoreError` says what to do when PostGIS is missing from the
    server or the user may not create it.
    """
    row = con.execute("SELECT extversion FROM pg_extension WHERE extname = 'postgis'").fetchone()
    if row:
        return row[0]
    available = con.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'").fetchone()
    db, user = con.info.dbname, con.info.user
    if not available:
        raise StoreError(f"PostGIS is not installed on the PostgreSQL server of database {db!r} "
                         "(Debian: apt-get install postgresql-15-postgis-3)")
    try:
        with con.transaction():
            con.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    except psycopg.errors.InsufficientPrivilege:
        raise StoreError(f"database {db!r} lacks the postgis extension and user {user!r} may not create it; "
                         f"ask an administrator to run CREATE EXTENSION postgis in {db!r}") from None
    return one(con.execute("SELECT extversion FROM pg_extension WHERE extname = 'postgis'"))[0]


def upgrade(con: psycopg.Connection, target: int | None = None, progress: Progress = SILENT) -> list[Migration]:
    """Apply the migrations after the current version up to ``target`` (default: latest).

    Runs in one transaction (a savepoint when the caller has one open);
    returns the migrations applied, none when the schema is up to date.
    ``progress`` hears ``("migrate", applied, to apply, "migrations")``.
    """
    target = LATEST if target is None else target
    if not 0 <= target <= LATEST:
        raise StoreError(f"unknown schema version {target}; this gisapp knows versions 1 to {LATEST}")
    ensure_postgis(con)
    applied = []
    with con.transaction():
        con.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
        con.execute("CREATE TABLE IF NOT EXISTS schema_version ("
                    " version integer PRIMARY KEY, description text NOT NULL,"
                    " applied_at timestamptz NOT NULL DEFAULT now())")
        version = current_version(con)
        done = applied_versions(con)
        if version > LATEST:
            raise StoreError(f"the database schema is version {version}, newer than this gisapp "
                             f"(version {LATEST}); upgrade gisapp")
        if target < version:
            raise StoreError(f"the database schema is already at version {version}; "
                             f"downgrading to {target} is not supported")
        todo = [m for m in MIGRATIONS if version < m.version <= target]
        progress("migrate", 0, len(todo), "migrations")
        for m in MIGRATIONS:
            if version < m.version <= target and m.version not in done:
                if m.backfill is not None:
                    m.backfill(con)
                con.execute(m.sql)
                con.execute("INSERT INTO schema_version (version, description) VALUES (%s, %s)",
                            [m.version, m.description])
                applied.append(m)
                progress("migrate", len(applied), len(todo), "migrations")
    return applied
