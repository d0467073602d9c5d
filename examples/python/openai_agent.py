#!/usr/bin/env python3
"""The OpenAI Python SDK through idguard, with a token that is refreshed for as long as the agent runs.

    IDGUARD_ISSUER=https://idguard.example.com IDGUARD_CLIENT_ID=agent-1 IDGUARD_CLIENT_SECRET=... \\
        python openai_agent.py --calls 2 --pause 900

The SDK's own ``api_key`` is a placeholder: the ``http_client``'s auth hook replaces whatever the SDK puts in
``Authorization`` with the agent's idguard token on every request (and on every retry the SDK makes), and idguard
swaps that for the stored OpenAI key. ``IDGUARD_BASE_URL`` is the LLM node's route (default
``$IDGUARD_ISSUER/llm/openai/v1``). Prints one JSON line: the answers, and how many tokens were fetched.
"""

import argparse
import json
import os
import time

import httpx2  # openai >= 3 takes an httpx2 client (older releases: httpx.Client, with the same IdguardAuth)
import openai

from idguard_auth import IdguardAuth


def run(auth: IdguardAuth, base_url: str, calls: int = 1, pause: float = 0, model: str = "gpt-4o-mini") -> list:
    """Makes ``calls`` chat completions ``pause`` seconds apart with one client; returns the answers."""
    client = openai.OpenAI(base_url=base_url, api_key="unused", http_client=httpx2.Client(auth=auth))
    answers = []
    for i in range(calls):
        if i:
            time.sleep(pause)
        reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Say pong."}])
        answers.append(reply.choices[0].message.content)
    return answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1, help="how many chat completions to make")
    parser.add_argument("--pause", type=float, default=0, help="seconds to wait between calls")
    parser.add_argument("--model", default="gpt-4o-mini")
    args = parser.parse_args()

    auth = IdguardAuth.from_env()
    base_url = os.environ.get("IDGUARD_BASE_URL") or f"{auth.issuer}/llm/openai/v1"
    answers = run(auth, base_url, args.calls, args.pause, args.model)
    print(json.dumps({"sdk": "openai", "answers": answers, "token_fetches": auth.token_fetches}))


if __name__ == "__main__":
    main()
