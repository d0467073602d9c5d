#!/usr/bin/env python3
"""The Anthropic Python SDK through idguard, with a token that is refreshed for as long as the agent runs.

    IDGUARD_ISSUER=https://idguard.example.com IDGUARD_CLIENT_ID=agent-2 \\
        IDGUARD_PRIVATE_KEY_FILE=agent-2.pem IDGUARD_KEY_ID=k1 python anthropic_agent.py --calls 2 --pause 900

The SDK's own ``api_key`` is a placeholder: the ``http_client``'s auth hook removes it from whichever header the
SDK put it in (``x-api-key`` or ``Authorization``) and presents the agent's idguard token as
``Authorization: Bearer``; idguard swaps that for the stored Anthropic key (``x-api-key`` upstream).
``IDGUARD_BASE_URL`` is the LLM node's route (default ``$IDGUARD_ISSUER/llm/claude``). Prints one JSON line: the
answers, and how many tokens were fetched.
"""

import argparse
import asyncio
import json
import os

import anthropic
import httpx2  # anthropic >= 2 takes an httpx2 client (older releases: httpx.Client, with the same IdguardAuth)

from idguard_auth import IdguardAuth


async def run(
    auth: IdguardAuth, base_url: str, calls: int = 1, pause: float = 0, model: str = "claude-sonnet-4-5"
) -> list:
    """Sends ``calls`` messages ``pause`` seconds apart with one async client; returns the answers."""
    # The async client: the hook's async_auth_flow fetches tokens off the event loop.
    client = anthropic.AsyncAnthropic(base_url=base_url, api_key="unused", http_client=httpx2.AsyncClient(auth=auth))
    answers = []
    for i in range(calls):
        if i:
            await asyncio.sleep(pause)
        message = await client.messages.create(
            model=model, max_tokens=64, messages=[{"role": "user", "content": "Say pong."}]
        )
        answers.append(message.content[0].text)
    return answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1, help="how many messages to send")
    parser.add_argument("--pause", type=float, default=0, help="seconds to wait between calls")
    parser.add_argument("--model", default="claude-sonnet-4-5")
    args = parser.parse_args()

    auth = IdguardAuth.from_env()
    base_url = os.environ.get("IDGUARD_BASE_URL") or f"{auth.issuer}/llm/claude"
    answers = asyncio.run(run(auth, base_url, args.calls, args.pause, args.model))
    print(json.dumps({"sdk": "anthropic", "answers": answers, "token_fetches": auth.token_fetches}))


if __name__ == "__main__":
    main()
