"""The SQL behind :func:`objectives_pipeline.warehouse.load_snapshot`.

Every value reaches these statements as a bound parameter: ``$files`` (staged
pages), ``$repeat_pages``/``$repeat_ids`` (records left out as repeats), ``$paths`` (the
JSON paths below), ``$known_keys``, ``$snapshot_date``
and ``$captured_at``.

Staged files are named ``page-00000001.json``, ``page-00000002.json``, ...; the
number is the staging order. Pages are typed into the stager's own database a few
at a time while the extraction goes on (`TYPE_PAGES`); the load copies the typed
rows (`COPY_TYPED`), keeping for a repeated ``_id`` the copy from the highest page.
"""

from __future__ import annotations

# Read by position: t[i] is json_type, s[i] the text of the field at _FIELD_PATHS[i-1].
FIELD_PATHS = [
    "$._id",
    "$.name",
    "$.health",
    "$.companyId",
    "$.companyName",
    "$.externalId",
    "$.sourceId",
    "$.custom",
    "$.usage",
]
# json_merge_patch with these nulls removes every field that has a column, leaving `extra`.
KNOWN_KEYS_AS_NULLS = (
    '{"_id":null,"name":null,"health":null,"companyId":null,"companyName":null,'
    '"externalId":null,"sourceId":null,"custom":null,"usage":null}'
)

CREATE_TABLE = """
CREATE SCHEMA IF NOT EXISTS raw;
CREATE TABLE IF NOT EXISTS raw.planhat_objectives (
    snapshot_date DATE NOT NULL,
    objective_id VARCHAR,
    name VARCHAR,
    health DOUBLE,
    company_id VARCHAR,
    company_name VARCHAR,
    external_id VARCHAR,
    source_id VARCHAR,
    custom JSON,
    usage JSON,
    captured_at TIMESTAMP NOT NULL,
    extra JSON,
    load_issues VARCHAR[] NOT NULL,
    raw_record JSON
);
COMMENT ON TABLE raw.planhat_objectives IS
    'Daily snapshots of Planhat objectives, one row per (snapshot_date, objective_id).';
COMMENT ON COLUMN raw.planhat_objectives.captured_at IS 'When the extraction ran (UTC).';
COMMENT ON COLUMN raw.planhat_objectives.extra IS 'Fields without a column of their own.';
COMMENT ON COLUMN raw.planhat_objectives.load_issues IS 'Unexpected values in the record.';
COMMENT ON COLUMN raw.planhat_objectives.raw_record IS 'The record as received, if flagged.';
"""

DELETE_PARTITION = "DELETE FROM raw.planhat_objectives WHERE snapshot_date = $snapshot_date"

# The staging database of a SnapshotStager: pages typed and flagged as they are staged,
# so the load itself only copies typed rows.
CREATE_TYPED = """
CREATE TABLE typed (
    page INTEGER NOT NULL,
    ordinal BIGINT NOT NULL,
    objective_id VARCHAR,
    name VARCHAR,
    health DOUBLE,
    company_id VARCHAR,
    company_name VARCHAR,
    external_id VARCHAR,
    source_id VARCHAR,
    custom JSON,
    usage JSON,
    extra JSON,
    load_issues VARCHAR[] NOT NULL,
    raw_record JSON
)
"""

TYPE_PAGES = """
WITH staged AS (
    SELECT json AS record,
           regexp_extract(filename, '([0-9]+)[.]json$', 1)::INTEGER AS page,
           row_number() OVER (PARTITION BY filename) AS ordinal,
           json_type(json) = 'OBJECT' AS is_object,
           json_type(json, $paths) AS t,
           json_extract_string(json, $paths) AS s,
           json_extract(json, ['$.custom', '$.usage']) AS j
    FROM read_json_objects($files, format = 'array', filename = true)
),
cast_values AS (
    SELECT *,
           CASE WHEN t[1] NOT IN ('NULL', 'OBJECT', 'ARRAY') THEN s[1] END AS objective_id,
           CASE WHEN t[3] IN ('BIGINT', 'UBIGINT', 'HUGEINT', 'UHUGEINT', 'DOUBLE', 'VARCHAR')
                THEN TRY_CAST(s[3] AS DOUBLE)
           END AS health_any
    FROM staged
),
checked AS (
    SELECT *,
           CASE WHEN NOT is_object THEN ['record is not an object']
                ELSE list_filter([
                    CASE WHEN coalesce(t[1], 'NULL') = 'NULL' THEN '_id missing'
                         WHEN t[1] <> 'VARCHAR' THEN '_id is not a string' END,
                    CASE WHEN coalesce(t[2], 'NULL') = 'NULL' THEN 'name missing'
                         WHEN t[2] <> 'VARCHAR' THEN 'name is not a string' END,
                    CASE WHEN t[3] = 'VARCHAR' AND isfinite(health_any)
                             THEN 'health is a numeric string'
                         WHEN t[3] <> 'NULL' AND NOT coalesce(isfinite(health_any), false)
                             THEN 'health is not a number' END,
                    CASE WHEN coalesce(t[4], 'NULL') = 'NULL' THEN 'companyId missing'
                         WHEN t[4] <> 'VARCHAR' THEN 'companyId is not a string' END,
                    CASE WHEN t[5] NOT IN ('NULL', 'VARCHAR')
                         THEN 'companyName is not a string' END,
                    CASE WHEN t[6] IN ('OBJECT', 'ARRAY', 'BOOLEAN')
                         THEN 'externalId is not a string or number' END,
                    CASE WHEN t[7] NOT IN ('NULL', 'VARCHAR') THEN 'sourceId is not a string' END,
                    CASE WHEN t[8] NOT IN ('NULL', 'OBJECT') THEN 'custom is not an object' END,
                    CASE WHEN t[9] NOT IN ('NULL', 'OBJECT') THEN 'usage is not an object' END
                ], lambda issue: issue IS NOT NULL)
           END AS issues
    FROM cast_values
)
INSERT INTO typed BY NAME
SELECT
    page,
    ordinal,
    objective_id,
    CASE WHEN t[2] NOT IN ('NULL', 'OBJECT', 'ARRAY') THEN s[2] END AS name,
    CASE WHEN isfinite(health_any) THEN health_any END AS health,
    CASE WHEN t[4] NOT IN ('NULL', 'OBJECT', 'ARRAY') THEN s[4] END AS company_id,
    CASE WHEN t[5] NOT IN ('NULL', 'OBJECT', 'ARRAY') THEN s[5] END AS company_name,
    CASE WHEN t[6] NOT IN ('NULL', 'OBJECT', 'ARRAY') THEN s[6] END AS external_id,
    CASE WHEN t[7] NOT IN ('NULL', 'OBJECT', 'ARRAY') THEN s[7] END AS source_id,
    CASE WHEN t[8] = 'OBJECT' THEN j[1] END AS custom,
    CASE WHEN t[9] = 'OBJECT' THEN j[2] END AS usage,
    CASE WHEN is_object
         THEN nullif(json_merge_patch(record, $known_keys), '{}'::JSON) END AS extra,
    issues AS load_issues,
    CASE WHEN len(issues) > 0 THEN record END AS raw_record
FROM checked
-- records a page repeats from the page before (already staged there)
ANTI JOIN (SELECT unnest($repeat_pages::INTEGER[]) AS page,
                  unnest($repeat_ids::VARCHAR[]) AS objective_id) USING (page, objective_id)
"""

# Copies of one objective_id beyond the first (rows without an id are all kept).
COUNT_REPEATS = "SELECT count(objective_id) - count(DISTINCT objective_id) FROM staged.typed"

COPY_TYPED = """
INSERT INTO raw.planhat_objectives BY NAME
SELECT $snapshot_date::DATE AS snapshot_date,
       objective_id, name, health, company_id, company_name, external_id, source_id,
       custom, usage,
       $captured_at::TIMESTAMP AS captured_at,
       extra, load_issues, raw_record
FROM staged.typed
"""

# With repeats: the copy from the latest page wins; within one page, the first copy. (Without
# repeats the plain copy streams; this window would hold every id in memory, or spill.)
COPY_TYPED_LATEST = COPY_TYPED + """
QUALIFY objective_id IS NULL
     OR row_number() OVER (PARTITION BY objective_id ORDER BY page DESC, ordinal) = 1
"""

# $created_since: epoch seconds; objectives whose ObjectId (8 hex digits of creation
# seconds, then 16 more) is not older count as created since then.
PARTITION_SUMMARY = """
SELECT count(*),
       count(DISTINCT company_id),
       count(*) FILTER (WHERE len(load_issues) > 0),
       count(*) FILTER (WHERE regexp_full_match(objective_id, '[0-9a-fA-F]{24}')
                          AND TRY_CAST('0x' || left(objective_id, 8) AS BIGINT) >= $created_since)
FROM raw.planhat_objectives
WHERE snapshot_date = $snapshot_date
"""

ISSUE_COUNTS = """
SELECT issue, count(*)
FROM (SELECT unnest(load_issues) AS issue
      FROM raw.planhat_objectives WHERE snapshot_date = $snapshot_date)
GROUP BY issue
ORDER BY issue
"""
