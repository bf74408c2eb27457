"""The wire protocol, without sockets."""

from __future__ import annotations

import contextlib

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeexec import protocol as p

FRAMES: list[p.Frame] = [
    p.Hello(name="site-a.01", instance="i1", queues=("default", "remote"), concurrency=8,
            versions={"edgeexec": "0.1.0"}, jobs=(p.JobStatus("j1", p.JobState.RUNNING),
                                                  p.JobStatus("j2", p.JobState.FAILED))),
    p.Welcome(session="s", protocol=1, heartbeat_interval=10.0, max_frame=1 << 20, warnings=("w",)),
    p.Heartbeat(used=2, metrics={"cpu_percent": 12.5}, state="running"),
    p.Run(job="j1", workload='{"token": "secret"}', slots=2),
    p.Accepted(job="j1"),
    p.Rejected(job="j1", reason="draining"),
    p.StateReport(job="j1", state=p.JobState.FAILED, exit_code=1, reason="exit code 1"),
    p.Ack(job="j1", state=p.JobState.SUCCESS),
    p.LogChunk.of("j1", 10, b"line \xc3\n\xff"),
    p.AgentStatus(state="maintenance mode", comments="disk swap"),
    p.Cancel(job="j1", reason="revoked"),
    p.Command(action="maintenance_on", comments="patching"),
    p.Bye(reason="drained"),
    p.Error(code=4403, message="no", retry=False),
]


@pytest.mark.parametrize("frame", FRAMES, ids=lambda f: f.TYPE)
def test_every_frame_round_trips(frame: p.Frame) -> None:
    """encode/decode are inverse for every frame type."""
    assert p.decode(p.encode(frame)) == frame


def test_run_repr_hides_the_workload_token() -> None:
    """The workload carries an Execution-API JWT; a logged frame must not show it."""
    assert "secret" not in repr(p.Run(job="j", workload='{"token": "secret"}'))


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"type": "teleport"}', "unknown frame type 'teleport'"),
        (b'{"type": "accepted"}', "missing the required field 'job'"),
        (b'{"type": "heartbeat", "used": "two"}', "heartbeat.used must be an integer"),
        (b'{"type": "heartbeat", "used": -1}', "out of range"),
        (b'{"type": "state", "job": "j", "state": "pending"}', "only running, success or failed"),
        (b'{"type": "state", "job": "j", "state": "exploded"}', "is not a job state"),
        (b'{"type": "command", "action": "selfdestruct"}', "is unknown"),
        (b'{"type": "heartbeat", "used": 99999999999999999999999}', "must be an integer"),
    ],
)
def test_malformed_frames_say_what_is_wrong(raw: bytes, needle: str) -> None:
    """Every refusal names the field or problem, so an agent author can fix it."""
    with pytest.raises(p.ProtocolError) as err:
        p.decode(raw)
    assert needle in str(err.value)
    assert err.value.code == p.CloseCode.MALFORMED


def _hello(**over: object) -> bytes:
    base: dict[str, object] = {"type": "hello", "name": "a1", "instance": "i", "queues": ["default"],
                               "concurrency": 4, "protocols": [1]}
    base.update(over)
    return orjson.dumps(base)


@pytest.mark.parametrize(
    ("over", "needle"),
    [
        ({"queues": ["q" * 257]}, "queue name"),
        ({"queues": ["a,b"]}, "without commas"),
        ({"queues": []}, "at least one queue"),
        ({"name": "bad name!"}, "agent name"),
        ({"name": ""}, "agent name"),
        ({"concurrency": 0}, "out of range"),
        ({"team": "x"}, "not a valid Airflow team name"),
        ({"team": "team:b"}, "not a valid Airflow team name"),
        ({"team": 7}, "team"),
    ],
)
def test_invalid_hello_is_refused_with_invalid_hello_code(over: dict[str, object], needle: str) -> None:
    """Queue names over 256 characters and other bad hellos get a clear message."""
    with pytest.raises(p.ProtocolError) as err:
        p.decode(_hello(**over))
    assert needle in str(err.value)


def test_queue_of_exactly_256_characters_is_allowed() -> None:
    """The limit is inclusive."""
    frame = p.decode(_hello(queues=["q" * 256]))
    assert isinstance(frame, p.Hello)


def test_allowed_restricts_frame_direction() -> None:
    """A gateway refuses gateway-to-agent frames from an agent."""
    with pytest.raises(p.ProtocolError, match="this side accepts"):
        p.decode(p.encode(p.Run(job="j", workload="{}")), allowed=p.AGENT_FRAMES)


def test_negotiation_picks_highest_common_version_or_refuses() -> None:
    """No common version is a refusal with the upgrade hint; otherwise the highest shared wins."""
    assert p.negotiate((1, 2, 3), (1, 2)) == 2
    with pytest.raises(p.ProtocolError) as err:
        p.negotiate((9,), (1,))
    assert err.value.code == p.CloseCode.UNSUPPORTED_PROTOCOL


def test_version_mismatch_is_a_warning_not_a_refusal() -> None:
    """Patch/minor differences between agent and gateway only warn."""
    assert p.version_warnings({"airflow": "3.3.1"}, {"airflow": "3.3.2"}) == (
        "airflow version differs: agent 3.3.1, gateway 3.3.2",)
    assert p.version_warnings({}, {"airflow": "3.3.2"}) == ()


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=512))
def test_decoder_never_raises_anything_but_protocol_error(data: bytes) -> None:
    """Arbitrary bytes either decode or raise ProtocolError, never crash the gateway."""
    with contextlib.suppress(p.ProtocolError):
        p.decode(data)


@FUZZ
@given(st.dictionaries(st.sampled_from(["type", "job", "state", "used", "name", "queues", "slots", "offset",
                                        "data", "workload", "concurrency", "instance", "protocols", "jobs"]),
                       st.one_of(st.none(), st.integers(-(1 << 63), (1 << 63) - 1), st.text(max_size=20), st.booleans(),
                                 st.lists(st.text(max_size=5), max_size=3),
                                 st.sampled_from(list(p.AGENT_FRAMES | p.GATEWAY_FRAMES)))))
def test_structured_garbage_is_refused_cleanly(obj: dict[str, object]) -> None:
    """JSON objects with wrong field types are refused with ProtocolError."""
    with contextlib.suppress(p.ProtocolError):
        p.decode(orjson.dumps(obj))


def test_log_pieces_are_bytes_and_version_2_text_is_still_accepted() -> None:
    """Version 3 carries raw bytes (base64); a version-2 agent's text arrives as its UTF-8 bytes."""
    piece = p.LogChunk.of("j", 5, b"\xe6\x97\xa5\xff")
    assert p.decode(p.encode(piece)).raw == b"\xe6\x97\xa5\xff"
    old = p.decode(b'{"type": "log", "job": "j", "offset": 0, "data": "\\u65e5 ok"}')
    assert isinstance(old, p.LogChunk) and old.raw == "\u65e5 ok".encode()


@pytest.mark.parametrize(("raw", "needle"), [
    (b'{"type": "log", "job": "j", "offset": 0, "b64": "***"}', "not valid base64"),
    (b'{"type": "log", "job": "j", "offset": 0}', "missing the required field 'b64'"),
    (b'{"type": "log", "job": "j", "offset": -1, "b64": ""}', "out of range"),
])
def test_bad_log_pieces_say_what_is_wrong(raw: bytes, needle: str) -> None:
    with pytest.raises(p.ProtocolError, match=needle):
        p.decode(raw)


@pytest.mark.parametrize("max_frame", [8192, 65536, 100_000, 1 << 20])
def test_log_pieces_sized_for_max_frame_fit_in_it(max_frame: int) -> None:
    """The agent sizes pieces from welcome.max_frame; the encoded frame then fits the gateway's limit."""
    n = p.log_piece_limit(max_frame)
    frame = p.encode(p.LogChunk.of("j" * 128, 1 << 40, b"\xff" * n))
    assert len(frame) <= max_frame and n <= p.MAX_LOG_PIECE


def test_mixed_versions_keep_logs_flowing_both_ways() -> None:
    """A version-2 agent's piece of 64 KiB bytes decoded with replacements (each a 3-byte U+FFFD)
    is accepted by an upgraded gateway; an upgraded agent on a version-2 gateway sends text."""
    old_piece = (b"x" * (p.MAX_LOG_PIECE - 1) + b"\xff").decode(errors="replace")
    frame = p.decode(orjson.dumps({"type": "log", "job": "j", "offset": 0, "data": old_piece}))
    assert isinstance(frame, p.LogChunk) and len(frame.raw) == p.MAX_LOG_PIECE + 2
    legacy = orjson.loads(p.encode_for(p.LogChunk.of("j", 3, b"ok \xff"), 2))
    assert legacy == {"type": "log", "job": "j", "offset": 3, "data": "ok \ufffd"}
    assert "b64" in orjson.loads(p.encode_for(p.LogChunk.of("j", 3, b"ok"), 3))
