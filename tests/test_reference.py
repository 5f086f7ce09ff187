"""Docker's reference grammar: cases taken from distribution/reference's own test tables
(``reference_test.go``, ``normalize_test.go``), read through ``ParseNormalizedNamed`` as
``docker pull`` does, plus barque's sha256-only rule."""

from __future__ import annotations

import pytest
from barque.errors import InvalidReferenceError
from barque.reference import Reference

F64 = "f" * 64
DIG = "sha256:" + F64
REDIS = "sha256:dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c"

# input -> (registry, repository, tag, digest), with Parse's default tag "latest"
VALID: list[tuple[str, tuple[str, str, str | None, str | None]]] = [
    ("busybox", ("docker.io", "library/busybox", "latest", None)),
    ("mysql:5.7.30", ("docker.io", "library/mysql", "5.7.30", None)),
    ("test_com", ("docker.io", "library/test_com", "latest", None)),
    ("test.com:tag", ("docker.io", "library/test.com", "tag", None)),
    ("test.com:5000", ("docker.io", "library/test.com", "5000", None)),
    ("test.com/repo:tag", ("test.com", "repo", "tag", None)),
    ("test:5000/repo", ("test:5000", "repo", "latest", None)),
    ("test:5000/repo:tag", ("test:5000", "repo", "tag", None)),
    (f"test:5000/repo@{DIG}", ("test:5000", "repo", None, DIG)),
    (f"test:5000/repo:tag@{DIG}", ("test:5000", "repo", "tag", DIG)),
    ("lowercase:Uppercase", ("docker.io", "library/lowercase", "Uppercase", None)),
    ("sub-dom1.foo.com/bar/baz/quux", ("sub-dom1.foo.com", "bar/baz/quux", "latest", None)),
    ("sub-dom1.foo.com/bar/baz/quux:some-long-tag",
     ("sub-dom1.foo.com", "bar/baz/quux", "some-long-tag", None)),
    ("b.gcr.io/test.example.com/my-app:test.example.com",
     ("b.gcr.io", "test.example.com/my-app", "test.example.com", None)),
    ("xn--n3h.com/myimage:xn--n3h.com", ("xn--n3h.com", "myimage", "xn--n3h.com", None)),
    ("foo_bar.com:8080", ("docker.io", "library/foo_bar.com", "8080", None)),
    ("foo/foo_bar.com:8080", ("docker.io", "foo/foo_bar.com", "8080", None)),
    ("192.168.1.1", ("docker.io", "library/192.168.1.1", "latest", None)),
    ("192.168.1.1:tag", ("docker.io", "library/192.168.1.1", "tag", None)),
    ("192.168.1.1/repo", ("192.168.1.1", "repo", "latest", None)),
    ("192.168.1.1:5000/repo:5050", ("192.168.1.1:5000", "repo", "5050", None)),
    ("[2001:db8::1]/repo", ("[2001:db8::1]", "repo", "latest", None)),
    ("[2001:db8:1:2:3:4:5:6]/repo:tag", ("[2001:db8:1:2:3:4:5:6]", "repo", "tag", None)),
    ("[2001:db8::1]:5000/repo:tag", ("[2001:db8::1]:5000", "repo", "tag", None)),
    (f"[2001:db8::1]:5000/repo:tag@{DIG}", ("[2001:db8::1]:5000", "repo", "tag", DIG)),
    ("[::1]:5000/repo", ("[::1]:5000", "repo", "latest", None)),
    ("[fc00::1]:5000/docker/docker", ("[fc00::1]:5000", "docker/docker", "latest", None)),
    ("localhost/repo", ("localhost", "repo", "latest", None)),
    ("localhost:5000/repo:tag", ("localhost:5000", "repo", "tag", None)),
    ("127.0.0.1:5000/fixtures/layers:1", ("127.0.0.1:5000", "fixtures/layers", "1", None)),
    ("docker.io/debian", ("docker.io", "library/debian", "latest", None)),
    ("index.docker.io/library/debian", ("docker.io", "library/debian", "latest", None)),
    ("registry-1.docker.io/debian:12", ("docker.io", "library/debian", "12", None)),
    ("docker.io/library/foo/bar", ("docker.io", "library/foo/bar", "latest", None)),
    ("dmcgowan/myapp", ("docker.io", "dmcgowan/myapp", "latest", None)),
    (f"redis@{REDIS}", ("docker.io", "library/redis", None, REDIS)),
    (f"busybox:latest@{REDIS}", ("docker.io", "library/busybox", "latest", REDIS)),
    ("docker---rules/docker", ("docker.io", "docker---rules/docker", "latest", None)),
    ("dock__er/docker", ("docker.io", "dock__er/docker", "latest", None)),
    ("d/docker", ("docker.io", "d/docker", "latest", None)),
    ("jess/t", ("docker.io", "jess/t", "latest", None)),
    # Uppercase first component is a domain (Docker's "FIXME": passes as a registry).
    ("Docker/docker", ("Docker", "docker", "latest", None)),
    ("LOCALDOMAIN/debian", ("LOCALDOMAIN", "debian", "latest", None)),
    # 64 hex characters are fine once a registry removes the ambiguity with an image ID.
    ("docker.io/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
     ("docker.io", "library/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
      "latest", None)),
    ("thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
     ("docker.io", "library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
      "latest", None)),
    ("dbcc1", ("docker.io", "library/dbcc1", "latest", None)),
    ("w" * 128 + ":" + "t" * 128, ("docker.io", "library/" + "w" * 128, "t" * 128, None)),
]

INVALID: list[str] = [
    "",
    ":justtag",
    f"@{DIG}",
    "repo@sha256:ffffffffffffffffffffffffffffffffff",  # short digest
    f"validname@invaliddigest:{F64}",
    "Uppercase:tag",
    "test:5000/Uppercase/lowercase:tag",
    "docker/Docker",
    "docker.io/docker/Docker",
    "a/" * 128 + "a:tag",  # name over 255
    # 255 as written, but over 255 once normalised to docker.io/... (ParseNormalizedNamed)
    "a/" * 127 + "a:tag-puts-this-over-max",
    "aa/asdf$$^/aa",
    "[2001:db8::1]",
    "[2001:db8::1]:5000",
    "[2001:db8::1]:tag",
    "[fe80::1%eth0]:5000/repo",
    "[fe80::1%@invalidzone]:5000/repo",
    "[2001:db8:3:4::192.0.2.33]:5000/debian",
    "fc00::1:5000/debian",
    "https://github.com/docker/docker",
    "-docker",
    "-docker/docker",
    "-docker.io/docker/docker",
    "docker///docker",
    "docker.io/docker///docker",
    "docker-/docker",
    "-docker-/docker",
    "____/____",
    "_docker/_docker",
    "dock..er/docker",
    "dock_.er/docker",
    "dock-.er/docker",
    "docker/",
    "this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_" * 4 + "/docker",
    "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
    "test image:1",
    "private@registry:5000/test",
    "repo:-tag",
    "repo:" + "t" * 129,
    "repo:tag:tag",
    f"repo@sha512:{'f' * 128}",
    f"repo@sha256:{F64.upper()}",
    f"repo@sha256:{F64}\n",
    "busybox\n",
    " busybox",
    "repo:tag@",
]


@pytest.mark.parametrize(("text", "expected"), VALID, ids=[v[0][:60] for v in VALID])
def test_valid_references(text: str, expected: tuple[str, str, str | None, str | None]) -> None:
    ref = Reference.parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == expected
    # The canonical form parses back to the same reference.
    assert Reference.parse(str(ref)) == ref


@pytest.mark.parametrize("text", INVALID, ids=[repr(t[:60]) for t in INVALID])
def test_invalid_references(text: str) -> None:
    with pytest.raises(InvalidReferenceError) as exc:
        Reference.parse(text)
    assert str(exc.value).startswith(("invalid reference format", "invalid repository name"))
    assert "\n" not in str(exc.value)  # one line, whatever the input


def test_invalid_reference_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        Reference.parse("a b")


@pytest.mark.parametrize(("text", "message"), [
    ("Foo:bar", "invalid reference format: repository name (library/Foo) must be lowercase"),
    ("Uppercase:tag",
     "invalid reference format: repository name (library/Uppercase) must be lowercase"),
    ("test:5000/Uppercase/lowercase:tag",
     "invalid reference format: repository name (Uppercase/lowercase) must be lowercase"),
    ("aa/asdf$$^/aa", 'invalid reference format: "aa/asdf$$^/aa"'),
    ("repo:tag:tag", 'invalid reference format: "repo:tag:tag"'),
    (F64 * 1, f"invalid repository name ({F64}), cannot specify 64-byte hexadecimal strings"),
    ("", "invalid reference format: repository name must have at least one component"),
])
def test_messages_match_docker(text: str, message: str) -> None:
    with pytest.raises(InvalidReferenceError) as exc:
        Reference.parse(text)
    assert str(exc.value) == message


def test_other_digest_algorithms_are_refused_clearly() -> None:
    with pytest.raises(InvalidReferenceError, match="unsupported digest algorithm 'sha512'"):
        Reference.parse(f"repo@sha512:{'f' * 128}")
    with pytest.raises(InvalidReferenceError, match="invalid digest"):
        Reference.parse("repo@sha256:" + "f" * 40)


@pytest.mark.parametrize(("text", "name", "familiar_name", "full", "familiar"), [
    ("mysql", "docker.io/library/mysql", "mysql", "docker.io/library/mysql:latest",
     "mysql:latest"),
    ("library/ubuntu", "docker.io/library/ubuntu", "ubuntu", "docker.io/library/ubuntu:latest",
     "ubuntu:latest"),
    ("docker.io/fooo/bar:1", "docker.io/fooo/bar", "fooo/bar", "docker.io/fooo/bar:1",
     "fooo/bar:1"),
    ("index.docker.io/fooo/bar", "docker.io/fooo/bar", "fooo/bar",
     "docker.io/fooo/bar:latest", "fooo/bar:latest"),
    ("other/library", "docker.io/other/library", "other/library",
     "docker.io/other/library:latest", "other/library:latest"),
    ("library/foo/bar", "docker.io/library/foo/bar", "library/foo/bar",
     "docker.io/library/foo/bar:latest", "library/foo/bar:latest"),
    ("store/foo/bar", "docker.io/store/foo/bar", "store/foo/bar",
     "docker.io/store/foo/bar:latest", "store/foo/bar:latest"),
    ("127.0.0.1:8000/private/moonbase", "127.0.0.1:8000/private/moonbase",
     "127.0.0.1:8000/private/moonbase", "127.0.0.1:8000/private/moonbase:latest",
     "127.0.0.1:8000/private/moonbase:latest"),
    ("example.com:8000/privatebasee:v1", "example.com:8000/privatebasee",
     "example.com:8000/privatebasee", "example.com:8000/privatebasee:v1",
     "example.com:8000/privatebasee:v1"),
    ("Foo/bar", "Foo/bar", "Foo/bar", "Foo/bar:latest", "Foo/bar:latest"),
    (f"busybox:latest@{REDIS}", "docker.io/library/busybox", "busybox",
     f"docker.io/library/busybox:latest@{REDIS}", f"busybox:latest@{REDIS}"),
    (f"redis@{REDIS}", "docker.io/library/redis", "redis", f"docker.io/library/redis@{REDIS}",
     f"redis@{REDIS}"),
])
def test_names_and_familiar_forms(text: str, name: str, familiar_name: str, full: str,
                                  familiar: str) -> None:
    ref = Reference.parse(text)
    assert ref.name == name
    assert ref.familiar_name == familiar_name
    assert str(ref) == full
    assert ref.familiar == familiar


def test_default_tag_is_optional() -> None:
    assert Reference.parse("busybox", default_tag=None).tag is None
    assert Reference.parse("busybox", default_tag="1.35").tag == "1.35"
    assert Reference.parse(f"busybox@{DIG}").tag is None  # no default tag next to a digest
    bare = Reference.parse("busybox", default_tag=None)
    assert str(bare) == "docker.io/library/busybox"
    with pytest.raises(InvalidReferenceError):
        _ = bare.tag_or_digest


def test_with_tag_and_with_digest_follow_docker() -> None:
    ref = Reference.parse("test.com:8000/foo")
    assert str(ref.with_tag("TAG5")) == "test.com:8000/foo:TAG5"
    pinned = ref.with_digest(DIG)
    assert str(pinned) == f"test.com:8000/foo:latest@{DIG}"
    assert str(pinned.with_tag(None)) == f"test.com:8000/foo@{DIG}"  # WithTag keeps the digest
    assert str(pinned.with_digest(None)) == "test.com:8000/foo:latest"
    assert pinned.tag_or_digest == DIG  # the digest is what identifies the content
    with pytest.raises(InvalidReferenceError):
        ref.with_tag("-foo")
    with pytest.raises(InvalidReferenceError):
        ref.with_digest("foo")
    with pytest.raises(InvalidReferenceError):
        ref.with_digest("sha256:" + "F" * 64)


def test_constructor_validates() -> None:
    with pytest.raises(InvalidReferenceError):
        Reference("docker.io", "library/../../etc", "latest")
    with pytest.raises(InvalidReferenceError):
        Reference("docker.io", "library/busybox", None, "sha256:../../x")
    with pytest.raises(InvalidReferenceError):
        Reference("bad host", "library/busybox", "latest")
    ref = Reference("docker.io", "library/busybox", "1.35")
    assert ref == Reference.parse("busybox:1.35")
    assert hash(ref) == hash(Reference.parse("busybox:1.35"))


@pytest.mark.parametrize("text", [
    "a" * 5000 + "!",
    "a_" * 3000 + "/docker",
    "a-" * 3000 + "A",
    "x" * 100 + "." + "y" * 100 + "/" + "b" * 4000 + "$",
    "[" + "1:" * 2000 + "]/repo",
])
def test_hostile_long_input_fails_fast(text: str) -> None:
    """Docker's grammar has an empty-matching separator; a backtracking regex engine must not
    go exponential on it (RE2 never does)."""
    with pytest.raises(InvalidReferenceError):
        Reference.parse(text)
