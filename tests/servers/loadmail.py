#!/usr/bin/env python3
"""Bulk-load synthetic messages into a mailstack mailbox (stdlib only; used by mailstack.sh load).

  loadmail.py maildir --root DIR/mail/alice/Maildir --mailbox INBOX --count N --owner vmail
      Writes the messages straight into the maildir's cur/ folder (owned by the
      mail user, mtime = Date header = IMAP INTERNALDATE). Run
      `doveadm force-resync -u USER MAILBOX` afterwards (mailstack.sh load does)
      so Dovecot assigns UIDs in file-name order and builds its index.

  loadmail.py append --host 127.0.0.1 --port 10143 --user alice --password alicepass --count N
      IMAP MULTIAPPEND with LITERAL+, 500 messages per command (goes through
      Dovecot's normal save path; slower than maildir but exercises the server).

  loadmail.py mbox --out FILE --count N
      Writes an mbox file (for other tools).

Messages are deterministic for a given index: message i has
Message-ID <msg-i@mailstack.test>, subject "Test message i ...", every 10th is a
reply ("Re: <subject>", In-Reply-To/References) to the one before it, 2/3 are \\Seen, every 17th
is \\Flagged, every 50th (i % 50 == 7) has a UTF-8 encoded-word subject.
"""

import argparse
import os
import pwd
import re
import socket
import sys
import time
from datetime import UTC, datetime
from email.utils import format_datetime

SENDERS = [
    ("Carol Example", "carol@example.test"),
    ("Dave Sender", "dave@example.test"),
    ("Erin Lists", "erin@lists.example.test"),
    ("Frank Robot", "noreply@robots.example.test"),
    ("bob", "bob@localhost"),
]
WORDS = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo "
    "lima mike november oscar papa quebec romeo sierra tango uniform "
    "victor whiskey xray yankee zulu"
).split()


def base_subject(i):
    if i % 50 == 7:
        return f"=?utf-8?q?Gr=C3=BC=C3=9Fe_=E2=80=93_message_{i}?="
    return f"Test message {i} {WORDS[i % 26]} {WORDS[(i * 7) % 26]}"


def message(i, to_addr, ts):
    name, addr = SENDERS[i % len(SENDERS)]
    is_reply = i % 10 == 0 and i > 0
    subject = ("Re: " + base_subject(i - 1)) if is_reply else base_subject(i)
    hdr = [
        f"Return-Path: <{addr}>",
        f"From: {name} <{addr}>",
        f"To: <{to_addr}>",
        f"Subject: {subject}",
        f"Date: {format_datetime(datetime.fromtimestamp(ts, UTC))}",
        f"Message-ID: <msg-{i}@mailstack.test>",
    ]
    if is_reply:
        hdr.append(f"In-Reply-To: <msg-{i - 1}@mailstack.test>")
        hdr.append(f"References: <msg-{i - 1}@mailstack.test>")
    hdr += [
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 7bit",
    ]
    body = [
        "Hello,",
        "",
        f"this is synthetic message number {i} for mailstack tests.",
        " ".join(WORDS[(i + k) % 26] for k in range(12)),
        " ".join(WORDS[(i * 3 + k) % 26] for k in range(9)),
        "",
        "-- ",
        name,
    ]
    text = "\n".join(hdr) + "\n\n" + "\n".join(body) + "\n"
    flags = ""
    if i % 17 == 0:
        flags += "F"
    if i % 3 != 0:
        flags += "S"
    return text.encode("utf-8"), flags, ts


def maildir_folder(root, mailbox):
    if mailbox.upper() == "INBOX":
        return root
    # Maildir++ layout, namespace separator "/" -> ".A.B"
    return os.path.join(root, "." + mailbox.replace("/", "."))


def cmd_maildir(a):
    pw = pwd.getpwnam(a.owner)
    uid, gid = pw.pw_uid, pw.pw_gid
    # Create the user's home/Maildir chain owned by the mail user.
    folder = maildir_folder(a.root, a.mailbox)
    home = os.path.dirname(a.root)
    for d in (home, a.root, folder):
        if not os.path.isdir(d):
            os.mkdir(d, 0o700)
            os.chown(d, uid, gid)
    for sub in ("cur", "new", "tmp"):
        d = os.path.join(folder, sub)
        if not os.path.isdir(d):
            os.mkdir(d, 0o700)
            os.chown(d, uid, gid)
    if folder != a.root:
        mf = os.path.join(folder, "maildirfolder")
        if not os.path.exists(mf):
            open(mf, "w").close()
            os.chown(mf, uid, gid)
    cur = os.path.join(folder, "cur")
    base = int(time.time()) - a.count - 60 if a.base_time is None else a.base_time
    pid = os.getpid()
    t0 = time.time()
    flags_w = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    for n in range(a.count):
        i = a.start + n
        data, flags, ts = message(i, a.to, base + n)
        vsize = len(data) + data.count(b"\n")
        # name: <secs>.M<usecs>P<pid>Q<i>.<host>,S=<size>,W=<vsize>:2,<flags>
        # Dovecot assigns UIDs to new files sorted by the <secs>.M<usecs> prefix.
        name = f"{ts}.M{i % 1000000}P{pid}Q{i}.mailstack,S={len(data)},W={vsize}:2,{flags}"
        path = os.path.join(cur, name)
        fd = os.open(path, flags_w, 0o600)
        try:
            os.write(fd, data)
            os.fchown(fd, uid, gid)
        finally:
            os.close(fd)
        os.utime(path, (ts, ts))
    dt = time.time() - t0
    print(f"loadmail: wrote {a.count} messages into {cur} in {dt:.2f}s", file=sys.stderr)


class ImapError(Exception):
    pass


def cmd_append(a):
    sock = socket.create_connection((a.host, a.port))
    f = sock.makefile("rb")

    def readline():
        line = f.readline()
        if not line:
            raise ImapError("connection closed")
        return line

    def wait_tag(tag):
        while True:
            line = readline()
            if line.startswith(tag.encode() + b" "):
                if not line.split()[1] == b"OK":
                    raise ImapError(line.decode(errors="replace"))
                return line

    greeting = readline()
    if b"OK" not in greeting:
        raise ImapError(greeting)
    sock.sendall(b'a1 LOGIN "%s" "%s"\r\n' % (a.user.encode(), a.password.encode()))
    wait_tag("a1")
    sock.sendall(b'a2 CREATE "%s"\r\n' % a.mailbox.encode())
    while True:  # CREATE may fail with ALREADYEXISTS; ignore
        line = readline()
        if line.startswith(b"a2 "):
            break
    if a.start is None:  # continue numbering after the messages already there
        sock.sendall(b'a3 STATUS "%s" (MESSAGES)\r\n' % a.mailbox.encode())
        a.start = 0
        while True:
            line = readline()
            m = re.search(rb"MESSAGES (\d+)", line)
            if line.startswith(b"* STATUS") and m:
                a.start = int(m.group(1))
            if line.startswith(b"a3 "):
                break
    base = int(time.time()) - a.count - 60 if a.base_time is None else a.base_time
    t0 = time.time()
    # MULTIAPPEND (RFC 3502) + LITERAL+: one APPEND command carries `--batch`
    # messages and Dovecot saves them in one transaction. Single-message APPENDs
    # are O(n) each on a big maildir (every commit re-syncs the folder), so
    # 50k single APPENDs take ~10 min while MULTIAPPEND stays linear.
    sent = 0
    ntag = 0
    n = 0
    while n < a.count:
        k = min(a.batch, a.count - n)
        ntag += 1
        tag = f"p{ntag}"
        parts = [f'{tag} APPEND "{a.mailbox}"'.encode()]
        for j in range(n, n + k):
            i = a.start + j
            data, flags, ts = message(i, a.to, base + j)
            data = data.replace(b"\n", b"\r\n")
            fl = " ".join({"S": "\\Seen", "F": "\\Flagged"}[c] for c in flags)
            date = time.strftime('"%d-%b-%Y %H:%M:%S +0000"', time.gmtime(ts))
            parts.append(f" ({fl}) {date} {{{len(data)}+}}\r\n".encode() + data)
        sock.sendall(b"".join(parts) + b"\r\n")
        wait_tag(tag)
        n += k
        sent += k
    sock.sendall(b"z LOGOUT\r\n")
    sock.close()
    dt = time.time() - t0
    print(
        f"loadmail: appended {sent} messages to {a.user}/{a.mailbox} in {dt:.2f}s", file=sys.stderr
    )


def cmd_mbox(a):
    base = int(time.time()) - a.count - 60 if a.base_time is None else a.base_time
    with open(a.out, "wb") as out:
        for n in range(a.count):
            i = a.start + n
            data, _flags, ts = message(i, a.to, base + n)
            stamp = time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(ts)).encode()
            out.write(b"From MAILER-DAEMON " + stamp + b"\n")
            for line in data.split(b"\n")[:-1]:
                if line.lstrip(b">").startswith(b"From "):
                    line = b">" + line
                out.write(line + b"\n")
            out.write(b"\n")


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="cmd", required=True)

    def common(p):
        p.add_argument("--count", type=int, required=True)
        p.add_argument(
            "--start",
            type=int,
            default=None,
            help="index of the first message (default: continue after existing files)",
        )
        p.add_argument("--to", default="alice@localhost")
        p.add_argument(
            "--base-time",
            type=int,
            default=None,
            help="epoch of message 0 (default: now - count - 60s)",
        )

    p = sub.add_parser("maildir")
    common(p)
    p.add_argument("--root", required=True, help="the user's Maildir (INBOX) path")
    p.add_argument("--mailbox", default="INBOX")
    p.add_argument("--owner", default="vmail")
    p = sub.add_parser("append")
    common(p)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=10143)
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--mailbox", default="INBOX")
    p.add_argument("--batch", type=int, default=500, help="messages per MULTIAPPEND command")
    p = sub.add_parser("mbox")
    common(p)
    p.add_argument("--out", required=True)
    a = ap.parse_args()
    if a.start is None and a.cmd != "append":
        a.start = 0
        if a.cmd == "maildir":
            folder = maildir_folder(a.root, a.mailbox)
            try:
                a.start = sum(len(os.listdir(os.path.join(folder, s))) for s in ("cur", "new"))
            except FileNotFoundError:
                a.start = 0
    {"maildir": cmd_maildir, "append": cmd_append, "mbox": cmd_mbox}[a.cmd](a)


if __name__ == "__main__":
    main()
