#!/usr/bin/env python3
"""A throwaway MIT Kerberos realm for the GSSAPI tests: a real KDC on loopback.

    kdc.py start --dir DIR [--realm EXAMPLE.TEST] [--service-host localhost]
                 [--watch-stdin | --keep-session]
    kdc.py stop --dir DIR

`start` creates a self-contained realm in DIR (which must be empty or absent) with the MIT
tools (`kdb5_util`, `kadmin.local`, `krb5kdc`, `kinit` from the Debian packages krb5-kdc,
krb5-admin-server and krb5-user), starts `krb5kdc -n` on 127.0.0.1 on a free port (UDP and
TCP), waits until it answers, and prints one JSON object:

    {"realm", "port", "pid", "dir", "krb5_config", "kdc_config",
     "client_principal", "client_keytab",          # client@REALM
     "other_principal", "other_keytab",            # other@REALM: a keytab lacking the client
     "service_principal", "service_keytab",        # kafka/HOST@REALM, for the acceptor
     "stale_ccache",                               # FILE: ccache holding other@REALM's TGT
     "down_realm", "down_principal", "down_keytab"}  # a realm whose KDC never answers

The krb5.conf never consults DNS (`rdns`, `dns_lookup_kdc`, `dns_canonicalize_hostname` are
all false), so a service name is used exactly as the client builds it, as in production
setups that the client must not second-guess. Its default ccache is the stale one, so any
code that falls back to the default cache picks up the wrong principal and a test notices.

The second realm (DOWN.TEST) lists a KDC on a port nothing listens on: acquiring a ticket
for `down_principal` fails with "cannot contact any KDC" in the same process and krb5.conf
as the working realm (MIT reads one krb5.conf per process in practice).

`stop` kills the KDC whose pid `start` wrote to DIR/kdc.pid. Everything else lives in DIR.
With `--watch-stdin`, `start` stays running after printing the JSON and stops the KDC when
its standard input closes: a test harness keeps the pipe open, and when the test process
ends, however it ends, the KDC goes with it. Without it the KDC runs in a session of its own,
so that it outlives the caller's job; with `--keep-session` it stays in the caller's session
and process group instead (scripts/test-env.sh records the printed pid and stops it by pid,
like its other services, and a signal to the whole test run reaches the KDC too).

Only the standard library is used, so system python3 runs it.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

TOOLS = ["kdb5_util", "kadmin.local", "krb5kdc", "kinit"]
# Debian installs the KDC tools in /usr/sbin, which is not on every user's PATH.
SBIN_DIRS = ["/usr/sbin", "/sbin", "/usr/local/sbin"]
MASTER_PASSWORD = "kafka-backup-test-master"
DOWN_REALM = "DOWN.TEST"


def find_tool(name):
    path = shutil.which(name)
    if path:
        return path
    for d in SBIN_DIRS:
        candidate = os.path.join(d, name)
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def free_port():
    """A port free for both TCP and UDP on 127.0.0.1 (the KDC listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                    udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise SystemExit("kdc.py: no port free for both TCP and UDP on 127.0.0.1")


def closed_port():
    """A port nothing listens on (for the unreachable realm): bound, then released."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def run(tool, args, env, what):
    proc = subprocess.run(
        [tool] + args, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise SystemExit(
            f"kdc.py: {what} failed ({os.path.basename(tool)} exit {proc.returncode}): "
            f"{proc.stderr.strip() or proc.stdout.strip()}"
        )
    return proc.stdout


def kadmin(tools, env, realm, query):
    run(tools["kadmin.local"], ["-r", realm, "-q", query], env, f"kadmin.local -q {query!r}")


def start(args):
    tools = {name: find_tool(name) for name in TOOLS}
    missing = [name for name, path in tools.items() if path is None]
    if missing:
        # Exit code 3 lets callers tell "tools not installed" (skip) from a real failure.
        print(
            "kdc.py: MIT Kerberos tools not found: "
            + ", ".join(missing)
            + " (Debian: apt-get install krb5-kdc krb5-admin-server krb5-user)",
            file=sys.stderr,
        )
        return 3

    d = os.path.abspath(args.dir)
    os.makedirs(d, exist_ok=True)
    if os.listdir(d):
        raise SystemExit(f"kdc.py: {d} is not empty; give a fresh directory")
    realm = args.realm
    port = free_port()
    down_port = closed_port()
    host = args.service_host

    krb5_conf = os.path.join(d, "krb5.conf")
    kdc_conf = os.path.join(d, "kdc.conf")
    stale_ccache = os.path.join(d, "stale.ccache")
    write(
        krb5_conf,
        f"""[libdefaults]
    default_realm = {realm}
    dns_lookup_kdc = false
    dns_lookup_realm = false
    rdns = false
    dns_canonicalize_hostname = false
    # The default cache holds another principal's ticket: code that uses it is caught.
    default_ccache_name = FILE:{stale_ccache}
    # Loopback only: no need for the 1 s UDP wait before falling back to TCP.
    udp_preference_limit = 1

[realms]
    {realm} = {{
        kdc = 127.0.0.1:{port}
    }}
    {DOWN_REALM} = {{
        kdc = 127.0.0.1:{down_port}
    }}

[domain_realm]
    {host} = {realm}
""",
    )
    write(
        kdc_conf,
        f"""[kdcdefaults]
    kdc_listen = 127.0.0.1:{port}
    kdc_tcp_listen = 127.0.0.1:{port}

[realms]
    {realm} = {{
        database_name = {d}/principal
        key_stash_file = {d}/stash
        acl_file = {d}/kadm5.acl
        kdc_listen = 127.0.0.1:{port}
        kdc_tcp_listen = 127.0.0.1:{port}
        max_life = 10h
        max_renewable_life = 1d
        supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
    }}

[logging]
    kdc = FILE:{d}/kdc.log
    default = FILE:{d}/krb5.log
""",
    )
    write(os.path.join(d, "kadm5.acl"), "")

    # Only our files: never the machine's /etc/krb5.conf, /etc/krb5kdc or default caches.
    env = dict(os.environ)
    env.update(
        {
            "KRB5_CONFIG": krb5_conf,
            "KRB5_KDC_PROFILE": kdc_conf,
            "KRB5CCNAME": f"FILE:{stale_ccache}",
            "KRB5_TRACE": "/dev/null",
        }
    )
    env.pop("KRB5_CLIENT_KTNAME", None)
    env.pop("KRB5_KTNAME", None)

    run(
        tools["kdb5_util"],
        ["create", "-s", "-r", realm, "-P", MASTER_PASSWORD],
        env,
        "creating the KDC database",
    )
    principals = {
        "client": f"client@{realm}",
        "other": f"other@{realm}",
        "service": f"kafka/{host}@{realm}",
        # Stored in this realm's database only to export a keytab for it; its realm's KDC
        # (DOWN.TEST) is unreachable, which is the point.
        "down": f"client@{DOWN_REALM}",
    }
    keytabs = {name: os.path.join(d, f"{name}.keytab") for name in principals}
    for name, principal in principals.items():
        kadmin(tools, env, realm, f"addprinc -randkey {principal}")
        kadmin(tools, env, realm, f"ktadd -k {keytabs[name]} {principal}")

    log = open(os.path.join(d, "krb5kdc.out"), "wb")
    kdc = subprocess.Popen(
        [tools["krb5kdc"], "-n", "-r", realm],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        # Its own session: the KDC outlives this script and is stopped by pid (with
        # --keep-session it is still stopped by pid, but shares the caller's signals).
        start_new_session=not args.keep_session,
    )
    write(os.path.join(d, "kdc.pid"), f"{kdc.pid}\n")
    deadline = time.monotonic() + 15
    while True:
        if kdc.poll() is not None:
            with open(os.path.join(d, "krb5kdc.out"), encoding="utf-8", errors="replace") as f:
                raise SystemExit(f"kdc.py: krb5kdc exited with {kdc.returncode}: {f.read()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if time.monotonic() > deadline:
                kdc.kill()
                raise SystemExit("kdc.py: krb5kdc did not listen within 15 s")
            time.sleep(0.05)

    # A real ticket in the default cache, for another principal: proves the KDC issues
    # tickets, and is the stale cache the client must ignore.
    run(
        tools["kinit"],
        ["-k", "-t", keytabs["other"], "-c", f"FILE:{stale_ccache}", principals["other"]],
        env,
        "kinit as other (the KDC does not issue tickets)",
    )

    print(
        json.dumps(
            {
                "realm": realm,
                "port": port,
                "pid": kdc.pid,
                "dir": d,
                "krb5_config": krb5_conf,
                "kdc_config": kdc_conf,
                "client_principal": principals["client"],
                "client_keytab": keytabs["client"],
                "other_principal": principals["other"],
                "other_keytab": keytabs["other"],
                "service_principal": principals["service"],
                "service_keytab": keytabs["service"],
                "stale_ccache": stale_ccache,
                "down_realm": DOWN_REALM,
                "down_principal": principals["down"],
                "down_keytab": keytabs["down"],
            }
        ),
        flush=True,
    )
    if args.watch_stdin:
        try:
            while sys.stdin.buffer.read(4096):
                pass
        finally:
            kdc.terminate()
            try:
                kdc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                kdc.kill()
            os.remove(os.path.join(d, "kdc.pid"))
    return 0


def stop(args):
    pid_file = os.path.join(os.path.abspath(args.dir), "kdc.pid")
    try:
        with open(pid_file, encoding="utf-8") as f:
            pid = int(f.read().strip())
    except FileNotFoundError:
        return 0
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    os.remove(pid_file)
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("start", help="create the realm and start its KDC")
    p.add_argument("--dir", required=True)
    p.add_argument("--realm", default="EXAMPLE.TEST")
    p.add_argument("--service-host", default="localhost")
    p.add_argument(
        "--watch-stdin",
        action="store_true",
        help="stay running; stop the KDC when standard input closes",
    )
    p.add_argument(
        "--keep-session",
        action="store_true",
        help="leave the KDC in the caller's session and process group",
    )
    p.set_defaults(func=start)
    p = sub.add_parser("stop", help="stop the KDC started in DIR")
    p.add_argument("--dir", required=True)
    p.set_defaults(func=stop)
    args = parser.parse_args()
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
