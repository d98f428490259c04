#!/usr/bin/env bash
# Remove everything the demo created: its containers (caisson-demo-web, caisson-demo-api and
# a parked <name>.caisson-prev), every image labelled caisson.demo=1 (tagged or not: the
# packages' images are loaded under that label too), the volume caisson-demo-data and
# /var/lib/caisson-demo. Nothing else on the engine is touched.
set -uo pipefail

containers=$(docker ps -aq --filter name='^/caisson-demo-(web|api)(\.caisson-prev)?$')
[ -z "$containers" ] || docker rm -f $containers >/dev/null
images=$(docker images -q --filter label=caisson.demo=1 | sort -u)
[ -z "$images" ] || docker rmi -f $images >/dev/null 2>&1
docker volume rm caisson-demo-data >/dev/null 2>&1 || true
rm -rf /var/lib/caisson-demo
