"""`Tool`: one callable tool (a name, a description, a JSON schema, a way to run it), and
the `@tool` decorator that makes one from a Python function."""

from __future__ import annotations

import copy
import functools
import inspect
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, overload

from pydantic import BaseModel

from llmgine.errors import ToolArgumentsError, ToolDefinitionError
from llmgine.llm import ToolSpec
from llmgine.tools._schema import FunctionSignature, function_signature
from llmgine.tools._thread import ThreadRun

__all__ = ["Tool", "tool"]

# What OpenAI accepts (the strictest of the providers); Anthropic and Gemini accept it too.
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

RemoteCall = Callable[[dict[str, Any]], Awaitable[Any]]


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ToolDefinitionError(
            f"a tool name is 1-64 letters, digits, '_' or '-' (what every provider accepts), "
            f"got {name!r}; pass name='...' to choose one"
        )
    return name


def _is_async(fn: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - an object with `async def __call__`
    return call is not None and inspect.iscoroutinefunction(call)


class Tool:
    """One callable tool: a name, a description, a JSON schema of its arguments, and how to
    run it.

    Made from a function (`Tool.from_function`, or the `tool` decorator), whose arguments
    are validated and coerced by pydantic before it runs; or from a ready schema and an
    async call (`Tool.from_schema`, for remote tools such as MCP's), whose arguments are
    checked only to be a JSON object. A tool made from a function stays callable like it.

    Args (of `from_function` and `tool`):
        name: the name the model calls it by (default: the function's name).
        description: what the model is told it does (default: the docstring, without its
            parameter section).
        ends_loop: a successful call ends the tool loop after its round, without asking
            the model again (an "answer" tool whose arguments are the final output).
        timeout: seconds for one run; None uses the `ToolManager`'s timeout; ``math.inf``
            for none.
        strict: passed on as `ToolSpec.strict` (OpenAI's strict function calling).

    Example:
        @tool
        def get_weather(city: str, units: Literal["c", "f"] = "c") -> str:
            \"\"\"The current weather in a city.

            Args:
                city: The city's name, e.g. "Paris".
                units: Celsius or Fahrenheit.
            \"\"\"
            return f"sunny, 21 degrees {units} in {city}"

        get_weather.parameters   # the JSON schema the model sees
        await get_weather.run({"city": "Paris"})   # validated, then run in a thread
    """

    name: str
    description: str
    parameters: dict[str, Any]

    def __init__(
        self,
        name: str,
        description: str,
        parameters: dict[str, Any],
        *,
        function: Callable[..., Any] | None = None,
        signature: FunctionSignature | None = None,
        remote: RemoteCall | None = None,
        ends_loop: bool = False,
        timeout: float | None = None,
        strict: bool | None = None,
    ) -> None:
        if (function is None) == (remote is None):
            raise ToolDefinitionError(
                "a Tool runs either a Python function or a remote call: use "
                "Tool.from_function(fn) or Tool.from_schema(name, description, schema, call)"
            )
        if timeout is not None and not timeout > 0:
            raise ToolDefinitionError(f"a tool's timeout must be positive seconds, got {timeout}")
        self.name = _check_name(name)
        self.description = description
        self.parameters = parameters
        self.function = function
        self.signature = signature
        self.ends_loop = ends_loop
        self.timeout = timeout
        self.strict = strict
        self._remote = remote
        self.is_async = remote is not None or (function is not None and _is_async(function))
        if function is not None:
            # Look like the function to help(), inspect.signature and notebooks.
            functools.update_wrapper(self, function, updated=())

    @classmethod
    def from_function(
        cls,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        ends_loop: bool = False,
        timeout: float | None = None,
        strict: bool | None = None,
    ) -> Tool:
        """A tool that runs ``fn`` (sync functions in a worker thread, async ones on the
        event loop), its schema derived from ``fn``'s signature and docstring."""
        if isinstance(fn, Tool):
            raise ToolDefinitionError(
                f"{fn.name!r} is already a Tool; use it as it is, or tool.renamed(...)"
            )
        if not callable(fn):
            raise ToolDefinitionError(f"a tool is made from a function, got {type(fn).__name__}")
        chosen = name if name is not None else getattr(fn, "__name__", None)
        if chosen is None:
            raise ToolDefinitionError(
                f"{fn!r} has no __name__ to name the tool by; pass name='...'"
            )
        _check_name(chosen)
        signature = function_signature(fn, chosen, description)
        return cls(
            chosen,
            signature.description,
            signature.parameters,
            function=fn,
            signature=signature,
            ends_loop=ends_loop,
            timeout=timeout,
            strict=strict,
        )

    @classmethod
    def from_schema(
        cls,
        name: str,
        description: str,
        parameters: dict[str, Any],
        call: RemoteCall,
        *,
        ends_loop: bool = False,
        timeout: float | None = None,
        strict: bool | None = None,
    ) -> Tool:
        """A tool described by a ready JSON schema and run by ``call(arguments)`` (awaited;
        it returns text or JSON-able data and raises on failure). The arguments are only
        checked to be a JSON object: the other side validates them."""
        if not isinstance(parameters, dict) or parameters.get("type", "object") != "object":
            raise ToolDefinitionError(
                f"the parameters of tool {name!r} must be a JSON schema of type 'object', got "
                f"{parameters!r}"
            )
        if not callable(call):
            raise ToolDefinitionError(f"the call of tool {name!r} must be an async function")
        return cls(
            name,
            description,
            {"type": "object", **parameters},
            remote=call,
            ends_loop=ends_loop,
            timeout=timeout,
            strict=strict,
        )

    @property
    def arguments_model(self) -> type[BaseModel] | None:
        """The pydantic model that validates the arguments (None for a remote tool)."""
        return None if self.signature is None else self.signature.model

    def spec(self) -> ToolSpec:
        """What a request tells the model about this tool."""
        return ToolSpec(
            name=self.name,
            description=self.description,
            parameters=self.parameters,
            strict=self.strict,
        )

    def renamed(self, name: str) -> Tool:
        """The same tool under another name."""
        twin = copy.copy(self)
        twin.name = _check_name(name)
        return twin

    async def run(self, arguments: Mapping[str, Any], *, show_values: bool = False) -> Any:
        """Validate ``arguments`` (`ToolArgumentsError` names each wrong field, and quotes
        the values sent, redacted, only with ``show_values``), then run the tool and return
        what it returned; whatever the tool raises propagates.

        A sync tool runs in a worker thread: cancelling the call (or a timeout around it)
        stops the waiting, not the thread, which Python cannot stop. `ToolManager` reports
        such a thread's late finish; called directly, it finishes unobserved.
        """
        return await self._invoke(arguments, None, show_values=show_values)

    async def _invoke(
        self,
        arguments: Mapping[str, Any],
        on_thread: Callable[[ThreadRun], None] | None,
        *,
        show_values: bool = False,
    ) -> Any:
        """`run`, telling ``on_thread`` of the worker thread a sync tool runs in (so the
        manager can watch a thread that outlives its timeout)."""
        if self._remote is not None:
            if not isinstance(arguments, Mapping):
                raise ToolArgumentsError(
                    f"the arguments for tool {self.name!r} must be a JSON object, got "
                    f"{type(arguments).__name__}",
                    tool=self.name,
                    errors=[{"loc": [], "msg": "expected an object", "type": "object_type"}],
                )
            return await self._remote(dict(arguments))
        assert self.function is not None
        assert self.signature is not None
        args, kwargs = self.signature.bind(self.name, arguments, show_values=show_values)
        if self.is_async:
            return await self.function(*args, **kwargs)
        # A sync tool may block (files, HTTP, CPU): keep it off the event loop.
        thread = ThreadRun(self.function, args, kwargs)
        if on_thread is not None:
            on_thread(thread)
        result = await thread.run()
        if inspect.isawaitable(result):  # e.g. a lambda returning a coroutine
            result = await result
        return result

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the function itself, as if it were not a tool (no validation, no thread)."""
        if self.function is None:
            raise TypeError(
                f"{self.name!r} is a remote tool with no Python function to call; use "
                f"`await tool.run({{...}})`"
            )
        return self.function(*args, **kwargs)

    def __repr__(self) -> str:
        kind = "remote" if self.function is None else ("async" if self.is_async else "sync")
        return f"<Tool {self.name} ({kind})>"


@overload
def tool(fn: Callable[..., Any], /) -> Tool: ...
@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    ends_loop: bool = False,
    timeout: float | None = None,
    strict: bool | None = None,
) -> Callable[[Callable[..., Any]], Tool]: ...
def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    ends_loop: bool = False,
    timeout: float | None = None,
    strict: bool | None = None,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a function a `Tool` (``@tool`` or ``@tool(name=..., ...)``).

    The decorated name is the `Tool` itself, which stays callable like the function (a
    direct call runs the function as it is: no validation, no thread). For a method,
    register the bound method instead (``manager.register(obj.method)``), so ``self`` is
    not part of the schema.
    """

    def make(function: Callable[..., Any]) -> Tool:
        return Tool.from_function(
            function,
            name=name,
            description=description,
            ends_loop=ends_loop,
            timeout=timeout,
            strict=strict,
        )

    return make if fn is None else make(fn)
