"""Models: the `LanguageModel` interface, a provider's model, and `Model`, what users hold.

Cross-cutting concerns (tracing, retry, fallback) are `LanguageModel`s wrapping another
(see `_wrappers`); `Model` is the friendly face over the chain: it accepts a prompt string,
messages or a full `LLMRequest`, applies defaults, and does structured output.

Every request field `Model` takes (a model's defaults, a call's overrides, the prompt) is
validated as `LLMRequest` validates it, before anything reaches a provider: overrides are
applied to a ready request by copying it, which pydantic does not validate, so they are
checked on their own first. A failure is an `InvalidRequestError` naming each field.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ValidationError

from llmgine.errors import InvalidRequestError, StructuredOutputError
from llmgine.llm._cost import cost_usd
from llmgine.llm._parts import ChatMessage, TextPart
from llmgine.llm._provider import Provider
from llmgine.llm._request import LLMRequest, ResponseFormat
from llmgine.llm._response import LLMResponse
from llmgine.llm._stream import ResponseStream

__all__ = ["LanguageModel", "Model", "Prompt", "ProviderModel"]

T = TypeVar("T", bound=BaseModel)

Prompt = str | ChatMessage | Sequence[ChatMessage] | LLMRequest
REQUEST_FIELDS = frozenset(LLMRequest.model_fields) - {"messages"}


@runtime_checkable
class LanguageModel(Protocol):
    """One model behind one interface: what wrappers wrap and `Model` drives."""

    @property
    def provider(self) -> str: ...

    @property
    def name(self) -> str: ...

    async def generate(self, request: LLMRequest) -> LLMResponse: ...

    def stream(self, request: LLMRequest) -> ResponseStream: ...


class ProviderModel:
    """A provider and a model name; adds the cost of each answer."""

    def __init__(self, provider: Provider, name: str) -> None:
        self._provider = provider
        self._name = name

    @property
    def provider(self) -> str:
        return self._provider.name

    @property
    def name(self) -> str:
        return self._name

    @property
    def adapter(self) -> Provider:
        return self._provider

    def _costed(self, response: LLMResponse) -> LLMResponse:
        if response.cost_usd is None and not response.demo:
            response.cost_usd = cost_usd(
                self.provider, response.model or self._name, response.usage
            )
        return response

    async def generate(self, request: LLMRequest) -> LLMResponse:
        if request.stream:  # asked for streaming: stream, and answer with the assembly
            return await self.stream(request).get_response()
        if request.model != self._name:
            request = request.model_copy(update={"model": self._name})
        return self._costed(await self._provider.generate(request))

    def stream(self, request: LLMRequest) -> ResponseStream:
        request = request.model_copy(update={"model": self._name, "stream": True})
        return self._provider.stream(request).then(self._costed)


def _messages(prompt: str | ChatMessage | Sequence[ChatMessage]) -> list[ChatMessage]:
    if isinstance(prompt, str):
        return [ChatMessage.user(prompt)]
    if isinstance(prompt, ChatMessage):
        return [prompt]
    return list(prompt)


class Model:
    """A model to call: ``await model.generate("Hi")``; ``model.stream(...)``.

    Made by `llmgine.llm.get_model("provider:model", **defaults)`. ``defaults`` are request
    fields (temperature, max_tokens, options, ...) applied to every call unless the call
    sets them.

    Example:
        model = get_model("openai:gpt-4o-mini", temperature=0.2)
        reply = await model.generate("Name three primes.")
        async with model.stream([ChatMessage.system("Be brief."), ChatMessage.user("Hi")]) as s:
            async for item in s: ...
    """

    def __init__(self, inner: LanguageModel, *, defaults: dict[str, Any] | None = None) -> None:
        unknown = set(defaults or {}) - REQUEST_FIELDS
        if unknown:
            raise TypeError(
                f"unknown request defaults {sorted(unknown)}; valid ones are "
                f"{', '.join(sorted(REQUEST_FIELDS))}"
            )
        self.inner = inner
        self.defaults = self._checked(dict(defaults or {}), "default")

    @property
    def provider(self) -> str:
        return self.inner.provider

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def spec(self) -> str:
        """``"provider:model"``, as `get_model` takes it."""
        return f"{self.provider}:{self.name}"

    def __repr__(self) -> str:
        return f"<Model {self.spec}>"

    @property
    def adapter(self) -> Provider:
        """The provider adapter under the wrappers (e.g. to script a test model)."""
        inner: Any = self.inner
        while not isinstance(inner, ProviderModel):
            inner = inner.inner
        return inner.adapter

    async def aclose(self) -> None:
        """Close the provider's connections (when the event loop is about to end)."""
        await self.adapter.aclose()

    def request(self, prompt: Prompt, **params: Any) -> LLMRequest:
        """The `LLMRequest` a call with these arguments sends (defaults applied)."""
        unknown = set(params) - REQUEST_FIELDS
        if unknown:
            raise TypeError(
                f"unknown request fields {sorted(unknown)}; valid ones are "
                f"{', '.join(sorted(REQUEST_FIELDS))}"
            )
        if isinstance(prompt, LLMRequest):
            base = {k: v for k, v in self.defaults.items() if k not in prompt.model_fields_set}
            if prompt.model is None:  # name it now: the provider's model then needs no copy
                base["model"] = self.name
            return prompt.model_copy(update={**base, **self._checked(params, "call")})
        try:
            return LLMRequest(
                messages=_messages(prompt), **{"model": self.name, **self.defaults, **params}
            )
        except ValidationError as exc:
            raise self._invalid(exc, "call") from exc

    def _checked(self, fields: dict[str, Any], kind: str) -> dict[str, Any]:
        """``fields`` validated (and converted: dicts to models, tools to specs) as
        `LLMRequest` would; `InvalidRequestError` names each wrong one."""
        if not fields:
            return fields
        try:
            checked = LLMRequest.model_validate({"messages": [], **fields})
        except ValidationError as exc:
            raise self._invalid(exc, kind) from exc
        return {name: getattr(checked, name) for name in fields}

    def _invalid(self, exc: ValidationError, kind: str) -> InvalidRequestError:
        errors = [
            {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False)
        ]
        described = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(request)'}: {e['msg']}" for e in errors
        )
        what = "model defaults" if kind == "default" else "request"
        return InvalidRequestError(
            f"invalid {what} for {self.spec}: {described}; fix these fields (LLMRequest's "
            f"fields say what each takes)",
            errors=errors,
            provider=self.provider,
            model=self.name,
        )

    async def generate(self, prompt: Prompt, **params: Any) -> LLMResponse:
        """One answer, without streaming."""
        return await self.inner.generate(self.request(prompt, **params))

    def stream(self, prompt: Prompt, **params: Any) -> ResponseStream:
        """One answer, streamed: iterate for items; ``.response`` at the end."""
        return self.inner.stream(self.request(prompt, **params))

    async def generate_structured(
        self, prompt: Prompt, output_type: type[T], *, max_attempts: int = 3, **params: Any
    ) -> LLMResponse:
        """An answer that validates as ``output_type``, in ``response.parsed``.

        The JSON schema of ``output_type`` is sent as the provider's native structured
        output (each adapter adapts it to its provider's schema limits). An answer that
        does not validate is sent back with the validation errors, asking again, up to
        ``max_attempts`` calls in all; then `StructuredOutputError`.
        """
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        if not (isinstance(output_type, type) and issubclass(output_type, BaseModel)):
            raise TypeError(
                f"output_type must be a pydantic model class (class Answer(BaseModel): ...), "
                f"got {output_type!r}"
            )
        request = self.request(prompt, **params)
        request = request.model_copy(
            update={
                "response_format": ResponseFormat(
                    name=output_type.__name__,
                    json_schema=output_type.model_json_schema(),
                    description=(output_type.__doc__ or "").strip() or None,
                )
            }
        )
        errors = ""
        for _ in range(max_attempts):
            response = await self.inner.generate(request)
            try:
                response.parsed = output_type.model_validate_json(response.text)
                return response
            except ValidationError as exc:
                errors = _short_errors(exc)
            retry = ChatMessage.user(
                [
                    TextPart(
                        text="That answer does not match the required JSON schema: "
                        f"{errors}. Answer again with only the corrected JSON."
                    )
                ]
            )
            request = request.model_copy(
                update={"messages": [*request.messages, response.message, retry]}
            )
        raise StructuredOutputError(
            f"{self.spec} did not produce a valid {output_type.__name__} in {max_attempts} "
            f"attempt(s); last errors: {errors}. Simplify the schema, raise max_attempts, or "
            "try a stronger model.",
            provider=self.provider,
            model=self.name,
        )


def _short_errors(exc: ValidationError) -> str:
    return json.dumps(
        [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()[:10]], ensure_ascii=False
    )
