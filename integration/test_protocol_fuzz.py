"""Protocol fuzzing: random, truncated and mis-sized messages of every frontend
message kind, before and after login, never take the server down; it answers
with an error or closes that one connection, and keeps serving the others."""

import random
import socket
import struct

PROTOCOL = 196608
KINDS = b"QPBDESHCdcfXpF"  # every frontend message type byte, and F (function call)


def startup(user="lambdadb"):
    body = struct.pack("!i", PROTOCOL) + b"user\0" + user.encode() + b"\0database\0lambdadb\0\0"
    return struct.pack("!i", len(body) + 4) + body


def read_until_ready(s):
    data = b""
    while not data.endswith(b"Z\x00\x00\x00\x05I"):
        chunk = s.recv(65536)
        if not chunk:
            raise AssertionError(f"closed before ReadyForQuery: {data[-200:]!r}")
        data += chunk
    return data


def drain(s):
    try:
        while s.recv(65536):
            pass
    except (ConnectionResetError, socket.timeout, BrokenPipeError, OSError):
        pass


def message(rng, kind):
    """A message of `kind` with a random body and a right, short or absurd length."""
    body = rng.randbytes(rng.choice([0, 1, 3, 8, 64, 1000]))
    if kind == ord("Q") and rng.random() < 0.5:
        body = rng.choice([b"SELECT 1", b"SELECT", b"\xff\xfe", b""]) + rng.choice([b"\0", b""])
    length = rng.choice([len(body) + 4, len(body) + 4, 0, 3, -1, 2**31 - 1, len(body) + 40])
    return bytes([kind]) + struct.pack("!i", length) + body


def truncate(rng, data):
    return data[: rng.randrange(0, len(data) + 1)] if rng.random() < 0.3 else data


def attempt(server, rng, logged_in):
    with socket.create_connection(("127.0.0.1", server.port), timeout=3) as s:
        if logged_in:
            s.sendall(startup())
            read_until_ready(s)
            payload = b"".join(message(rng, rng.choice(KINDS)) for _ in range(rng.randint(1, 3)))
        else:
            kind = rng.choice(["startup", "ssl", "cancel", "garbage", "message"])
            if kind == "startup":
                payload = startup()[:8] + rng.randbytes(rng.randint(0, 200))
                payload = struct.pack("!i", rng.choice([len(payload), 8, 7, 10_001, -5])) + payload[4:]
            elif kind == "ssl":
                payload = struct.pack("!ii", 8, 80877103) + rng.randbytes(rng.randint(0, 50))
            elif kind == "cancel":
                payload = struct.pack("!iiii", 16, 80877102, rng.randint(-2**31, 2**31 - 1),
                                      rng.randint(-2**31, 2**31 - 1))
            elif kind == "garbage":
                payload = rng.randbytes(rng.randint(1, 300))
            else:
                payload = message(rng, rng.choice(KINDS))
        try:
            s.sendall(truncate(rng, payload))
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        drain(s)


def test_fuzzed_messages_never_take_the_server_down(broker, make_server):
    broker.create_topic("events", 1)
    server = make_server(broker.brokers)
    rng = random.Random(20261203)
    for i in range(400):
        attempt(server, rng, logged_in=i % 2 == 1)
        if i % 50 == 49:
            assert server.alive(), f"server died at attempt {i}"
            assert server.query("SELECT count(*) FROM events") == [(0,)]
    # An ordinary client on a connection that saw errors keeps working.
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(startup())
        read_until_ready(s)
        s.sendall(b"Q" + struct.pack("!i", 4 + len(b"SELEKT 1\0")) + b"SELEKT 1\0")
        reply = read_until_ready(s)
        assert b"42601" in reply
        s.sendall(b"Q" + struct.pack("!i", 4 + len(b"SELECT 41 + 1\0")) + b"SELECT 41 + 1\0")
        assert b"42" in read_until_ready(s)
    assert server.alive()
