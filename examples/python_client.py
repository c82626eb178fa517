#!/usr/bin/env python3
"""Drive `hwledger engine --stdio` over its JSON-RPC 2.0 sidecar protocol, standard library only.

Starts the engine as a child process, loads a model, streams a generation (printing each token's
text as its `token` notification arrives), then prints the final reply and the memory report and
shuts the engine down. The protocol is described in docs/process-model.md.

    python3 examples/python_client.py                      # the built-in demo model
    python3 examples/python_client.py --model /models/Qwen3-0.6B --prompt "Write a haiku"
    python3 examples/python_client.py --binary build/hwledger --max-tokens 64 --quiet

Exits non-zero if the engine breaks the protocol (e.g. the streamed text does not add up to the
final text), so it doubles as a check that a parent written in another language can use it.
"""

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys


class RpcError(Exception):
    def __init__(self, error):
        super().__init__(f"{error.get('code')}: {error.get('message')} {error.get('data', '')}")
        self.error = error


class EngineClient:
    """One engine child; requests are answered by id, notifications go to `on_notification`."""

    def __init__(self, argv, quiet=False):
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL if quiet else None,  # the engine's log; stdout is protocol only
            text=True,
            encoding="utf-8",
            bufsize=1,
        )
        self.ids = itertools.count(1)

    def send(self, method, params=None):
        request_id = next(self.ids)
        message = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or {}}
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()
        return request_id

    def wait_for(self, request_id, on_notification=None):
        for line in self.proc.stdout:
            message = json.loads(line)
            assert message.get("jsonrpc") == "2.0", message
            if "id" not in message:
                if on_notification:
                    on_notification(message["method"], message["params"])
                continue
            if message["id"] != request_id:
                continue  # a reply to another request (this client sends one at a time)
            if "error" in message:
                raise RpcError(message["error"])
            return message["result"]
        raise RuntimeError(f"the engine exited (code {self.proc.wait()}) before replying")

    def call(self, method, params=None, on_notification=None):
        return self.wait_for(self.send(method, params), on_notification)

    def close(self):
        try:
            self.call("shutdown")
        finally:
            self.proc.stdin.close()
            return self.proc.wait(timeout=60)


def find_binary(explicit):
    if explicit:
        return explicit
    here = os.path.dirname(os.path.abspath(__file__))
    for candidate in (os.path.join(here, "..", "build", "hwledger"), shutil.which("hwledger")):
        if candidate and os.path.exists(candidate):
            return candidate
    sys.exit("hwledger not found: pass --binary PATH")


def format_bytes(n):
    if n < 1024:
        return f"{n} B"
    for unit in ("KiB", "MiB", "GiB"):
        n /= 1024
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", help="path of the hwledger program")
    parser.add_argument("--model", default="demo", help="model folder, or 'demo' (default)")
    parser.add_argument("--prompt", default="Once upon a time")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--quiet", action="store_true", help="hide the engine's log")
    args = parser.parse_args()

    engine = EngineClient([find_binary(args.binary), "engine", "--stdio"], quiet=args.quiet)
    health = engine.call("health")
    print(f"engine {health['version']} (pid {health['pid']}) is up: {health['status']}")

    loaded = engine.call("load_model", {"model": args.model})
    print(f"loaded {loaded['model']}, context {loaded['context_length']} tokens")

    streamed = []

    def on_token(method, params):
        if method == "token" and params["request_id"] == "example-1":
            streamed.append(params["text"])
            print(params["text"] or f"[{params['token_id']}]", end="", flush=True)

    print("--- generation ---")
    result = engine.call(
        "generate",
        {"request_id": "example-1", "prompt": args.prompt, "max_tokens": args.max_tokens, "stream": True},
        on_notification=on_token,
    )
    print("\n---")
    print(f"stopped: {result['stopped_reason']}; prompt {result['prompt_tokens']} tokens "
          f"({result['cached_tokens']} from the cache), {result['completion_tokens']} generated")
    if "".join(streamed) != result["text"]:
        sys.exit("protocol error: the streamed text does not add up to the final text")

    report = engine.call("memory_report")
    print(f"memory: {format_bytes(report['total_bytes'])} = weights {format_bytes(report['weights_bytes'])}"
          f" + KV {format_bytes(report['kv_bytes'])} + runtime {format_bytes(report['runtime_bytes'])}")
    for layer in report["layers"]:
        print(f"  layer {layer['index']:3d}: weights {format_bytes(layer['weights_bytes']):>10}"
              f"  KV {format_bytes(layer['kv_bytes']):>10}")
    for tier, stats in report["tiers"].items():
        print(f"  {tier:8s} cache: {stats['blocks']} blocks, {format_bytes(stats['bytes'])}"
              f" of {format_bytes(stats['capacity'])}, {stats['hits']} hits, {stats['misses']} misses")

    try:
        engine.call("cancel", {"request_id": "no-such-request"})
        sys.exit("protocol error: cancel of an unknown request_id succeeded")
    except RpcError as e:
        assert e.error["code"] == -32004, e.error

    code = engine.close()
    print(f"engine exited with code {code}")
    return code


if __name__ == "__main__":
    sys.exit(main())
