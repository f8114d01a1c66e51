"""Models: the `LanguageModel` interface, the `WrapperModel` base, a provider's model, and
`Model`, what users hold.

Cross-cutting concerns (tracing, retry, fallback, and whatever you add) are `WrapperModel`s:
each wraps one model, forwards what it does not change and overrides what it does (see
`_wrappers`). `Model` is the friendly face over the chain, itself a wrapper: it accepts a
prompt string, messages or a full `LLMRequest`, applies defaults, and does structured
output. Being a `LanguageModel`, a `Model` goes wherever one goes: ``Fallback([a, b])``
takes the models you hold.

Every request field `Model` takes (a model's defaults, a call's overrides, the prompt) is
validated as `LLMRequest` validates it, before anything reaches a provider: overrides are
applied to a ready request by copying it, which pydantic does not validate, so they are
checked on their own first. A failure is an `InvalidRequestError` naming each field.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ValidationError

from llmgine.errors import InvalidRequestError, StructuredOutputError
from llmgine.llm._cost import cost_usd
from llmgine.llm._parts import ChatMessage, TextPart
from llmgine.llm._provider import Provider
from llmgine.llm._request import LLMRequest, ResponseFormat
from llmgine.llm._response import LLMResponse
from llmgine.llm._stream import ResponseStream

__all__ = ["LanguageModel", "Model", "Prompt", "ProviderModel", "WrapperModel"]

T = TypeVar("T", bound=BaseModel)
M = TypeVar("M")

Prompt = str | ChatMessage | Sequence[ChatMessage] | LLMRequest
REQUEST_FIELDS = frozenset(LLMRequest.model_fields) - {"messages"}


@runtime_checkable
class LanguageModel(Protocol):
    """One model behind one interface: what wrappers wrap and `Model` drives."""

    @property
    def provider(self) -> str: ...

    @property
    def name(self) -> str: ...

    # Positional-only: `Model` takes a wider ``prompt`` in the same place.
    async def generate(self, request: LLMRequest, /) -> LLMResponse: ...

    def stream(self, request: LLMRequest, /) -> ResponseStream: ...


class WrapperModel:
    """A `LanguageModel` around another, ``wrapped``: everything is forwarded to it, so a
    subclass overrides only what it changes (as pydantic-ai's ``WrapperModel``).

    A wrapper that overrides only `generate` still streams (through ``wrapped``); one
    that must see every call overrides both. ``find(kind)`` reaches a layer underneath
    (``find(ProviderModel)``: the provider's model, for its adapter and address), and
    `aclose` closes what is underneath.

    Example:
        class Logged(WrapperModel):
            async def generate(self, request: LLMRequest, /) -> LLMResponse:
                print("asking", self.name)
                return await self.wrapped.generate(request)

        model = Model(Logged(get_model("demo:x")))
    """

    def __init__(self, wrapped: LanguageModel) -> None:
        self.wrapped = wrapped

    @property
    def provider(self) -> str:
        return self.wrapped.provider

    @property
    def name(self) -> str:
        return self.wrapped.name

    async def generate(self, request: LLMRequest, /) -> LLMResponse:
        return await self.wrapped.generate(request)

    def stream(self, request: LLMRequest, /) -> ResponseStream:
        return self.wrapped.stream(request)

    def layers(self) -> Iterator[LanguageModel]:
        """This model, then each one it wraps, down to the innermost."""
        model: LanguageModel = self
        while True:
            yield model
            if not isinstance(model, WrapperModel):
                return
            model = model.wrapped

    @property
    def innermost(self) -> LanguageModel:
        """The model at the bottom of the chain (usually a `ProviderModel`)."""
        *_, last = self.layers()
        return last

    def find(self, kind: type[M]) -> M | None:
        """The outermost layer that is a ``kind`` (this one included), or None."""
        for model in self.layers():
            if isinstance(model, kind):
                return model
        return None

    async def aclose(self) -> None:
        """Close what is underneath: a provider's connections (when the event loop is
        about to end)."""
        await _aclose(self.wrapped)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.provider}:{self.name}>"


async def _aclose(model: LanguageModel) -> None:
    # Only llmgine's own models own connections; any other `LanguageModel` closes itself.
    if isinstance(model, WrapperModel | ProviderModel):
        await model.aclose()


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

    async def aclose(self) -> None:
        """Close the provider's connections."""
        await self._provider.aclose()

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


class Model(WrapperModel):
    """A model to call: ``await model.generate("Hi")``; ``model.stream(...)``.

    Made by `llmgine.llm.get_model("provider:model", **defaults)`. ``defaults`` are request
    fields (temperature, max_tokens, options, ...) applied to every call unless the call
    sets them.

    A `Model` is a `WrapperModel` over the chain `get_model` builds (retry, then tracing,
    then the provider's model): ``model.wrapped`` is the chain, ``model.adapter`` the
    provider underneath. ``Model(any_language_model)`` gives any `LanguageModel` (a
    `Fallback`, a wrapper of yours) the same friendly face.

    Example:
        model = get_model("openai:gpt-4o-mini", temperature=0.2)
        reply = await model.generate("Name three primes.")
        async with model.stream([ChatMessage.system("Be brief."), ChatMessage.user("Hi")]) as s:
            async for item in s: ...
    """

    def __init__(self, wrapped: LanguageModel, *, defaults: dict[str, Any] | None = None) -> None:
        unknown = set(defaults or {}) - REQUEST_FIELDS
        if unknown:
            raise TypeError(
                f"unknown request defaults {sorted(unknown)}; valid ones are "
                f"{', '.join(sorted(REQUEST_FIELDS))}"
            )
        super().__init__(wrapped)
        self.defaults = self._checked(dict(defaults or {}), "default")

    @property
    def spec(self) -> str:
        """``"provider:model"``, as `get_model` takes it."""
        return f"{self.provider}:{self.name}"

    def __repr__(self) -> str:
        return f"<Model {self.spec}>"

    @property
    def adapter(self) -> Provider:
        """The provider adapter under the wrappers (e.g. to script a test model); for a
        `Fallback`, its first model's."""
        found = self.find(ProviderModel)
        if found is None:
            raise TypeError(
                f"{self!r} has no provider's model underneath (its innermost model is "
                f"{self.innermost!r}); only a chain built on a ProviderModel has an adapter"
            )
        return found.adapter

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
        return await self.wrapped.generate(self.request(prompt, **params))

    def stream(self, prompt: Prompt, **params: Any) -> ResponseStream:
        """One answer, streamed: iterate for items; ``.response`` at the end."""
        return self.wrapped.stream(self.request(prompt, **params))

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
            response = await self.wrapped.generate(request)
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
