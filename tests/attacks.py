"""SQL expressions a store manager who knows some SQL might put in a custom metric or column.

Each one runs an SQL string of its own, reads a server file or setting, counts every store's
rows, or reads a table directly. Used against the database roles (test_dashboard_roles) and
through Superset (test_dashboards): every one must be refused.
"""

ATTACKS = {
    "query_to_xml": "query_to_xml('select store_id, sum(visits) from public.report_visits_daily"
                    " group by 1', true, false, '')::text",
    "query_to_xml own view": "query_to_xml('select 1', true, false, '')::text",
    "query_to_xmlschema": "query_to_xmlschema('select 1', true, false, '')::text",
    "query_to_xml_and_xmlschema": "query_to_xml_and_xmlschema('select 1', true, false, '')"
                                  "::text",
    "table_to_xml": "table_to_xml('public.visits', true, false, '')::text",
    "table_to_xmlschema": "table_to_xmlschema('public.visits', true, false, '')::text",
    "cursor_to_xml": "cursor_to_xml('c', 1, true, false, '')::text",
    "schema_to_xml": "schema_to_xml('public', true, false, '')::text",
    "schema_to_xmlschema": "schema_to_xmlschema('public', true, false, '')::text",
    "database_to_xml": "database_to_xml(true, false, '')::text",
    "database_to_xmlschema": "database_to_xmlschema(true, false, '')::text",
    "ts_stat": "(ts_stat('select to_tsvector(store_id) from public.visits'))::text",
    "ts_rewrite": "ts_rewrite('a'::tsquery, 'select ''a''::tsquery, ''b''::tsquery')::text",
    "pg_read_file": "pg_read_file('/etc/hostname')",
    "pg_read_binary_file": "pg_read_binary_file('/etc/hostname')::text",
    "pg_ls_dir": "(pg_ls_dir('.'))::text",
    "pg_stat_file": "pg_stat_file('/etc/hostname')::text",
    "lo_import": "lo_import('/etc/hostname')::text",
    "lo_get": "lo_get(1)::text",
    "lo_from_bytea": "lo_from_bytea(0, 'x')::text",
    "current_setting": "current_setting('data_directory')",
    "current_setting port": "current_setting('port')",
    "set_config": "set_config('role', 'none', false)",
    "pg_relation_size": "pg_relation_size('public.visits')::text",
    "pg_total_relation_size": "pg_total_relation_size('public.visits')::text",
    "pg_stat_get_live_tuples": "pg_stat_get_live_tuples('public.visits'::regclass)::text",
    "pg_stat_get_tuples_inserted": "pg_stat_get_tuples_inserted('public.visits'::regclass)"
                                   "::text",
    "pg_ls_logdir": "(pg_ls_logdir())::text",
    "inet_server_addr": "inet_server_addr()::text",
    "txid_current": "txid_current()::text",
    "pg_current_xact_id": "pg_current_xact_id()::text",
    "pg_current_wal_lsn": "pg_current_wal_lsn()::text",
    "pg_database_size": "pg_database_size(current_database())::text",
    "visits": "(select count(*) from public.visits)::text",
    "public view": "(select count(*) from public.report_visits_daily)::text",
    "access table": "(select string_agg(store_id, ',') from public.dashboard_access)",
}
