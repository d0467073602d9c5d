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


async def run(args: argparse.Namespace) -> None:
    auth = IdguardAuth.from_env()
    base_url = os.environ.get("IDGUARD_BASE_URL") or f"{auth.issuer}/llm/claude"
    # The async client: the hook's async_auth_flow fetches tokens off the event loop.
    client = anthropic.AsyncAnthropic(
        base_url=base_url, api_key="unused", http_client=httpx2.AsyncClient(auth=auth)
    )
    answers = []
    for i in range(args.calls):
        if i:
            await asyncio.sleep(args.pause)
        message = await client.messages.create(
            model=args.model, max_tokens=64, messages=[{"role": "user", "content": "Say pong."}]
        )
        answers.append(message.content[0].text)
    print(json.dumps({"sdk": "anthropic", "answers": answers, "token_fetches": auth.token_fetches}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1, help="how many messages to send")
    parser.add_argument("--pause", type=float, default=0, help="seconds to wait between calls")
    parser.add_argument("--model", default="claude-sonnet-4-5")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
