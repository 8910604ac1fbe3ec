#!/usr/bin/env python3
"""Signs in to the pages of a running `flowc serve` with an API token, then asks for each
page given three times (not measured) and ROUNDS times over one keep-alive connection, and
prints the median, p95 and spread of the time to the page's last byte (milliseconds), as a
Markdown table row.

    python3 bench/web/measure.py HOST:PORT TOKEN ROUNDS LABEL=PATH[|PATH…]…

A page given as several paths is asked for at each in turn (a page that reuses what it
counted for the same address, asked at another each time, is measured counting anew).
"""
import http.client
import re
import sys
import time

address, token, rounds, pages = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
conn = http.client.HTTPConnection(address)


def ask(method, path, body=None, cookies=""):
    headers = {"Cookie": cookies}
    if body is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    return response, response.read()


def cookie(response, name):
    for header, value in response.getheaders():
        if header.lower() == "set-cookie" and value.startswith(name + "="):
            return value.split(";", 1)[0]
    sys.exit(f"the server set no {name} cookie")


# Sign in as a browser does: the form's nonce cookie and CSRF token, then the token.
response, body = ask("GET", "/ui/sign-in")
nonce = cookie(response, "__Host-flow_sign_in")
csrf = re.search(rb'name="csrf" value="([^"]+)"', body).group(1).decode()
response, _ = ask("POST", "/ui/sign-in", f"token={token}&csrf={csrf}", nonce)
if response.status != 303:
    sys.exit(f"signing in answered {response.status}")
session = cookie(response, "__Host-flow_session")

for page in pages:
    label, paths = page.split("=", 1)
    paths = paths.split("|")
    took = []
    size = 0
    for path in paths * 3:  # warm: the plans loaded, the caches filled
        ask("GET", path, cookies=session)
    for n in range(rounds):
        path = paths[n % len(paths)]
        start = time.perf_counter()
        response, body = ask("GET", path, cookies=session)
        took.append((time.perf_counter() - start) * 1000)
        if response.status != 200:
            sys.exit(f"{path} answered {response.status}: {body[:300]!r}")
        size = len(body)
    took.sort()
    p50, p95 = took[len(took) // 2], took[min(len(took) - 1, int(len(took) * 0.95))]
    print(f"| {label} | {size / 1024:,.0f} KiB | {p50:.1f} | {p95:.1f} | {took[0]:.1f}–{took[-1]:.1f} |", flush=True)
