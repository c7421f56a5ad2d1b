#!/bin/sh
# keepalived notify script for a regevent-gw pair (deploy/keepalived/README.md).
# keepalived calls it as: regevent-gw-notify.sh TYPE NAME STATE PRIORITY
#
# MODE (from /etc/default/regevent-gw-keepalived, default "standby"):
#   standby    both nodes run regevent-gw all the time with state.standby = true; the Redis lease
#              decides which one serves and the address follows it (track_script). This script
#              only logs the transition.
#   startstop  regevent-gw runs only on the MASTER: started on MASTER, stopped on BACKUP and
#              FAULT. Keep state.standby = true anyway: if both nodes believe they are MASTER
#              (a VRRP split), the lease still lets only one of them serve.
set -eu
MODE=standby
UNIT=regevent-gw.service
[ -r /etc/default/regevent-gw-keepalived ] && . /etc/default/regevent-gw-keepalived

STATE=${3:-UNKNOWN}
logger -t regevent-gw-keepalived "VRRP ${2:-?} is now ${STATE} (mode ${MODE})"

[ "$MODE" = startstop ] || exit 0
case "$STATE" in
  MASTER)       systemctl start "$UNIT" ;;
  BACKUP|FAULT) systemctl stop "$UNIT" ;;
  STOP)         ;; # keepalived itself stops: leave the gateway as it is
esac
