"""A corpus of malformed mail, for tests/hostile/test_broken_mail.py.

Three sources, every one deterministic:

* Python's own email test data (`test/test_email/data` of the running interpreter's
  standard library: real-world oddities, plus images and sounds that are not mail at
  all); when the interpreter ships without its test suite, the nasty samples below
  and more mutations stand in, so the corpus still passes 200 messages;
* hand-written nasty samples, one per way mail is known to break;
* seeded mutations of both (cut, doubled, bytes flipped, line endings changed,
  boundaries removed or repeated, NULs and 8-bit bytes inserted).
"""

from __future__ import annotations

import base64
import random
import sysconfig
from pathlib import Path

MIN_SIZE = 200
SUBJECT_500K = 500 * 1024
NESTING = 2000

_HEAD = (
    b"From: Sender <sender@example.test>\r\nTo: alice@example.test\r\n"
    b"Date: Mon, 03 Nov 2025 10:00:00 +0000\r\n"
)


def stdlib_data_dir() -> Path | None:
    """Python's email test data, if this interpreter installed its test suite."""
    candidate = Path(sysconfig.get_paths()["stdlib"]) / "test" / "test_email" / "data"
    return candidate if candidate.is_dir() else None


def stdlib_samples() -> dict[str, bytes]:
    folder = stdlib_data_dir()
    if folder is None:
        return {}
    return {f"stdlib/{p.name}": p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _msg(name: str, headers: bytes, body: bytes = b"body\r\n") -> bytes:
    mid = f"Message-ID: <{name}@broken.test>\r\n".encode()
    return _HEAD + mid + headers + b"\r\n" + body


def _nested_multipart(depth: int) -> bytes:
    opening = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
        for i in range(depth)
    )
    closing = b"".join(b"\r\n--b%d--\r\n" % i for i in reversed(range(depth)))
    return opening + b"Content-Type: text/plain\r\n\r\ndeep inside\r\n" + closing


def _nested_rfc822(depth: int) -> bytes:
    layer = b"Subject: layer\r\nContent-Type: message/rfc822\r\n\r\n"
    return layer * depth + b"Subject: core\r\n\r\nthe core\r\n"


def nasty_samples() -> dict[str, bytes]:
    """One message per known way to break, named for what it does."""
    s: dict[str, bytes] = {}
    mp = b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="B"\r\n'
    s["boundary-never-appears"] = _msg(
        "b1", b"Subject: no boundary in body\r\n" + mp, b"just text, no parts at all\r\n"
    )
    s["boundary-never-closed"] = _msg(
        "b2", b"Subject: unclosed\r\n" + mp, b"--B\r\nContent-Type: text/plain\r\n\r\nopen\r\n"
    )
    s["boundary-wrong-close"] = _msg(
        "b3", b"Subject: wrong close\r\n" + mp, b"--B\r\n\r\npart\r\n--C--\r\n"
    )
    s["boundary-missing-param"] = _msg(
        "b4",
        b"Subject: no param\r\nContent-Type: multipart/mixed\r\n",
        b"--B\r\n\r\nx\r\n--B--\r\n",
    )
    s["boundary-empty"] = _msg(
        "b5", b'Subject: empty\r\nContent-Type: multipart/mixed; boundary=""\r\n', b"--\r\nx\r\n"
    )
    s["boundary-prefix-of-another"] = _msg(
        "b6",
        b"Subject: prefix\r\n" + mp,
        b"--B\r\n\r\none\r\n--BB\r\n\r\ntwo\r\n--B--\r\n",
    )
    s["boundary-in-own-body"] = _msg(
        "b7",
        b"Subject: boundary inside a base64 part\r\n" + mp,
        b"--B\r\nContent-Transfer-Encoding: base64\r\n\r\n--B\r\nQUJD\r\n--B--\r\n",
    )
    s["multipart-never-split"] = _msg(
        "m1",
        b'Subject: declared multipart\r\nContent-Type: multipart/alternative; boundary="zzz"\r\n',
        b"This was sent as multipart but is one block of text.\r\n",
    )
    s["multipart-with-no-body"] = _msg("m2", b"Subject: multipart, nothing\r\n" + mp, b"")
    s["multipart-only-preamble"] = _msg(
        "m3", b"Subject: preamble\r\n" + mp, b"preamble only\r\n--B--\r\n"
    )
    s["multipart-thousand-parts"] = _msg(
        "m4",
        b"Subject: many parts\r\n" + mp,
        b"".join(b"--B\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % i for i in range(1000))
        + b"--B--\r\n",
    )
    s["multipart-digest-garbage"] = _msg(
        "m5",
        b'Subject: digest\r\nContent-Type: multipart/digest; boundary="D"\r\n',
        b"--D\r\n\r\nnot a message\r\n--D\r\n\r\n\r\n--D--\r\n",
    )
    for name, cs in [
        ("unknown-charset", b"x-no-such-charset"),
        ("charset-with-nul", b"utf-8\x00evil"),
        ("charset-utf7", b"utf-7"),
        ("charset-huge-name", b"x" * 5000),
        ("charset-quoted-garbage", b'"\xff\xfe"'),
    ]:
        s[name] = _msg(
            name,
            b"Subject: =?"
            + cs
            + b"?q?caf=E9?=\r\nContent-Type: text/plain; charset="
            + cs
            + b"\r\n",
            "café +AGEAYg- ünïcödé\r\n".encode() + b"\xe9\xff\r\n",
        )
    s["bad-base64-chars"] = _msg(
        "e1",
        b"Subject: bad base64\r\nContent-Transfer-Encoding: base64\r\n",
        b"SGVsbG8g!!!d29y@@bGQ=\r\n====\r\n***\r\n",
    )
    s["bad-base64-padding"] = _msg(
        "e2", b"Subject: padding\r\nContent-Transfer-Encoding: base64\r\n", b"SGVsbG8gd29ybGQ\r\nQ"
    )
    s["base64-attachment-truncated"] = _msg(
        "e3",
        b"Subject: truncated attachment\r\n" + mp,
        b"--B\r\nContent-Type: text/plain\r\n\r\ntext\r\n--B\r\nContent-Type: application/pdf\r\n"
        b'Content-Disposition: attachment; filename="a.pdf"\r\nContent-Transfer-Encoding: base64'
        b"\r\n\r\n" + base64.b64encode(b"%PDF-1.4 " * 50)[:101],
    )
    s["bad-qp"] = _msg(
        "e4",
        b"Subject: bad qp\r\nContent-Transfer-Encoding: quoted-printable\r\n",
        b"=ZZ=4=\r\nsoft =\r\nbreak =E9=C3=\r\n=\r\n=0D=0A=00end",
    )
    s["unknown-transfer-encoding"] = _msg(
        "e5",
        b"Subject: x-uue\r\nContent-Transfer-Encoding: x-uuencode\r\n",
        b"begin 644 a\r\n!!!\r\n",
    )
    s["header-8bit-latin1"] = _msg("h1", b"Subject: caf\xe9 \xe0 la cr\xe8me\r\n", b"\xe9t\xe9\r\n")
    s["header-8bit-invalid-utf8"] = _msg("h2", b"Subject: \xc3\x28 \xa0\xa1 \xf0\x28\x8c\xbc\r\n")
    s["header-8bit-from"] = _msg(
        "h3", b"Subject: x\r\nReply-To: J\xf6rg <j\xf6rg@ex\xe4mple.test>\r\n"
    )
    s["header-encoded-word-garbage"] = _msg(
        "h4", b"Subject: =?utf-8?b?####?= =?utf-8?q?=ZZ?= =?bogus?x?y?= =?utf-8?q?\r\n"
    )
    s["header-no-colon"] = _HEAD + b"This line has no colon\r\nSubject: after\r\n\r\nbody\r\n"
    s["header-continuation-first"] = b"  leading continuation\r\n" + _HEAD + b"\r\nbody\r\n"
    s["header-nul"] = _msg("h5", b"Subject: nul\x00inside\r\nX-Nul: \x00\x00\r\n", b"a\x00b\r\n")
    s["header-control-escapes"] = _msg("h6", b"Subject: \x1b[2J\x1b]0;pwned\x07\x9b31m\r\n")
    s["header-bidi"] = _msg("h7", "Subject: \u202egnp.exe \u2066x\r\n".encode())
    s["header-500k-subject"] = _msg("h8", b"Subject: " + b"S" * SUBJECT_500K + b"\r\n")
    s["header-500k-subject-words"] = _msg(
        "h9", b"Subject: " + b"word " * (SUBJECT_500K // 5) + b"\r\n"
    )
    s["header-500k-folded"] = _msg(
        "h10", b"Subject: x" + b"\r\n folded" * (SUBJECT_500K // 9) + b"\r\n"
    )
    s["header-500k-encoded-words"] = _msg(
        "h11", b"Subject: " + b"=?utf-8?q?=C3=A9?= " * (SUBJECT_500K // 19) + b"\r\n"
    )
    s["header-200k-from"] = _msg(
        "h12", b"Subject: many senders\r\nCc: " + b"a@b.test, " * 20000 + b"\r\n"
    )
    s["header-ten-thousand"] = _msg(
        "h13", b"Subject: many headers\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(10000))
    )
    s["header-long-date"] = _msg("h14", b"Subject: dates\r\nDate: " + b"9" * 5000 + b"\r\n")
    s["header-bad-dates"] = _msg(
        "h15", b"Subject: bad date\r\nDate: Mon, 99 Foo 99999 99:99:99 +9999\r\n"
    )
    s["nesting-2000-multipart"] = (
        _HEAD + b"Subject: nested 2000\r\nMIME-Version: 1.0\r\n" + (_nested_multipart(NESTING))
    )
    s["nesting-2000-rfc822"] = _HEAD + b"Subject: rfc822 2000 deep\r\n" + _nested_rfc822(NESTING)
    s["not-mail-binary"] = bytes(random.Random(1).getrandbits(8) for _ in range(20000))
    s["not-mail-elf"] = b"\x7fELF\x02\x01\x01" + bytes(range(256)) * 20
    s["not-mail-text"] = b"Dear diary,\ntoday I wrote a file that is not an email.\n" * 50
    s["not-mail-json"] = b'{"subject": "json", "body": [1, 2, 3]}\n'
    s["empty-file"] = b""
    s["only-newlines"] = b"\r\n\r\n\r\n"
    s["only-headers-no-blank"] = _HEAD + b"Subject: only headers"
    s["only-headers-blank"] = _HEAD + b"Subject: only headers, blank line\r\n\r\n"
    s["nul-bytes-everywhere"] = b"\x00".join(_msg("n1", b"Subject: nul\r\n").split(b"\r\n"))
    s["nul-only"] = b"\x00" * 4096
    s["cr-only-line-endings"] = _msg("l1", b"Subject: old mac\r\n").replace(b"\r\n", b"\r")
    s["lf-only-line-endings"] = _msg("l2", b"Subject: unix\r\n").replace(b"\r\n", b"\n")
    s["mixed-line-endings"] = _HEAD.replace(b"\r\n", b"\n", 1) + b"Subject: mixed\r\r\n\n\rbody"
    s["mbox-from-line"] = b"From sender@example.test Mon Nov  3 10:00:00 2025\n" + _msg(
        "l3", b"Subject: mbox\r\n"
    )
    s["body-one-megabyte-line"] = _msg("l4", b"Subject: one long line\r\n", b"x" * 1024 * 1024)
    s["html-broken"] = _msg(
        "t1",
        b"Subject: broken html\r\nContent-Type: text/html\r\n",
        b"<html><body><table><tr><td><b><i>unclosed" + b"<div>" * 5000 + b"<a href='x",
    )
    s["html-deep-lists"] = _msg(
        "t2", b"Subject: deep lists\r\nContent-Type: text/html\r\n", b"<ul><li>" * 3000 + b"deep"
    )
    s["rfc2231-broken"] = _msg(
        "r1",
        b"Subject: 2231\r\n" + mp,
        b"--B\r\nContent-Type: application/octet-stream;\r\n name*0*=utf-8''%E9%ZZ; name*2=x;"
        b" name*99999999999=y\r\nContent-Disposition: attachment; filename*=bogus''%%%\r\n\r\n"
        b"data\r\n--B--\r\n",
    )
    s["content-type-garbage"] = _msg(
        "c1", b"Subject: ctype\r\nContent-Type: ;;;===;/;\x00;boundary\r\n", b"body\r\n"
    )
    s["content-type-twice"] = _msg(
        "c2",
        b"Subject: twice\r\nContent-Type: text/plain\r\n" + mp,
        b"--B\r\n\r\npart\r\n--B--\r\n",
    )
    s["message-rfc822-truncated"] = _msg(
        "c3", b"Subject: attached message cut\r\nContent-Type: message/rfc822\r\n", b"Subject: in"
    )
    return s


# --------------------------------------------------------------------------- mutations


def _mutate(data: bytes, rng: random.Random) -> bytes:
    """One structural or byte-level change of the kind broken software makes."""
    if not data:
        return rng.choice([b"\r\n", b"Subject: x", b"\x00"])
    kind = rng.randrange(10)
    i = rng.randrange(len(data))
    j = min(len(data), i + rng.randrange(1, 200))
    if kind == 0:  # cut short
        return data[:i]
    if kind == 1:  # a slice doubled
        return data[:j] + data[i:j] + data[j:]
    if kind == 2:  # bytes flipped
        out = bytearray(data)
        for _ in range(rng.randrange(1, 20)):
            out[rng.randrange(len(out))] = rng.randrange(256)
        return bytes(out)
    if kind == 3:  # line endings: CRLF -> LF, or -> CR
        return data.replace(b"\r\n", rng.choice([b"\n", b"\r", b"\n\r"]))
    if kind == 4:  # every boundary line removed
        return b"\n".join(line for line in data.split(b"\n") if not line.startswith(b"--"))
    if kind == 5:  # NULs and 8-bit bytes inserted
        junk = bytes(rng.choice([0, 0x80, 0xFF, 0x1B, 0x0D, 0x0A]) for _ in range(8))
        return data[:i] + junk + data[i:]
    if kind == 6:  # the header/body separator removed
        return data.replace(b"\r\n\r\n", b"\r\n", 1).replace(b"\n\n", b"\n", 1)
    if kind == 7:  # a slice moved to the front
        return data[i:j] + data[:i] + data[j:]
    if kind == 8:  # a boundary or MIME header repeated in the middle
        piece = rng.choice(
            [b"\r\n--B\r\n", b"\r\nContent-Type: multipart/mixed; boundary=B\r\n", b"\r\n--B--\r\n"]
        )
        return data[:i] + piece * rng.randrange(1, 50) + data[i:]
    return data[: len(data) // 2] + data  # the first half twice


def mutations(seeds: dict[str, bytes], count: int, seed: int = 20251103) -> dict[str, bytes]:
    """`count` mutated messages, each from one seed after 1 to 3 mutations."""
    rng = random.Random(seed)
    small = {k: v for k, v in seeds.items() if len(v) < 256 * 1024}  # keep the corpus quick
    names = sorted(small)
    out: dict[str, bytes] = {}
    for n in range(count):
        name = names[n % len(names)]
        data = small[name]
        for _ in range(rng.randrange(1, 4)):
            data = _mutate(data, rng)
        out[f"mutated/{n:03d}-{name}"] = data
    return out


def corpus() -> dict[str, bytes]:
    """The whole corpus: stdlib data, nasty samples and mutations, at least MIN_SIZE."""
    found = {**stdlib_samples(), **{f"nasty/{k}": v for k, v in nasty_samples().items()}}
    wanted = max(80, MIN_SIZE - len(found) + 10)
    found.update(mutations(found, wanted))
    return found
