"""For tests/integration/cases/sdk.rs: every recipe of examples/python/ at once, in this one process (the SDKs are
imported once), each with a client secret and with private_key_jwt, for two calls ``IDGUARD_PAUSE`` seconds apart;
and beside them a token that idguard refuses while the hook still holds it.

Run with examples/python on PYTHONPATH and, in the environment: IDGUARD_ISSUER; IDGUARD_SECRET_CLIENT,
IDGUARD_CLIENT_SECRET (the secret's agent); IDGUARD_KEY_CLIENT, IDGUARD_PRIVATE_KEY_FILE, IDGUARD_KEY_ID (the key's
agent); IDGUARD_PAUSE. Prints one JSON line: per run, the answers and the tokens fetched, or the error.
"""

import asyncio
import json
import os
import threading

import httpx

import anthropic_agent
import httpx_agent
import openai_agent
from idguard_auth import IdguardAuth

env = os.environ
issuer = env["IDGUARD_ISSUER"]
pause = float(env["IDGUARD_PAUSE"])
openai_url = f"{issuer}/llm/openai/v1"
claude_url = f"{issuer}/llm/claude"


def with_secret(method: str) -> IdguardAuth:
    return IdguardAuth(issuer, env["IDGUARD_SECRET_CLIENT"], client_secret=env["IDGUARD_CLIENT_SECRET"],
                       auth_method=method)


def with_key() -> IdguardAuth:
    return IdguardAuth(issuer, env["IDGUARD_KEY_CLIENT"], private_key_file=env["IDGUARD_PRIVATE_KEY_FILE"],
                       key_id=env["IDGUARD_KEY_ID"])


def revoked(auth: IdguardAuth) -> dict:
    """A request, then its token revoked at idguard behind the hook's back (still cached), then another: idguard
    answers the second 401 and the hook fetches a new token and sends it again. Every status the client saw."""
    statuses = []
    client = httpx.Client(auth=auth, base_url=openai_url,
                          event_hooks={"response": [lambda response: statuses.append(response.status_code)]})
    request = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say pong."}]}
    first = client.post("/chat/completions", json=request)
    auth._post(auth.revocation_url, {"token": auth.token(), "token_type_hint": "access_token"})
    second = client.post("/chat/completions", json=request)
    return {"statuses": statuses, "final": [first.status_code, second.status_code]}


runs = {
    "openai secret": (with_secret("client_secret_basic"), lambda a: openai_agent.run(a, openai_url, 2, pause)),
    "openai jwt": (with_key(), lambda a: openai_agent.run(a, openai_url, 2, pause)),
    "anthropic secret": (with_secret("client_secret_post"),
                         lambda a: asyncio.run(anthropic_agent.run(a, claude_url, 2, pause))),
    "anthropic jwt": (with_key(), lambda a: asyncio.run(anthropic_agent.run(a, claude_url, 2, pause))),
    "httpx secret": (with_secret("client_secret_post"), lambda a: httpx_agent.run(a, openai_url, 2, pause)),
    "httpx jwt": (with_key(), lambda a: httpx_agent.run(a, openai_url, 2, pause)),
    "revoked": (with_secret("client_secret_basic"), revoked),
}
results = {}


def work(name: str) -> None:
    auth, run = runs[name]
    try:
        results[name] = {"result": run(auth), "token_fetches": auth.token_fetches}
    except Exception as e:  # reported, for the test to show; the messages carry no secret
        results[name] = {"error": f"{type(e).__name__}: {e}"}


threads = [threading.Thread(target=work, args=(name,)) for name in runs]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps(results))
