"""Device profiles: one YAML file per machine model (data, not code); this module only finds them."""

from __future__ import annotations

from pathlib import Path

PROFILE_DIR = Path(__file__).resolve().parent


def available() -> list[str]:
    """Names of the built-in profiles (file stems)."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def profile_path(name_or_path: str | Path) -> Path:
    """A built-in profile by name (``cnc_vmc``), or a path to a profile file as given."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or candidate.exists():
        return candidate
    path = PROFILE_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        raise FileNotFoundError(
            f"no built-in profile {str(name_or_path)!r}; built-in profiles: {', '.join(available())}"
        )
    return path
