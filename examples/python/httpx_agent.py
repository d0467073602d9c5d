#!/usr/bin/env python3
"""Plain httpx through idguard (any OpenAI-compatible route), sync and async, with a refreshed token.

    IDGUARD_ISSUER=https://idguard.example.com IDGUARD_CLIENT_ID=agent-1 IDGUARD_CLIENT_SECRET=... \\
        python httpx_agent.py --calls 2 --pause 900

Each round sends one request with ``httpx.Client`` and three at once with ``httpx.AsyncClient``, all sharing one
``IdguardAuth`` and so one token. ``IDGUARD_BASE_URL`` is the route (default ``$IDGUARD_ISSUER/llm/openai/v1``). Prints
one JSON line: the answers, and how many tokens were fetched.
"""

import argparse
import asyncio
import json
import os
import time

import httpx  # httpx2 works the same: IdguardAuth is an Auth of both

from idguard_auth import IdguardAuth

REQUEST = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say pong."}]}


def answer(response: httpx.Response) -> str:
    response.raise_for_status()
    return response.json()["choices"][0]["message"]["content"]


async def concurrently(base_url: str, auth: IdguardAuth) -> list:
    async with httpx.AsyncClient(auth=auth, base_url=base_url) as client:
        replies = await asyncio.gather(*(client.post("/chat/completions", json=REQUEST) for _ in range(3)))
    return [answer(r) for r in replies]


def run(auth: IdguardAuth, base_url: str, calls: int = 1, pause: float = 0) -> list:
    """``calls`` rounds ``pause`` seconds apart, each one sync request and three concurrent async ones; returns
    the answers."""
    answers = []
    with httpx.Client(auth=auth, base_url=base_url) as client:
        for i in range(calls):
            if i:
                time.sleep(pause)
            answers.append(answer(client.post("/chat/completions", json=REQUEST)))
            answers.extend(asyncio.run(concurrently(base_url, auth)))
    return answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1, help="rounds of requests")
    parser.add_argument("--pause", type=float, default=0, help="seconds to wait between rounds")
    args = parser.parse_args()

    auth = IdguardAuth.from_env()
    base_url = os.environ.get("IDGUARD_BASE_URL") or f"{auth.issuer}/llm/openai/v1"
    answers = run(auth, base_url, args.calls, args.pause)
    print(json.dumps({"sdk": "httpx", "answers": answers, "token_fetches": auth.token_fetches}))


if __name__ == "__main__":
    main()
