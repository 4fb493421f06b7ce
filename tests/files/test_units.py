"""htpasswd parsing and checking, range parsing, name validation (login throttle: tests/core)."""

from __future__ import annotations

import bcrypt
import pytest
from scwadd_files import htpasswd
from scwadd_files.htpasswd import HtpasswdError, Verifier, parse_htpasswd
from scwadd_files.http import is_safe_name, parse_basic, parse_range


def bcrypt_line(user: str, password: str, prefix: str = "$2b$") -> str:
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()
    return f"{user}:{prefix}{hashed[4:]}"


def test_bcrypt_entries_of_every_prefix_are_accepted() -> None:
    text = "\n".join(
        [
            "# operators",
            bcrypt_line("a", "pa"),
            bcrypt_line("b", "pb", "$2y$"),
            "",
            bcrypt_line("c", "pc", "$2a$"),
        ]
    )
    users = parse_htpasswd(text)
    assert sorted(users) == ["a", "b", "c"]
    verifier = Verifier(users)
    assert verifier.verify("b", "pb") and not verifier.verify("b", "pa")


@pytest.mark.parametrize(
    ("entry", "scheme"),
    [
        ("admin:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "{SHA} (unsalted SHA-1)"),
        ("admin:$apr1$abc$xyz", "$apr1$ (Apache MD5)"),
        ("admin:plaintextpassword", "plain text or DES crypt"),
        ("admin:$2b$04$tooshort", "a malformed bcrypt hash"),
    ],
)
def test_non_bcrypt_entries_are_refused_saying_how_to_make_one(entry: str, scheme: str) -> None:
    with pytest.raises(HtpasswdError) as caught:
        parse_htpasswd(f"{bcrypt_line('ok', 'x')}\n{entry}\n", source="HTPASSWD_FILE /etc/h")
    message = str(caught.value)
    assert "HTPASSWD_FILE /etc/h line 2" in message and "'admin'" in message
    assert scheme in message
    assert "htpasswd -nbB USER PASSWORD" in message and "scwadd files hash-password" in message
    assert entry.split(":", 1)[1] not in message  # the hash itself is not repeated


def test_empty_and_malformed_files_are_refused() -> None:
    with pytest.raises(HtpasswdError, match="holds no user"):
        parse_htpasswd("# nothing\n")
    with pytest.raises(HtpasswdError, match="expected USER:HASH"):
        parse_htpasswd("justaname\n")
    with pytest.raises(HtpasswdError, match="appears twice"):
        parse_htpasswd(bcrypt_line("a", "1") + "\n" + bcrypt_line("a", "2"))


def test_unknown_users_cost_a_bcrypt_check_too(monkeypatch: pytest.MonkeyPatch) -> None:
    verifier = Verifier(parse_htpasswd(bcrypt_line("operator", "secret")))
    checked: list[bytes] = []
    real_checkpw = bcrypt.checkpw

    def counting_checkpw(password: bytes, hashed: bytes) -> bool:
        checked.append(hashed)
        return real_checkpw(password, hashed)

    monkeypatch.setattr(htpasswd.bcrypt, "checkpw", counting_checkpw)
    assert verifier.verify("nobody", "secret") is False
    assert verifier.verify("operator", "wrong") is False
    assert len(checked) == 2  # one bcrypt each, known user or not
    assert checked[0].startswith(b"$2b$04$")  # the dummy has the entries' cost


def test_a_success_is_remembered_but_a_failure_never_is(monkeypatch: pytest.MonkeyPatch) -> None:
    verifier = Verifier(parse_htpasswd(bcrypt_line("operator", "secret")))
    calls: list[int] = []
    real_checkpw = bcrypt.checkpw
    monkeypatch.setattr(
        htpasswd.bcrypt, "checkpw", lambda p, h: calls.append(1) or real_checkpw(p, h)
    )
    assert verifier.verify("operator", "secret") and verifier.verify("operator", "secret")
    assert len(calls) == 1
    assert not verifier.verify("operator", "wrong") and not verifier.verify("operator", "wrong")
    assert len(calls) == 3


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        ("bytes=0-9", 100, (0, 9)),
        ("bytes=90-", 100, (90, 99)),
        ("bytes=-10", 100, (90, 99)),
        ("bytes=-500", 100, (0, 99)),
        ("bytes=95-200", 100, (95, 99)),
        ("bytes=100-", 100, "unsatisfiable"),
        ("bytes=-0", 100, "unsatisfiable"),
        ("bytes=5-1", 100, None),
        ("bytes=0-1,5-6", 100, None),
        ("items=0-1", 100, None),
        ("bytes=abc", 100, None),
    ],
)
def test_parse_range(header: str, size: int, expected: object) -> None:
    assert parse_range(header, size) == expected


@pytest.mark.parametrize(
    "name",
    ["..", "../etc/passwd", ".hidden", "a/b.csv", "a\\b.csv", "a..b.csv", "x\x00.csv", "", "é.csv"],
)
def test_unsafe_names_are_refused(name: str) -> None:
    assert not is_safe_name(name)


def test_export_names_are_accepted() -> None:
    assert is_safe_name("sub123-2026-11-26-abcd1234.csv")
    assert is_safe_name("sub123-2026-11-26-abcd1234.manifest.json")


def test_parse_basic() -> None:
    assert parse_basic("Basic b3BlcmF0b3I6cDpx") == ("operator", "p:q")
    assert parse_basic("Bearer xyz") is None
    assert parse_basic("Basic !!!") is None
    assert parse_basic("Basic bm9jb2xvbg==") is None  # "nocolon"
    assert parse_basic(None) is None
