"""Queries Grafana's and Metabase's PostgreSQL connectors send, verbatim from
their sources (each with the upstream file and commit it was read from), with
the time-range macros expanded as Grafana expands them."""

# ---- Grafana (grafana/grafana) --------------------------------------------
# Health check: pgx's Ping sends "-- ping" (jackc/pgx pgconn/pgconn.go, called
# from pkg/tsdb/grafana-postgresql-datasource/sqleng/sql_engine.go @ 043dd88a);
# lib/pq's sends ";" (conn_go18.go, via sqleng/sql_engine.go @ e509a738).
GRAFANA_PING = ["-- ping", ";"]

_SEARCH_PATH = """
          quote_ident(table_schema) IN (
          SELECT
            CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
          FROM
            generate_series(
              array_lower(string_to_array(current_setting('search_path'),','),1),
              array_upper(string_to_array(current_setting('search_path'),','),1)
            ) as i,
            string_to_array(current_setting('search_path'),',') s
          )"""

# public/app/plugins/datasource/grafana-postgresql-datasource/postgresMetaQuery.ts
# @ 12f912ab8d010f4d95a4043a0efaa20fc4ca0100 and
# configuration/useAutoDetectFeatures.ts @ 3af0110a1a2192523521267b47ee6fede2c8ec57
GRAFANA_META = {
    "version": "SELECT current_setting('server_version_num')::int/100 as version",
    "timescaledb": "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'",
    "schemas": """SELECT schema_name AS "name"
    FROM information_schema.schemata
    WHERE schema_name NOT IN ('information_schema',
                              'pg_catalog',
                              'pg_toast',
                              '_timescaledb_cache',
                              '_timescaledb_catalog',
                              '_timescaledb_internal',
                              '_timescaledb_config',
                              'timescaledb_information',
                              'timescaledb_experimental')
    ORDER BY schema_name""",
    "tables_in_schema": """SELECT quote_ident(table_name) AS "table"
      FROM information_schema.tables
      WHERE quote_ident(table_schema) = 'public'
      ORDER BY 1""",
    "tables": """SELECT
    CASE WHEN """ + _SEARCH_PATH + """
      THEN quote_ident(table_name)
      ELSE quote_ident(table_schema) || '.' || quote_ident(table_name)
    END AS "table"
    FROM information_schema.tables
    WHERE quote_ident(table_schema) NOT IN ('information_schema',
                             'pg_catalog',
                             '_timescaledb_cache',
                             '_timescaledb_catalog',
                             '_timescaledb_internal',
                             '_timescaledb_config',
                             'timescaledb_information',
                             'timescaledb_experimental')
    ORDER BY CASE WHEN """ + _SEARCH_PATH + """ THEN 0 ELSE 1 END, 1""",
    "columns": """SELECT quote_ident(column_name) AS "column", data_type AS "type"
    FROM information_schema.columns
    WHERE
      CASE WHEN array_length(parse_ident('events'),1) = 2
        THEN quote_ident(table_schema) = (parse_ident('events'))[1]
          AND quote_ident(table_name) = (parse_ident('events'))[2]
        ELSE quote_ident(table_name) = 'events'
          AND """ + _SEARCH_PATH + """
      END""",
}

# Panel queries after pkg/tsdb/grafana-postgresql-datasource/macros.go
# (@ 0577088076c3920f31aa0ca03cf8ac62e08f4d5b) expanded $__timeGroupAlias,
# $__timeFilter and $__timeFrom/$__timeTo for 2026-07-01T00:00:00Z..06:00:00Z.
GRAFANA_PANELS = [
    # SELECT $__timeGroupAlias(event_time,'1h'), count(*) FROM events
    # WHERE $__timeFilter(event_time) GROUP BY 1 ORDER BY 1
    """SELECT floor(extract(epoch from event_time)/3600)*3600 AS "time", count(*) FROM events WHERE event_time BETWEEN '2026-07-01T00:00:00Z' AND '2026-07-01T06:00:00Z' GROUP BY 1 ORDER BY 1""",
    # SELECT $__time(hour), sum(events) ... FROM events_hourly WHERE $__timeFilter(hour)
    """SELECT hour AS "time", event_type AS metric, sum(events) AS value FROM events_hourly WHERE hour BETWEEN '2026-07-01T00:00:00Z' AND '2026-07-01T06:00:00Z' GROUP BY 1, 2 ORDER BY 1, 2""",
    # SELECT $__timeGroupAlias(event_time,'5m'), country AS metric, sum(revenue) ...
    """SELECT floor(extract(epoch from event_time)/300)*300 AS "time", country AS metric, sum(revenue) AS revenue FROM events WHERE event_time BETWEEN '2026-07-01T00:00:00.123Z' AND '2026-07-01T02:00:00Z' AND revenue IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2""",
]

# pkg/tsdb/grafana-postgresql-datasource/schema.go @ 043dd88a (extended protocol, $n).
GRAFANA_SCHEMA_API = [
    ("""SELECT schema_name FROM information_schema.schemata
\t\t WHERE schema_name NOT LIKE 'pg_%' AND schema_name != 'information_schema'
\t\t ORDER BY schema_name""", []),
    ("""SELECT table_name FROM information_schema.tables
\t\t WHERE table_schema = $1 AND table_type IN ('BASE TABLE', 'VIEW')
\t\t ORDER BY table_name""", ["public"]),
    ("""SELECT column_name, data_type, udt_name, numeric_precision, numeric_scale
\t\t FROM information_schema.columns
\t\t WHERE table_schema = $1 AND table_name = $2
\t\t ORDER BY ordinal_position""", ["public", "events"]),
]

# ---- Metabase (metabase/metabase) ------------------------------------------
# src/metabase/driver/postgres.clj @ 008fd6675457cdd62da2265628bed3b725a607ea
# unless noted; HoneySQL forms rendered with HoneySQL 2 ({:dialect :ansi}),
# placeholders numbered as pgJDBC sends them.
METABASE_SESSION = [
    # pgJDBC runInitialQueries with Metabase's ApplicationName (app_db/spec.clj @ 34e89c02)
    "SET application_name = 'Metabase v0.62.1.5 [1f0c5b6e-replay]'",
    # sql_jdbc/connection.clj can-connect-with-spec?
    "SELECT 1",
    # pgJDBC getTransactionIsolation / getCatalog (PgConnection.java)
    "SHOW TRANSACTION ISOLATION LEVEL",
    "select current_catalog",
    # sql_jdbc/execute.clj @ 0041072d set-best-transaction-level!
    "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ UNCOMMITTED",
    # postgres.clj driver/db-default-timezone
    "show timezone;",
]

METABASE_PRIVILEGES = """with table_privileges as (
 select
   NULL as role,
   t.schemaname as schema,
   t.objectname as table,
   pg_catalog.has_any_column_privilege(current_user, '"' || replace(t.schemaname, '"', '""') || '"' || '.' || '"' || replace(t.objectname, '"', '""') || '"',  'update') as update,
   pg_catalog.has_any_column_privilege(current_user, '"' || replace(t.schemaname, '"', '""') || '"' || '.' || '"' || replace(t.objectname, '"', '""') || '"',  'select') as select,
   pg_catalog.has_any_column_privilege(current_user, '"' || replace(t.schemaname, '"', '""') || '"' || '.' || '"' || replace(t.objectname, '"', '""') || '"',  'insert') as insert,
   pg_catalog.has_table_privilege(     current_user, '"' || replace(t.schemaname, '"', '""') || '"' || '.' || '"' || replace(t.objectname, '"', '""') || '"',  'delete') as delete
 from (
   select schemaname, tablename as objectname from pg_catalog.pg_tables
   union
   select schemaname, viewname as objectname from pg_catalog.pg_views
   union
   select schemaname, matviewname as objectname from pg_catalog.pg_matviews
 ) t
 where t.schemaname !~ '^pg_'
   and t.schemaname <> 'information_schema'
   and pg_catalog.has_schema_privilege(current_user, t.schemaname, 'usage')
)
select t.*
from table_privileges t"""

METABASE_TABLES = ("""SELECT "n"."nspname" AS "schema", "c"."relname" AS "name", CASE "c"."relkind" WHEN 'r' THEN 'TABLE' WHEN 'p' THEN 'PARTITIONED TABLE' WHEN 'v' THEN 'VIEW' WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE NULL END AS "type", "d"."description" AS "description", "stat"."n_live_tup" AS "estimated_row_count" FROM "pg_catalog"."pg_class" AS "c" INNER JOIN "pg_catalog"."pg_namespace" AS "n" ON "c"."relnamespace" = "n"."oid" LEFT JOIN "pg_catalog"."pg_description" AS "d" ON ("c"."oid" = "d"."objoid") AND ("d"."objsubid" = $1) AND ("d"."classoid" = 'pg_class'::regclass) LEFT JOIN "pg_stat_user_tables" AS "stat" ON ("n"."nspname" = "stat"."schemaname") AND ("c"."relname" = "stat"."relname") WHERE ("c"."relnamespace" = "n"."oid") AND ("n"."nspname" !~ $2) AND ("n"."nspname" <> $3) AND c.relkind in ('r', 'p', 'v', 'f', 'm') AND ("n"."nspname" IN ($4)) ORDER BY "type" ASC, "schema" ASC, "name" ASC""",
                   [0, "^pg_", "information_schema", "public"])

METABASE_ENUMS = """SELECT nspname, typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.oid IN (SELECT DISTINCT enumtypid FROM pg_enum e)"""

METABASE_FIELDS = ("""SELECT "c"."column_name" AS "name", CASE WHEN "c"."udt_schema" IN ('public', 'pg_catalog') THEN FORMAT('%s', "c"."udt_name") ELSE FORMAT('"%s"."%s"', "c"."udt_schema", "c"."udt_name") END AS "database-type", "c"."ordinal_position" - 1 AS "database-position", "c"."table_schema" AS "table-schema", "c"."table_name" AS "table-name", "pk"."column_name" IS NOT NULL AS "pk?", COL_DESCRIPTION(CAST(CAST(FORMAT('%I.%I', CAST("c"."table_schema" AS TEXT), CAST("c"."table_name" AS TEXT)) AS REGCLASS) AS OID), "c"."ordinal_position") AS "field-comment", (("column_default" IS NULL) OR (LOWER("column_default") = 'null')) AND ("is_nullable" = 'NO') AND NOT ((("column_default" IS NOT NULL) AND ("column_default" LIKE '%nextval(%')) OR ("is_identity" <> 'NO')) AS "database-required", (("column_default" IS NOT NULL) AND ("column_default" LIKE '%nextval(%')) OR ("is_identity" <> 'NO') AS "database-is-auto-increment" FROM "information_schema"."columns" AS "c" LEFT JOIN (SELECT "tc"."table_schema", "tc"."table_name", "kc"."column_name" FROM "information_schema"."table_constraints" AS "tc" INNER JOIN "information_schema"."key_column_usage" AS "kc" ON ("tc"."constraint_name" = "kc"."constraint_name") AND ("tc"."table_schema" = "kc"."table_schema") AND ("tc"."table_name" = "kc"."table_name") WHERE "tc"."constraint_type" = 'PRIMARY KEY') AS "pk" ON ("c"."table_schema" = "pk"."table_schema") AND ("c"."table_name" = "pk"."table_name") AND ("c"."column_name" = "pk"."column_name") WHERE c.table_schema !~ '^information_schema|catalog_history|pg_' AND ("c"."table_schema" IN ($1)) UNION ALL SELECT "pa"."attname" AS "name", CASE WHEN "ptn"."nspname" IN ('public', 'pg_catalog') THEN FORMAT('%s', "pt"."typname") ELSE FORMAT('"%s"."%s"', "ptn"."nspname", "pt"."typname") END AS "database-type", "pa"."attnum" - 1 AS "database-position", "pn"."nspname" AS "table-schema", "pc"."relname" AS "table-name", FALSE AS "pk?", NULL AS "field-comment", FALSE AS "database-required", FALSE AS "database-is-auto-increment" FROM "pg_catalog"."pg_class" AS "pc" INNER JOIN "pg_catalog"."pg_namespace" AS "pn" ON "pn"."oid" = "pc"."relnamespace" INNER JOIN "pg_catalog"."pg_attribute" AS "pa" ON "pa"."attrelid" = "pc"."oid" INNER JOIN "pg_catalog"."pg_type" AS "pt" ON "pt"."oid" = "pa"."atttypid" INNER JOIN "pg_catalog"."pg_namespace" AS "ptn" ON "ptn"."oid" = "pt"."typnamespace" WHERE ("pc"."relkind" = 'm') AND ("pa"."attnum" >= 1) AND ("pn"."nspname" IN ($2)) ORDER BY "table-schema" ASC, "table-name" ASC, "database-position" ASC""",
                   ["public", "public"])

METABASE_FKS = ("""SELECT "fk_ns"."nspname" AS "fk-table-schema", "fk_table"."relname" AS "fk-table-name", "fk_column"."attname" AS "fk-column-name", "pk_ns"."nspname" AS "pk-table-schema", "pk_table"."relname" AS "pk-table-name", "pk_column"."attname" AS "pk-column-name" FROM "pg_constraint" AS "c" INNER JOIN "pg_class" AS "fk_table" ON "c"."conrelid" = "fk_table"."oid" INNER JOIN "pg_namespace" AS "fk_ns" ON "c"."connamespace" = "fk_ns"."oid" INNER JOIN "pg_attribute" AS "fk_column" ON "c"."conrelid" = "fk_column"."attrelid" INNER JOIN "pg_class" AS "pk_table" ON "c"."confrelid" = "pk_table"."oid" INNER JOIN "pg_namespace" AS "pk_ns" ON "pk_table"."relnamespace" = "pk_ns"."oid" INNER JOIN "pg_attribute" AS "pk_column" ON "c"."confrelid" = "pk_column"."attrelid" WHERE fk_ns.nspname !~ '^information_schema|catalog_history|pg_' AND ("c"."contype" = 'f'::char) AND ("fk_column"."attnum" = ANY(c.conkey)) AND ("pk_column"."attnum" = ANY(c.confkey)) AND ("fk_ns"."nspname" IN ($1)) ORDER BY "fk-table-schema" ASC, "fk-table-name" ASC""",
                ["public"])
