import pytest

from miniorch.images import DockerfileError
from miniorch.images.dockerfile import expand, parse_dockerfile, parse_key_values, split_words


def test_forms_continuations_comments() -> None:
    df = parse_dockerfile(
        "# syntax=docker/dockerfile:1\n"
        "# a comment\n"
        "from python:3.11-slim AS base\n"
        "\n"
        "RUN echo one && \\\n"
        "    # a comment inside a continuation\n"
        "\n"
        "    echo two\n"
        'ENTRYPOINT ["python", "/app.py"]\n'
        "CMD node app.js\n"
        "COPY --chown=1000:1000 a b /dst/\n"
        'CMD ["not json\n'
    )
    kw = [(i.line, i.keyword) for i in df.instructions]
    assert kw == [(3, "FROM"), (5, "RUN"), (9, "ENTRYPOINT"), (10, "CMD"), (11, "COPY"),
                  (12, "CMD")]
    run = df.instructions[1]
    assert run.rest == "echo one &&     echo two"
    assert run.exec_form is None
    assert df.instructions[2].exec_form == ("python", "/app.py")
    assert df.instructions[3].exec_form is None
    assert df.instructions[4].flags == {"chown": "1000:1000"}
    assert df.instructions[4].rest == "a b /dst/"
    assert df.instructions[5].exec_form is None  # invalid JSON falls back to shell form


def test_escape_directive() -> None:
    df = parse_dockerfile("# escape=`\nFROM scratch\nCOPY a `\n  b /c/\n")
    assert df.escape == "`"
    assert df.instructions[1].rest == "a   b /c/"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("FROM busybox\n\nCOPPY a b\n", "Dockerfile:3: unknown instruction: COPPY",
                     id="unknown"),
        pytest.param("FROM busybox\nCOPY\n", "Dockerfile:2: COPY requires at least one argument",
                     id="no-args"),
        pytest.param("", "Dockerfile:1: file with no instructions", id="empty"),
        pytest.param("# escape=x\nFROM a\n", "Dockerfile:1: invalid escape token", id="escape"),
    ],
)
def test_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(DockerfileError) as exc:
        parse_dockerfile(text)
    assert str(exc.value).startswith(message)


def test_variables_and_words() -> None:
    env = {"A": "1", "NAME": "kubia"}.get
    assert expand("${NAME}:v$A", env) == "kubia:v1"
    assert expand("${MISSING:-dflt} ${A:+set} ${MISSING:+no}", env) == "dflt set "
    assert expand(r"\$A", env) == "$A"
    assert split_words("a \"b c\" '$A' $A", env) == ["a", "b c", "$A", "1"]
    assert parse_key_values('A=1 B="x y" C=${NAME}', env, keyword="ENV") == [
        ("A", "1"), ("B", "x y"), ("C", "kubia")]
    assert parse_key_values("LEGACY some value", env, keyword="ENV") == [("LEGACY", "some value")]
    with pytest.raises(ValueError):
        parse_key_values("novalue", env, keyword="LABEL")
