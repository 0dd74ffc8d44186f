#!/usr/bin/env bash
# tests/servers/mailstack.sh - tui-mail's real-mail-server test harness:
# Dovecot (IMAP/POP3/LMTP) + Postfix (SMTP/submission) on loopback high ports,
# as root, without systemd, in a self-contained folder DIR.
# (Adapted from the team's shared reference harness; the project carries its own copy.)
#
#   mailstack.sh start  DIR            create DIR (certs, users, configs) if needed, start servers
#   mailstack.sh stop   DIR            stop the servers started from DIR (by PID)
#   mailstack.sh status DIR            show PIDs/ports; exit 0 only if everything is up
#   mailstack.sh load   DIR USER N [MAILBOX]   bulk-load N synthetic messages (loadmail.py)
#   mailstack.sh env    DIR            print the shell variables tests need (ports, CA, users)
#   mailstack.sh install               only install the Debian packages (if missing)
#
# Ports (127.0.0.1, + MAILSTACK_PORT_OFFSET): IMAP 10143 (STARTTLS), IMAPS 10993,
# POP3 10110 (STLS), POP3S 10995, LMTP 10024 (direct into Dovecot), SMTP 10025
# (MX role, no AUTH), submission 10587 (STARTTLS required, AUTH via Dovecot SASL),
# submissions 10465 (implicit TLS). Postfix delivers to Dovecot over LMTP.
# Users alice/alicepass bob/bobpass catchall/catchallpass; local domains localhost
# and example.test; any other recipient lands in catchall's INBOX (nothing is relayed).
# TLS: a private CA (DIR/tls/ca.crt) signs a server cert for localhost/127.0.0.1.
#
# All commands are idempotent: `start` on a running stack only re-renders the
# configs and reloads the servers, `stop` on a stopped one does nothing. Data in
# DIR survives stop/start. `rm -rf DIR` after `stop` resets everything.
# DIR's parent folders must be world-traversable (o+x): the dovecot, postfix and
# vmail users read files below it (so not under pytest's /tmp/pytest-of-root, mode 0700).
# Tests read ports, users and the CA path from DIR/mailstack.env.
#
# Environment knobs read at the first `start` of a DIR, then persisted in DIR/mailstack.env:
#   MAILSTACK_PORT_OFFSET  add to every port (default 0) - for several stacks at once
#   MAILSTACK_USERS        "user:password ..." (default "alice:alicepass bob:bobpass catchall:catchallpass")
#   MAILSTACK_AUTH_MECHS   Dovecot auth_mechanisms (default "plain login"; "plain login cram-md5" works)
#   MAILSTACK_MAIL_USER    system user owning the mail files (default vmail; created if missing)
#   MAILSTACK_MAIL_FORMAT  maildir (default) | sdbox | mdbox   Dovecot storage format
# Read on every call:
#   MAILSTACK_NO_POSTFIX=1 start Dovecot only
#   MAILSTACK_LOAD_METHOD  maildir (default for maildir) | append (IMAP MULTIAPPEND; default otherwise)
#   MAILSTACK_EXTRA_PKGS   more Debian packages for `install`/`start` to ensure (e.g. "python3-venv")
#   PYTHON                 interpreter for loadmail.py (default python3)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TEMPLATES="$HERE/templates"
# tmux is not needed by the servers, but the UI tests drive tui-mail inside tmux and
# CI installs everything through this one function (scripts/test.sh -> `install`).
PKGS=(dovecot-core dovecot-imapd dovecot-pop3d dovecot-lmtpd postfix openssl ca-certificates tmux)
# shellcheck disable=SC2206
PKGS+=(${MAILSTACK_EXTRA_PKGS:-})

log() { printf 'mailstack: %s\n' "$*" >&2; }
die() { printf 'mailstack: error: %s\n' "$*" >&2; exit 1; }

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
  exit 2
}

# ---------------------------------------------------------------- packages
missing_pkgs() {
  local ok p
  ok="$(dpkg-query -W -f='${Package} ${Status}\n' "${PKGS[@]}" 2>/dev/null | awk '/ install ok installed$/ { print $1 }')"
  for p in "${PKGS[@]}"; do
    grep -qx "$p" <<< "$ok" || echo "$p"
  done
  # loadmail.py needs some python3 (a pyenv one is fine; only install Debian's if none)
  command -v "${PYTHON:-python3}" >/dev/null 2>&1 || echo python3
}

ensure_packages() {
  local missing
  missing="$(missing_pkgs | sort -u | xargs)"
  [ -z "$missing" ] && return 0
  [ "$(id -u)" = 0 ] || die "packages missing ($missing) and not root"
  command -v apt-get >/dev/null || die "packages missing ($missing) and no apt-get (Debian/Ubuntu only)"
  log "installing Debian packages: $missing"
  # Without systemd, the packages' postinst would run /etc/init.d/{dovecot,postfix}
  # start and bring up the *system* instances on 0.0.0.0:143/993/25. Forbid that
  # with a temporary policy-rc.d (exit 101 = action forbidden) unless one exists.
  local made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
    made_policy=1
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  # "No configuration": no /etc/postfix/main.cf, no system MTA set up.
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  local rc=0
  export DEBIAN_FRONTEND=noninteractive
  # Always refresh the lists first: a fresh CI image has none, stale ones 404.
  apt-get update -q || rc=$?
  if [ "$rc" = 0 ]; then
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $missing </dev/null || rc=$?
  fi
  if [ "$made_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; trap - EXIT; fi
  [ "$rc" = 0 ] || die "apt-get failed (exit $rc) installing: $missing"
  missing="$(missing_pkgs | sort -u | xargs)"
  [ -z "$missing" ] || die "still missing after apt-get install: $missing"
}

ensure_mail_user() {
  local u="$1"
  if ! getent passwd "$u" >/dev/null; then
    log "creating system user $u (owner of the maildirs)"
    useradd --system --user-group --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin "$u"
  fi
}

# ---------------------------------------------------------------- helpers
abs_dir() {
  [ -n "${1:-}" ] || usage
  local d
  d="$(realpath -m -- "$1")"
  [[ "$d" =~ ^/[A-Za-z0-9._/+-]+$ ]] || die "DIR must match [A-Za-z0-9._/+-]: $d"
  [ "$d" != / ] || die "refusing DIR=/"
  printf '%s\n' "$d"
}

load_env() {   # read DIR/mailstack.env into the shell
  local dir="$1"
  [ -f "$dir/mailstack.env" ] || die "$dir is not a mailstack folder (no mailstack.env); run start first"
  # shellcheck disable=SC1091
  . "$dir/mailstack.env"
}

pid_alive() {  # pid_alive PIDFILE EXE-SUBSTRING -> prints pid if running
  local f="$1" want="$2" pid exe
  [ -f "$f" ] || return 1
  pid="$(tr -dc '0-9' < "$f")"
  [ -n "$pid" ] || return 1
  proc_live "$pid" || return 1
  exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
  [[ "$exe" == *"$want"* ]] || return 1
  printf '%s\n' "$pid"
}

dovecot_pid() { pid_alive "$1/run/dovecot/master.pid" /usr/sbin/dovecot; }
postfix_pid() { pid_alive "$1/postfix/spool/pid/master.pid" /postfix/sbin/master; }

port_busy() {   # is something LISTENing on TCP port $1? (no iproute2 needed)
  local hex; hex="$(printf ':%04X' "$1")"
  awk -v h="$hex" '$4 == "0A" && substr($2, length($2) - 4) == h { f = 1 } END { exit !f }' \
    /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

wait_ports() {  # wait_ports TIMEOUT_S PORT...
  local t="$1"; shift
  local deadline=$((SECONDS + t)) p
  for p in "$@"; do
    while ! port_busy "$p"; do
      [ "$SECONDS" -lt "$deadline" ] || return 1
      sleep 0.05
    done
  done
}

proc_live() {   # running and not a zombie (daemons are re-parented to PID 1,
                # which may be slow to reap them in containers/sandboxes)
  local st
  st="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" || return 1
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

wait_gone() {   # wait_gone PID TIMEOUT_S
  local pid="$1" t="$2" i=0
  while proc_live "$pid"; do
    i=$((i + 1)); [ "$i" -le $((t * 20)) ] || return 1
    sleep 0.05
  done
}

render() {      # render TEMPLATE OUT
  [ -s "$1" ] || die "missing template $1"
  sed -e "s|@DIR@|$DIR|g" \
      -e "s|@MAIL_USER@|$MAILSTACK_MAIL_USER|g" \
      -e "s|@AUTH_MECHS@|$MAILSTACK_AUTH_MECHS|g" \
      -e "s|@MAIL_LOCATION@|$MAIL_LOCATION|g" \
      -e "s|@IMAP_PORT@|$MAILSTACK_IMAP_PORT|g" \
      -e "s|@IMAPS_PORT@|$MAILSTACK_IMAPS_PORT|g" \
      -e "s|@POP3_PORT@|$MAILSTACK_POP3_PORT|g" \
      -e "s|@POP3S_PORT@|$MAILSTACK_POP3S_PORT|g" \
      -e "s|@LMTP_PORT@|$MAILSTACK_LMTP_PORT|g" \
      -e "s|@SMTP_PORT@|$MAILSTACK_SMTP_PORT|g" \
      -e "s|@SUBMISSION_PORT@|$MAILSTACK_SUBMISSION_PORT|g" \
      -e "s|@SUBMISSIONS_PORT@|$MAILSTACK_SUBMISSIONS_PORT|g" \
      -e "s|@DOMAINS@|$MAILSTACK_DOMAINS|g" \
      "$1" > "$2.tmp" || die "rendering $1 failed"
  [ -s "$2.tmp" ] || die "rendering $1 gave an empty file"
  install_if_changed "$2.tmp" "$2"
}

# install_if_changed TMP TARGET: replace TARGET only if the content differs, and
# back-date its mtime. Postfix re-reads a config/map file every 300 ms for as
# long as its mtime is less than ~1 s old ("file is hot"), which made every
# `postfix start` take 1.5-2.5 s after re-rendering main.cf.
install_if_changed() {
  if [ -f "$2" ] && cmp -s "$1" "$2"; then
    rm -f "$1"
  else
    mv -f "$1" "$2"
    touch -d "@$(( $(date +%s) - 10 ))" "$2"
  fi
}

# ---------------------------------------------------------------- init
init_dir() {
  local dir="$1" parent
  mkdir -p "$dir"
  chmod 0755 "$dir"   # postfix/dovecot/vmail users must traverse it
  parent="$(dirname "$dir")"
  while [ "$parent" != / ]; do
    [ "$(( 0$(stat -c %a "$parent") & 1 ))" = 1 ] \
      || die "$parent is not world-traversable (mode $(stat -c %a "$parent")); the dovecot/postfix/vmail users could not reach $dir. Use a DIR under /tmp or /dev/shm (e.g. mktemp -d), or chmod o+x $parent"
    parent="$(dirname "$parent")"
  done
  if [ ! -f "$dir/mailstack.env" ]; then
    local off="${MAILSTACK_PORT_OFFSET:-0}"
    [[ "$off" =~ ^[0-9]+$ ]] || die "MAILSTACK_PORT_OFFSET must be a number"
    [ "$((10995 + off))" -le 65535 ] || die "MAILSTACK_PORT_OFFSET=$off puts ports above 65535 (max 54540)"
    cat > "$dir/mailstack.env.tmp" <<EOF
# mailstack environment for $dir (source me)
MAILSTACK_DIR=$dir
MAILSTACK_HOST=127.0.0.1
MAILSTACK_IMAP_PORT=$((10143 + off))
MAILSTACK_IMAPS_PORT=$((10993 + off))
MAILSTACK_POP3_PORT=$((10110 + off))
MAILSTACK_POP3S_PORT=$((10995 + off))
MAILSTACK_LMTP_PORT=$((10024 + off))
MAILSTACK_SMTP_PORT=$((10025 + off))
MAILSTACK_SUBMISSION_PORT=$((10587 + off))
MAILSTACK_SUBMISSIONS_PORT=$((10465 + off))
MAILSTACK_CA_FILE=$dir/tls/ca.crt
MAILSTACK_USERS="${MAILSTACK_USERS:-alice:alicepass bob:bobpass catchall:catchallpass}"
MAILSTACK_DOMAINS="localhost, example.test"
MAILSTACK_CATCHALL=catchall@localhost
MAILSTACK_AUTH_MECHS="${MAILSTACK_AUTH_MECHS:-plain login}"
MAILSTACK_MAIL_USER=${MAILSTACK_MAIL_USER:-vmail}
MAILSTACK_MAIL_FORMAT=${MAILSTACK_MAIL_FORMAT:-maildir}
MAILSTACK_MAILDIR_ROOT=$dir/mail
EOF
    mv -f "$dir/mailstack.env.tmp" "$dir/mailstack.env"
  fi
  load_env "$dir"
  DIR="$dir"
  ensure_mail_user "$MAILSTACK_MAIL_USER"
  case "${MAILSTACK_MAIL_FORMAT:-maildir}" in
    maildir) MAIL_LOCATION="maildir:~/Maildir" ;;
    sdbox)   MAIL_LOCATION="sdbox:~/sdbox" ;;
    mdbox)   MAIL_LOCATION="mdbox:~/mdbox" ;;
    *) die "MAILSTACK_MAIL_FORMAT must be maildir, sdbox or mdbox" ;;
  esac

  mkdir -p "$dir"/{etc,tls,log,run,state/dovecot,mail,postfix/etc,postfix/data,postfix/spool}
  chown "$MAILSTACK_MAIL_USER:$MAILSTACK_MAIL_USER" "$dir/mail"
  chmod 0750 "$dir/mail"
  chown postfix:postfix "$dir/postfix/data"
  chown root:root "$dir/postfix/spool"
  chmod 0755 "$dir/postfix/spool"
  # dovecot's base_dir is created by dovecot itself (it must not be world-writable)

  # --- TLS: private CA + server cert for localhost/127.0.0.1 (made once per DIR)
  if [ ! -s "$dir/tls/server.crt" ] || [ ! -s "$dir/tls/ca.crt" ]; then
    log "generating TLS CA and server certificate"
    (
      cd "$dir/tls"
      umask 077
      openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -sha256 \
        -subj "/CN=mailstack test CA" -keyout ca.key -out ca.crt \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash" 2>/dev/null
      openssl req -newkey rsa:2048 -nodes -sha256 -subj "/CN=localhost" \
        -keyout server.key -out server.csr 2>/dev/null
      printf '%s\n' \
        "basicConstraints=critical,CA:FALSE" \
        "keyUsage=critical,digitalSignature,keyEncipherment" \
        "extendedKeyUsage=serverAuth" \
        "subjectAltName=DNS:localhost,DNS:mailstack.localhost,IP:127.0.0.1,IP:::1" \
        "subjectKeyIdentifier=hash" \
        "authorityKeyIdentifier=keyid,issuer" > server.ext
      openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
        -days 825 -sha256 -extfile server.ext -out server.crt 2>/dev/null
      rm -f server.csr server.ext ca.srl
      chmod 0644 ca.crt server.crt
      chmod 0600 ca.key server.key
    )
  fi

  # --- users: Dovecot passwd-file + Postfix recipient map
  local u pw users_tmp="$dir/etc/users.tmp" vmb_tmp="$dir/postfix/etc/vmailbox.tmp" dom
  : > "$users_tmp"; : > "$vmb_tmp"
  for u in $MAILSTACK_USERS; do
    pw="${u#*:}"; u="${u%%:*}"
    [[ "$u" =~ ^[a-z0-9._-]+$ ]] || die "bad user name: $u"
    [[ "$pw" =~ ^[A-Za-z0-9._+-]+$ ]] || die "password for $u must match [A-Za-z0-9._+-]+"
    printf '%s:{PLAIN}%s::::::\n' "$u" "$pw" >> "$users_tmp"
    for dom in ${MAILSTACK_DOMAINS//,/ }; do
      printf '%s@%s OK\n' "$u" "$dom" >> "$vmb_tmp"
    done
  done
  chown root:dovecot "$users_tmp"; chmod 0640 "$users_tmp"
  install_if_changed "$users_tmp" "$dir/etc/users"
  install_if_changed "$vmb_tmp" "$dir/postfix/etc/vmailbox"
  local doms_re
  doms_re="$(echo "$MAILSTACK_DOMAINS" | sed -e 's/[ ,]\+/|/g' -e 's/\./\\./g')"
  # Matches (-> catch-all) only full addresses outside the local domains. Keys
  # without "@" (bare local parts, which Postfix also looks up) never match.
  printf '!/(^[^@]*$)|@(%s)$/ %s\n' "$doms_re" "$MAILSTACK_CATCHALL" > "$dir/postfix/etc/virtual_alias.regexp.tmp"
  install_if_changed "$dir/postfix/etc/virtual_alias.regexp.tmp" "$dir/postfix/etc/virtual_alias.regexp"

  # --- configs (re-rendered on every start; cheap)
  render "$TEMPLATES/dovecot.conf.in" "$dir/etc/dovecot.conf"
  render "$TEMPLATES/postfix-main.cf.in" "$dir/postfix/etc/main.cf"
  render "$TEMPLATES/postfix-master.cf.in" "$dir/postfix/etc/master.cf"

  # --- client configs for peer programs the benchmarks compare against
  # (mbsync, neomutt), user alice
  mkdir -p "$dir/peers/mbsync/alice"
  render "$TEMPLATES/mbsyncrc.in" "$dir/peers/mbsyncrc"
  render "$TEMPLATES/neomuttrc.in" "$dir/peers/neomuttrc"
}

# ---------------------------------------------------------------- commands
cmd_start() {
  local dir; dir="$(abs_dir "${1:-}")"
  [ "$(id -u)" = 0 ] || die "must run as root"
  ensure_packages
  local t0; t0="$(date +%s%N)"
  init_dir "$dir"

  local dpid ppid
  if dpid="$(dovecot_pid "$dir")"; then
    # configs were just re-rendered: make the running master re-read them
    kill -HUP "$dpid"
    log "dovecot already running (pid $dpid); reloaded"
  else
    local p
    for p in "$MAILSTACK_IMAP_PORT" "$MAILSTACK_IMAPS_PORT" "$MAILSTACK_POP3_PORT" \
             "$MAILSTACK_POP3S_PORT" "$MAILSTACK_LMTP_PORT"; do
      port_busy "$p" && die "port $p is already in use (another stack? set MAILSTACK_PORT_OFFSET)"
    done
    # Safety net: never start a Dovecot that would listen beyond loopback.
    [ "$(doveconf -c "$dir/etc/dovecot.conf" -h listen 2>/dev/null)" = 127.0.0.1 ] \
      || die "$dir/etc/dovecot.conf does not say listen = 127.0.0.1; refusing to start"
    rm -f "$dir/run/dovecot/master.pid"
    # Daemons must not inherit our stdout/stderr: a caller that captures output
    # (subprocess.run(capture_output=True), `| tee`) would otherwise hang until they exit.
    dovecot -c "$dir/etc/dovecot.conf" </dev/null >>"$dir/log/dovecot-start.log" 2>&1 \
      || { tail -20 "$dir/log/dovecot-start.log" "$dir/log/dovecot.log" >&2 || true; die "dovecot failed to start"; }
    wait_ports 15 "$MAILSTACK_IMAP_PORT" "$MAILSTACK_IMAPS_PORT" "$MAILSTACK_POP3_PORT" \
                  "$MAILSTACK_POP3S_PORT" "$MAILSTACK_LMTP_PORT" \
      || { tail -20 "$dir/log/dovecot.log" >&2 || true; die "dovecot did not open its ports"; }
    dpid="$(dovecot_pid "$dir")" || die "dovecot not running; see $dir/log/dovecot.log"
    log "dovecot started (pid $dpid)"
  fi

  if [ "${MAILSTACK_NO_POSTFIX:-0}" = 1 ]; then
    log "MAILSTACK_NO_POSTFIX=1: postfix not started"
  elif ppid="$(postfix_pid "$dir")"; then
    postfix -c "$dir/postfix/etc" reload </dev/null >>"$dir/log/postfix-start.log" 2>&1 || true
    log "postfix already running (pid $ppid); reloaded"
  else
    local p
    for p in "$MAILSTACK_SMTP_PORT" "$MAILSTACK_SUBMISSION_PORT" "$MAILSTACK_SUBMISSIONS_PORT"; do
      port_busy "$p" && die "port $p is already in use (another stack? set MAILSTACK_PORT_OFFSET)"
    done
    [ "$(postconf -c "$dir/postfix/etc" -h inet_interfaces 2>/dev/null)" = 127.0.0.1 ] \
      || die "$dir/postfix/etc/main.cf does not say inet_interfaces = 127.0.0.1; refusing to start"
    # `postfix start` runs postfix-script: it creates the queue sub-folders
    # (postfix-files from meta_directory) and daemonizes master(8).
    postfix -c "$dir/postfix/etc" start </dev/null >>"$dir/log/postfix-start.log" 2>&1 \
      || { tail -20 "$dir/log/postfix-start.log" >&2; die "postfix start failed"; }
    wait_ports 15 "$MAILSTACK_SMTP_PORT" "$MAILSTACK_SUBMISSION_PORT" "$MAILSTACK_SUBMISSIONS_PORT" \
      || { tail -20 "$dir/log/postfix.log" >&2 || true; die "postfix did not open its ports"; }
    ppid="$(postfix_pid "$dir")" || die "postfix master not running; see $dir/log/postfix.log"
    log "postfix started (pid $ppid)"
  fi
  log "stack up in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
  cat "$dir/mailstack.env"
}

cmd_stop() {
  local dir; dir="$(abs_dir "${1:-}")"
  [ -d "$dir" ] || { log "$dir does not exist; nothing to stop"; return 0; }
  local pid
  if pid="$(postfix_pid "$dir")"; then
    postfix -c "$dir/postfix/etc" stop >>"$dir/log/postfix-start.log" 2>&1 || kill -TERM "$pid" 2>/dev/null || true
    if ! wait_gone "$pid" 15; then
      log "postfix master $pid did not exit; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    log "postfix stopped (pid $pid)"
  else
    log "postfix not running"
  fi
  if pid="$(dovecot_pid "$dir")"; then
    # SIGTERM to the master = `doveadm stop`; with shutdown_clients=yes (default)
    # it also ends the imap/pop3 processes of connected clients.
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_gone "$pid" 15; then
      log "dovecot master $pid did not exit; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    log "dovecot stopped (pid $pid)"
  else
    log "dovecot not running"
  fi
}

tree_mem() {    # tree_mem PID... -> "<nprocs> <rss_kb> <pss_kb>" for the PIDs and all descendants
  local pids p r x n=0 rss=0 pss=0
  pids="$(cat /proc/[0-9]*/stat 2>/dev/null | awk -v roots="$*" '
    { pid = $1; line = $0; sub(/^.*\) /, "", line); split(line, f, " "); ppid[pid] = f[2] }
    END {
      k = split(roots, r, " "); for (i = 1; i <= k; i++) keep[r[i]] = 1
      changed = 1
      while (changed) { changed = 0; for (p in ppid) if (!(p in keep) && (ppid[p] in keep)) { keep[p] = 1; changed = 1 } }
      for (p in keep) if (p in ppid) print p
    }')"
  for p in $pids; do
    read -r r x < <(awk '$1 == "Rss:" { r = $2 } $1 == "Pss:" { s = $2 } END { print r + 0, s + 0 }' \
                    "/proc/$p/smaps_rollup" 2>/dev/null) || continue
    [ "${r:-0}" -gt 0 ] || continue
    n=$((n + 1)); rss=$((rss + r)); pss=$((pss + x))
  done
  echo "$n $rss $pss"
}

cmd_status() {
  local dir; dir="$(abs_dir "${1:-}")"
  load_env "$dir"
  local rc=0 pid
  if pid="$(dovecot_pid "$dir")"; then echo "dovecot: running (pid $pid)"; else echo "dovecot: stopped"; rc=1; fi
  if pid="$(postfix_pid "$dir")"; then echo "postfix: running (pid $pid)"
  else echo "postfix: stopped"; [ "${MAILSTACK_NO_POSTFIX:-0}" = 1 ] || rc=1; fi
  local pids=() m
  pid="$(dovecot_pid "$dir")" && pids+=("$pid")
  pid="$(postfix_pid "$dir")" && pids+=("$pid")
  if [ "${#pids[@]}" -gt 0 ]; then
    read -r -a m <<< "$(tree_mem "${pids[@]}")"
    echo "memory: ${m[0]} processes, RSS $(( m[1] / 1024 )) MiB, PSS $(( m[2] / 1024 )) MiB"
  fi
  local name p
  for name in IMAP IMAPS POP3 POP3S LMTP SMTP SUBMISSION SUBMISSIONS; do
    p="MAILSTACK_${name}_PORT"; p="${!p}"
    if port_busy "$p"; then echo "  $name 127.0.0.1:$p listening"; else echo "  $name 127.0.0.1:$p closed"; fi
  done
  return "$rc"
}

cmd_env() {
  local dir; dir="$(abs_dir "${1:-}")"
  load_env "$dir"
  cat "$dir/mailstack.env"
}

cmd_load() {
  local dir; dir="$(abs_dir "${1:-}")"
  local user="${2:-}" n="${3:-}" mbox="${4:-INBOX}"
  [ -n "$user" ] && [[ "$n" =~ ^[0-9]+$ ]] || usage
  load_env "$dir"
  DIR="$dir"
  grep -q "^$user:" "$dir/etc/users" || die "unknown user $user"
  local method="${MAILSTACK_LOAD_METHOD:-}"
  if [ -z "$method" ]; then
    if [ "${MAILSTACK_MAIL_FORMAT:-maildir}" = maildir ]; then method=maildir; else method=append; fi
  fi
  [ "$method" = append ] || [ "${MAILSTACK_MAIL_FORMAT:-maildir}" = maildir ] \
    || die "MAILSTACK_LOAD_METHOD=maildir needs MAILSTACK_MAIL_FORMAT=maildir"
  case "$method" in
    maildir)
      # Write maildir files straight into cur/ as the mail user, then let
      # Dovecot assign UIDs and build its index (`doveadm force-resync`).
      "${PYTHON:-python3}" "$HERE/loadmail.py" maildir --root "$dir/mail/$user/Maildir" \
        --mailbox "$mbox" --count "$n" --owner "$MAILSTACK_MAIL_USER" --to "$user@localhost"
      # doveadm needs the running auth service (userdb lookup).
      if dovecot_pid "$dir" >/dev/null; then
        doveadm -c "$dir/etc/dovecot.conf" force-resync -u "$user" "$mbox"
        doveadm -c "$dir/etc/dovecot.conf" index -u "$user" "$mbox" 2>/dev/null || true
      else
        log "dovecot is not running: UIDs will be assigned at first access"
      fi
      ;;
    append)
      dovecot_pid "$dir" >/dev/null || die "append needs the stack running (mailstack.sh start $dir)"
      "${PYTHON:-python3}" "$HERE/loadmail.py" append --host 127.0.0.1 --port "$MAILSTACK_IMAP_PORT" \
        --user "$user" --password "$(grep "^$user:" "$dir/etc/users" | cut -d: -f2 | sed 's/^{PLAIN}//')" \
        --mailbox "$mbox" --count "$n" --to "$user@localhost"
      ;;
    *) die "MAILSTACK_LOAD_METHOD must be maildir or append" ;;
  esac
  if [ "$mbox" != INBOX ] && dovecot_pid "$dir" >/dev/null; then
    doveadm -c "$dir/etc/dovecot.conf" mailbox subscribe -u "$user" "$mbox" 2>/dev/null || true
  fi
}

main() {
  local cmd="${1:-}"; shift || true
  case "$cmd" in
    start)   cmd_start "$@" ;;
    stop)    cmd_stop "$@" ;;
    status)  cmd_status "$@" ;;
    load)    cmd_load "$@" ;;
    env)     cmd_env "$@" ;;
    install) ensure_packages ;;
    *)       usage ;;
  esac
}
main "$@"
