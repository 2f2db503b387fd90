#!/bin/sh
# One-shot (docker-compose service citus-init): tell the Citus coordinator where it and its
# workers are. Idempotent, so `docker compose up` can run it on every start. Runs after the
# coordinator and both workers are healthy, before the migrations (create_distributed_table
# places shards on the workers registered at that moment).
set -eu
: "${CITUS_COORDINATOR:=citus-coordinator}"
: "${CITUS_WORKERS:=citus-worker-1 citus-worker-2}"
psql_c() { psql -h "$CITUS_COORDINATOR" -U postgres -d postgres -v ON_ERROR_STOP=1 -qAt "$@"; }

psql_c -c "SELECT citus_set_coordinator_host('$CITUS_COORDINATOR', 5432)" >/dev/null
for worker in $CITUS_WORKERS; do
  psql_c -c "SELECT citus_add_node('$worker', 5432)
             WHERE NOT EXISTS (SELECT 1 FROM pg_dist_node WHERE nodename = '$worker')" >/dev/null
done
echo "citus-init: active workers:"
psql_c -c "SELECT node_name || ':' || node_port FROM citus_get_active_worker_nodes() ORDER BY 1"
