"""The embedded Piper voice: real speech on any CPU with nothing downloaded."""

from fasttts.models.piper.engine import PiperEngine

__all__ = ["PiperEngine"]
