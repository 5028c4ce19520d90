"""Nothing heavy before login: connections that never send a startup packet are
bounded by max_unauthenticated_connections (the oldest is closed to make room),
and a client logs in while they flood the server. The full 2,000-socket flood,
with memory and login-time figures, is bench/flood.py."""

import socket
import time


def rss_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def closed_by_server(s):
    s.setblocking(False)
    try:
        return s.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_silent_sockets_are_bounded_and_logins_go_through(broker, make_server):
    broker.create_topic("events", 1)
    server = make_server(broker.brokers, env={"LAMBDADB_MAX_UNAUTHENTICATED_CONNECTIONS": "40"})
    server.query("SELECT 1")
    before = rss_mb(server.proc.pid)
    flood = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(300)]
    try:
        time.sleep(1)
        # Clients log in during the flood (each login also evicts an old socket).
        for _ in range(5):
            assert server.query("SELECT count(*) FROM events") == [(0,)]
        time.sleep(0.5)
        closed = sum(closed_by_server(s) for s in flood)
        still_open = len(flood) - closed
        assert still_open <= 40, f"{still_open} silent connections still open, limit 40"
        assert closed >= 250, closed
        print(f"resident memory {before:.0f} MB -> {rss_mb(server.proc.pid):.0f} MB with 300 silent sockets")
        assert server.alive()
    finally:
        for s in flood:
            s.close()
    assert server.query("SELECT 1") == [(1,)]
