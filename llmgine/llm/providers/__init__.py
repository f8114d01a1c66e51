"""Provider adapters; reach them through `llmgine.llm.get_model`.

Each native API is one translator file (``openai_chat``, ``openai_responses``,
``anthropic_messages``, ``gemini_generate``: plain functions between an `LLMRequest`, the
wire JSON and `StreamItem`s) and one small `Provider` that sends what it builds
(``openai``, ``anthropic``, ``gemini``). ``README.md`` here is the recipe for adding one.
"""

__all__: list[str] = []
