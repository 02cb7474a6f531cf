#!/usr/bin/env python3
"""Clients that try to stall `nanochat serve` (standard library only; serve_smoke.sh runs it).

    serve_hostile.py PORT load        1,000 idle and half-sent connections and 20 requests whose
                                      clients leave before the reply, then a normal request,
                                      which must be answered within 2 s
    serve_hostile.py PORT slow T      a header and a body sent too slowly, closed after about
                                      T s; a body announced over the limit, refused at once
    serve_hostile.py PORT burst N     N requests at once against --slots 1 --max-waiting 0: at
                                      most one runs, the rest are answered 429

Each prints `ok: ...` lines, or `FAIL: ...` and exits 1.
"""
import json
import resource
import socket
import sys
import threading
import time

HOST = "127.0.0.1"
failures = 0


def fail(words):
    global failures
    failures += 1
    print("FAIL: " + words)


def request(path, body):
    data = json.dumps(body).encode()
    return (b"POST %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % (path.encode(), len(data))) + data


def status_of(reply):
    """The status code of a raw HTTP reply, or 0."""
    try:
        return int(reply.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return 0


def exchange(port, raw, timeout=30):
    """Sends one request on a fresh connection and reads the reply until the body is whole."""
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.sendall(raw)
        reply = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return reply
            reply += chunk
            head, sep, body = reply.partition(b"\r\n\r\n")
            if sep:
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:") and len(body) >= int(line.split(b":")[1]):
                        return reply


def health(port):
    reply = exchange(port, b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
    return json.loads(reply.partition(b"\r\n\r\n")[2])


def load(port):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    idle = []
    for i in range(1000):
        s = socket.create_connection((HOST, port), timeout=10)
        if i % 2:   # half of them start a request and never finish its header
            s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-")
        idle.append(s)
    print("ok: 1000 connections open, 500 of them with half a header")
    before = health(port)
    for i in range(20):
        with socket.create_connection((HOST, port), timeout=10) as s:
            s.sendall(request("/v1/completions", {"prompt": "ROMEO %d:" % i, "max_tokens": 200, "ignore_eos": True}))
    time.sleep(0.5)
    mid = health(port)
    t0 = time.time()
    reply = exchange(port, request("/v1/completions", {"prompt": "JULIET:", "max_tokens": 8, "temperature": 0}), timeout=10)
    took = time.time() - t0
    if status_of(reply) == 200 and took <= 2:
        print("ok: a normal request answered in %.2f s beside them" % took)
    else:
        fail("a normal request: status %d after %.2f s" % (status_of(reply), took))
    time.sleep(0.5)
    after = health(port)
    made = mid["generated_tokens"] - before["generated_tokens"]
    if made < 20 * 200 // 2 and after["running"] == 0:
        print("ok: the 20 clients that left were stopped: %d of their 4000 tokens made, none running" % made)
    else:
        fail("clients that left: %d of 4000 tokens made, %d running" % (made, after["running"]))
    for s in idle:
        s.close()


def slow(port, timeout):
    # A header sent a few bytes at a time, never finished: the server closes the connection.
    with socket.create_connection((HOST, port), timeout=timeout * 4) as s:
        t0 = time.time()
        s.sendall(b"POST /v1/completions HTTP/1.1\r\n")
        closed = None
        while time.time() - t0 < timeout * 3:
            try:
                s.sendall(b"X-a: b\r\n")
            except OSError:
                closed = time.time() - t0
                break
            s.settimeout(0.5)
            try:
                if s.recv(4096) == b"":
                    closed = time.time() - t0
                    break
            except socket.timeout:
                pass
        if closed is not None and closed <= timeout + 2:
            print("ok: a header never finished was closed after %.1f s" % closed)
        else:
            fail("a header never finished: still open after %.1f s" % (time.time() - t0))
    # A body announced as 100 bytes of which 10 arrive.
    with socket.create_connection((HOST, port), timeout=timeout * 4) as s:
        t0 = time.time()
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 100\r\n\r\n{\"prompt\":")
        reply = b""
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                reply += chunk
        except OSError:
            pass
        took = time.time() - t0
        if (status_of(reply) == 408 or reply == b"") and took <= timeout + 2:
            print("ok: a body never finished: %s after %.1f s" % ("408" if reply else "closed", took))
        else:
            fail("a body never finished: %r after %.1f s" % (reply[:60], took))
    # A body announced over the limit: refused from its header, before the body comes.
    with socket.create_connection((HOST, port), timeout=10) as s:
        t0 = time.time()
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 10000000\r\n\r\n" + b" " * 65536)
        reply = s.recv(4096)
        took = time.time() - t0
        if status_of(reply) == 413 and took < 2:
            print("ok: a 10 MB body refused from its header in %.2f s" % took)
        else:
            fail("a 10 MB body: %r after %.2f s" % (reply[:60], took))


def burst(port, n):
    codes = []
    lock = threading.Lock()
    start = threading.Barrier(n)

    def one(i):
        start.wait()
        try:
            reply = exchange(port, request("/v1/completions", {"prompt": "ROMEO %d:" % i, "max_tokens": 200, "ignore_eos": True}))
            code = status_of(reply)
        except OSError as e:
            code = str(e)
        with lock:
            codes.append(code)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ok, busy = codes.count(200), codes.count(429)
    if ok + busy == n and 1 <= ok <= 2:
        print("ok: %d requests at once with one slot and no queue: %d answered, %d told 429" % (n, ok, busy))
    else:
        fail("a burst of %d: %d answered, %d told 429, others %s" % (n, ok, busy, [c for c in codes if c not in (200, 429)][:5]))


if __name__ == "__main__":
    port, mode = int(sys.argv[1]), sys.argv[2]
    if mode == "load":
        load(port)
    elif mode == "slow":
        slow(port, float(sys.argv[3]))
    elif mode == "burst":
        burst(port, int(sys.argv[3]))
    sys.exit(1 if failures else 0)
