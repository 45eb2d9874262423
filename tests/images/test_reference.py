import pytest

from miniorch.images import InvalidReference, parse_reference

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("ref", "full", "familiar"),
    [
        pytest.param("kubia", "docker.io/library/kubia:latest", "kubia:latest", id="bare"),
        pytest.param("kubia:v1", "docker.io/library/kubia:v1", "kubia:v1", id="tag"),
        pytest.param("luksa/kubia:v1", "docker.io/luksa/kubia:v1", "luksa/kubia:v1", id="user"),
        pytest.param("docker.io/library/busybox", "docker.io/library/busybox:latest",
                     "busybox:latest", id="qualified"),
        pytest.param("index.docker.io/luksa/kubia", "docker.io/luksa/kubia:latest",
                     "luksa/kubia:latest", id="index-alias"),
        pytest.param("127.0.0.1:5000/kubia:1", "127.0.0.1:5000/kubia:1",
                     "127.0.0.1:5000/kubia:1", id="registry-port"),
        pytest.param("localhost/kubia", "localhost/kubia:latest", "localhost/kubia:latest",
                     id="localhost"),
        pytest.param("ghcr.io/a/b/c:x.y-z_1", "ghcr.io/a/b/c:x.y-z_1", "ghcr.io/a/b/c:x.y-z_1",
                     id="deep"),
        pytest.param(f"kubia@{DIGEST}", f"docker.io/library/kubia@{DIGEST}",
                     f"kubia@{DIGEST}", id="digest"),
        pytest.param(f"kubia:v1@{DIGEST}", f"docker.io/library/kubia:v1@{DIGEST}",
                     f"kubia:v1@{DIGEST}", id="tag-and-digest"),
    ],
)
def test_parse(ref: str, full: str, familiar: str) -> None:
    r = parse_reference(ref)
    assert str(r) == full
    assert r.familiar == familiar


def test_parts() -> None:
    r = parse_reference("127.0.0.1:5000/team/kubia:1")
    assert (r.domain, r.path, r.tag, r.digest) == ("127.0.0.1:5000", "team/kubia", "1", None)
    assert r.familiar_repository == "127.0.0.1:5000/team/kubia"
    assert parse_reference("kubia").familiar_repository == "kubia"
    assert parse_reference(f"kubia@{DIGEST}").tag is None


@pytest.mark.parametrize(
    "ref",
    [
        pytest.param("", id="empty"),
        pytest.param("Kubia", id="uppercase"),
        pytest.param("kubia:", id="empty-tag"),
        pytest.param("kubia:bad tag", id="space"),
        pytest.param("kubia@sha256:123", id="short-digest"),
        pytest.param("-kubia", id="leading-dash"),
        pytest.param("a//b", id="empty-component"),
        pytest.param("kubia:" + "x" * 129, id="long-tag"),
    ],
)
def test_invalid(ref: str) -> None:
    with pytest.raises(InvalidReference):
        parse_reference(ref)
