"""MegaTTS3 (ByteDance, 24 kHz): g2p LLM → aligner → duration LM → diffusion transformer → WaveVAE.

Release format: /work/shared/model-formats/mega.md. ``loader.load_parts`` reads a release strictly;
``engine.MegaEngine`` is the FastTTS engine; ``random_model`` writes random-weight releases.
"""
