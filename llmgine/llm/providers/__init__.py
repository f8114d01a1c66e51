"""Provider adapters, one file each; reach them through `llmgine.llm.get_model`."""

__all__: list[str] = []
