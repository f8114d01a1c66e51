"""A separate process using a context store, as another program would.

    python -m tests.context.worker write <target> <prefix> <session>
    python -m tests.context.worker read <target> <prefix> <session>
    python -m tests.context.worker append <target> <prefix> <session> <writer> <count>

``prefix`` is ``-`` for the default tables. ``append`` prints ``ready`` and waits for a
line on stdin before it opens the store, so the test can start all writers at once.
"""

from __future__ import annotations

import asyncio
import sys

from llmgine.context import open_store
from llmgine.llm import Conversation
from tests.context.samples import every_part_kind, numbered_turn


async def run(command: str, target: str, prefix: str | None, session: str, *rest: str) -> None:
    async with open_store(target, table_prefix=prefix) as store:
        if command == "write":
            messages = every_part_kind()
            await store.append(session, messages[:2])
            await store.append(session, messages[2:])
        elif command == "read":
            print(Conversation(messages=await store.load(session)).to_json())
        elif command == "append":
            writer, count = rest
            for index in range(int(count)):
                await store.append(session, numbered_turn(writer, index))
        else:
            raise SystemExit(f"unknown command {command!r}")


def main() -> None:
    command, target, prefix, session, *rest = sys.argv[1:]
    if command == "append":
        print("ready", flush=True)
        sys.stdin.readline()
    asyncio.run(run(command, target, None if prefix == "-" else prefix, session, *rest))


if __name__ == "__main__":
    main()
